/**
 * Groups and reroute points on the canvas (graph/groups.ts).
 *
 * GroupNode: a titled, coloured frame drawn behind the nodes; drag its title bar to
 * move it with the nodes inside (GraphCanvas handles the move); resize it when
 * selected; double-click the title (or "Rename group" in its menu) to rename it.
 * RerouteNode: a small dot on a wire that can be dragged to bend it.
 *
 * Test ids: group-<id>, group-title-<id>, group-title-edit-<id>, reroute-<id>.
 */
import { NodeResizer, type Node, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { updateGroup, type Group, type Reroute } from "../graph/groups";
import { useApp } from "../state/context";
import { useStore } from "../state/store";

export type GroupFlowNode = Node<{ group: Group }, "group">;
export type RerouteFlowNode = Node<{ reroute: Reroute }, "reroute">;

function GroupView({ data, selected }: NodeProps<GroupFlowNode>) {
  const app = useApp();
  const { group } = data;
  const renaming = useStore(app.ui, (s) => s.renaming === `group:${group.id}`);
  const setRenaming = (on: boolean) => app.ui.set((s) => ({ ...s, renaming: on ? `group:${group.id}` : null }));
  return (
    <div className="ng-group" data-testid={`group-${group.id}`} style={{ borderColor: group.color, background: `${group.color}26` }}>
      <NodeResizer
        isVisible={selected}
        minWidth={120}
        minHeight={80}
        color={group.color}
        onResize={(_, p) => app.layoutEdit((doc) => updateGroup(doc, group.id, { bounds: [Math.round(p.x), Math.round(p.y), Math.round(p.width), Math.round(p.height)] }), { drag: true })}
        onResizeEnd={() => app.editor.dragEnd()}
      />
      <div className="ng-group-title" style={{ background: group.color }} data-testid={`group-title-${group.id}`} onDoubleClick={() => setRenaming(true)}>
        {renaming ? (
          <input
            className="nodrag"
            autoFocus
            data-testid={`group-title-edit-${group.id}`}
            defaultValue={group.title}
            onBlur={(e) => {
              const title = e.target.value.trim() || group.title;
              app.editor.edit((doc) => updateGroup(doc, group.id, { title }));
              setRenaming(false);
            }}
            onKeyDown={(e) => {
              if (e.key === "Enter") (e.target as HTMLInputElement).blur();
              if (e.key === "Escape") setRenaming(false);
            }}
          />
        ) : (
          group.title
        )}
      </div>
    </div>
  );
}

function RerouteView({ data, selected }: NodeProps<RerouteFlowNode>) {
  return <div className={`ng-reroute${selected ? " ng-selected" : ""}`} data-testid={`reroute-${data.reroute.id}`} title="reroute: drag to bend the wire" />;
}

export const GroupNode = memo(GroupView);
export const RerouteNode = memo(RerouteView);
