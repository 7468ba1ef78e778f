/** Ctrl+V with the system clipboard's content (app.pasteFromClipboard): graphs as text open, nodes paste, the rest says why not. */
import { importedTitle } from "../src/graph/foreign";
import { describe, expect, it } from "vitest";
import { clipToText, copyNodes } from "../src/graph/clipboard";
import { fromGraphFile } from "../src/graph/document";
import { EditorApp } from "../src/state/app";
import { FakeSocket, welcome } from "./helpers";

function openEditor() {
  const socket = new FakeSocket();
  const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, null);
  app.start();
  socket.open();
  socket.reply(welcome());
  app.canvas.rects = () => ({});
  app.loadGraph({ format_version: 2, nodes: { a: { type: "Int", inputs: { value: 1 } } } });
  const answer = (type: string, reply: Record<string, unknown>) => {
    const request = socket.messages().filter((m) => m.type === type).at(-1)!;
    socket.reply({ ...reply, request_id: request.request_id });
  };
  return { app, socket, answer };
}

const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe("pasting from the system clipboard", () => {
  it("opens a nodegraph graph pasted as JSON text (undoable), like a dropped file", async () => {
    const { app } = openEditor();
    await app.pasteFromClipboard(JSON.stringify({ format_version: 2, nodes: { x: { type: "Int", inputs: { value: 7 } }, y: { type: "Int" } } }));
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["x", "y"]);
    app.editor.undo();
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["a"]);
    app.client.close();
  });

  it("imports a ComfyUI API prompt pasted as text, and says why a UI workflow or broken JSON cannot open", async () => {
    const { app, socket, answer } = openEditor();
    const prompt = { "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "a.safetensors" } } };
    const importing = app.pasteFromClipboard(JSON.stringify(prompt));
    await settle();
    expect(socket.messages().at(-1)).toMatchObject({ type: "import_graph", data: prompt });
    answer("import_graph", { type: "imported_graph", graph: { format_version: 2, nodes: { "4": { type: "CheckpointLoaderSimple", inputs: {} } } }, errors: [] });
    await importing;
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["4"]);
    expect(app.editor.doc.metadata?.title).toBe("pasted ComfyUI prompt");

    const workflow = app.pasteFromClipboard(JSON.stringify({ nodes: [], links: [] }));
    await settle();
    answer("import_graph", { type: "error", code: "invalid_graph", message: "this is a ComfyUI UI-format workflow; In ComfyUI use 'Export (API)'" });
    await workflow;
    expect(app.session.get().banner?.text).toBe("Cannot open the pasted text: this is a ComfyUI UI-format workflow; In ComfyUI use 'Export (API)'");

    await app.pasteFromClipboard('{"nodes": {"a": ');
    expect(app.session.get().banner?.text).toMatch(/^Cannot open the pasted text: not valid JSON/);
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["4"]); // the canvas kept its graph
    app.client.close();
  });

  it("sends A1111's generation parameters pasted as text (PNG Info copied from its UI) to the server's import", async () => {
    const { app, socket, answer } = openEditor();
    const text = "a red circle\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, Seed: 9, Size: 64x64";
    const importing = app.pasteFromClipboard(`${text}\n`);
    await settle();
    expect(socket.messages().at(-1)).toMatchObject({ type: "import_graph", data: { parameters: text } });
    answer("import_graph", { type: "imported_graph", graph: { format_version: 2, nodes: { prompt: { type: "EncodeText", inputs: {} } } }, errors: [] });
    await importing;
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["prompt"]);
    app.client.close();
  });

  it("pastes nodes copied in an editor (their clip text), and says what Ctrl+V pastes when the clipboard holds other text", async () => {
    const { app } = openEditor();
    const source = fromGraphFile({ format_version: 2, nodes: { k: { type: "Int", inputs: { value: 5 } } } });
    const clip = copyNodes(source, ["k"], () => [0, 0])!;
    await app.pasteFromClipboard(clipToText(clip, {}));
    expect(Object.keys(app.editor.doc.nodes).sort()).toEqual(["a", "int"]); // a fresh id from its type
    expect(app.editor.doc.nodes.int.inputs.value).toBe(5);

    const fresh = openEditor();
    await fresh.app.pasteFromClipboard("just some words");
    expect(fresh.app.toasts.get().at(-1)?.text).toMatch(/^Nothing to paste: the clipboard holds no nodes and no graph/);
    expect(Object.keys(fresh.app.editor.doc.nodes)).toEqual(["a"]);
    app.client.close();
    fresh.app.client.close();
  });

  it("says once, in words for pasted text, why a paste cannot open, and clears that when a later one opens", async () => {
    const { app, answer } = openEditor();
    const workflow = app.pasteFromClipboard(JSON.stringify({ nodes: [], links: [] }));
    await settle();
    answer("import_graph", { type: "error", code: "invalid_graph",
      message: "the file cannot be imported: this is a ComfyUI UI-format workflow, not a nodegraph graph" });
    await workflow;
    expect(app.session.get().banner).toEqual({ kind: "error",
      text: "Cannot open the pasted text: this is a ComfyUI UI-format workflow, not a nodegraph graph" });
    expect(app.toasts.get()).toEqual([]); // the banner says it; no toast besides
    app.client.close();
    await app.pasteFromClipboard('{"5": {"class_type": "KSampler", "inputs": {}}}'); // offline: refused too
    expect(app.session.get().banner?.text).toMatch(/^Cannot open the pasted text: .* paste it again once it is/);
    await app.pasteFromClipboard(JSON.stringify({ format_version: 2, nodes: { z: { type: "Int" } } }));
    expect(app.session.get().banner).toBeNull();
    expect(app.toasts.get().filter((t) => t.kind === "error")).toEqual([]);
  });
});

describe("the title of an imported graph", () => {
  it("keeps the graph's own title, else takes the file's name", () => {
    const titled = { format_version: 2, metadata: { title: "Mine", imported_from: "comfyui-api" }, nodes: {} };
    expect(importedTitle(titled, "x.json", false)).toBe(titled);
    const untitled = { format_version: 2, metadata: { imported_from: "comfyui-api" }, nodes: {} };
    expect(importedTitle(untitled, "Portrait v2.JSON", false))
      .toEqual({ format_version: 2, metadata: { imported_from: "comfyui-api", title: "Portrait v2" }, nodes: {} });
    expect(importedTitle({ nodes: {} }, "the pasted text", true))
      .toEqual({ nodes: {}, metadata: { title: "pasted ComfyUI prompt" } });
  });
});
