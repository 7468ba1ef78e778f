/**
 * The node palette, generated from the server's schemas: a search box and the
 * node types grouped by category (loaders, conditioning, sampling, latent, image and the other core categories
 * first, then plugins', training last: schema/search.ts `orderPaletteGroups`); while searching, one list ranked by
 * schema/search.ts (so "int" puts Int first). Click a node to add it near the
 * centre of the view (clear of other nodes), or drag it onto the canvas. Enter
 * in the search box adds the best match when it is a strong one (schema/search.ts);
 * weak hits (letters in order) are listed under "no good match — letters in order"
 * and only a click adds one.
 * The list is one Tab stop (a roving tabindex): Tab reaches one node (the last one focused, else
 * the first), ↑/↓ Home/End move between them, Enter or Space adds the focused one.
 * Nodes whose bare name clashes between plugins (canonical name `plugin.Type`)
 * show their plugin; the search also matches qualified names and aliases.
 * Test ids: palette, palette-search, palette-item-<type>.
 */
import { useMemo, useRef, useState, type KeyboardEvent } from "react";
import { paletteGroups } from "../schema/palette";
import { orderPaletteGroups, searchNodes } from "../schema/search";
import { useApp } from "../state/context";
import { useStore } from "../state/store";
import { addNodeAt, NODE_DRAG_TYPE } from "./GraphCanvas";

/** The heading of the strong search hits; Enter adds the first of them. */
const BEST_MATCHES = "best matches";

export function Palette() {
  const app = useApp();
  const nodes = useStore(app.session, (s) => s.schemas.nodes);
  const [query, setQuery] = useState("");
  const groups = useMemo(() => {
    if (!query.trim()) return orderPaletteGroups(paletteGroups(nodes, "")); // core categories first, then plugins', training last
    const hits = searchNodes(nodes, query, { limit: 60 });
    return [
      { category: BEST_MATCHES, nodes: hits.filter((h) => h.strong).map((h) => h.schema) },
      { category: "no good match — letters in order", nodes: hits.filter((h) => !h.strong).map((h) => h.schema) },
    ].filter((g) => g.nodes.length);
  }, [nodes, query]);

  // The one item Tab reaches (roving tabindex); one that is no longer listed gives way to the first.
  const [current, setCurrent] = useState<string | null>(null);
  const listed = groups.flatMap((g) => g.nodes.map((n) => n.type));
  const tabStop = current !== null && listed.includes(current) ? current : listed[0];
  const list = useRef<HTMLDivElement>(null);
  const onListKey = (e: KeyboardEvent<HTMLDivElement>) => {
    const items = [...(list.current?.querySelectorAll<HTMLButtonElement>(".ng-palette-item") ?? [])];
    const at = items.indexOf(document.activeElement as HTMLButtonElement);
    if (at < 0) return;
    const to = e.key === "ArrowDown" ? Math.min(items.length - 1, at + 1)
      : e.key === "ArrowUp" ? Math.max(0, at - 1)
      : e.key === "Home" ? 0
      : e.key === "End" ? items.length - 1
      : null;
    if (to === null) return;
    e.preventDefault();
    items[to].focus();
  };

  const addAtCentre = (type: string) => {
    const element = app.canvas.element;
    const rect = element?.getBoundingClientRect();
    const [x, y] = rect ? app.canvas.toFlow(rect.left + rect.width / 2, rect.top + rect.height / 3) : [0, 0];
    addNodeAt(app, type, [x - 150, y]);
  };

  return (
    <aside className="ng-palette" data-testid="palette" aria-label="Node palette">
      <input
        className="ng-search"
        data-testid="palette-search"
        type="search"
        aria-label="Search nodes"
        placeholder="Search nodes…"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && groups[0]?.category === BEST_MATCHES && groups[0].nodes[0]) addAtCentre(groups[0].nodes[0].type);
        }}
      />
      <div className="ng-palette-list" ref={list} onKeyDown={onListKey}>
        {groups.length === 0 && <div className="ng-muted">{Object.keys(nodes).length ? "No good match: no node matches." : "Waiting for the server's node list…"}</div>}
        {groups.map((group) => (
          <section key={group.category}>
            <h3>{group.category}</h3>
            {group.nodes.map((node) => (
              <button
                key={node.type}
                type="button"
                className="ng-palette-item"
                tabIndex={node.type === tabStop ? 0 : -1}
                onFocus={() => setCurrent(node.type)}
                data-testid={`palette-item-${node.type}`}
                title={node.description}
                draggable
                onDragStart={(e) => {
                  e.dataTransfer.setData(NODE_DRAG_TYPE, node.type);
                  e.dataTransfer.effectAllowed = "move";
                }}
                onClick={() => addAtCentre(node.type)}
              >
                {node.display_name || node.type}
                {node.type.includes(".") && node.plugin && (
                  // the canonical name is qualified only when the bare name clashes: say whose node this is
                  <span className="ng-muted ng-palette-plugin"> · {node.plugin}</span>
                )}
              </button>
            ))}
          </section>
        ))}
      </div>
    </aside>
  );
}
