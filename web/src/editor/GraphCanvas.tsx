/**
 * The React Flow canvas, driven by the document (a controlled flow).
 *
 * Nodes and edges are derived from `EditorState.doc`; React Flow's changes
 * come back as document edits: drags (one undo step per drag), selection,
 * measured sizes (kept locally). Connections are checked with
 * schema/compatibility.ts while dragging (invalid targets are refused by
 * React Flow) and a refused drop shows the reason in a toast. Deletion and the
 * other shortcuts are handled here (keyboard), not by React Flow, so every
 * change is undoable.
 */
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  useNodesInitialized,
  useReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type FinalConnectionState,
  type NodeChange,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import { checkLink, type LinkCheck } from "../schema/compatibility";
import {
  addNode,
  connect,
  disconnect,
  docEdges,
  layoutPositions,
  moveNodes,
  removeNodes,
  upstreamNodes,
  type EditorDocument,
  type Position,
} from "../graph/document";
import { portColor, type SchemaSet } from "../schema/types";
import type { EditorApp } from "../state/app";
import { useApp } from "../state/context";
import { useStore } from "../state/store";
import { SchemaNode, type SchemaFlowNode } from "./SchemaNode";

export const NODE_DRAG_TYPE = "application/x-nodegraph-node-type";

const nodeTypes = { schema: SchemaNode };

type Measured = Record<string, { width: number; height: number }>;

function handleName(handleId: string | null | undefined, prefix: "in:" | "out:"): string | null {
  return handleId && handleId.startsWith(prefix) ? handleId.slice(prefix.length) : null;
}

/** Check a prospective link between two handles against the schemas and the graph. */
export function checkConnection(doc: EditorDocument, schemas: SchemaSet, connection: Connection | Edge): LinkCheck {
  const output = handleName(connection.sourceHandle, "out:");
  const input = handleName(connection.targetHandle, "in:");
  if (output === null || input === null) return { ok: false, reason: "connect an output (right side) to an input (left side)" };
  const source = doc.nodes[connection.source];
  const target = doc.nodes[connection.target];
  const sourceSchema = source ? schemas.nodes[source.type] : undefined;
  const targetSchema = target ? schemas.nodes[target.type] : undefined;
  return checkLink({
    sourceNode: connection.source,
    sourcePort: sourceSchema?.outputs.find((o) => o.name === output)?.port,
    targetNode: connection.target,
    targetPort: targetSchema?.inputs[input]?.port,
    types: schemas.types,
    upstreamOf: (id) => upstreamNodes(doc, id),
  });
}

/** Add a node of `type` at a graph position (one undo step) and select it. */
export function addNodeAt(app: EditorApp, type: string, position: Position): void {
  const schema = app.session.get().schemas.nodes[type];
  if (!schema) return;
  let id = "";
  app.editor.edit((doc) => {
    const added = addNode(doc, schema, position);
    id = added.id;
    return added.doc;
  });
  app.editor.select({ [id]: true });
}

function isEditable(target: EventTarget | null): boolean {
  const element = target as HTMLElement | null;
  if (!element || !element.tagName) return false;
  return element.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(element.tagName);
}

export function GraphCanvas() {
  const app = useApp();
  const flow = useReactFlow();
  const doc = useStore(app.editor.store, (s) => s.doc);
  const selectedNodes = useStore(app.editor.store, (s) => s.selectedNodes);
  const selectedEdges = useStore(app.editor.store, (s) => s.selectedEdges);
  const loadCount = useStore(app.editor.store, (s) => s.loadCount);
  const schemas = useStore(app.session, (s) => s.schemas);
  const [measured, setMeasured] = useState<Measured>({});
  const wrapper = useRef<HTMLDivElement>(null);
  const cache = useRef(new Map<string, SchemaFlowNode>());

  useEffect(() => {
    app.canvas.element = wrapper.current;
    app.canvas.toFlow = (x, y) => {
      const p = flow.screenToFlowPosition({ x, y });
      return [p.x, p.y];
    };
  }, [app, flow]);

  // Fit the view once the nodes of a newly loaded graph have been measured.
  const nodesInitialized = useNodesInitialized();
  const [fitPending, setFitPending] = useState(false);
  useEffect(() => {
    if (loadCount > 0) setFitPending(true);
  }, [loadCount]);
  useEffect(() => {
    if (!fitPending || !nodesInitialized) return;
    const frame = requestAnimationFrame(() => {
      void flow.fitView({ padding: 0.08, duration: 0 });
      setFitPending(false);
    });
    return () => cancelAnimationFrame(frame);
  }, [fitPending, nodesInitialized, flow]);

  const nodes = useMemo<SchemaFlowNode[]>(() => {
    const positions = layoutPositions(doc);
    const linkedOutputs: Record<string, Set<string>> = {};
    for (const edge of docEdges(doc)) (linkedOutputs[edge.source] ??= new Set()).add(edge.output);
    const next = new Map<string, SchemaFlowNode>();
    const list = Object.entries(doc.nodes).map(([id, node]) => {
      const [x, y] = positions[id];
      const schema = schemas.nodes[node.type];
      const outputs = [...(linkedOutputs[id] ?? [])].sort();
      const previous = cache.current.get(id);
      const selected = Boolean(selectedNodes[id]);
      const size = measured[id];
      if (
        previous &&
        previous.data.node === node &&
        previous.data.schema === schema &&
        previous.position.x === x &&
        previous.position.y === y &&
        previous.selected === selected &&
        previous.measured === size &&
        previous.data.linkedOutputs.join("\u0000") === outputs.join("\u0000")
      ) {
        next.set(id, previous);
        return previous;
      }
      const flowNode: SchemaFlowNode = {
        id,
        type: "schema",
        position: { x, y },
        data: { node, schema, linkedOutputs: outputs },
        selected,
        measured: size,
      };
      next.set(id, flowNode);
      return flowNode;
    });
    cache.current = next;
    return list;
  }, [doc, schemas, selectedNodes, measured]);

  const edges = useMemo<Edge[]>(() => {
    return docEdges(doc)
      .filter((e) => {
        const source = doc.nodes[e.source];
        if (!source) return false;
        const schema = schemas.nodes[source.type];
        return !schema || schema.outputs.some((o) => o.name === e.output);
      })
      .map((e) => {
        const source = doc.nodes[e.source];
        const port = schemas.nodes[source.type]?.outputs.find((o) => o.name === e.output)?.port ?? "*";
        const color = portColor(schemas.types, port);
        const selected = Boolean(selectedEdges[e.id]);
        return {
          id: e.id,
          source: e.source,
          sourceHandle: `out:${e.output}`,
          target: e.target,
          targetHandle: `in:${e.input}`,
          selected,
          style: { stroke: color, strokeWidth: selected ? 4 : 2.5 },
        };
      });
  }, [doc, schemas, selectedEdges]);

  const onNodesChange = useCallback(
    (changes: NodeChange<SchemaFlowNode>[]) => {
      const dragged: Record<string, Position> = {};
      const stepped: Record<string, Position> = {}; // moves outside a drag (arrow keys)
      let sizes: Measured | null = null;
      let dragEnded = false;
      for (const change of changes) {
        if (change.type === "dimensions" && change.dimensions) {
          sizes ??= {};
          sizes[change.id] = change.dimensions;
        } else if (change.type === "position") {
          if (change.position) (change.dragging ? dragged : stepped)[change.id] = [change.position.x, change.position.y];
          if (change.dragging === false && app.editor.state.dragBase) dragEnded = true;
        } else if (change.type === "select") {
          app.editor.setNodeSelected(change.id, change.selected);
        }
      }
      if (sizes) {
        const update = sizes;
        setMeasured((m) => ({ ...m, ...update }));
      }
      if (dragEnded) {
        app.editor.dragMove({ ...dragged, ...stepped });
        app.editor.dragEnd();
      } else {
        if (Object.keys(dragged).length) app.editor.dragMove(dragged);
        if (Object.keys(stepped).length) app.editor.edit((doc) => moveNodes(doc, stepped), "move-by-keys");
      }
    },
    [app],
  );

  const onEdgesChange = useCallback(
    (changes: EdgeChange[]) => {
      for (const change of changes) {
        if (change.type === "select") app.editor.setEdgeSelected(change.id, change.selected);
      }
    },
    [app],
  );

  const isValidConnection = useCallback(
    (connection: Connection | Edge) => checkConnection(app.editor.doc, app.session.get().schemas, connection).ok,
    [app],
  );

  const onConnect = useCallback(
    (connection: Connection) => {
      const check = checkConnection(app.editor.doc, app.session.get().schemas, connection);
      if (!check.ok) {
        app.toast(`Link refused: ${check.reason}`, "error");
        return;
      }
      const output = handleName(connection.sourceHandle, "out:")!;
      const input = handleName(connection.targetHandle, "in:")!;
      app.editor.edit((doc) => connect(doc, connection.source, output, connection.target, input));
      app.dispatch({ type: "clear_input_error", nodeId: connection.target, input });
    },
    [app],
  );

  const onConnectEnd = useCallback(
    (_event: MouseEvent | TouchEvent, state: FinalConnectionState) => {
      if (state.isValid !== false || !state.fromHandle || !state.toHandle) return;
      const [from, to] = state.fromHandle.type === "source" ? [state.fromHandle, state.toHandle] : [state.toHandle, state.fromHandle];
      if (from.type === to.type) {
        app.toast(`Link refused: connect an output (right side) to an input (left side)`, "error");
        return;
      }
      const check = checkConnection(app.editor.doc, app.session.get().schemas, {
        source: from.nodeId,
        sourceHandle: from.id ?? null,
        target: to.nodeId,
        targetHandle: to.id ?? null,
      });
      if (!check.ok) app.toast(`Link refused: ${check.reason}`, "error");
    },
    [app],
  );

  const deleteSelection = useCallback(() => {
    const { selectedNodes: nodeIds, selectedEdges: edgeIds } = app.editor.state;
    const edgesToDrop = docEdges(app.editor.doc).filter((e) => edgeIds[e.id]);
    if (!Object.keys(nodeIds).length && !edgesToDrop.length) return;
    app.editor.edit((doc) => {
      let next = removeNodes(doc, Object.keys(nodeIds));
      for (const e of edgesToDrop) next = disconnect(next, e.target, e.input);
      return next;
    });
    app.editor.select({}, {});
  }, [app]);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (isEditable(event.target)) return;
      const mod = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      if (mod && key === "z" && !event.shiftKey) app.editor.undo();
      else if (mod && (key === "y" || (key === "z" && event.shiftKey))) app.editor.redo();
      else if (mod && key === "c") {
        if (!app.copySelection()) return;
      } else if (mod && key === "v") app.paste(event.shiftKey);
      else if (mod && key === "a") {
        app.editor.select(Object.fromEntries(Object.keys(app.editor.doc.nodes).map((id) => [id, true as const])));
      } else if (mod && key === "s") app.save();
      else if (mod && key === "enter") void app.run();
      else if (!mod && (event.key === "Delete" || event.key === "Backspace")) deleteSelection();
      else return;
      event.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [app, deleteSelection]);

  const onDragOver = (event: DragEvent) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = event.dataTransfer.types.includes(NODE_DRAG_TYPE) ? "move" : "copy";
  };

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    const type = event.dataTransfer.getData(NODE_DRAG_TYPE);
    if (type) {
      addNodeAt(app, type, app.canvas.toFlow(event.clientX, event.clientY));
      return;
    }
    const file = event.dataTransfer.files?.[0];
    if (file) void app.loadFile(file);
  };

  return (
    <div
      className="ng-canvas"
      ref={wrapper}
      data-testid="canvas"
      onDragOver={onDragOver}
      onDrop={onDrop}
      onMouseMove={(e) => {
        app.canvas.pointer = app.canvas.toFlow(e.clientX, e.clientY);
      }}
      onMouseLeave={() => {
        app.canvas.pointer = null;
      }}
    >
      <ReactFlow<SchemaFlowNode, Edge>
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onConnectEnd={onConnectEnd}
        onNodeDragStop={() => app.editor.dragEnd()}
        onSelectionDragStop={() => app.editor.dragEnd()}
        isValidConnection={isValidConnection}
        deleteKeyCode={null}
        selectionKeyCode="Shift"
        multiSelectionKeyCode={["Control", "Meta", "Shift"]}
        connectionRadius={24}
        minZoom={0.1}
        maxZoom={2.5}
        fitView
      >
        <Background gap={24} color="#2c313a" />
        <Controls />
        <MiniMap pannable zoomable nodeColor={(n) => (n.selected ? "#e0a030" : "#5a6270")} maskColor="rgba(20,22,26,0.6)" />
      </ReactFlow>
    </div>
  );
}
