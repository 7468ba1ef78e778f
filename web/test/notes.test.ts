/**
 * Notes on the canvas (graph/notes.ts, `ui.notes`): added, edited, moved, resized, deleted with undo / redo; saved
 * and loaded exactly; copied and pasted with the nodes; a ComfyUI import says how many it kept. (A ComfyUI user's
 * pass: the Note of a workflow was dropped silently, and nodegraph had no note at all.)
 */
import { describe, expect, it } from "vitest";
import { clipFromText, clipToText, copyNodes, pasteClip } from "../src/graph/clipboard";
import { fromGraphFile, toGraphFile } from "../src/graph/document";
import { addNote, MAX_NOTE_TEXT, MAX_NOTES, moveNote, NOTE_PREFIX, notesLeftOut, notesOf, pastedNotes, removeNotes, updateNote } from "../src/graph/notes";
import { asksForNote, searchHint } from "../src/schema/search";
import { EditorApp } from "../src/state/app";
import { EditorStore } from "../src/state/editorStore";
import { FakeSocket, welcome } from "./helpers";

const FILE = {
  format_version: 2,
  nodes: { a: { type: "Int", inputs: { value: 1 } } },
  ui: {
    nodes: { a: { position: [0, 0] } },
    notes: [
      { id: "comfyui-note-12", text: "Remember: 64x64\n<img src=x onerror=alert(1)>", bounds: [30, 100, 300, 120], color: "#653", extra: { kept: true } },
      { id: "broken", bounds: "not a box" },
    ],
  },
};

describe("notes in the document", () => {
  it("load and save back exactly, a malformed entry and unknown keys included", () => {
    const doc = fromGraphFile(structuredClone(FILE));
    expect(notesOf(doc).map((n) => n.id)).toEqual(["comfyui-note-12"]);
    expect(toGraphFile(doc)).toEqual(FILE);
  });

  it("are added, edited, moved, resized and removed as new documents (rounded, bounded, the rest untouched)", () => {
    const doc = fromGraphFile(structuredClone(FILE));
    const added = addNote(doc, [10.4, 20.6], "hello");
    expect(added.id).toBe("note1");
    expect(notesOf(added.doc).at(-1)).toEqual({ id: "note1", text: "hello", bounds: [10, 21, 300, 140] });
    const edited = updateNote(added.doc, "note1", { text: "x".repeat(MAX_NOTE_TEXT + 10) });
    expect(notesOf(edited).at(-1)!.text).toHaveLength(MAX_NOTE_TEXT);
    expect(updateNote(edited, "note1", { text: notesOf(edited).at(-1)!.text })).toBe(edited); // no change: same document
    const moved = moveNote(edited, "note1", [400, 500]);
    const resized = updateNote(moved, "note1", { bounds: [400, 500, 222.2, 99.9] });
    expect(notesOf(resized).at(-1)!.bounds).toEqual([400, 500, 222, 100]);
    const removed = removeNotes(resized, ["note1", "comfyui-note-12"]);
    expect(notesOf(removed)).toEqual([]);
    expect(toGraphFile(removed).ui!.notes).toEqual([{ id: "broken", bounds: "not a box" }]); // malformed: carried through
    expect(toGraphFile(doc)).toEqual(FILE); // the original document is unchanged
  });

  it("are undone and redone as edits of the editor (typing coalesced into one step)", () => {
    const editor = new EditorStore(fromGraphFile(structuredClone(FILE)));
    let id = "";
    editor.edit((d) => {
      const added = addNote(d, [0, 300]);
      id = added.id;
      return added.doc;
    });
    editor.edit((d) => updateNote(d, id, { text: "a" }), `note-text:${id}`);
    editor.edit((d) => updateNote(d, id, { text: "ab" }), `note-text:${id}`);
    editor.edit((d) => removeNotes(d, [id]));
    expect(notesOf(editor.doc).map((n) => n.id)).toEqual(["comfyui-note-12"]);
    editor.undo();
    expect(notesOf(editor.doc).find((n) => n.id === id)?.text).toBe("ab");
    editor.undo();
    expect(notesOf(editor.doc).find((n) => n.id === id)?.text).toBe("");
    editor.undo();
    expect(notesOf(editor.doc).map((n) => n.id)).toEqual(["comfyui-note-12"]);
    editor.redo();
    editor.redo();
    expect(notesOf(editor.doc).find((n) => n.id === id)?.text).toBe("ab");
  });
});

describe("notes on the clipboard", () => {
  it("are copied with the nodes (note:<id> in the selection) and pasted with fresh ids, shifted as the nodes are", () => {
    const doc = fromGraphFile(structuredClone(FILE));
    const clip = copyNodes(doc, ["a", `${NOTE_PREFIX}comfyui-note-12`])!;
    expect(clip.notes).toHaveLength(1);
    const stored = clipFromText(clipToText(clip, {}))!; // between tabs: through localStorage's text
    const pasted = pasteClip(doc, stored.clip, [1000, 0]);
    expect(pasted.ids).toEqual(["int"]);
    expect(pasted.notes).toEqual(["note1"]);
    const note = notesOf(pasted.doc).find((n) => n.id === "note1")!;
    expect(note).toMatchObject({ text: "Remember: 64x64\n<img src=x onerror=alert(1)>", bounds: [1030, 100, 300, 120], color: "#653" });
    expect(pasted.doc.nodes.int.position).toEqual([1000, 0]);
  });

  it("copies notes alone too, and refuses a stored clip whose notes are malformed", () => {
    const doc = fromGraphFile(structuredClone(FILE));
    const clip = copyNodes(doc, [`${NOTE_PREFIX}comfyui-note-12`])!;
    expect(Object.keys(clip.nodes)).toEqual([]);
    expect(clipFromText(clipToText(clip, {}))?.clip.notes).toHaveLength(1);
    expect(copyNodes(doc, [`${NOTE_PREFIX}missing`])).toBeNull();
    const text = clipToText(clip, {}).replace('"bounds":[30,100,300,120]', '"bounds":"no"');
    expect(clipFromText(text)).toBeNull();
  });

  it("the editor's Ctrl+C / Ctrl+V pastes a selected note beside its nodes, selected", () => {
    const socket = new FakeSocket();
    const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, null);
    app.start();
    socket.open();
    socket.reply(welcome());
    app.canvas.rects = () => ({ a: { x: 0, y: 0, width: 300, height: 150 } });
    app.loadGraph(structuredClone(FILE));
    app.editor.select({ a: true, [`${NOTE_PREFIX}comfyui-note-12`]: true });
    expect(app.copySelection()).toBe(true);
    const ids = app.paste();
    const notes = notesOf(app.editor.doc);
    expect(notes.map((n) => n.id)).toEqual(["comfyui-note-12", "note1"]);
    const [, copy] = notes;
    const node = app.editor.doc.nodes[ids[0]].position!;
    expect([copy.bounds[0] - node[0], copy.bounds[1] - node[1]]).toEqual([30, 100]); // the arrangement is kept
    expect(Object.keys(app.editor.state.selectedNodes).sort()).toEqual([ids[0], `${NOTE_PREFIX}note1`].sort());
    app.editor.undo();
    expect(notesOf(app.editor.doc).map((n) => n.id)).toEqual(["comfyui-note-12"]);
    app.client.close();
  });
});

describe("a note from the search", () => {
  it("is offered for ComfyUI's Note / MarkdownNote and other editors' words, with a hint that says what it is", () => {
    for (const word of ["Note", "note", "MarkdownNote", "Markdown Note", "comment"]) expect([word, asksForNote(word)]).toEqual([word, true]);
    for (const word of ["nodes", "KSampler", "", "constructor"]) expect([word, asksForNote(word)]).toEqual([word, false]);
    expect(searchHint("Note")).toMatch(/text on the canvas/);
    expect(searchHint("MarkdownNote")).toMatch(/Markdown is shown as written/);
  });
});

describe("a ComfyUI import with notes", () => {
  it("says in its banner how many notes it kept", async () => {
    const socket = new FakeSocket();
    const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, null);
    app.start();
    socket.open();
    socket.reply(welcome());
    const workflow = { nodes: [{ id: 12, type: "Note", pos: [0, 0], widgets_values: ["hi"] }], links: [] };
    const loading = app.loadFile(new File([JSON.stringify(workflow)], "cf_default_ui.json"));
    for (let i = 0; i < 10; i++) await Promise.resolve();
    const request = socket.messages().filter((m) => m.type === "import_graph").at(-1)!;
    const graph = {
      format_version: 2, metadata: { imported_from: "comfyui-workflow" }, nodes: { "3": { type: "KSampler", inputs: {} } },
      ui: { notes: [{ id: "comfyui-note-12", text: "hi", bounds: [0, 0, 300, 120] }, { id: "comfyui-note-18", text: "# h", bounds: [0, 200, 300, 120] }] },
    };
    socket.reply({ type: "imported_graph", graph, errors: [], request_id: request.request_id });
    expect(await loading).toBe(true);
    expect(app.session.get().banner?.text).toBe("Imported cf_default_ui.json from ComfyUI (2 notes kept)");
    expect(notesOf(app.editor.doc)).toHaveLength(2);
    app.client.close();
  });
});

describe("a file with more notes than a graph keeps", () => {
  // An attacker's finding: 20,000 notes in a native graph froze the editor for 21 s (a ComfyUI import was capped).
  const many = (count: number) => ({
    format_version: 2,
    nodes: {},
    ui: { notes: Array.from({ length: count }, (_, i) => ({ id: `n${i}`, text: `note ${i}`, bounds: [0, i * 10, 100, 50] })) },
  });

  it("draws only the first MAX_NOTES (500), saves the file as it was, and says how many are left out", () => {
    const file = many(2_000);
    const doc = fromGraphFile(structuredClone(file));
    expect(MAX_NOTES).toBe(500);
    expect(notesOf(doc).map((n) => n.id)).toEqual(Array.from({ length: MAX_NOTES }, (_, i) => `n${i}`));
    expect(notesLeftOut(doc)).toBe(1_500);
    expect(toGraphFile(doc)).toEqual(file);
    expect(notesLeftOut(fromGraphFile(many(MAX_NOTES)))).toBe(0);
  });

  it("adds and pastes no note past the cap (it would be neither drawn nor kept)", () => {
    const full = fromGraphFile(many(MAX_NOTES));
    expect(addNote(full, [0, 0])).toEqual({ doc: full, id: "" });
    const almost = fromGraphFile(many(MAX_NOTES - 1));
    const pasted = pastedNotes(almost, notesOf(almost).slice(0, 3), [10, 10]);
    expect(pasted.ids).toHaveLength(1);
    expect(notesOf(pasted.doc)).toHaveLength(MAX_NOTES);
  });
});
