/**
 * Notes: text on the canvas (ComfyUI's Note and MarkdownNote), kept in the graph file's `ui.notes`
 * (docs/graph-format.md "Editor metadata in ui"); never nodes, never executed, never validated.
 *
 *   ui.notes   [{id, text, bounds: [x, y, w, h], color?}] — plain text in a box at `bounds`; `color` a hex
 *              colour (a ComfyUI note's, kept on import), shown only when it is one.
 *
 * The text is plain text: Markdown (a MarkdownNote's) is shown as written, never as HTML, and is at most
 * MAX_NOTE_TEXT characters (the editor takes no more; a file's longer text is kept as written). A graph keeps the first
 * MAX_NOTES entries of `ui.notes` (as the Python reader, graph.MAX_NOTES, and a ComfyUI import do): only those are
 * drawn, and no note is added past them (20,000 notes in a file froze the editor for 21 s).
 *
 * Main functions: notesOf (read, tolerant of malformed entries, which are carried through untouched),
 * addNote, updateNote, moveNote, removeNotes, and for copy / paste `copyNotes` / `pastedNotes` (fresh ids,
 * shifted). Selected notes are `note:<id>` in the editor's selection (NOTE_PREFIX), beside the node ids.
 */
import { MAX_COORDINATE, setUiKey, type EditorDocument, type Position } from "./document";

export interface Note {
  id: string;
  text: string;
  bounds: [number, number, number, number];
  color?: string;
}

/** The most characters a note holds (a long README pasted into one stays usable; the file stays small). */
export const MAX_NOTE_TEXT = 20_000;
/** The most entries of `ui.notes` a graph keeps (Python's graph.MAX_NOTES, comfyui.MAX_NOTES): the rest are not drawn. */
export const MAX_NOTES = 500;
/** The size of a note added in the editor (about ComfyUI's Note). */
export const NOTE_SIZE: [number, number] = [300, 140];
/** The smallest a note is resized to. */
export const NOTE_MIN_SIZE: [number, number] = [120, 60];
/** What a note is called in the editor's selection and on the canvas: `note:<id>` (as a group is `group:<id>`). */
export const NOTE_PREFIX = "note:";

const HEX_COLOR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6}|[0-9a-f]{8})$/i;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A well-formed note: an id, text, and bounds of four finite numbers on the canvas, width and height above 0. */
export function isNote(value: unknown): value is Note {
  return (
    isObject(value) &&
    typeof value.id === "string" &&
    typeof value.text === "string" &&
    Array.isArray(value.bounds) &&
    value.bounds.length === 4 &&
    value.bounds.every((v) => typeof v === "number" && Number.isFinite(v) && Math.abs(v) <= MAX_COORDINATE) &&
    value.bounds[2] > 0 &&
    value.bounds[3] > 0
  );
}

/** `ui.notes` as written (every entry, malformed ones included). */
function rawNotes(doc: EditorDocument): unknown[] {
  const list = doc.uiRest?.notes;
  return Array.isArray(list) ? list : [];
}

/** The well-formed notes among the first MAX_NOTES entries of `ui.notes`, in file order (what is drawn). */
export function notesOf(doc: EditorDocument): Note[] {
  return rawNotes(doc).slice(0, MAX_NOTES).filter(isNote);
}

/** How many entries of `ui.notes` lie past MAX_NOTES: neither drawn here nor kept when the server reads the graph. */
export function notesLeftOut(doc: EditorDocument): number {
  return Math.max(0, rawNotes(doc).length - MAX_NOTES);
}

/** A note's colour when it is a hex colour, else null (a file's text never reaches CSS as it is). */
export function noteColor(note: Note): string | null {
  return typeof note.color === "string" && HEX_COLOR.test(note.color) ? note.color : null;
}

/** `note1`, `note2`, ...: the first not in `taken`. */
function freshNoteId(taken: Iterable<string>): string {
  const used = new Set(taken);
  let n = 1;
  while (used.has(`note${n}`)) n++;
  return `note${n}`;
}

/** The document with each well-formed note passed through `change` (null removes it; malformed entries stay). */
function mapNotes(doc: EditorDocument, change: (note: Note) => Note | null): EditorDocument {
  const next: unknown[] = [];
  let changed = false;
  for (const item of rawNotes(doc)) {
    if (!isNote(item)) {
      next.push(item);
      continue;
    }
    const out = change(item);
    if (out !== item) changed = true;
    if (out) next.push(out);
  }
  return changed ? setUiKey(doc, "notes", next) : doc;
}

/** Text cut to MAX_NOTE_TEXT characters. */
function bounded(text: string): string {
  return text.length > MAX_NOTE_TEXT ? text.slice(0, MAX_NOTE_TEXT) : text;
}

/** Add a note with its top-left corner at `at` (rounded), NOTE_SIZE large; at MAX_NOTES entries nothing is added
 * (the same document, id ""): a note past them would be neither drawn nor kept. */
export function addNote(doc: EditorDocument, at: Position, text = ""): { doc: EditorDocument; id: string } {
  if (rawNotes(doc).length >= MAX_NOTES) return { doc, id: "" };
  const id = freshNoteId(rawNotes(doc).filter(isObject).map((n) => String(n.id)));
  const note: Note = { id, text: bounded(text), bounds: [Math.round(at[0]), Math.round(at[1]), NOTE_SIZE[0], NOTE_SIZE[1]] };
  return { doc: setUiKey(doc, "notes", [...rawNotes(doc), note]), id };
}

/** Change a note's text (cut to MAX_NOTE_TEXT), bounds (rounded) or colour; the same document when nothing changes. */
export function updateNote(doc: EditorDocument, id: string, change: Partial<Omit<Note, "id">>): EditorDocument {
  return mapNotes(doc, (note) => {
    if (note.id !== id) return note;
    const next: Note = { ...note, ...change };
    if (change.text !== undefined) next.text = bounded(change.text);
    if (change.bounds) next.bounds = change.bounds.map(Math.round) as Note["bounds"];
    const same = next.text === note.text && next.color === note.color && next.bounds.every((v, i) => v === note.bounds[i]);
    return same ? note : next;
  });
}

/** Move a note's top-left corner to `to` (its size kept). */
export function moveNote(doc: EditorDocument, id: string, to: Position): EditorDocument {
  const note = notesOf(doc).find((n) => n.id === id);
  return note ? updateNote(doc, id, { bounds: [to[0], to[1], note.bounds[2], note.bounds[3]] }) : doc;
}

/** Move the notes of `ids` by (dx, dy). */
export function shiftNotes(doc: EditorDocument, ids: Iterable<string>, dx: number, dy: number): EditorDocument {
  const moved = new Set(ids);
  if (!dx && !dy) return doc;
  return mapNotes(doc, (n) => (moved.has(n.id) ? { ...n, bounds: [n.bounds[0] + dx, n.bounds[1] + dy, n.bounds[2], n.bounds[3]].map(Math.round) as Note["bounds"] } : n));
}

export function removeNotes(doc: EditorDocument, ids: Iterable<string>): EditorDocument {
  const gone = new Set(ids);
  return gone.size ? mapNotes(doc, (n) => (gone.has(n.id) ? null : n)) : doc;
}

/** The note ids of an editor selection (its `note:<id>` keys). */
export function selectedNoteIds(selection: Record<string, true>): string[] {
  return Object.keys(selection).filter((key) => key.startsWith(NOTE_PREFIX)).map((key) => key.slice(NOTE_PREFIX.length));
}

/** Copies of the notes of `ids` (for the clipboard). */
export function copyNotes(doc: EditorDocument, ids: Iterable<string>): Note[] {
  const wanted = new Set(ids);
  return notesOf(doc).filter((n) => wanted.has(n.id)).map((n) => structuredClone(n));
}

/** `notes` added to `doc` with fresh ids, shifted by `offset`, up to MAX_NOTES entries in all; returns the new
 * document and the new ids. */
export function pastedNotes(doc: EditorDocument, notes: Note[], offset: Position): { doc: EditorDocument; ids: string[] } {
  const list = [...rawNotes(doc)];
  const taken = list.filter(isObject).map((n) => String(n.id));
  const ids: string[] = [];
  for (const note of notes.filter(isNote)) {
    if (list.length >= MAX_NOTES) break;
    const id = freshNoteId(taken);
    taken.push(id);
    ids.push(id);
    const [x, y, w, h] = note.bounds;
    list.push({ ...structuredClone(note), id, text: bounded(note.text), bounds: [Math.round(x + offset[0]), Math.round(y + offset[1]), w, h] });
  }
  return { doc: ids.length ? setUiKey(doc, "notes", list) : doc, ids };
}
