/**
 * Subgraph nodes on the clipboard (graph/clipboard.ts): the clip carries the definitions its nodes use, nested
 * ones too, so a subgraph node pasted into another graph or tab is not a placeholder "with no definition"
 * (the ComfyUI user's report, finding 1); pasting reuses an identical definition and renames a different one.
 */
import { describe, expect, it } from "vitest";
import { clipFromText, clipToText, copyNodes, mergeDefinitions, pasteClip } from "../src/graph/clipboard";
import { fromGraphFile, toGraphFile } from "../src/graph/document";
import { CLIPBOARD_KEY, type StorageLike } from "../src/state/autosave";
import { EditorApp } from "../src/state/app";
import { FakeSocket, welcome } from "./helpers";

/** A definition doubling its input; `inner`: the type of its one node. */
function definition(inner = "IntMath", b = 2) {
  return {
    inputs: { x: {} },
    outputs: { value: { node: "m", output: "value" } },
    nodes: { m: { type: inner, inputs: { a: { node: "$inputs", output: "x" }, b, op: "mul" } } },
  };
}

const source = fromGraphFile({
  format_version: 2,
  nodes: {
    a: { type: "Int", inputs: { value: 3 } },
    twice: { type: "subgraph:double", inputs: { x: { node: "a", output: "value" } } },
    outer: { type: "subgraph:wrap", inputs: { x: { node: "a", output: "value" } } },
  },
  subgraphs: {
    double: definition(),
    wrap: definition("subgraph:double"), // uses `double` inside
    unused: definition("IntMath", 5),
  },
});

const arithmetic = fromGraphFile({ format_version: 2, nodes: { n: { type: "Int", inputs: { value: 1 } } } });

class FakeStorage implements StorageLike {
  items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
  removeItem(key: string) {
    this.items.delete(key);
  }
}

function openEditor(storage: StorageLike) {
  const socket = new FakeSocket();
  const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, storage);
  app.start();
  socket.open();
  socket.reply(welcome());
  app.canvas.rects = () => ({});
  return app;
}

describe("subgraph nodes on the clipboard", () => {
  it("copies the definitions the nodes use, nested ones included, and no others", () => {
    expect(copyNodes(source, ["a"])!.subgraphs).toBeUndefined();
    expect(Object.keys(copyNodes(source, ["twice"])!.subgraphs!)).toEqual(["double"]);
    const clip = copyNodes(source, ["outer"])!;
    expect(Object.keys(clip.subgraphs!).sort()).toEqual(["double", "wrap"]);
    expect(clip.subgraphs!.wrap).toEqual(source.subgraphs!.wrap);
    expect(clip.subgraphs!.wrap).not.toBe(source.subgraphs!.wrap); // a copy: later edits of the graph do not change it
  });

  it("pastes them into a graph that has none, and keeps them through the clipboard text (another tab)", () => {
    const text = clipToText(copyNodes(source, ["outer"])!, {});
    const read = clipFromText(text)!;
    const { doc, ids } = pasteClip(arithmetic, read.clip, [0, 0]);
    expect(doc.nodes[ids[0]].type).toBe("subgraph:wrap");
    expect(toGraphFile(doc).subgraphs).toEqual({ wrap: source.subgraphs!.wrap, double: source.subgraphs!.double });
    expect(clipFromText(JSON.stringify({ clip: "nodegraph-clip-1", nodes: { x: { type: "Int", inputs: {}, ui: {} } }, subgraphs: [] }))).toBeNull();
  });

  it("reuses an identical definition (keys in any order) and renames a different one, nested types following", () => {
    const same = pasteClip(source, copyNodes(source, ["twice"])!, [0, 0]);
    expect(same.doc.nodes[same.ids[0]].type).toBe("subgraph:double");
    expect(Object.keys(same.doc.subgraphs!)).toEqual(["double", "wrap", "unused"]);

    const { outputs, inputs, nodes } = definition();
    const reordered = mergeDefinitions({ double: { nodes, outputs, inputs } }, { double: definition() });
    expect(reordered.renames).toEqual({});

    // the target has its own, different `double`: the pasted one becomes double_2, and `wrap` uses double_2
    const target = fromGraphFile({ format_version: 2, nodes: {}, subgraphs: { double: definition("IntMath", 7) } });
    const clip = copyNodes(source, ["twice", "outer"])!;
    const { doc, ids } = pasteClip(target, clip, [0, 0]);
    expect(ids.map((id) => doc.nodes[id].type)).toEqual(["subgraph:double_2", "subgraph:wrap"]);
    expect(doc.subgraphs!.double).toEqual(definition("IntMath", 7)); // the target's own is kept
    expect(doc.subgraphs!.double_2).toEqual(definition());
    expect((doc.subgraphs!.wrap as { nodes: { m: { type: string } } }).nodes.m.type).toBe("subgraph:double_2");
    // pasted again: both reused, nothing new
    const again = pasteClip(doc, clip, [0, 0]);
    expect(Object.keys(again.doc.subgraphs!)).toEqual(["double", "double_2", "wrap"]);
    expect(again.ids.map((id) => again.doc.nodes[id].type)).toEqual(["subgraph:double_2", "subgraph:wrap"]);
  });

  it("Ctrl+C in one tab, Ctrl+V in another: the pasted subgraph node has its definition", () => {
    const storage = new FakeStorage();
    const one = openEditor(storage);
    const two = openEditor(storage);
    one.loadGraph(toGraphFile(source));
    one.editor.select({ outer: true });
    expect(one.copySelection()).toBe(true);
    expect(JSON.parse(storage.getItem(CLIPBOARD_KEY)!).subgraphs.wrap).toBeDefined();
    two.loadGraph(toGraphFile(arithmetic));
    const [id] = two.paste();
    expect(two.editor.doc.nodes[id].type).toBe("subgraph:wrap");
    expect(Object.keys(two.editor.doc.subgraphs ?? {}).sort()).toEqual(["double", "wrap"]);
    expect(two.schemasFor(two.editor.doc)["subgraph:wrap"]).toBeDefined(); // drawn as a subgraph, not a placeholder
    one.client.close();
    two.client.close();
  });
});
