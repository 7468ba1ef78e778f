/**
 * The editing state: the document, its undo history and the selection.
 *
 * Fields of `EditorState`:
 *   doc            the EditorDocument being edited (immutable; replaced on each edit).
 *   history        undo/redo snapshots of `doc` (graph/history.ts).
 *   dragBase       the document before a drag started (null when no drag is in progress).
 *   selectedNodes  ids of selected nodes; selectedEdges: ids of selected edges.
 *   loadCount      bumped when a whole graph is loaded (the canvas fits the view then).
 *
 * Every change goes through `edit` (recorded for undo, optionally coalesced by
 * a key), `dragMove`/`dragEnd` (one undo step per drag), `load`, `undo`, `redo`.
 */
import type { EditorDocument, Position } from "../graph/document";
import { emptyDocument, moveNodes } from "../graph/document";
import { emptyHistory, record, redo, undo, type History } from "../graph/history";
import { createStore, type Store } from "./store";

export interface EditorState {
  doc: EditorDocument;
  history: History<EditorDocument>;
  dragBase: EditorDocument | null;
  selectedNodes: Record<string, true>;
  selectedEdges: Record<string, true>;
  loadCount: number;
}

export class EditorStore {
  readonly store: Store<EditorState>;

  constructor(doc: EditorDocument = emptyDocument()) {
    this.store = createStore<EditorState>({
      doc,
      history: emptyHistory(),
      dragBase: null,
      selectedNodes: {},
      selectedEdges: {},
      loadCount: 0,
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

  dragEnd(): void {
    this.store.set((s) => {
      if (!s.dragBase) return s;
      const history = s.dragBase === s.doc ? s.history : record(s.history, s.dragBase, null, Date.now());
      return { ...s, history, dragBase: null };
    });
  }

  /** Load a whole graph (undoable: the previous graph is one undo step away). */
  load(doc: EditorDocument): void {
    this.store.set((s) => ({
      ...s,
      doc,
      history: record(s.history, s.doc, null, Date.now()),
      dragBase: null,
      selectedNodes: {},
      selectedEdges: {},
      loadCount: s.loadCount + 1,
    }));
  }

  undo(): void {
    this.store.set((s) => {
      const step = undo(s.history, s.doc);
      return step ? { ...s, doc: step.value, history: step.history, dragBase: null } : s;
    });
  }

  redo(): void {
    this.store.set((s) => {
      const step = redo(s.history, s.doc);
      return step ? { ...s, doc: step.value, history: step.history, dragBase: null } : s;
    });
  }

  select(nodes: Record<string, true>, edges: Record<string, true> = {}): void {
    this.store.set((s) => ({ ...s, selectedNodes: nodes, selectedEdges: edges }));
  }

  setNodeSelected(id: string, selected: boolean): void {
    this.store.set((s) => {
      if (Boolean(s.selectedNodes[id]) === selected) return s;
      const selectedNodes = { ...s.selectedNodes };
      if (selected) selectedNodes[id] = true;
      else delete selectedNodes[id];
      return { ...s, selectedNodes };
    });
  }

  setEdgeSelected(id: string, selected: boolean): void {
    this.store.set((s) => {
      if (Boolean(s.selectedEdges[id]) === selected) return s;
      const selectedEdges = { ...s.selectedEdges };
      if (selected) selectedEdges[id] = true;
      else delete selectedEdges[id];
      return { ...s, selectedEdges };
    });
  }
}
