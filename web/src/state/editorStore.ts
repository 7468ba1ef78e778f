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
 *   path           the subgraphs being edited, outermost first: each with the outer document,
 *                  its undo history and its shown positions, restored by `closeSubgraph`
 *                  (graph/subgraph.ts), and the node it was opened from (`instance`, null when
 *                  opened by name): a run's events name an inner node `instance/inner` (`runKeyPrefix`).
 *
 * Every change goes through `edit` (recorded for undo, optionally coalesced by
 * a key), `dragMove`/`dragEnd` (one undo step per drag), `load`, `undo`, `redo`,
 * `openSubgraph` / `closeSubgraph`; the canvas sets `shownPositions` with `keepShown`.
 * `rootDoc()` is the whole graph file (open subgraphs written back).
 * The selections are keyed by node ids: prototype-free maps (graph/idMaps.ts).
 */
import type { EditorDocument, Position } from "../graph/document";
import { emptyDocument, moveNodes } from "../graph/document";
import { stringifyJson } from "../graph/exactJson";
import { copyIdMap, idMap } from "../graph/idMaps";
import { emptyHistory, record, redo, undo, type History } from "../graph/history";
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
  path: {
    name: string;
    outer: EditorDocument;
    history: History<EditorDocument>;
    shownPositions: Record<string, Position>;
    instance: string | null;
  }[];
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
  /** For a document an undoable `load` replaced: the document loaded in its place (undo / redo between the two cross the load). */
  private readonly loadedOver = new WeakMap<EditorDocument, EditorDocument>();
  /** The shown positions of a document left across a load, given back when undo / redo returns to it. */
  private readonly shownOf = new WeakMap<EditorDocument, Record<string, Position>>();

  constructor(doc: EditorDocument = emptyDocument()) {
    this.store = createStore<EditorState>({
      doc,
      history: emptyHistory(),
      dragBase: null,
      selectedNodes: idMap(),
      selectedEdges: idMap(),
      loadCount: 0,
      shownPositions: idMap(),
      path: [],
    });
  }

  get state(): EditorState {
    return this.store.get();
  }

  get doc(): EditorDocument {
    return this.store.get().doc;
  }

  /** Apply an edit as one undo step (edits with the same `key` within a second merge). */
  edit(change: (doc: EditorDocument) => EditorDocument, key: string | null = null): void {
    this.store.set((s) => {
      const doc = change(s.doc);
      if (doc === s.doc) return s;
      return { ...s, doc, history: record(s.history, s.doc, key, Date.now()) };
    });
  }

  /** Replace the document without an undo step (seeds randomised before a submit). */
  replaceSilently(change: (doc: EditorDocument) => EditorDocument): void {
    this.store.set((s) => {
      const doc = change(s.doc);
      return doc === s.doc ? s : { ...s, doc };
    });
  }

  /** Positions during a drag: shown at once, recorded as one undo step by `dragEnd`. */
  dragMove(positions: Record<string, Position>): void {
    this.store.set((s) => {
      const doc = moveNodes(s.doc, positions);
      if (doc === s.doc) return s;
      return { ...s, doc, dragBase: s.dragBase ?? s.doc };
    });
  }

  /** Any change during a drag (a group and its members, a reroute): shown at once, one undo step at `dragEnd`. */
  dragEdit(change: (doc: EditorDocument) => EditorDocument): void {
    this.store.set((s) => {
      const doc = change(s.doc);
      if (doc === s.doc) return s;
      return { ...s, doc, dragBase: s.dragBase ?? s.doc };
    });
  }

  dragEnd(): void {
    this.store.set((s) => {
      if (!s.dragBase) return s;
      const history = s.dragBase === s.doc ? s.history : record(s.history, s.dragBase, null, Date.now());
      return { ...s, history, dragBase: null };
    });
  }

  /**
   * Load a whole graph: undoable (the previous graph is one undo step away), or with
   * `undoable: false` for graphs the user did not ask for (the one kept from the last session).
   */
  load(doc: EditorDocument, undoable = true): void {
    this.store.set((s) => {
      if (undoable) {
        this.loadedOver.set(s.doc, doc);
        this.shownOf.set(s.doc, s.shownPositions);
      }
      return {
        ...s,
        doc,
        history: undoable ? record(s.history, s.doc, null, Date.now()) : s.history,
        dragBase: null,
        selectedNodes: idMap(),
        selectedEdges: idMap(),
        loadCount: s.loadCount + 1,
        shownPositions: idMap(),
        path: [],
      };
    });
  }

  /**
   * Fix where the canvas shows nodes the document gives no position (merged into `shownPositions`):
   * no undo step, nothing written into the document.
   */
  keepShown(positions: Record<string, Position>): void {
    if (!Object.keys(positions).length) return;
    this.store.set((s) => ({ ...s, shownPositions: idMap([...Object.entries(s.shownPositions), ...Object.entries(positions)]) }));
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
    this.store.set((s) => ({
      ...s,
      doc: openSubgraph(s.doc, name),
      history: emptyHistory(),
      path: [...s.path, { name, outer: s.doc, history: s.history, shownPositions: s.shownPositions, instance }],
      dragBase: null,
      selectedNodes: idMap(),
      selectedEdges: idMap(),
      loadCount: s.loadCount + 1,
      shownPositions: idMap(),
    }));
  }

  /** Back to the enclosing graph (the definition keeps the edits; one undo step there). */
  closeSubgraph(): void {
    this.store.set((s) => {
      const top = s.path[s.path.length - 1];
      if (!top) return s;
      const doc = closeSubgraph(top.outer, top.name, s.doc);
      const changed = stringifyJson(doc.subgraphs) !== stringifyJson(top.outer.subgraphs);
      return {
        ...s,
        doc,
        history: changed ? record(top.history, top.outer, null, Date.now()) : top.history,
        path: s.path.slice(0, -1),
        dragBase: null,
        selectedNodes: idMap(),
        selectedEdges: idMap(),
        loadCount: s.loadCount + 1,
        shownPositions: top.shownPositions,
      };
    });
  }

  undo(): void {
    this.store.set((s) => {
      const step = undo(s.history, s.doc);
      if (!step) return s;
      return { ...s, doc: step.value, history: step.history, dragBase: null, shownPositions: this.shownAfterStep(s, step.value) };
    });
  }

  redo(): void {
    this.store.set((s) => {
      const step = redo(s.history, s.doc);
      if (!step) return s;
      return { ...s, doc: step.value, history: step.history, dragBase: null, shownPositions: this.shownAfterStep(s, step.value) };
    });
  }

  /**
   * The shown positions after undo / redo from `s.doc` to `next`: kept (the nodes stay where they are
   * shown), except across a load (one of the two replaced the other), where each graph has its own.
   */
  private shownAfterStep(s: EditorState, next: EditorDocument): Record<string, Position> {
    const acrossLoad = this.loadedOver.get(next) === s.doc || this.loadedOver.get(s.doc) === next;
    if (!acrossLoad) return s.shownPositions;
    this.shownOf.set(s.doc, s.shownPositions);
    return this.shownOf.get(next) ?? idMap();
  }

  select(nodes: Record<string, true>, edges: Record<string, true> = {}): void {
    this.store.set((s) => ({ ...s, selectedNodes: copyIdMap(nodes), selectedEdges: copyIdMap(edges) }));
  }

  setNodeSelected(id: string, selected: boolean): void {
    this.store.set((s) => {
      if (Boolean(s.selectedNodes[id]) === selected) return s;
      const selectedNodes = copyIdMap(s.selectedNodes);
      if (selected) selectedNodes[id] = true;
      else delete selectedNodes[id];
      return { ...s, selectedNodes };
    });
  }

  setEdgeSelected(id: string, selected: boolean): void {
    this.store.set((s) => {
      if (Boolean(s.selectedEdges[id]) === selected) return s;
      const selectedEdges = copyIdMap(s.selectedEdges);
      if (selected) selectedEdges[id] = true;
      else delete selectedEdges[id];
      return { ...s, selectedEdges };
    });
  }
}
