/**
 * The editing state: the document, its undo history and the selection.
 *
 * Fields of `EditorState`:
 *   doc            the EditorDocument being edited (immutable; replaced on each edit).
 *   history        undo/redo snapshots of `doc` (graph/history.ts).
 *   dragBase       the document before a drag started (null when no drag is in progress).
 *   selectedNodes  ids of selected nodes; selectedEdges: ids of selected edges.
 *   loadCount      bumped when a whole graph is loaded or a subgraph opened/closed (the canvas fits the view then).
 *   shownPositions where the canvas keeps the nodes the document gives no position: frozen once the
 *                  auto-layout of them was shown and measured, moved only by a grown node's push
 *                  (graph/layout.ts `effectivePositions`, `pushGrown`). Never written into the file
 *                  (an unedited graph saves back unchanged) and no undo step; empty for each graph
 *                  loaded and each subgraph opened, and undo / redo across a load gives each graph
 *                  back its own. A node with a position in the document is shown there instead.
 *   grown          the nodes that grew on the canvas (a run's images) and so pushed the placed nodes they
 *                  covered (`grew`). A push is no undo step either, so undo / redo bring back positions
 *                  from before it; they push again, each of these nodes moving down what it covers in the
 *                  document stepped to (sizes from `shownSize`), so no node ends up under a grown one
 *                  (before, undoing an edit made before a Run put the decode node back under the
 *                  sampler's image). Empty for each graph loaded and each subgraph opened (Back gives
 *                  the enclosing graph's back), and after undo / redo across a load (it cleared the results).
 *   path           the subgraphs being edited, outermost first: each with the outer document,
 *                  its undo history, its shown positions and grown nodes, restored by `closeSubgraph`
 *                  (graph/subgraph.ts), and the node it was opened from (`instance`, null when
 *                  opened by name): a run's events name an inner node `instance/inner` (`runKeyPrefix`).
 *
 * Every change goes through `edit` (recorded for undo, optionally coalesced by
 * a key), `dragMove`/`dragEnd` (one undo step per drag), `load`, `undo`, `redo`,
 * `openSubgraph` / `closeSubgraph`, `replaceEverywhere` (no undo step: inputs renamed by schemas
 * that came after the graph); the canvas sets `shownPositions` with `keepShown` and reports grown
 * nodes with `grew`. A load while a subgraph is open first goes back to the top
 * level (each open subgraph's edits one undo step, as Back makes them), so undoing the load shows
 * the whole graph it replaced.
 * `rootDoc()` is the whole graph file (open subgraphs written back).
 * The selections are keyed by node ids: prototype-free maps (graph/idMaps.ts).
 */
import type { EditorDocument, Position } from "../graph/document";
import { emptyDocument, moveNodes } from "../graph/document";
import { stringifyJson } from "../graph/exactJson";
import { copyIdMap, idMap } from "../graph/idMaps";
import { emptyHistory, record, redo, undo, type History } from "../graph/history";
import { pushGrown, type Rect, type Size } from "../graph/layout";
import { closeSubgraph, openSubgraph } from "../graph/subgraph";
import { createStore, type Store } from "./store";

export interface EditorState {
  doc: EditorDocument;
  history: History<EditorDocument>;
  dragBase: EditorDocument | null;
  selectedNodes: Record<string, true>;
  selectedEdges: Record<string, true>;
  loadCount: number;
  shownPositions: Record<string, Position>;
  grown: Record<string, true>;
  path: {
    name: string;
    outer: EditorDocument;
    history: History<EditorDocument>;
    shownPositions: Record<string, Position>;
    grown: Record<string, true>;
    instance: string | null;
  }[];
}

/**
 * `doc` and `shownPositions` after the nodes `grown` pushed the placed nodes they cover (graph/layout.ts
 * `pushGrown`): positions from the file move in the document, frozen ones in the shown positions.
 */
function pushed(doc: EditorDocument, shownPositions: Record<string, Position>, rects: Record<string, Rect>, grown: Iterable<string>):
  { doc: EditorDocument; shownPositions: Record<string, Position> } {
  const moved = pushGrown(doc, shownPositions, rects, grown);
  return {
    doc: Object.keys(moved.file).length ? moveNodes(doc, moved.file) : doc,
    shownPositions: Object.keys(moved.frozen).length ? idMap([...Object.entries(shownPositions), ...Object.entries(moved.frozen)]) : shownPositions,
  };
}

/**
 * What the shown nodes' ids are prefixed with in a run's events (node states, previews, files,
 * warnings, errors): "" at the top level, `a/b/` inside subgraph node `b` opened from node `a`,
 * null inside a definition opened without its node (several nodes may use it: none is shown).
 */
export function runKeyPrefix(state: Pick<EditorState, "path">): string | null {
  if (state.path.some((entry) => entry.instance === null)) return null;
  return state.path.map((entry) => `${entry.instance}/`).join("");
}

export class EditorStore {
  readonly store: Store<EditorState>;
  /**
   * The graph a document belongs to: a number per load; an edit, a push, a seed drawn, a subgraph opened or
   * closed keep their document's (`update`). Undo / redo between documents of two numbers cross a load —
   * also after a silent change (a push) replaced the document that was loaded.
   */
  private readonly graphOf = new WeakMap<EditorDocument, number>();
  private graphs = 0;
  /** The shown positions of each graph left across a load, given back when undo / redo returns to it. */
  private readonly shownOf = new Map<number, Record<string, Position>>();
  /**
   * The size the canvas shows a node of `doc` at (measured, else estimated), set by the canvas: undo and redo
   * push with it (`grown`). Null (no canvas): they do not push.
   */
  shownSize: ((doc: EditorDocument, id: string) => Size) | null = null;

  constructor(doc: EditorDocument = emptyDocument()) {
    this.store = createStore<EditorState>({
      doc,
      history: emptyHistory(),
      dragBase: null,
      selectedNodes: idMap(),
      selectedEdges: idMap(),
      loadCount: 0,
      shownPositions: idMap(),
      grown: idMap(),
      path: [],
    });
  }

  /**
   * Every change of the state: a new document keeps the graph number of the one it replaced (unless
   * `load` gave it one).
   */
  private update(change: (s: EditorState) => EditorState): void {
    this.store.set((s) => {
      const next = change(s);
      return next.doc === s.doc ? next : { ...next, doc: this.ofGraph(next.doc, s.doc) };
    });
  }

  /** `doc`, belonging to the graph of `from` unless it belongs to one already. */
  private ofGraph(doc: EditorDocument, from: EditorDocument): EditorDocument {
    if (!this.graphOf.has(doc)) this.graphOf.set(doc, this.graphOf.get(from) ?? 0);
    return doc;
  }

  get state(): EditorState {
    return this.store.get();
  }

  get doc(): EditorDocument {
    return this.store.get().doc;
  }

  /** Apply an edit as one undo step (edits with the same `key` within a second merge). */
  edit(change: (doc: EditorDocument) => EditorDocument, key: string | null = null): void {
    this.update((s) => {
      const doc = change(s.doc);
      if (doc === s.doc) return s;
      return { ...s, doc, history: record(s.history, s.doc, key, Date.now()) };
    });
  }

  /** Replace the document without an undo step (seeds randomised before a submit). */
  replaceSilently(change: (doc: EditorDocument) => EditorDocument): void {
    this.update((s) => {
      const doc = change(s.doc);
      return doc === s.doc ? s : { ...s, doc };
    });
  }

  /** Positions during a drag: shown at once, recorded as one undo step by `dragEnd`. */
  dragMove(positions: Record<string, Position>): void {
    this.update((s) => {
      const doc = moveNodes(s.doc, positions);
      if (doc === s.doc) return s;
      return { ...s, doc, dragBase: s.dragBase ?? s.doc };
    });
  }

  /** Any change during a drag (a group and its members, a reroute): shown at once, one undo step at `dragEnd`. */
  dragEdit(change: (doc: EditorDocument) => EditorDocument): void {
    this.update((s) => {
      const doc = change(s.doc);
      if (doc === s.doc) return s;
      return { ...s, doc, dragBase: s.dragBase ?? s.doc };
    });
  }

  dragEnd(): void {
    this.update((s) => {
      if (!s.dragBase) return s;
      const history = s.dragBase === s.doc ? s.history : record(s.history, s.dragBase, null, Date.now());
      return { ...s, history, dragBase: null };
    });
  }

  /**
   * Load a whole graph: undoable (the previous graph is one undo step away), or with
   * `undoable: false` for graphs the user did not ask for (the one kept from the last session).
   * Loaded while a subgraph is open, it replaces the whole graph: the open subgraphs are closed
   * first (their edits written back, one undo step each, as Back does), so the undo step is the
   * whole graph at the top level (before, it was the inner document, shown as if it were the graph).
   */
  load(doc: EditorDocument, undoable = true): void {
    this.update((current) => {
      let s = current;
      while (s.path.length) s = this.closedLevel(s);
      if (undoable) this.shownOf.set(this.graphOf.get(s.doc) ?? 0, s.shownPositions);
      this.graphOf.set(doc, ++this.graphs);
      return {
        ...s,
        doc,
        history: undoable ? record(s.history, s.doc, null, Date.now()) : s.history,
        dragBase: null,
        selectedNodes: idMap(),
        selectedEdges: idMap(),
        loadCount: current.loadCount + 1,
        shownPositions: idMap(),
        grown: idMap(),
        path: [],
      };
    });
  }

  /**
   * Apply `change` to the document, and to the enclosing documents of the open subgraphs, without an undo
   * step (inputs renamed by node schemas that arrived after the graph was opened; seeds stepped by a Run, which
   * submits the whole graph). `change` is told each document's level: 0 the top level, `path.length` the one shown
   * (see `levels`).
   */
  replaceEverywhere(change: (doc: EditorDocument, level: number) => EditorDocument): void {
    this.update((s) => {
      const doc = change(s.doc, s.path.length);
      const path = s.path.map((level, i) => {
        const outer = change(level.outer, i);
        return outer === level.outer ? level : { ...level, outer };
      });
      if (doc === s.doc && path.every((level, i) => level === s.path[i])) return s;
      return { ...s, doc, path };
    });
  }

  /**
   * Fix where the canvas shows nodes the document gives no position (merged into `shownPositions`):
   * no undo step, nothing written into the document.
   */
  keepShown(positions: Record<string, Position>): void {
    if (!Object.keys(positions).length) return;
    this.update((s) => ({ ...s, shownPositions: idMap([...Object.entries(s.shownPositions), ...Object.entries(positions)]) }));
  }

  /**
   * Nodes grew on the canvas (`rects`: the boxes as shown, the new sizes included): each pushes the placed
   * nodes it now covers down — no undo step, the file's positions silently in the document, frozen ones in
   * `shownPositions` — and is remembered in `grown`, so that undo / redo push again.
   */
  grew(rects: Record<string, Rect>, ids: string[]): void {
    if (!ids.length) return;
    this.update((s) => {
      const next = pushed(s.doc, s.shownPositions, rects, ids);
      const grown = ids.every((id) => s.grown[id]) ? s.grown : idMap([...Object.entries(s.grown), ...ids.map((id): [string, true] => [id, true])]);
      if (next.doc === s.doc && next.shownPositions === s.shownPositions && grown === s.grown) return s;
      return { ...s, ...next, grown };
    });
  }

  /** The documents of every level, the top level first and the one shown last (`replaceEverywhere`'s levels). */
  levels(state: EditorState = this.state): EditorDocument[] {
    return [...state.path.map((level) => level.outer), state.doc];
  }

  /** The whole graph: the document with every open subgraph written back into its definition. */
  rootDoc(state: EditorState = this.state): EditorDocument {
    let doc = state.doc;
    for (let i = state.path.length - 1; i >= 0; i--) doc = closeSubgraph(state.path[i].outer, state.path[i].name, doc);
    return doc;
  }

  /** Edit subgraph definition `name` (of the document shown now) on the canvas, opened from node `instance`
   * (its run states are then shown on the inner nodes) or by name (null). */
  openSubgraph(name: string, instance: string | null = null): void {
    this.update((s) => ({
      ...s,
      doc: openSubgraph(s.doc, name),
      history: emptyHistory(),
      path: [...s.path, { name, outer: s.doc, history: s.history, shownPositions: s.shownPositions, grown: s.grown, instance }],
      dragBase: null,
      selectedNodes: idMap(),
      selectedEdges: idMap(),
      loadCount: s.loadCount + 1,
      shownPositions: idMap(),
      grown: idMap(),
    }));
  }

  /** Back to the enclosing graph (the definition keeps the edits; one undo step there). */
  closeSubgraph(): void {
    this.update((s) => (s.path.length ? { ...this.closedLevel(s), loadCount: s.loadCount + 1 } : s));
  }

  /** `s` one subgraph level up: the inner document written back into its definition (one undo step when it changed). */
  private closedLevel(s: EditorState): EditorState {
    const top = s.path[s.path.length - 1];
    const doc = this.ofGraph(closeSubgraph(top.outer, top.name, s.doc), top.outer);
    const changed = stringifyJson(doc.subgraphs) !== stringifyJson(top.outer.subgraphs);
    return {
      ...s,
      doc,
      history: changed ? record(top.history, top.outer, null, Date.now()) : top.history,
      path: s.path.slice(0, -1),
      dragBase: null,
      selectedNodes: idMap(),
      selectedEdges: idMap(),
      shownPositions: top.shownPositions,
      grown: top.grown,
    };
  }

  undo(): void {
    this.update((s) => {
      const step = undo(s.history, s.doc);
      return step ? this.stepped(s, step.value, step.history) : s;
    });
  }

  redo(): void {
    this.update((s) => {
      const step = redo(s.history, s.doc);
      return step ? this.stepped(s, step.value, step.history) : s;
    });
  }

  /**
   * The state after undo / redo from `s.doc` to `next`. The shown positions and grown nodes are kept (the
   * nodes stay where they are shown), except across a load (the two belong to different graphs), where each
   * graph has its own shown positions and no grown node (the load cleared the results). The grown nodes
   * then push again what they cover in `next`, whose positions may be from before their pushes (no undo step).
   */
  private stepped(s: EditorState, next: EditorDocument, history: History<EditorDocument>): EditorState {
    const [left, reached] = [this.graphOf.get(s.doc) ?? 0, this.graphOf.get(next) ?? 0];
    let shown = { shownPositions: s.shownPositions, grown: s.grown };
    if (left !== reached) {
      this.shownOf.set(left, s.shownPositions);
      // a load cleared the results shown on the nodes: none of them is grown any more
      shown = { shownPositions: this.shownOf.get(reached) ?? idMap(), grown: idMap() };
    }
    const stepped = { ...s, doc: next, history, dragBase: null, ...shown };
    const sizeOf = this.shownSize;
    const grown = Object.keys(shown.grown);
    if (!sizeOf || !grown.length) return stepped;
    const rects = idMap<Rect>();
    for (const [id, node] of Object.entries(next.nodes)) {
      const at = node.position ?? shown.shownPositions[id];
      if (at) rects[id] = { x: at[0], y: at[1], ...sizeOf(next, id) };
    }
    const after = pushed(next, shown.shownPositions, rects, grown);
    return { ...stepped, ...after, doc: this.ofGraph(after.doc, next) };
  }

  select(nodes: Record<string, true>, edges: Record<string, true> = {}): void {
    this.update((s) => ({ ...s, selectedNodes: copyIdMap(nodes), selectedEdges: copyIdMap(edges) }));
  }

  setNodeSelected(id: string, selected: boolean): void {
    this.update((s) => {
      if (Boolean(s.selectedNodes[id]) === selected) return s;
      const selectedNodes = copyIdMap(s.selectedNodes);
      if (selected) selectedNodes[id] = true;
      else delete selectedNodes[id];
      return { ...s, selectedNodes };
    });
  }

  setEdgeSelected(id: string, selected: boolean): void {
    this.update((s) => {
      if (Boolean(s.selectedEdges[id]) === selected) return s;
      const selectedEdges = copyIdMap(s.selectedEdges);
      if (selected) selectedEdges[id] = true;
      else delete selectedEdges[id];
      return { ...s, selectedEdges };
    });
  }
}
