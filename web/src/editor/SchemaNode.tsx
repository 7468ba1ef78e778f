/**
 * One node on the canvas, drawn from its schema: a header with the title and
 * run state (queued, running with step progress, cached, done with time,
 * error), output ports on the right, one row per input with its port on the
 * left and its widget (hidden while the input is linked), validation errors
 * on the node and on the offending input, the live preview, output files of
 * every kind (editor/OutputFiles.tsx) and recorded output values. A node whose
 * type the server does not know says so, with the plugin problem that may
 * explain it (run/plugins.ts `unknownTypeHint`).
 *
 * Nodes are 300 px wide by default (resizable when selected: `ui.nodes.<id>.size`),
 * with 13 px text and labels that are not cut. A bypassed node is drawn purple
 * and translucent, a muted (or skipped) one grey; a node whose type is unknown
 * is a red placeholder that keeps every input as written. A subgraph node has
 * an "Open" button. Clicking the live preview or an output image opens the
 * image viewer (all of the node's images, for per-frame viewing of a batch).
 * A node with warnings in the shown run (run/warnings.ts; a subgraph node: its inner
 * nodes' too) has an amber frame and lists them, those of a cached result marked as
 * from an earlier run.
 *
 * A node's colours (`ui.nodes.<id>.color` for the title bar, `bgcolor` for the body: ComfyUI's, graph/nodeLook.ts)
 * are drawn with text that reads on them; a minimised node (`collapsed`: the ▾ before the title, Alt+C, or its
 * menu) shows only its title bar, its wires ending on it.
 *
 * Test ids: node-<id> (data-mode, data-minimised), minimise-<id>, node-status-<id>, node-error-<id>, node-warning-<id>, node-unknown-<id>, open-subgraph-<id>,
 * handle-<id>-in-<input>, handle-<id>-out-<output>, input-<id>-<input>,
 * input-error-<id>-<input>, unlink-<id>-<input>, node-preview-<id>,
 * node-files-<id>, node-output-<id>.
 */
import { nodeGesture } from "./CanvasMiniMap";
import { Handle, NodeResizer, Position, type Node, type NodeProps } from "@xyflow/react";
import { memo, useId, useRef } from "react";
import { disconnect, isLink, nodeSize, setInput, setNodeSize, setTitle, type DocNode } from "../graph/document";
import { jsonPreview } from "../graph/exactJson";
import { subgraphName } from "../graph/subgraph";
import { NODE_WIDTH } from "../graph/layout";
import { openViewer } from "../state/ui";
import type { GraphError } from "../protocol/messages";
import { portColor, type InputSpec, type NodeSchema, type PortType } from "../schema/types";
import { widgetFor } from "../schema/widgets";
import { unknownTypeHint } from "../run/plugins";
import { runningInnerId, subgraphRunState, type NodeRunState } from "../run/sessionState";
import { useApp } from "../state/context";
import { runKeyPrefix } from "../state/editorStore";
import { useStore } from "../state/store";
import { InputWidget } from "./InputWidget";
import { isMinimised, nodeColors, textColorOn, toggleMinimised } from "../graph/nodeLook";
import { NodeFiles } from "./OutputFiles";
import { displayOutput } from "./outputText";

export interface SchemaNodeData extends Record<string, unknown> {
  node: DocNode;
  schema: NodeSchema | undefined;
  /** Output names that links in the graph read from this node (for nodes whose type is unknown). */
  linkedOutputs: string[];
}

export type SchemaFlowNode = Node<SchemaNodeData, "schema">;

const NO_ERRORS: GraphError[] = [];

function statusText(state: NodeRunState | undefined): string {
  if (!state) return "";
  switch (state.status) {
    case "running":
      return state.total ? `running ${state.value}/${state.total}` : "running";
    case "done":
      return `done ${formatSeconds(state.seconds ?? 0)}`;
    case "skipped":
      return "skipped";
    default:
      return state.status;
  }
}

/**
 * What a placeholder (a node whose type this server does not have) says, once: the server's own
 * `unknown_node_type` error when a check brought one (it names the plugin to install, or a close type), else the
 * editor's words; `others` are the node's remaining errors. Before, both showed, in two boxes saying the same.
 */
export function placeholderMessage(type: string, inner: string | null, errors: GraphError[]): { text: string; others: GraphError[] } {
  const server = inner === null ? errors.find((e) => e.code === "unknown_node_type") : undefined;
  const text = inner !== null
    ? `Subgraph ${inner} has no definition in this file`
    : server ? server.message.charAt(0).toUpperCase() + server.message.slice(1) : `Unknown node type ${type}: it is not registered on this server`;
  return { text, others: server ? errors.filter((e) => e !== server) : errors };
}

export function formatSeconds(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function SchemaNodeView({ id, data, selected }: NodeProps<SchemaFlowNode>) {
  const app = useApp();
  const { node, schema } = data;
  const types = useStore(app.session, (s) => s.schemas.types);
  const isSubgraph = subgraphName(node.type) !== null;
  // This node's id in a run's events: inside an opened subgraph, prefixed with the nodes it was opened from
  // (null: a definition opened by name, whose nodes show no run)
  const prefix = useStore(app.editor.store, runKeyPrefix);
  const key = prefix === null ? "\u0000none" : `${prefix}${id}`;
  const ownRun = useStore(app.session, (s) => s.nodeStates[key]);
  const allStates = useStore(app.session, (s) => (isSubgraph ? s.nodeStates : null)); // a subgraph shows its inner nodes' states
  const run = ownRun ?? (allStates ? subgraphRunState(allStates, key) : undefined);
  // a subgraph node shows the step preview of its inner node that runs (a KSampler inside it)
  const innerKey = !ownRun && allStates ? runningInnerId(allStates, key) : undefined;
  const preview = useStore(app.session, (s) => s.previews[key] ?? (innerKey ? s.previews[innerKey] : undefined));
  const files = useStore(app.session, (s) => s.nodeFiles[key]);
  const pluginWarnings = useStore(app.session, (s) => s.pluginWarnings);
  const output = useStore(app.session, (s) => s.nodeOutputs[key]);
  const allErrors = useStore(app.session, (s) => s.validationErrors) ?? NO_ERRORS;
  const errors = allErrors.filter((e) => e.node_id === key || (isSubgraph && e.node_id?.startsWith(`${key}/`)));
  const ownErrors = errors.filter((e) => !e.input || !(schema?.inputs[e.input] || e.input in node.inputs));
  const placeholder = schema ? null : placeholderMessage(node.type, subgraphName(node.type), ownErrors);
  const nodeErrors = placeholder ? placeholder.others : ownErrors;
  const allWarnings = useStore(app.session, (s) => s.warnings);
  const warnings = Object.entries(allWarnings)
    .filter(([nodeId]) => nodeId === key || (isSubgraph && nodeId.startsWith(`${key}/`)))
    .flatMap(([, list]) => list);
  const editingTitle = useStore(app.ui, (s) => s.renaming === `node:${id}`);
  const setEditingTitle = (on: boolean) => app.ui.set((s) => ({ ...s, renaming: on ? `node:${id}` : null }));
  const renameCancelled = useRef(false);
  const userSize = nodeSize(node);
  const inner = subgraphName(node.type);

  const title = node.title ?? schema?.display_name ?? node.type;
  const inputNames = [...Object.keys(schema?.inputs ?? {}), ...Object.keys(node.inputs).filter((n) => !schema?.inputs[n])];
  const outputs = schema?.outputs ?? data.linkedOutputs.map((name) => ({ name, port: "*" }));
  const status = run?.status;
  const progress = run?.status === "running" && run.total ? Math.min(1, (run.value ?? 0) / run.total) : null;
  const outputText = displayOutput(output, (files?.length ?? 0) > 0); // files: its pictures, shown apart
  const minimised = isMinimised(node);
  const colors = nodeColors(node);

  return (
    <div
      className={`ng-node${minimised ? " ng-minimised" : ""}${selected ? " ng-selected" : ""}${status ? ` ng-status-${status}` : ""}${errors.length ? " ng-has-error" : ""}${warnings.length ? " ng-has-warning" : ""}${
        node.mode ? ` ng-mode-${node.mode}` : ""}${schema ? "" : " ng-unknown"}${inner !== null ? " ng-subgraph" : ""}${userSize ? " ng-sized" : ""}`}
      data-testid={`node-${id}`}
      data-mode={node.mode ?? ""}
      data-minimised={minimised}
      title={schema?.description}
      style={{
        width: userSize ? userSize[0] : NODE_WIDTH, minHeight: userSize && !minimised ? userSize[1] : undefined,
        ...(colors.bgcolor ? { background: colors.bgcolor, color: textColorOn(colors.bgcolor) } : {}),
      }}
    >
      <NodeResizer
        isVisible={selected && !minimised}
        minWidth={220}
        minHeight={60}
        lineClassName="ng-resize-line"
        handleClassName="ng-resize-handle"
        onResize={(_, p) => app.layoutEdit((doc) => setNodeSize(doc, id, [p.width, p.height]), { drag: true })}
        onResizeStart={() => nodeGesture(true)}
        onResizeEnd={() => {
          nodeGesture(false);
          app.editor.dragEnd();
        }}
      />
      <div className="ng-node-header" style={colors.color ? { background: colors.color, color: textColorOn(colors.color) } : undefined}>
        <button
          type="button"
          className="nodrag ng-icon ng-node-dot"
          data-testid={`minimise-${id}`}
          aria-expanded={!minimised}
          aria-label={`${minimised ? "Expand" : "Minimise"} ${title}`}
          title={minimised ? "expand this node (Alt+C)" : "minimise this node to its title (Alt+C)"}
          onClick={() => app.editor.edit((doc) => toggleMinimised(doc, [id]))}
        >
          {minimised ? "▸" : "▾"}
        </button>
        {editingTitle ? (
          <input
            className="nodrag ng-title-edit"
            aria-label={`Title of node ${id}`}
            autoFocus
            defaultValue={node.title ?? ""}
            placeholder={schema?.display_name ?? node.type}
            onBlur={(e) => {
              if (!renameCancelled.current) app.editor.edit((doc) => setTitle(doc, id, e.target.value));
              renameCancelled.current = false;
              setEditingTitle(false);
            }}
            onKeyDown={(e) => {
              // Enter keeps the title, Escape drops it; either way the focus goes back to the node (it fell
              // to the page's body with the field, and the keyboard user lost their place)
              if (e.key !== "Enter" && e.key !== "Escape") return;
              renameCancelled.current = e.key === "Escape";
              const nodeElement = (e.target as HTMLElement).closest<HTMLElement>(".react-flow__node");
              if (nodeElement) nodeElement.focus();
              else (e.target as HTMLInputElement).blur();
            }}
          />
        ) : (
          <span className="ng-node-title" onDoubleClick={() => setEditingTitle(true)} title="double-click to rename">
            {title}
          </span>
        )}
        {node.mode && <span className={`ng-mode-badge ng-mode-badge-${node.mode}`}>{node.mode === "bypass" ? "bypassed" : "muted"}</span>}
        {inner !== null && schema && (
          <button type="button" className="nodrag ng-icon ng-open-subgraph" data-testid={`open-subgraph-${id}`} title="edit this subgraph's nodes" onClick={() => app.openSubgraph(inner, id)}>
            Open ⤢
          </button>
        )}
        <span className="ng-node-status" data-testid={`node-status-${id}`} data-status={status ?? ""}>
          {statusText(run)}
        </span>
      </div>
      {minimised && (
        // only the title bar: the wires end on its sides, at the ports' handles gathered there
        <>
          {outputs.map((out) => (
            <Handle key={`out:${out.name}`} type="source" position={Position.Right} id={`out:${out.name}`} className="ng-handle"
              style={{ background: portColor(types, out.port) }} data-testid={`handle-${id}-out-${out.name}`} />
          ))}
          {inputNames.map((name) => (
            <Handle key={`in:${name}`} type="target" position={Position.Left} id={`in:${name}`} className="ng-handle"
              style={{ background: portColor(types, schema?.inputs[name]?.port ?? "*") }} data-testid={`handle-${id}-in-${name}`} />
          ))}
        </>
      )}
      {!minimised && progress !== null && (
        <div className="ng-progress" data-testid={`node-progress-${id}`}>
          <div style={{ width: `${progress * 100}%` }} />
        </div>
      )}
      {!minimised && (<>
      {!schema && (
        <div className="ng-node-error" data-testid={`node-unknown-${id}`}>
          {placeholder?.text}
          {" "}(its inputs are kept as written and saved back unchanged)
          {(() => {
            const hint = unknownTypeHint(node.type, pluginWarnings);
            return hint ? <div className="ng-hint">{hint}</div> : null;
          })()}
        </div>
      )}
      {run?.status === "error" && (
        <div className="ng-node-error" data-testid={`node-error-${id}`}>
          {run.exceptionType ? `${run.exceptionType}: ` : ""}
          {run.message}
        </div>
      )}
      {warnings.length > 0 && (
        <div className="ng-node-warning" data-testid={`node-warning-${id}`}>
          {warnings.map((w, i) => (
            <div key={i}>
              ⚠ {w.message}
              {w.earlier && <span className="ng-muted"> (from an earlier run: this result came from the cache)</span>}
            </div>
          ))}
        </div>
      )}
      {nodeErrors.length > 0 && (
        <div className="ng-node-error" data-testid={`node-error-${id}`}>
          {nodeErrors.map((e, i) => (
            <div key={i}>{e.message}</div>
          ))}
        </div>
      )}
      <div className="ng-ports">
        {outputs.map((out) => (
          <div className="ng-output" key={out.name} data-output={out.name}>
            <span className="ng-port-name">{out.name}</span>
            <span className="ng-port-type">{out.port}</span>
            <Handle
              type="source"
              position={Position.Right}
              id={`out:${out.name}`}
              className="ng-handle"
              style={{ background: portColor(types, out.port) }}
              data-testid={`handle-${id}-out-${out.name}`}
            />
          </div>
        ))}
        {inputNames.map((name) => (
          <InputRow
            key={name}
            nodeId={id}
            name={name}
            spec={schema?.inputs[name]}
            value={node.inputs[name]}
            types={types}
            errors={errors.filter((e) => e.input === name)}
          />
        ))}
      </div>
      {preview && (
        <img
          className="ng-preview"
          data-testid={`node-preview-${id}`}
          src={preview}
          alt="step preview"
          onClick={() => openViewer(app.ui, [{ runId: "", nodeId: id, fileId: `preview/${id}.jpg`, url: preview, index: 0, kind: "image" }], 0)}
        />
      )}
      <NodeFiles nodeId={id} files={files} />
      {outputText !== null && (
        <pre className="ng-node-output nodrag nowheel" data-testid={`node-output-${id}`}>
          {outputText}
        </pre>
      )}
      </>)}
    </div>
  );
}

function InputRow({ nodeId, name, spec, value, types, errors }: {
  nodeId: string;
  name: string;
  spec: InputSpec | undefined;
  value: unknown;
  types: Record<string, PortType>;
  errors: GraphError[];
}) {
  const app = useApp();
  const linked = isLink(value);
  const widget = spec ? widgetFor(name, spec) : null;
  // the errors under the input describe its widget (a screen reader heard only the range hint)
  const errorBase = useId();
  const errorIds = errors.map((_, i) => `${errorBase}-${i}`).join(" ");
  const port = spec?.port ?? "*";
  return (
    <div className={`ng-input${errors.length ? " ng-input-invalid" : ""}`} data-testid={`input-${nodeId}-${name}`} data-input={name}>
      <Handle
        type="target"
        position={Position.Left}
        id={`in:${name}`}
        className="ng-handle"
        style={{ background: portColor(types, port) }}
        data-testid={`handle-${nodeId}-in-${name}`}
      />
      <div className={`ng-input-line${widget?.kind === "file_upload" || (widget?.kind === "text" && widget.multiline) ? " ng-input-tall" : ""}`}>
        <span className="ng-port-name" title={spec?.description || `${name}: ${port}`}>
          {name}
          {spec?.required ? "*" : ""}
        </span>
        {linked ? (
          <span className="ng-linked">
            <span className="ng-linked-source" title={`linked to ${value.node}.${value.output}`}>
              ← {value.node}.{value.output}
            </span>
            <button
              type="button"
              className="nodrag ng-icon"
              data-testid={`unlink-${nodeId}-${name}`}
              title="remove the link"
              aria-label={`Unlink ${name} (from ${value.node}.${value.output})`}
              onClick={() => app.editor.edit((doc) => disconnect(doc, nodeId, name))}
            >
              ×
            </button>
          </span>
        ) : !spec ? (
          <span className="ng-unknown-input">
            unknown input = {jsonPreview(value)}
            <button
              type="button"
              className="nodrag ng-icon"
              title="remove this input"
              aria-label={`Remove the unknown input ${name}`}
              onClick={() => app.editor.edit((doc) => setInput(doc, nodeId, name, undefined))}
            >
              ×
            </button>
          </span>
        ) : widget && widget.kind !== "link" ? (
          <InputWidget nodeId={nodeId} name={name} spec={spec} widget={widget} value={value} errorId={errorIds || undefined} />
        ) : value !== undefined ? (
          <span className="ng-linked-source" title="a literal value for a link-only input (kept as written)">
            = {jsonPreview(value)}
          </span>
        ) : (
          <span className="ng-port-type">{port}</span>
        )}
      </div>
      {errors.map((e, i) => (
        <div key={i} id={`${errorBase}-${i}`} className="ng-input-error" data-testid={`input-error-${nodeId}-${name}`}>
          {e.message}
        </div>
      ))}
    </div>
  );
}

export const SchemaNode = memo(SchemaNodeView);
