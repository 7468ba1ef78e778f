/**
 * Adding a note at the cap (MAX_NOTES: what the server keeps) says so in a toast. (A tester's finding: the canvas
 * menu's "Add note" at 500 notes added nothing and silently selected "note:", a note that does not exist.)
 */
import { describe, expect, it } from "vitest";
import { addNoteAt } from "../src/editor/GraphCanvas";
import { MAX_NOTES, notesOf } from "../src/graph/notes";
import { EditorApp } from "../src/state/app";
import { FakeSocket } from "./helpers";

function editorWithNotes(count: number): EditorApp {
  const app = new EditorApp(() => new FakeSocket(), { href: "http://127.0.0.1:8188/" }, null);
  const notes = Array.from({ length: count }, (_, i) => ({ id: `n${i}`, text: "", bounds: [0, i * 10, 300, 140] }));
  app.loadGraph({ format_version: 2, nodes: {}, ui: { notes } });
  return app;
}

describe("Add note at the cap", () => {
  it("adds nothing, selects nothing and says the cap in a toast", () => {
    const app = editorWithNotes(MAX_NOTES);
    const before = app.editor.doc;
    expect(addNoteAt(app, [5, 5])).toBe("");
    expect(app.editor.doc).toBe(before);
    expect(app.editor.state.selectedNodes).toEqual({});
    const toast = app.toasts.get().at(-1);
    expect(toast?.kind).toBe("error");
    expect(toast?.text).toContain(`at most ${MAX_NOTES} notes`);
  });

  it("below the cap adds the note and selects it, without a toast", () => {
    const app = editorWithNotes(MAX_NOTES - 1);
    const id = addNoteAt(app, [5, 5]);
    expect(id).not.toBe("");
    expect(notesOf(app.editor.doc)).toHaveLength(MAX_NOTES);
    expect(Object.keys(app.editor.state.selectedNodes)).toEqual([`note:${id}`]);
    expect(app.toasts.get()).toEqual([]);
  });
});
