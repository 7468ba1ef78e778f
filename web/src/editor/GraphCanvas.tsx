/**
 * The React Flow canvas, driven by the document (a controlled flow).
 *
 * What it draws, from `EditorState.doc`:
 *   schema nodes   one per graph node (editor/SchemaNode.tsx), at the file's position or,
 *                  for nodes without one, the auto-layout's (graph/layout.ts, dagre), frozen
 *                  once shown and measured (`EditorState.shownPositions`: never re-laid-out
 *                  when sizes change, never written into the file)
 *   group nodes    the frames of `ui.groups` (editor/GroupNode.tsx), behind the nodes
 *   reroute nodes  the bend points of `ui.reroutes` (editor/GroupNode.tsx `RerouteNode`)
 *   note nodes     the text notes of `ui.notes` (editor/NoteNode.tsx; `note:<id>` in the selection): moved by
 *                  their bar, resized, deleted, copied and pasted with the nodes, never executed
 *   wires          one per link (editor/WireEdge.tsx), through its reroute points
 *
 * React Flow's changes come back as document edits: drags (one undo step per drag;
 * dragging a group moves the nodes inside it), selection, measured sizes (kept locally;
 * a node that grows pushes the nodes it would cover downwards, whether the file or the
 * frozen auto-layout placed them: graph/layout.ts `pushGrown`, EditorStore `grew`, which
 * pushes again after undo / redo with the sizes given as `shownSize`). Connections are checked
 * with schema/compatibility.ts while dragging; a refused drop shows the reason in a
 * toast; a wire dropped on empty canvas opens the node search filtered to nodes that fit
 * it. Double-click on the canvas opens the search at the cursor; right-click opens
 * the context menu of what is under the cursor (editor/ContextMenu.tsx). The minimap is editor/CanvasMiniMap.tsx. Every keyboard
 * shortcut (editor/shortcuts.ts) is handled here, not by React Flow, so every change is
 * undoable; inside a text field only the graph-wide ones act (`shortcutInField`: run, save),
 * the others are the field's own. Maps keyed by node id are prototype-free (graph/idMaps.ts).
 */
import {
  Background,
  ControlButton,
  Controls,
  ReactFlow,
  useNodesInitialized,
  useReactFlow,
  useStore as useFlowStore,
  useStoreApi,
  type Connection,
  type Edge,
  type EdgeChange,
  type FinalConnectionState,
  type Node,
  type NodeChange,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent, type MouseEvent as ReactMouseEvent } from "react";
import { checkLink, type LinkCheck } from "../schema/compatibility";
import {
  addNode,
  connect,
  disconnect,
  docEdges,
  edgeId,
  moveNodes,
  nodeSize,
  removeNodes,
  toggleMode,
  untitledWhenEmptied,
  upstreamNodes,
  type EditorDocument,
  type Position,
} from "../graph/document";
import { groupMembers, groupSelection, groupsOf, growFramesToHold, headerMembers, layoutWithGroups, moveGroup, moveReroute, pruneReroutes, removeGroup, removeReroutes, reroutesOf, updateGroup, wirePoints } from "../graph/groups";
import { besideTheirNode, effectivePositions, estimateSize, freeSpot, pushGrown, unfrozenNodes, type Rect, type Size } from "../graph/layout";
import { idMap } from "../graph/idMaps";
import { collapseToSubgraph, outputsLeftUnfed } from "../graph/subgraph";
import { portColor, type NodeSchema, type PortType } from "../schema/types";
import type { EditorApp } from "../state/app";
import type { EditorState } from "../state/editorStore";
import { useApp } from "../state/context";
import { followStep, wholeInView, type FollowedRun } from "./viewFit";
import { useStore } from "../state/store";
import { GroupNode, RerouteNode, type GroupFlowNode, type RerouteFlowNode } from "./GroupNode";
import { NoteNode, type NoteFlowNode } from "./NoteNode";
import { addNote, MAX_NOTES, moveNote, NOTE_PREFIX, notesOf, removeNotes, selectedNoteIds } from "../graph/notes";
import { SchemaNode, type SchemaFlowNode } from "./SchemaNode";
import { habitShortcut, runHabit, shortcutInField } from "./shortcuts";
import { WireEdge, type WireFlowEdge } from "./WireEdge";
import { addPrimitiveFor, linkInto, moveOutputLinks, primitiveTypeFor, relink, widgetValue, type OutputEnd } from "./wireGestures";
import { CanvasMiniMap, nodeGesture } from "./CanvasMiniMap";
import { panelsFolded } from "../state/ui";
import { useWindowWidth } from "./windowWidth";

export const NODE_DRAG_TYPE = "application/x-nodegraph-node-type";

const nodeTypes = { schema: SchemaNode, group: GroupNode, reroute: RerouteNode, note: NoteNode };
const edgeTypes = { wire: WireEdge };
const GROUP_PREFIX = "group:";
const REROUTE_PREFIX = "reroute:";

type AnyFlowNode = SchemaFlowNode | GroupFlowNode | RerouteFlowNode | NoteFlowNode;
type Measured = Record<string, Size>;

function handleName(handleId: string | null | undefined, prefix: "in:" | "out:"): string | null {
  return handleId && handleId.startsWith(prefix) ? handleId.slice(prefix.length) : null;
}

/** Check a prospective link between two handles against the schemas and the graph. */
export function checkConnection(doc: EditorDocument, schemas: { nodes: Record<string, NodeSchema>; types: Record<string, PortType> }, connection: Connection | Edge): LinkCheck {
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

/** The size a node is drawn at: the user's, the browser's measurement, or the schema's estimate. */
function sizeFor(doc: EditorDocument, schemas: Record<string, NodeSchema>, measured: Measured, id: string): Size {
  const node = doc.nodes[id];
  const user = node ? nodeSize(node) : null;
  if (measured[id]) return measured[id];
  if (user) return { width: user[0], height: user[1] };
  return estimateSize(node ? schemas[node.type] : undefined);
}

/**
 * Add a node of `type` at a graph position (one undo step) and select it: there when that is clear
 * of every node and inside the view, else at the nearest spot that is (graph/layout.ts `freeSpot`),
 * else there anyway, overlapping — as ComfyUI places a node at the cursor. The view matters: the
 * nearest free spot alone put a KSampler dropped from a wire 420 units above the canvas, under the
 * toolbar, and at a high zoom every free spot is off-screen. Returns its id (null for an unknown type).
 */
export function addNodeAt(app: EditorApp, type: string, position: Position): string | null {
  const schema = app.schemasFor()[type];
  if (!schema) return null;
  const spot = freeSpot(position, estimateSize(schema), Object.values(app.canvas.rects()), undefined, app.canvas.view());
  let id = "";
  app.editor.edit((doc) => {
    const added = addNode(app.materialize(doc), schema, spot);
    id = added.id;
    return added.doc;
  });
  app.editor.select({ [id]: true });
  return id;
}

/**
 * Add a note with its top-left corner at a graph position (one undo step), select it and put the cursor in its
 * text (the canvas menu's "Add note", the search's "Add a note here"). Returns its id; "" at MAX_NOTES notes,
 * which a toast says (nothing is added).
 */
export function addNoteAt(app: EditorApp, at: Position): string {
  let id = "";
  app.editor.edit((doc) => {
    const added = addNote(doc, at);
    id = added.id;
    return added.doc;
  });
  if (!id) {
    // at the cap addNote adds nothing (a note past it is neither drawn nor kept): said, not a selection of "note:"
    app.toast(`Note not added: a graph keeps at most ${MAX_NOTES} notes; delete one first`, "error");
    return id;
  }
  app.editor.select({ [NOTE_PREFIX + id]: true });
  focusNoteText(id);
  return id;
}

/** Put the cursor in note `id`'s text once the canvas shows it (React Flow draws a new node a frame later). */
function focusNoteText(id: string, frames = 30): void {
  if (typeof requestAnimationFrame === "undefined") return; // no page (the menu's actions run in tests)
  requestAnimationFrame(() => {
    const field = document.querySelector<HTMLTextAreaElement>(`[data-testid="note-text-${CSS.escape(id)}"]`);
    field?.focus();
    if (document.activeElement !== field && frames > 0) focusNoteText(id, frames - 1);
  });
}

function isEditable(target: EventTarget | null): boolean {
  const element = target as HTMLElement | null;
  if (!element || !element.tagName) return false;
  return element.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(element.tagName);
}

/** What a control that has keys of its own is (a key there is never the canvas's). */
const OWN_KEYS = "button, a, input, select, textarea, summary, [contenteditable], [role=menu], [role=menuitem], [role=listbox], [role=option], [role=dialog]";

/**
 * Whether a key pressed with the focus on `target` is the canvas's: the page itself (nothing
 * focused), the canvas, a node or a wire — not a button, a link, a menu or a dialog (Backspace
 * on a toolbar button must not delete the selected nodes).
 */
export function onCanvas(target: EventTarget | null): boolean {
  const element = target as (Element & { ownerDocument?: Document | null }) | null;
  if (!element || typeof element.closest !== "function") return true; // the window
  const doc = element.ownerDocument;
  if (doc && (element === doc.body || element === doc.documentElement)) return true;
  if (!element.closest(".ng-canvas")) return false;
  return !element.closest(OWN_KEYS);
}

/** A node's accessible name: its title and id, "KSampler (sampler)". */
export function nodeLabel(id: string, node: { title?: string; type: string }, schema: NodeSchema | undefined): string {
  const title = node.title ?? schema?.display_name ?? node.type;
  return title === id ? title : `${title} (${id})`;
}

/** A wire's accessible name: its ports, "checkpoint.model → sampler.model". */
export function wireLabel(edge: { source: string; output: string; target: string; input: string }): string {
  return `${edge.source}.${edge.output} → ${edge.target}.${edge.input}`;
}

/** After the focused node is gone (deleted): the focus goes to the canvas, not to the page. */
export function focusCanvas(app: EditorApp) {
  const element = app.canvas.element;
  if (!element) return;
  const focused = element.ownerDocument.activeElement;
  if (!focused || focused === element.ownerDocument.body || !focused.isConnected || element.contains(focused) || focused.closest(".ng-context-menu")) {
    element.focus({ preventScroll: true });
  }
}

/** Actions on the selection shared by the keyboard and the context menus. */
export const selectionActions = {
  toggleMode(app: EditorApp, mode: "bypass" | "mute", ids = Object.keys(app.editor.state.selectedNodes)) {
    if (ids.length) app.editor.edit((doc) => toggleMode(doc, ids, mode));
  },
  group(app: EditorApp, ids = Object.keys(app.editor.state.selectedNodes)) {
    const rects = app.canvas.rects();
    if (!ids.some((id) => rects[id])) return;
    app.layoutEdit((doc) => groupSelection(doc, ids, rects).doc);
  },
  collapse(app: EditorApp, ids = Object.keys(app.editor.state.selectedNodes)) {
    if (!ids.length) return;
    const rects = app.canvas.rects();
    const positions = idMap(Object.entries(rects).map(([id, r]): [string, Position] => [id, [r.x, r.y]]));
    let made: string | null = null;
    app.layoutEdit((doc) => {
      const result = collapseToSubgraph(doc, ids, positions, undefined, app.editor.state.path.at(-1)?.name);
      if (!result) return doc;
      made = result.id;
      return pruneReroutes(result.doc);
    });
    if (made) {
      app.editor.select({ [made]: true });
      app.toast(`Collapsed ${ids.length} node${ids.length === 1 ? "" : "s"} into a subgraph: right-click it → Open subgraph`);
    }
  },
  autoLayout(app: EditorApp) {
    const rects = app.canvas.rects();
    app.editor.edit((doc) => layoutWithGroups(doc, rects));
    app.canvas.fit();
  },
  delete(app: EditorApp) {
    const { selectedNodes: nodeIds, selectedEdges: edgeIds } = app.editor.state;
    const ids = Object.keys(nodeIds);
    const edgesToDrop = docEdges(app.editor.doc).filter((e) => edgeIds[e.id]);
    const groups = ids.filter((id) => id.startsWith(GROUP_PREFIX)).map((id) => id.slice(GROUP_PREFIX.length));
    const reroutes = ids.filter((id) => id.startsWith(REROUTE_PREFIX)).map((id) => id.slice(REROUTE_PREFIX.length));
    const notes = selectedNoteIds(nodeIds);
    if (!ids.length && !edgesToDrop.length) return;
    const open = app.editor.state.path.at(-1);
    const unfed = open ? outputsLeftUnfed(app.editor.doc, open.name, ids, open.outer) : [];
    app.editor.edit((doc) => {
      let next = removeNodes(doc, ids);
      for (const e of edgesToDrop) next = disconnect(next, e.target, e.input);
      for (const g of groups) next = removeGroup(next, g);
      next = removeReroutes(next, reroutes);
      next = removeNotes(next, notes);
      next = pruneReroutes(next);
      // every node deleted: a new, untitled graph (one undo step with the delete); a subgraph keeps its name
      return app.editor.state.path.length ? next : untitledWhenEmptied(doc, next);
    });
    app.editor.select({}, {});
    focusCanvas(app);
    // the outputs stay declared (graph/subgraph.ts closeSubgraph): say which outer links they break, and how to fix it
    if (unfed.length) {
      app.toast(`Subgraph output${unfed.length === 1 ? "" : "s"} ${unfed.join("; ")} now ${unfed.length === 1 ? "has" : "have"} no inner node: `
        + "the links reading them break (Run names them) — Ctrl+Z brings the node back; Back, then the subgraph node's menu → Stop exposing output removes them", "error");
    }
  },
};

export function GraphCanvas() {
  const app = useApp();
  const flow = useReactFlow();
  const doc = useStore(app.editor.store, (s) => s.doc);
  const selectedNodes = useStore(app.editor.store, (s) => s.selectedNodes);
  const selectedEdges = useStore(app.editor.store, (s) => s.selectedEdges);
  const loadCount = useStore(app.editor.store, (s) => s.loadCount);
  const shownPositions = useStore(app.editor.store, (s) => s.shownPositions);
  const serverSchemas = useStore(app.session, (s) => s.schemas);
  const skippedNodes = useStore(app.session, (s) => s.nodeStates);
  const panelsHidden = panelsFolded(useStore(app.ui, (s) => s.panelsHidden), useWindowWidth());
  const [measured, setMeasured] = useState<Measured>(() => idMap());
  const wrapper = useRef<HTMLDivElement>(null);
  const cache = useRef(new Map<string, SchemaFlowNode>());
  const groupDrag = useRef<{ id: string; members: Record<string, Position> } | null>(null);
  const connectFrom = useRef<{ node: string; handle: string; type: "source" | "target"; shift: boolean } | null>(null);
  // A wire picked up from a connected input (editor/wireGestures.ts): the link it was, and its id while it is hidden
  const pickedUp = useRef<{ target: string; input: string; link: OutputEnd } | null>(null);
  const [detached, setDetached] = useState<string | null>(null);
  // React Flow's attribution link stays (a courtesy its licence asks for) but out of the Tab order: it led
  // keyboard users off to an external site between the canvas and the side panels (restyled in styles.css).
  useEffect(() => {
    wrapper.current?.querySelector(".react-flow__attribution a")?.setAttribute("tabindex", "-1");
  });
  const keyboardMenuRef = useRef<(element: HTMLElement) => void>(() => undefined);

  const schemaNodes = useMemo(() => app.schemasFor(doc), [app, doc, serverSchemas]); // eslint-disable-line react-hooks/exhaustive-deps

  const positions = useMemo(
    () => effectivePositions(doc, (id) => sizeFor(doc, schemaNodes, measured, id), shownPositions),
    [doc, schemaNodes, measured, shownPositions],
  );
  const rects = useMemo(() => {
    const out = idMap<Rect>();
    for (const [id, [x, y]] of Object.entries(positions)) out[id] = { x, y, ...sizeFor(doc, schemaNodes, measured, id) };
    return out;
  }, [positions, doc, schemaNodes, measured]);
  const rectsRef = useRef(rects);
  rectsRef.current = rects;
  const measuredRef = useRef(measured);
  measuredRef.current = measured;

  useEffect(() => {
    app.canvas.element = wrapper.current;
    app.canvas.toFlow = (x, y) => {
      const p = flow.screenToFlowPosition({ x, y });
      return [p.x, p.y];
    };
    app.canvas.rects = () => rectsRef.current;
    app.canvas.view = () => {
      const box = wrapper.current?.getBoundingClientRect();
      if (!box || box.width <= 2 * VIEW_MARGIN || box.height <= 2 * VIEW_MARGIN) return null;
      const [left, top] = app.canvas.toFlow(box.left + VIEW_MARGIN, box.top + VIEW_MARGIN);
      const [right, bottom] = app.canvas.toFlow(box.right - VIEW_MARGIN, box.bottom - VIEW_MARGIN);
      return { x: left, y: top, width: right - left, height: bottom - top };
    };
    app.editor.shownSize = (d, id) => sizeFor(d, app.schemasFor(d), measuredRef.current, id);
    app.canvas.fit = () => {
      fits.current++;
      requestAnimationFrame(() => void flow.fitView(FIT_ALL));
    };
    app.canvas.followHere = () => {
      const element = wrapper.current;
      const viewport = flow.getViewport();
      if (!element || !wholeInView(rectsRef.current, viewport, element.clientWidth, element.clientHeight)) return null;
      const state = app.editor.state;
      const here = { before: app.session.get().activeRun, started: false };
      return (runId) => {
        follow.current = { runId, state, viewport, here };
      };
    };
  }, [app, flow]);

  // Fit the view once the nodes of a newly loaded graph have been measured.
  const nodesInitialized = useNodesInitialized();
  const [fitPending, setFitPending] = useState(false);
  const [separations, setSeparations] = useState(0); // imports pushed apart (the effect below `grew`'s)
  // Every fit asked for (a load's, the Fit View button's, app.canvas.fit) counts here: a load's readable fit that
  // resolves after a newer one was asked for leaves the view to that one. (React Flow resolves the fitViews waiting
  // for the nodes together, with the last one's options: a load's late fit undid the first Fit View click after it.)
  const fits = useRef(0);
  useEffect(() => {
    if (loadCount > 0) setFitPending(true);
  }, [loadCount]);
  // A past run opened from History, or shown again after a reload (app.canvas.followRun), is shown whole, and refitted each time its
  // results change the boxes (images make nodes taller, the layout moves: the first fit left nodes far
  // outside the view) until the user moves the view or edits, or another run or graph is shown. A run
  // started here is followed too when the whole graph was in view (app.canvas.followHere; editor/viewFit.ts).
  const follow = useRef<FollowedRun<EditorState> | null>(null);
  // While a fit is on its way the view has moved but `follow` still holds the view before it: boxes that change
  // then (images still arriving) must not read as the user's move, which stopped the follow and left a growing
  // node below the canvas (a flaky e2e test, 1 run in 3). They wait for the fit, then are looked at again.
  const fitting = useRef(false);
  const boxesChangedWhileFitting = useRef(false);
  const [refitTick, setRefitTick] = useState(0);
  const fitFollowed = useCallback(async (runId: string, here?: FollowedRun["here"]) => {
    fitting.current = true;
    try {
      await flow.fitView(FIT_ALL);
    } finally {
      fitting.current = false;
    }
    follow.current = { runId, state: app.editor.state, viewport: flow.getViewport(), ...(here ? { here } : {}) };
    if (boxesChangedWhileFitting.current) {
      boxesChangedWhileFitting.current = false;
      setRefitTick((tick) => tick + 1);
    }
  }, [app, flow]);
  // (an import's fit waits for its push-apart, `separations` below: before, the view fitted the overlapping layout)
  useEffect(() => {
    if (!fitPending || !nodesInitialized || app.canvas.separateWhenShown) return;
    const frame = requestAnimationFrame(() => {
      const runId = app.canvas.followRun;
      app.canvas.followRun = null;
      follow.current = null;
      void (runId ? fitFollowed(runId) : fitReadable(flow, wrapper.current, fits, app.editor.state.path.length > 0));
      setFitPending(false);
    });
    return () => cancelAnimationFrame(frame);
  }, [fitPending, nodesInitialized, flow, app, fitFollowed, separations]); // eslint-disable-line react-hooks/exhaustive-deps

  const nodes = useMemo<AnyFlowNode[]>(() => {
    const linkedOutputs = idMap<Set<string>>();
    for (const edge of docEdges(doc)) (linkedOutputs[edge.source] ??= new Set()).add(edge.output);
    const next = new Map<string, SchemaFlowNode>();
    const list: AnyFlowNode[] = [];
    for (const group of groupsOf(doc)) {
      const id = GROUP_PREFIX + group.id;
      list.push({
        id,
        type: "group",
        position: { x: group.bounds[0], y: group.bounds[1] },
        width: group.bounds[2],
        height: group.bounds[3],
        style: { width: group.bounds[2], height: group.bounds[3] },
        // measured as drawn (its bounds), as React Flow needs for every node before `nodesInitialized`: without, each
        // new frame object (every render) left the nodes uninitialized, so a graph with groups was never fitted on load
        measured: { width: group.bounds[2], height: group.bounds[3] },
        data: { group },
        selected: Boolean(selectedNodes[id]),
        zIndex: -1,
        dragHandle: ".ng-group-title",
      });
    }
    for (const note of notesOf(doc)) {
      const id = NOTE_PREFIX + note.id;
      const [x, y, width, height] = note.bounds;
      // measured as drawn (its bounds), as a group is, so the graph is fitted on load
      list.push({ id, type: "note", position: { x, y }, width, height, style: { width, height }, measured: { width, height }, data: { note }, selected: Boolean(selectedNodes[id]), dragHandle: ".ng-note-bar", ariaLabel: "Note" });
    }
    for (const [id, node] of Object.entries(doc.nodes)) {
      const [x, y] = positions[id];
      const schema = schemaNodes[node.type];
      const outputs = [...(linkedOutputs[id] ?? [])].sort();
      const previous = cache.current.get(id);
      const selected = Boolean(selectedNodes[id]);
      const user = nodeSize(node);
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
        list.push(previous);
        continue;
      }
      const flowNode: SchemaFlowNode = {
        id,
        type: "schema",
        position: { x, y },
        data: { node, schema, linkedOutputs: outputs },
        ariaLabel: nodeLabel(id, node, schema),
        selected,
        measured: size,
        ...(user ? { width: user[0], style: { width: user[0] } } : {}),
      };
      next.set(id, flowNode);
      list.push(flowNode);
    }
    cache.current = next;
    for (const reroute of reroutesOf(doc)) {
      const id = REROUTE_PREFIX + reroute.id;
      list.push({ id, type: "reroute", position: { x: reroute.position[0] - 7, y: reroute.position[1] - 7 }, measured: { width: 14, height: 14 }, data: { reroute }, selected: Boolean(selectedNodes[id]) });
    }
    return list;
  }, [doc, schemaNodes, selectedNodes, measured, positions]);

  const edges = useMemo<WireFlowEdge[]>(() => {
    const reroutes = reroutesOf(doc);
    return docEdges(doc)
      .filter((e) => {
        if (e.id === detached) return false; // picked up: it follows the pointer instead
        const source = doc.nodes[e.source];
        if (!source) return false;
        const schema = schemaNodes[source.type];
        return !schema || schema.outputs.some((o) => o.name === e.output);
      })
      .map((e) => {
        const source = doc.nodes[e.source];
        const port = schemaNodes[source.type]?.outputs.find((o) => o.name === e.output)?.port ?? "*";
        const color = portColor(serverSchemas.types, port);
        const selected = Boolean(selectedEdges[e.id]);
        const muted = source.mode === "mute" || skippedNodes[e.source]?.status === "skipped";
        return {
          id: e.id,
          type: "wire",
          source: e.source,
          sourceHandle: `out:${e.output}`,
          target: e.target,
          targetHandle: `in:${e.input}`,
          selected,
          ariaLabel: wireLabel(e),
          data: { points: wirePoints(reroutes, e.target, e.input).map((r) => r.position), target: e.target, input: e.input },
          style: { stroke: color, strokeWidth: selected ? 4 : 2.5, opacity: muted ? 0.35 : 1 },
        };
      });
  }, [doc, schemaNodes, serverSchemas.types, selectedEdges, skippedNodes, detached]);
  const edgesRef = useRef(edges);
  edgesRef.current = edges;

  useEffect(() => {
    const followed = follow.current;
    if (fitting.current) {
      boxesChangedWhileFitting.current = true;
      return;
    }
    if (!followed || fitPending) return;
    const step = followStep(followed, {
      state: app.editor.state, viewport: flow.getViewport(), activeRun: app.session.get().activeRun, rects,
      width: wrapper.current?.clientWidth ?? 0, height: wrapper.current?.clientHeight ?? 0,
    });
    if (step === "stop") follow.current = null;
    if (step !== "fit") return;
    const frame = requestAnimationFrame(() => void fitFollowed(followed.runId, followed.here));
    return () => cancelAnimationFrame(frame);
  }, [rects, refitTick]); // eslint-disable-line react-hooks/exhaustive-deps

  // The auto-layout, once shown, stays put: when every node it places has been measured and the boxes have
  // not changed for a frame (a first draw's size reports arrive after that frame's callbacks), those nodes
  // keep their places (EditorState.shownPositions, not the file). Before, every size change re-ran the
  // layout: a run's images moved every node of txt2img out of a 1024×700 view.
  useEffect(() => {
    const unfrozen = unfrozenNodes(doc, shownPositions);
    if (!unfrozen.length || !unfrozen.every((id) => measured[id])) return;
    let frame = requestAnimationFrame(() => {
      frame = requestAnimationFrame(() => {
        const shown = rectsRef.current;
        app.editor.keepShown(idMap(unfrozen.filter((id) => shown[id]).map((id): [string, Position] => [id, [shown[id].x, shown[id].y]])));
      });
    });
    return () => cancelAnimationFrame(frame);
  }, [rects, refitTick]); // eslint-disable-line react-hooks/exhaustive-deps

  // A placed node that grew (a run added an image) pushes the nodes it now covers down: nodes placed by
  // the file move in the document, frozen ones in the shown positions; undo / redo push again with these
  // sizes (EditorState.grown), as they may bring back positions from before the push.
  const lastHeights = useRef<Record<string, number>>(idMap());
  useEffect(() => {
    const grown: string[] = [];
    for (const [id, size] of Object.entries(measured)) {
      const before = lastHeights.current[id];
      if (before !== undefined && size.height > before + 4) grown.push(id);
      lastHeights.current[id] = size.height;
    }
    // the groups' nodes, taken before the push: a frame then grows to hold them again (graph/groups.ts)
    const shown = rectsRef.current;
    const members = grown.length ? idMap(groupsOf(app.editor.doc).map((g): [string, string[]] => [g.id, headerMembers(g, shown)])) : null;
    app.editor.grew(shown, grown);
    if (members) {
      const { doc: pushed, shownPositions: frozen } = app.editor.state;
      const after = idMap(Object.entries(shown).map(([id, r]): [string, Rect] => {
        const at = pushed.nodes[id]?.position ?? frozen[id];
        return [id, at ? { ...r, x: at[0], y: at[1] } : r];
      }));
      app.editor.replaceSilently((current) => growFramesToHold(current, members, after));
    }
  }, [measured]); // eslint-disable-line react-hooks/exhaustive-deps

  // An opened subgraph, once every node is measured and the sizes have not changed for a frame: its nodes push
  // down what they cover, as a node that grows at the top level does (`grew`). Its nodes grew while it was closed
  // (a run's warning box, an image), so no growth was ever seen: the grown Negative prompt covered Prompt.
  const openedPushed = useRef(-1);
  useEffect(() => {
    const ids = Object.keys(app.editor.doc.nodes);
    if (!app.editor.state.path.length || openedPushed.current === loadCount || !ids.every((id) => measured[id])) return;
    let frame = requestAnimationFrame(() => {
      frame = requestAnimationFrame(() => {
        openedPushed.current = loadCount;
        app.editor.grew(rectsRef.current, ids);
      });
    });
    return () => cancelAnimationFrame(frame);
  }, [measured, loadCount]); // eslint-disable-line react-hooks/exhaustive-deps

  // A ComfyUI import (app.canvas.separateWhenShown), once every node is measured and the sizes have not changed
  // for a frame: overlapping nodes pushed apart, each group keeping its nodes (`separateShown`); the load's fit
  // waits for it (`separations`). Run on each load too, not only when sizes change: nodes with the ids and sizes of
  // the graph before keep their measurements, so an import of ComfyUI's default ids 3–9 after another brought
  // no size change, and was never pushed apart (VAE Decode stayed over Save Image).
  useEffect(() => {
    if (!app.canvas.separateWhenShown || !Object.keys(app.editor.doc.nodes).every((id) => measured[id])) return;
    let frame = requestAnimationFrame(() => {
      frame = requestAnimationFrame(() => {
        if (!app.canvas.separateWhenShown) return;
        app.canvas.separateWhenShown = false;
        separateShown(app, rectsRef.current);
        setSeparations((n) => n + 1);
      });
    });
    return () => cancelAnimationFrame(frame);
  }, [measured, loadCount]); // eslint-disable-line react-hooks/exhaustive-deps

  const onNodesChange = useCallback(
    (changes: NodeChange<AnyFlowNode>[]) => {
      const dragged = idMap<Position>();
      const stepped = idMap<Position>(); // moves outside a drag (arrow keys)
      let sizes: Measured | null = null;
      let dragEnded = false;
      const materialize = (d: EditorDocument) => app.materialize(d);
      for (const change of changes) {
        if (change.type === "dimensions" && change.dimensions) {
          if (change.id.startsWith(GROUP_PREFIX) || change.id.startsWith(REROUTE_PREFIX) || change.id.startsWith(NOTE_PREFIX)) continue;
          sizes ??= idMap();
          sizes[change.id] = change.dimensions;
        } else if (change.type === "position") {
          if (change.dragging === false && app.editor.state.dragBase) dragEnded = true;
          if (!change.position) continue;
          const p: Position = [change.position.x, change.position.y];
          if (change.id.startsWith(GROUP_PREFIX)) {
            const id = change.id.slice(GROUP_PREFIX.length);
            if (!groupDrag.current || groupDrag.current.id !== id) {
              const group = groupsOf(app.editor.doc).find((g) => g.id === id);
              const rects = rectsRef.current;
              const members = group ? groupMembers(group, rects) : [];
              groupDrag.current = { id, members: idMap(members.map((m): [string, Position] => [m, [rects[m].x, rects[m].y]])) };
            }
            const members = groupDrag.current.members;
            app.editor.dragEdit((doc) => moveGroup(materialize(doc), id, p, members));
          } else if (change.id.startsWith(REROUTE_PREFIX)) {
            app.editor.dragEdit((doc) => moveReroute(doc, change.id.slice(REROUTE_PREFIX.length), [p[0] + 7, p[1] + 7]));
          } else if (change.id.startsWith(NOTE_PREFIX)) {
            const id = change.id.slice(NOTE_PREFIX.length);
            if (change.dragging) app.editor.dragEdit((doc) => moveNote(doc, id, p));
            else app.editor.edit((doc) => moveNote(doc, id, p), "move-by-keys"); // arrow keys on a selected note
          } else (change.dragging ? dragged : stepped)[change.id] = p;
        } else if (change.type === "select") {
          app.editor.setNodeSelected(change.id, change.selected);
        }
      }
      if (sizes) {
        const update = sizes;
        setMeasured((m) => idMap([...Object.entries(m), ...Object.entries(update)]));
      }
      if (Object.keys(dragged).length) app.editor.dragEdit((d) => moveNodes(materialize(d), dragged));
      if (dragEnded) {
        if (Object.keys(stepped).length) app.editor.dragEdit((d) => moveNodes(d, stepped));
        app.editor.dragEnd();
        groupDrag.current = null;
      } else if (Object.keys(stepped).length) app.editor.edit((d) => moveNodes(materialize(d), stepped), "move-by-keys");
    },
    [app],
  );

  const onEdgesChange = useCallback(
    (changes: EdgeChange<WireFlowEdge>[]) => {
      for (const change of changes) {
        if (change.type === "select") app.editor.setEdgeSelected(change.id, change.selected);
      }
    },
    [app],
  );

  const isValidConnection = useCallback(
    (connection: Connection | Edge) => checkConnection(app.editor.doc, { nodes: app.schemasFor(), types: app.session.get().schemas.types }, connection).ok,
    [app],
  );

  const onConnect = useCallback(
    (connection: Connection) => {
      const check = checkConnection(app.editor.doc, { nodes: app.schemasFor(), types: app.session.get().schemas.types }, connection);
      if (!check.ok) {
        app.toast(`Link refused: ${check.reason}`, "error");
        return;
      }
      const output = handleName(connection.sourceHandle, "out:")!;
      const input = handleName(connection.targetHandle, "in:")!;
      const picked = pickedUp.current;
      if (picked) {
        // a picked-up wire dropped on an input: it moves there (dropped back where it was, nothing changes)
        pickedUp.current = null;
        const moved = (doc: EditorDocument) => relink(doc, picked, { target: connection.target, input });
        if (moved(app.editor.doc) !== app.editor.doc) app.editor.edit((doc) => pruneReroutes(moved(doc)));
        app.dispatch({ type: "clear_input_error", nodeId: connection.target, input });
        return;
      }
      app.editor.edit((doc) => pruneReroutes(connect(doc, connection.source, output, connection.target, input)));
      app.dispatch({ type: "clear_input_error", nodeId: connection.target, input });
    },
    [app],
  );

  const onConnectEnd = useCallback(
    (event: MouseEvent | TouchEvent, state: FinalConnectionState) => {
      const picked = pickedUp.current;
      pickedUp.current = null;
      const types = app.session.get().schemas.types;
      if (picked && !(state.toHandle && state.isValid === false)) {
        // a picked-up wire let go anywhere but on an input (a refused one keeps it, below): the link is removed
        app.editor.edit((doc) => pruneReroutes(disconnect(doc, picked.target, picked.input)));
      }
      const shift = connectFrom.current?.shift ?? false;
      if (shift && state.fromHandle?.type === "source" && state.toHandle?.type === "source") {
        // Shift+drag from an output onto another output: all its links move there (one undo step, all or none)
        const from = { node: state.fromHandle.nodeId, output: handleName(state.fromHandle.id, "out:") ?? "" };
        const to = { node: state.toHandle.nodeId, output: handleName(state.toHandle.id, "out:") ?? "" };
        const check = (source: OutputEnd, target: string, input: string) =>
          checkConnection(app.editor.doc, { nodes: app.schemasFor(), types }, { source: source.node, sourceHandle: `out:${source.output}`, target, targetHandle: `in:${input}` });
        const result = moveOutputLinks(app.editor.doc, from, to, check);
        if ("reason" in result) app.toast(`Links not moved: ${result.reason}`, "error");
        else if (result.moved) app.editor.edit((doc) => {
          const again = moveOutputLinks(doc, from, to, check);
          return "reason" in again ? doc : pruneReroutes(again.doc);
        });
        return;
      }
      if (!state.toHandle && state.fromHandle && !state.isValid) {
        // Dropped on empty canvas: search for a node that takes (or gives) this wire's type.
        const target = event.target as HTMLElement | null;
        if (!target?.classList?.contains("react-flow__pane")) return;
        const from = state.fromHandle;
        const node = app.editor.doc.nodes[from.nodeId];
        const schema = node ? app.schemasFor()[node.type] : undefined;
        const name = from.type === "source" ? handleName(from.id, "out:") : handleName(from.id, "in:");
        const port = from.type === "source" ? schema?.outputs.find((o) => o.name === name)?.port : name ? schema?.inputs[name]?.port : undefined;
        if (!port || !name) return;
        const point = "changedTouches" in event ? event.changedTouches[0] : event;
        app.ui.set((s) => ({
          ...s,
          menu: null,
          search: {
            screen: [point.clientX, point.clientY],
            at: app.canvas.toFlow(point.clientX, point.clientY),
            wire: { filter: { port, from: from.type === "source" ? "output" : "input" }, node: from.nodeId, handle: name },
          },
        }));
        return;
      }
      if (state.isValid !== false || !state.fromHandle || !state.toHandle) return;
      const [from, to] = state.fromHandle.type === "source" ? [state.fromHandle, state.toHandle] : [state.toHandle, state.fromHandle];
      if (from.type === to.type) {
        const hint = from.type === "source" ? "; Shift+drag from an output onto another output moves all its links" : "";
        app.toast(`Link refused: connect an output (right side) to an input (left side)${hint}`, "error");
        return;
      }
      const check = checkConnection(app.editor.doc, { nodes: app.schemasFor(), types: app.session.get().schemas.types }, {
        source: from.nodeId,
        sourceHandle: from.id ?? null,
        target: to.nodeId,
        targetHandle: to.id ?? null,
      });
      if (!check.ok) app.toast(`Link refused: ${check.reason}`, "error");
    },
    [app],
  );

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (app.ui.get().maskEditor) return;   // the mask editor is modal: its own keys ([ ], Ctrl+Z, Escape) apply
      if (event.key === "Escape") {
        const ui = app.ui.get();
        if (ui.menu || ui.search || ui.viewer || ui.model3d || ui.help || ui.templates) {
          app.ui.set((s) => ({
            ...s, menu: null, search: null, viewer: null, model3d: null, help: false, templates: false,
          }));
        } else if (app.session.get().pluginsOpen) app.showPlugins(false);
        else if (app.session.get().storage.open) app.showStorage(false);
        else if (app.editor.state.path.length && !isEditable(event.target)) app.editor.closeSubgraph();
        return;
      }
      const mod = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      if ((event.key === "F10" && event.shiftKey && !mod) || event.key === "ContextMenu") {
        // The keyboard's right-click: the menu of the focused node or wire, under it (the canvas's
        // own menu, with "Add node…", when the canvas itself has the focus: Skip to canvas).
        const element = (event.target as HTMLElement | null)?.closest?.(".react-flow__node, .react-flow__edge, .ng-canvas");
        if (!element || !onCanvas(event.target)) return;
        event.preventDefault();
        keyboardMenuRef.current(element as HTMLElement);
        return;
      }
      // ComfyUI's keys: . fits the view, Alt+C minimises, Ctrl+O opens, Ctrl+Alt+Enter interrupts (editor/shortcuts.ts)
      const habit = app.ui.get().viewer ? null : habitShortcut(event, isEditable(event.target), onCanvas(event.target));
      if (habit) {
        event.preventDefault();
        runHabit(app, habit);
        return;
      }
      if (isEditable(event.target)) {
        // In a text field (a prompt, a number) the field's own keys apply, except run and save.
        const action = shortcutInField(event, (event.target as HTMLElement).dataset?.graphUndo === "true");
        if (action === "run" || action === "run-front") void app.run({ front: action === "run-front" });
        else if (action === "save") app.save();
        else if (action === "undo") app.editor.undo();
        else if (action === "redo") app.editor.redo();
        else return;
        event.preventDefault();
        return;
      }
      if (app.ui.get().viewer || app.ui.get().search) return;
      if (mod && key === "z" && !event.shiftKey) app.editor.undo();
      else if (mod && (key === "y" || (key === "z" && event.shiftKey))) app.editor.redo();
      else if (mod && key === "c") {
        if (!app.copySelection()) return;
      } else if (mod && key === "v") {
        // The browser's `paste` event (below) follows with the system clipboard's content; where
        // none comes, the nodes copied in an editor are pasted anyway.
        const keep = event.shiftKey;
        pendingPaste = keep;
        setTimeout(() => {
          if (pendingPaste === keep) app.paste(keep);
          pendingPaste = null;
        }, 150);
        return; // no preventDefault: it would cancel the paste event
      } else if (mod && key === "a") {
        app.editor.select(idMap(Object.keys(app.editor.doc.nodes).map((id) => [id, true as const])));
      } else if (mod && key === "s") app.save();
      else if (mod && key === "enter") void app.run({ front: event.shiftKey });
      else if (mod && key === "b") selectionActions.toggleMode(app, "bypass");
      else if (mod && key === "m") selectionActions.toggleMode(app, "mute");
      else if (mod && key === "g") selectionActions.group(app);
      else if (mod && event.shiftKey && key === "e") selectionActions.collapse(app);
      else if (event.altKey && key === "l") selectionActions.autoLayout(app);
      else if (!mod && event.key === "?") app.ui.set((s) => ({ ...s, help: !s.help }));
      else if (!mod && (event.key === "Delete" || event.key === "Backspace") && onCanvas(event.target)) selectionActions.delete(app);
      else return;
      event.preventDefault();
    };
    let pendingPaste: boolean | null = null; // Ctrl+V pressed, its paste event not yet seen: Shift held
    const onPaste = (event: ClipboardEvent) => {
      if (isEditable(event.target) || app.ui.get().viewer || app.ui.get().search || app.ui.get().maskEditor) return;
      const keep = pendingPaste ?? false;
      pendingPaste = null;
      event.preventDefault();
      const data = event.clipboardData;
      void app.pasteFromClipboard(data?.getData("text/plain") ?? "", data ? [...data.files] : [], keep);
    };
    window.addEventListener("keydown", onKey);
    window.addEventListener("paste", onPaste);
    return () => {
      window.removeEventListener("keydown", onKey);
      window.removeEventListener("paste", onPaste);
    };
  }, [app]);

  /** Shift+F10 on a focused node or wire: its context menu, at its top-left corner. */
  const keyboardMenu = (element: HTMLElement) => {
    const rect = element.getBoundingClientRect();
    const screen: Position = [rect.left + 12, rect.top + Math.min(24, rect.height / 2)];
    const id = element.dataset.id ?? "";
    let target: import("../state/ui").MenuTarget | null = null;
    if (element.classList.contains("ng-canvas")) {
      const centre: Position = [rect.left + rect.width / 3, rect.top + rect.height / 3];
      app.ui.set((s) => ({ ...s, search: null, menu: { screen: centre, at: app.canvas.toFlow(centre[0], centre[1]), target: { kind: "canvas" } } }));
      return;
    }
    if (element.classList.contains("react-flow__edge")) {
      const edge = edgesRef.current.find((e) => e.id === id);
      if (edge?.data) target = { kind: "wire", target: edge.data.target, input: edge.data.input };
    } else if (id.startsWith(GROUP_PREFIX)) target = { kind: "group", id: id.slice(GROUP_PREFIX.length) };
    else if (id.startsWith(REROUTE_PREFIX)) target = { kind: "reroute", id: id.slice(REROUTE_PREFIX.length) };
    else if (id.startsWith(NOTE_PREFIX)) target = { kind: "note", id: id.slice(NOTE_PREFIX.length) };
    else if (id in app.editor.doc.nodes) {
      if (!app.editor.state.selectedNodes[id]) app.editor.select({ [id]: true });
      target = { kind: "node", id };
    }
    if (target) app.ui.set((s) => ({ ...s, search: null, menu: { screen, at: app.canvas.toFlow(screen[0], screen[1]), target: target! } }));
  };
  keyboardMenuRef.current = keyboardMenu;

  const openMenu = (event: MouseEvent | ReactMouseEvent, target: import("../state/ui").MenuTarget) => {
    event.preventDefault();
    const row = (event.target as HTMLElement).closest?.<HTMLElement>("[data-input], [data-output]");
    const node = target.kind === "node" ? target.id : "";
    app.canvas.menuPort = row?.dataset.input !== undefined ? { node, input: row.dataset.input } : row?.dataset.output !== undefined ? { node, output: row.dataset.output } : null;
    app.ui.set((s) => ({ ...s, search: null, menu: { screen: [event.clientX, event.clientY], at: app.canvas.toFlow(event.clientX, event.clientY), target } }));
  };

  /** The input socket (React Flow handle) under a pointer event: its node and input, or null. */
  const inputSocket = (event: ReactMouseEvent): { node: string; input: string; element: HTMLElement } | null => {
    const element = (event.target as HTMLElement).closest?.<HTMLElement>(".react-flow__handle.target");
    const node = element?.dataset.nodeid;
    const input = handleName(element?.dataset.handleid, "in:");
    return element && node && input !== null && node in app.editor.doc.nodes ? { node, input, element } : null;
  };

  /**
   * ComfyUI's pick-up (editor/wireGestures.ts): a left press on a connected input starts the drag from its link's
   * source output instead (the same press, given to that output's handle), so the wire follows the pointer from
   * there; `pickedUp` says which link it was until the drag ends (onConnect / onConnectEnd).
   */
  const pickUpWire = (event: ReactMouseEvent) => {
    if (event.button !== 0 || event.shiftKey || event.ctrlKey || event.metaKey) return;
    const socket = inputSocket(event);
    const link = socket ? linkInto(app.editor.doc, socket.node, socket.input) : null;
    const source = link ? wrapper.current?.querySelector<HTMLElement>(
      `.react-flow__handle.source[data-nodeid="${CSS.escape(link.node)}"][data-handleid="${CSS.escape(`out:${link.output}`)}"]`) : null;
    if (!socket || !link || !source) return;
    event.stopPropagation();
    event.preventDefault();
    pickedUp.current = { target: socket.node, input: socket.input, link };
    window.addEventListener("mouseup", () => setTimeout(() => {
      pickedUp.current = null;
      setDetached(null);
    }), { once: true });
    const { clientX, clientY, screenX, screenY } = event;
    source.dispatchEvent(new MouseEvent("mousedown", { bubbles: true, cancelable: true, button: 0, buttons: 1, clientX, clientY, screenX, screenY }));
  };

  /**
   * Double-click on an unconnected input socket whose type has a primitive node: that node, holding the widget's
   * value, added left of the node and linked to the input (one undo step). Returns whether it was such a socket.
   */
  const addPrimitiveAtSocket = (event: ReactMouseEvent): boolean => {
    const socket = inputSocket(event);
    if (!socket) return false;
    const doc = app.editor.doc;
    const schemas = app.schemasFor();
    const schema = schemas[doc.nodes[socket.node].type];
    const port = schema?.inputs[socket.input]?.port;
    const primitive = port && !linkInto(doc, socket.node, socket.input) ? primitiveTypeFor(schemas, port) : null;
    if (!primitive) return false;
    const value = widgetValue(doc, socket.node, socket.input, schema);
    const box = socket.element.getBoundingClientRect();
    const [, y] = app.canvas.toFlow(box.left, box.top + box.height / 2);
    const size = estimateSize(schemas[primitive]);
    const rect = app.canvas.rects()[socket.node];
    const others = Object.values(app.canvas.rects());
    const at = freeSpot([(rect?.x ?? 0) - size.width - 60, y - 40], size, others, undefined, app.canvas.view());
    let id = "";
    app.layoutEdit((d) => {
      const added = addPrimitiveFor(d, schemas[primitive], at, socket.node, socket.input, value);
      if (!added) return d;
      id = added.id;
      return added.doc;
    });
    if (id) app.editor.select({ [id]: true });
    return true;
  };

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
    // on a node: an image fills its image upload input (LoadImage), as in ComfyUI; elsewhere it opens as a graph
    const onNode = (event.target as HTMLElement).closest?.(".react-flow__node")?.getAttribute("data-id") ?? null;
    if (file) void app.dropFile(file, onNode);
  };

  return (
    <div
      className="ng-canvas"
      id="ng-canvas"
      ref={wrapper}
      data-testid="canvas"
      role="region"
      aria-label="Graph canvas"
      tabIndex={-1}
      onDragOver={onDragOver}
      onDrop={onDrop}
      onMouseDownCapture={(e) => pickUpWire(e)}
      onPointerDownCapture={(e) => {
        // Shift+drag from an output moves its links: React Flow's Shift selection box must not take that press
        // (its pane swallows the pointerdown, so the output's handle never saw the mouse down)
        if (e.shiftKey && e.button === 0 && (e.target as HTMLElement).closest?.(".react-flow__handle.source")) e.stopPropagation();
      }}
      onDoubleClick={(e) => {
        if (addPrimitiveAtSocket(e)) return;
        if (!(e.target as HTMLElement).classList.contains("react-flow__pane")) return;
        app.ui.set((s) => ({ ...s, menu: null, search: { screen: [e.clientX, e.clientY], at: app.canvas.toFlow(e.clientX, e.clientY) } }));
      }}
      onMouseMove={(e) => {
        app.canvas.pointer = app.canvas.toFlow(e.clientX, e.clientY);
      }}
      onMouseLeave={() => {
        app.canvas.pointer = null;
      }}
    >
      <ReactFlow<AnyFlowNode, WireFlowEdge>
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        edgeTypes={edgeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onConnectStart={(event, params) => {
          const shift = "shiftKey" in event && event.shiftKey;
          connectFrom.current = params.nodeId && params.handleId && params.handleType ? { node: params.nodeId, handle: params.handleId, type: params.handleType, shift } : null;
          const picked = pickedUp.current;
          if (picked && params.nodeId === picked.link.node) setDetached(edgeId(picked.link.node, picked.link.output, picked.target, picked.input));
        }}
        onConnectEnd={onConnectEnd}
        onNodeDragStart={() => nodeGesture(true)}
        onNodeDragStop={() => {
          nodeGesture(false);
          app.editor.dragEnd();
          groupDrag.current = null;
        }}
        onSelectionDragStop={() => app.editor.dragEnd()}
        onNodeClick={(event, node: Node) => {
          // ComfyUI's rule: a plain click selects just that node, also one inside a multi-selection (React Flow kept
          // the whole selection, so a Ctrl+click after it removed nodes the user meant to add). Ctrl / Cmd / Shift+click
          // add or remove it (React Flow); a drag moves the whole selection (React Flow reports no click after a drag).
          if (event.ctrlKey || event.metaKey || event.shiftKey) return;
          const { selectedNodes: nodes, selectedEdges: edges } = app.editor.state;
          if (Object.keys(nodes).some((id) => id !== node.id) || Object.keys(edges).length) app.editor.select({ [node.id]: true });
        }}
        onPaneContextMenu={(e) => openMenu(e, { kind: "canvas" })}
        onNodeContextMenu={(e, node: Node) => {
          if (node.id.startsWith(GROUP_PREFIX)) openMenu(e, { kind: "group", id: node.id.slice(GROUP_PREFIX.length) });
          else if (node.id.startsWith(REROUTE_PREFIX)) openMenu(e, { kind: "reroute", id: node.id.slice(REROUTE_PREFIX.length) });
          else if (node.id.startsWith(NOTE_PREFIX)) {
            if (!app.editor.state.selectedNodes[node.id]) app.editor.select({ [node.id]: true });
            openMenu(e, { kind: "note", id: node.id.slice(NOTE_PREFIX.length) });
          } else {
            if (!app.editor.state.selectedNodes[node.id]) app.editor.select({ [node.id]: true });
            openMenu(e, { kind: "node", id: node.id });
          }
        }}
        onEdgeContextMenu={(e, edge) => {
          const data = (edge as WireFlowEdge).data;
          if (data) openMenu(e, { kind: "wire", target: data.target, input: data.input });
        }}
        onPaneClick={() => app.ui.set((s) => (s.menu || s.search ? { ...s, menu: null, search: null } : s))}
        isValidConnection={isValidConnection}
        deleteKeyCode={null}
        selectionKeyCode="Shift"
        multiSelectionKeyCode={["Control", "Meta", "Shift"]}
        zoomOnDoubleClick={false}
        connectionRadius={24}
        minZoom={0.1}
        maxZoom={2.5}
        fitView
      >
        <Background gap={24} color="var(--grid)" />
        <Controls showInteractive={false} onFitView={() => {
          fits.current++; // the user's fit wins over a load's still on its way
          setFitPending(false);
        }}>
          <LockButton />
          {/* fold the palette and the side panels away: room for the canvas in a small window or at 200 % zoom */}
          <ControlButton
            data-testid="panels-button"
            data-hidden={panelsHidden}
            onClick={() => app.ui.set((s) => ({ ...s, panelsHidden: !panelsHidden }))}
            title={panelsHidden ? "Show the palette and the side panels" : "Hide the palette and the side panels"}
            aria-label={panelsHidden ? "Show the palette and the side panels" : "Hide the palette and the side panels"}
          >
            {panelsHidden ? "⇔" : "⇥"}
          </ControlButton>
        </Controls>
        <CanvasMiniMap nodeColor={minimapColor} />
      </ReactFlow>
    </div>
  );
}

const LOCKED_ICON = "M21.333 10.667H19.81V7.619C19.81 3.429 16.38 0 12.19 0 8 0 4.571 3.429 4.571 7.619v3.048H3.048A3.056 3.056 0 000 13.714v15.238A3.056 3.056 0 003.048 32h18.285a3.056 3.056 0 003.048-3.048V13.714a3.056 3.056 0 00-3.048-3.047zM12.19 24.533a3.056 3.056 0 01-3.047-3.047 3.056 3.056 0 013.047-3.048 3.056 3.056 0 013.048 3.048 3.056 3.056 0 01-3.048 3.047zm4.724-13.866H7.467V7.619c0-2.59 2.133-4.724 4.723-4.724 2.591 0 4.724 2.133 4.724 4.724v3.048z";
const UNLOCKED_ICON = "M21.333 10.667H19.81V7.619C19.81 3.429 16.38 0 12.19 0c-4.114 1.828-1.37 2.133.305 2.438 1.676.305 4.42 2.59 4.42 5.181v3.048H3.047A3.056 3.056 0 000 13.714v15.238A3.056 3.056 0 003.048 32h18.285a3.056 3.056 0 003.048-3.048V13.714a3.056 3.056 0 00-3.048-3.047zM12.19 24.533a3.056 3.056 0 01-3.047-3.047 3.056 3.056 0 013.047-3.048 3.056 3.056 0 013.048 3.048 3.056 3.056 0 01-3.048 3.047z";

/**
 * React Flow's "Toggle Interactivity" as a toggle button that says its state (`aria-pressed`: locked), which
 * React Flow's own lacks: locked, nodes are neither moved, connected nor selected (the same store fields).
 */
function LockButton() {
  const flow = useStoreApi();
  const locked = useFlowStore((s) => !(s.nodesDraggable || s.nodesConnectable || s.elementsSelectable));
  return (
    <ControlButton
      className="react-flow__controls-interactive"
      data-testid="lock-button"
      aria-pressed={locked}
      aria-label="Lock the canvas"
      title={locked ? "Unlock the canvas (Toggle Interactivity)" : "Lock the canvas: no moving, connecting or selecting (Toggle Interactivity)"}
      onClick={() => flow.setState({ nodesDraggable: locked, nodesConnectable: locked, elementsSelectable: locked })}
    >
      {/* React Flow's own lock icons (its Controls draw the same two) */}
      <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 25 32" aria-hidden="true">
        <path d={locked ? LOCKED_ICON : UNLOCKED_ICON} />
      </svg>
    </ControlButton>
  );
}

function minimapColor(node: { selected?: boolean; type?: string }): string {
  return node.selected ? "#e0a030" : node.type === "group" ? "transparent" : node.type === "note" ? "#8a7a50" : "#5a6270";
}

/**
 * A ComfyUI import's push-apart, once its nodes are measured (`rects`: as shown): every overlap undone downwards, each
 * group keeping its nodes and notes — its frame grows and moves with them (graph/layout.ts `pushGrown` "all",
 * `separateInFrames`); notes are boxes like nodes. The nodes the import made for another (a split KSamplerAdvanced's
 * Schedule, ...) first start on that node (`besideTheirNode`), so they end in a column under it. The file's positions,
 * notes and frames go silently into the document, frozen positions into the shown ones: no undo step.
 */
function separateShown(app: EditorApp, rects: Record<string, Rect>): void {
  const { doc: loaded, shownPositions } = app.editor.state;
  const made = besideTheirNode(loaded);
  const doc = Object.keys(made).length ? moveNodes(loaded, made) : loaded;
  const placedRects = idMap(Object.entries(rects).map(([id, r]): [string, Rect] => [id, made[id] ? { ...r, x: made[id][0], y: made[id][1] } : r]));
  const frames = idMap(groupsOf(doc).map((g): [string, Rect] => [g.id, { x: g.bounds[0], y: g.bounds[1], width: g.bounds[2], height: g.bounds[3] }]));
  const notes = idMap(notesOf(doc).map((n): [string, Rect] => [n.id, { x: n.bounds[0], y: n.bounds[1], width: n.bounds[2], height: n.bounds[3] }]));
  const moved = pushGrown(doc, shownPositions, placedRects, "all", frames, notes);
  let next = Object.keys(moved.file).length ? moveNodes(doc, moved.file) : doc;
  for (const [id, f] of Object.entries(moved.frames)) next = updateGroup(next, id, { bounds: [f.x, f.y, f.width, f.height] });
  for (const [id, at] of Object.entries(moved.notes)) next = moveNote(next, id, at);
  app.editor.replaceSilently((current) => (current === loaded ? next : current));
  app.editor.keepShown(moved.frozen);
}

/** Screen pixels kept between a node the user adds and the canvas's edges (flush against an edge it reads as cut off). */
const VIEW_MARGIN = 16;

/** How the whole graph is fitted into the view (the fit-view button's margin). */
const FIT_ALL = { padding: 0.08, duration: 0 };

/**
 * How an opened subgraph is fitted: at most 100 % (a two-node subgraph was shown at 200 %), with the height of what
 * lies over the canvas's top (`covered`: the subgraph bar, banners) as top padding, so no title row is under the bar
 * (clicking it hit the bar).
 */
export function subgraphFit(covered: number) {
  return { padding: { top: `${Math.round(covered) + 16}px` as const, bottom: "24px" as const, x: "24px" as const }, maxZoom: 1, duration: 0 };
}

/** Pixels of `element`'s top that the subgraph bar and the banners cover (0 when none is shown). */
function coveredTop(element: HTMLElement): number {
  const top = element.getBoundingClientRect().top;
  const over = [...element.ownerDocument.querySelectorAll(".ng-subgraph-bar, .ng-banner")].map((e) => e.getBoundingClientRect().bottom - top);
  return Math.max(0, ...over.filter((h) => h < element.clientHeight / 2));
}

/** The zoom below which node text (13 px at 100 %) is too small to read or edit (under ~10 px). */
export const READABLE_ZOOM = 0.75;

/**
 * Show a newly loaded graph: the whole of it when that is readable, else at READABLE_ZOOM from its
 * top-left corner (where the loaders are; ComfyUI opens a workflow at a readable zoom too), so a
 * large graph opens ready to edit, not as a 3 px overview (the fit-view button still shows it all).
 * `fits` counts the fits asked for: when another one was asked for while this one waited, that one's view stays.
 */
async function fitReadable(flow: ReturnType<typeof useReactFlow>, element: HTMLElement | null, fits: { current: number }, subgraph = false): Promise<void> {
  const mine = ++fits.current;
  await flow.fitView(subgraph && element ? subgraphFit(coveredTop(element)) : FIT_ALL);
  if (fits.current !== mine || !element || flow.getZoom() >= READABLE_ZOOM) return; // a newer fit was asked for: its view stays
  const bounds = flow.getNodesBounds(flow.getNodes().filter((node) => !node.hidden));
  const margin = 24;
  const height = element.clientHeight;
  const fitsHeight = bounds.height * READABLE_ZOOM + 2 * margin <= height;
  await flow.setViewport({
    zoom: READABLE_ZOOM,
    x: margin - bounds.x * READABLE_ZOOM,
    // a wide graph that fits in height stays centred vertically; a tall one starts at its top (a subgraph's below the bar)
    y: fitsHeight ? (height - bounds.height * READABLE_ZOOM) / 2 - bounds.y * READABLE_ZOOM
      : (subgraph ? coveredTop(element) + 16 : margin) - bounds.y * READABLE_ZOOM,
  });
}
