/**
 * A ComfyUI power user's report: a node added from a dropped wire or the double-click search lands in
 * the view, near the drop; a dropped wire's list starts with the node a ComfyUI user reaches for
 * (training nodes last); a collapse names the outputs of titled nodes after their titles; the toast
 * of a load never names the file before; and an emptied canvas is a new, untitled graph.
 */
import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { selectionActions, addNodeAt } from "../src/editor/GraphCanvas";
import { fromGraphFile, nodeSize, untitledWhenEmptied } from "../src/graph/document";
import { parseJson } from "../src/graph/exactJson";
import { idMap } from "../src/graph/idMaps";
import { effectivePositions, estimateSize, freeSpot, intoView, overlaps, type Rect, type Size } from "../src/graph/layout";
import { collapseToSubgraph, portNameFromTitle, SUBGRAPH_INPUTS, type SubgraphDefinition } from "../src/graph/subgraph";
import { isTrainingNode, searchNodes } from "../src/schema/search";
import { EditorApp } from "../src/state/app";
import { FakeSocket, realSchemas, REPO_ROOT, welcome } from "./helpers";

const schemas = realSchemas();

/** An editor with the real schemas and graphs/txt2img.json, and a canvas that shows what effectivePositions says. */
function editorWithTxt2img() {
  const app = new EditorApp(() => new FakeSocket(), { href: "http://127.0.0.1:8188/" }, null);
  app.dispatch({ type: "schemas", schemas });
  app.loadGraph(parseJson(readFileSync(`${REPO_ROOT}graphs/txt2img.json`, "utf8")));
  app.canvas.rects = () => {
    const doc = app.editor.doc;
    const shown = app.schemasFor(doc);
    const sizeOf = (id: string) => {
      const user = doc.nodes[id] ? nodeSize(doc.nodes[id]) : null;
      return user ? { width: user[0], height: user[1] } : estimateSize(shown[doc.nodes[id]?.type]);
    };
    return idMap(Object.entries(effectivePositions(doc, sizeOf)).map(([id, [x, y]]): [string, Rect] => [id, { x, y, ...sizeOf(id) }]));
  };
  return app;
}

const inside = (box: Rect, view: Rect) =>
  box.x >= view.x && box.y >= view.y && box.x + box.width <= view.x + view.width && box.y + box.height <= view.y + view.height;
const boxAt = ([x, y]: [number, number], size: Size): Rect => ({ x, y, ...size });

describe("a node added from a dropped wire or the search lands in the view", () => {
  const view: Rect = { x: 0, y: 0, width: 1200, height: 700 };
  const ksampler = estimateSize(schemas.nodes.KSampler);

  it("goes to the nearest free spot inside the view, not above it under the toolbar", () => {
    // a wide, tall node under the drop point: the nearest free spot is above it, outside the view (what the
    // tester saw: dropped at y 124, landed at y -295); the nearest inside the view is to its right
    const others: Rect[] = [{ x: -200, y: 100, width: 1000, height: 2000 }];
    expect(freeSpot([304, 124], ksampler, others)[1]).toBeLessThan(-ksampler.height / 2);
    const spot = freeSpot([304, 124], ksampler, others, undefined, view);
    expect(inside(boxAt(spot, ksampler), view)).toBe(true);
    expect(others.some((o) => overlaps(boxAt(spot, ksampler), o, 24))).toBe(false);
    expect(Math.hypot(spot[0] - 304, spot[1] - 124)).toBeLessThan(600);
  });

  it("with no free spot in the view (zoomed in on one node), goes where it was dropped, overlapping", () => {
    const zoomed: Rect = { x: 250, y: 50, width: 440, height: 340 }; // ~250 % in a 1100×850 canvas
    const encode = estimateSize(schemas.nodes.EncodeText);
    const spot = freeSpot([305, 100], encode, [{ x: 260, y: 60, width: 300, height: 250 }], undefined, zoomed);
    expect(spot).toEqual([305, 100]);
  });

  it("is moved in just enough to be seen whole, its title bar first when it is larger than the view", () => {
    expect(intoView([1100, 650], { width: 300, height: 200 }, view)).toEqual([900, 500]);
    expect(intoView([-50, 20], { width: 300, height: 200 }, view)).toEqual([0, 20]);
    expect(intoView([100, 300], { width: 300, height: 900 }, view)).toEqual([100, 0]);
  });

  it("addNodeAt on txt2img zoomed in on the sampler puts EncodeText inside the view", () => {
    const app = editorWithTxt2img();
    const sampler = app.canvas.rects().sampler;
    const zoomed: Rect = { x: sampler.x - 60, y: sampler.y - 40, width: 440, height: 340 };
    app.canvas.view = () => zoomed;
    const id = addNodeAt(app, "EncodeText", [sampler.x + 5, sampler.y + 30])!;
    const added = app.canvas.rects()[id];
    expect(inside(added, zoomed)).toBe(true);
    // and with room beside the drop, clear of the other nodes (placed inside a view wide enough)
    const wide: Rect = { x: sampler.x - 400, y: sampler.y - 300, width: 1600, height: 900 };
    app.canvas.view = () => wide;
    const second = addNodeAt(app, "EncodeText", [sampler.x + 5, sampler.y + 30])!;
    const rects = app.canvas.rects();
    expect(inside(rects[second], wide)).toBe(true);
    expect(Object.entries(rects).some(([other, r]) => other !== second && overlaps(rects[second], r))).toBe(false);
  });
});

describe("a paste lands in the view too", () => {
  it("a KSampler pasted with the pointer at the canvas's bottom edge is moved up into the view", () => {
    const app = editorWithTxt2img();
    const sampler = app.canvas.rects().sampler;
    const view: Rect = { x: sampler.x - 300, y: sampler.y - 200, width: 1200, height: 700 };
    app.canvas.view = () => view;
    app.editor.select(idMap([["sampler", true as const]]));
    expect(app.copySelection()).toBe(true);
    app.canvas.pointer = [view.x + 600, view.y + view.height - 10]; // 10 px above the bottom edge (6 % visible before)
    app.paste();
    const [pasted] = Object.keys(app.editor.state.selectedNodes);
    expect(pasted).not.toBe("sampler");
    expect(inside(app.canvas.rects()[pasted], view)).toBe(true);
  });

  it("a whole graph pasted beside itself with no room in the view goes clear of it, not on top of it", () => {
    const app = editorWithTxt2img();
    const sampler = app.canvas.rects().sampler;
    app.canvas.view = () => ({ x: sampler.x - 100, y: sampler.y - 100, width: 700, height: 500 });
    const before = Object.keys(app.editor.doc.nodes);
    app.editor.select(idMap(before.map((id) => [id, true as const])));
    expect(app.copySelection()).toBe(true);
    app.paste();
    const rects = app.canvas.rects();
    const pasted = Object.keys(app.editor.doc.nodes).filter((id) => !before.includes(id));
    expect(pasted).toHaveLength(before.length);
    expect(pasted.some((id) => before.some((old) => overlaps(rects[id], rects[old])))).toBe(false);
  });
});

describe("a dropped wire's list with no query", () => {
  const first = (port: string, from: "output" | "input") =>
    searchNodes(schemas.nodes, "", { filter: { port, from }, types: schemas.types }).map((h) => h.schema.type);

  it("starts with the node a ComfyUI user reaches for, and ends with the training nodes", () => {
    expect(first("TEXT_ENCODER", "output")[0]).toBe("EncodeText"); // as CLIPTextEncode; Load LoRA came first
    expect(first("MODEL", "output")[0]).toBe("KSampler");
    expect(first("LATENT", "output").slice(0, 2)).toEqual(["KSampler", "VAEDecode"]);
    const exactly = (type: string, port: string, from: "output" | "input") => {
      const schema = schemas.nodes[type];
      return from === "output" ? Object.values(schema.inputs).some((i) => i.port === port) : schema.outputs.some((o) => o.port === port);
    };
    for (const [port, from] of [["TEXT_ENCODER", "output"], ["MODEL", "output"], ["IMAGE", "output"], ["MODEL", "input"]] as const) {
      const list = first(port, from);
      // exact-type nodes first, generic (*) ones after; training nodes last within each group
      for (const group of [list.filter((t) => exactly(t, port, from)), list.filter((t) => !exactly(t, port, from))]) {
        const training = group.map((type) => isTrainingNode(schemas.nodes[type]));
        expect([port, from, training.indexOf(true) < 0 || training.slice(training.indexOf(true)).every(Boolean)]).toEqual([port, from, true]);
      }
      const kinds = list.map((t) => exactly(t, port, from));
      expect([port, from, kinds.indexOf(false) < 0 || kinds.slice(kinds.indexOf(false)).every((k) => !k)]).toEqual([port, from, true]);
    }
    expect(first("TEXT_ENCODER", "output")).toContain("TrainFlow"); // still offered, after the everyday nodes
  });

  it("a type only training nodes take offers them before generic nodes (a LORA wire: Save LoRA, not Wait)", () => {
    expect(first("LORA", "output")[0]).toBe("SaveLoRA");
    const model = first("MODEL", "output");
    expect(model.indexOf("SaveCheckpoint")).toBeGreaterThan(-1);
    expect(model.indexOf("SaveCheckpoint")).toBeLessThan(model.indexOf("Wait"));
  });

  it("a typed query still finds training nodes first when it names them", () => {
    expect(searchNodes(schemas.nodes, "train flow")[0].schema.type).toBe("TrainFlow");
  });
});

describe("collapse names the exposed ports of titled nodes after their titles", () => {
  it("txt2img's Prompt and Negative prompt collapse to outputs prompt and negative_prompt", () => {
    const app = editorWithTxt2img();
    selectionActions.collapse(app, ["prompt", "negative"]);
    const doc = app.editor.doc;
    const [name] = Object.keys(doc.subgraphs ?? {});
    const def = doc.subgraphs![name] as SubgraphDefinition;
    expect(def.outputs).toEqual({ prompt: { node: "prompt", output: "conditioning" }, negative_prompt: { node: "negative", output: "conditioning" } });
    const instance = Object.keys(doc.nodes).find((id) => doc.nodes[id].type === `subgraph:${name}`)!;
    expect(doc.nodes.sampler.inputs.positive).toEqual({ node: instance, output: "prompt" });
    expect(doc.nodes.sampler.inputs.negative).toEqual({ node: instance, output: "negative_prompt" });
    expect(Object.keys(def.inputs!)).toEqual(["text_encoder"]); // one source, read by both: its input's name
  });

  it("inputs keep their input's name, prefixed with the title only where two would share it", () => {
    const doc = fromGraphFile({
      format_version: 2,
      nodes: {
        ckpt: { type: "LoadCheckpoint", inputs: {} },
        pos_text: { type: "String", inputs: {} },
        neg_text: { type: "String", inputs: {} },
        pos: { type: "EncodeText", title: "Prompt", inputs: { text_encoder: { node: "ckpt", output: "text_encoder" }, text: { node: "pos_text", output: "value" } } },
        neg: { type: "EncodeText", title: "Negative prompt", inputs: { text_encoder: { node: "ckpt", output: "text_encoder" }, text: { node: "neg_text", output: "value" } } },
        both: { type: "EncodeText", inputs: { text: { node: "pos", output: "conditioning" } } },
        plain: { type: "Show", inputs: { a: { node: "both", output: "conditioning" }, b: { node: "ckpt2", output: "model" } } },
        ckpt2: { type: "LoadCheckpoint", title: "Base", inputs: {} },
        use: { type: "KSampler", inputs: { model: { node: "ckpt2", output: "model" }, vae: { node: "ckpt2", output: "vae" }, c: { node: "plain", output: "x" } } },
      },
    });
    const result = collapseToSubgraph(doc, ["pos", "neg", "both", "ckpt2"], {})!;
    const def = result.doc.subgraphs![result.name] as SubgraphDefinition;
    expect(Object.keys(def.inputs!)).toEqual(["text_encoder", "prompt_text", "negative_prompt_text"]);
    expect((def.nodes.pos as { inputs: Record<string, unknown> }).inputs.text).toEqual({ node: SUBGRAPH_INPUTS, output: "prompt_text" });
    // an untitled node's output keeps its name; a titled node with two outputs used outside: title + output
    expect(Object.keys(def.outputs!)).toEqual(["conditioning", "base_model", "base_vae"]);
    expect(portNameFromTitle("Negative prompt")).toBe("negative_prompt");
    expect(portNameFromTitle("  x² + k! ")).toBe("x_k");
    expect(portNameFromTitle("プロンプト")).toBe("プロンプト"); // the letters of every script are kept (a11ySmall.test.tsx)
  });
});

describe("the toast of a load", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("never names the file loaded before: a ComfyUI import clears 'Loaded unknown.json'", async () => {
    const socket = new FakeSocket();
    const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, null);
    app.start();
    socket.open();
    socket.reply(welcome());
    const graph = { format_version: 2, nodes: { a: { type: "Int", inputs: { value: 1 } } } };
    expect(await app.loadFile(new File([JSON.stringify(graph)], "unknown.json"))).toBe(true);
    expect(app.toasts.get().map((t) => t.text)).toContain("Loaded unknown.json");
    const prompt = { "5": { class_type: "Int", inputs: { value: 3 } } };
    const loading = app.loadFile(new File([JSON.stringify(prompt)], "comfy_api.json"));
    for (let i = 0; i < 5; i++) await Promise.resolve();
    const request = socket.messages().filter((m) => m.type === "import_graph").at(-1)!;
    socket.reply({ type: "imported_graph", graph: { format_version: 2, nodes: { "5": { type: "Int", inputs: { value: 3 } } } }, errors: [], request_id: request.request_id });
    expect(await loading).toBe(true);
    expect(app.toasts.get().map((t) => t.text).filter((t) => t.includes("unknown.json"))).toEqual([]);
    expect(app.session.get().banner?.text).toBe("Imported comfy_api.json from ComfyUI"); // the load said once, in the banner
    expect(await app.loadFile(new File([JSON.stringify(graph)], "second.json"))).toBe(true);
    expect(app.toasts.get().map((t) => t.text).filter((t) => t.startsWith("Loaded"))).toEqual(["Loaded second.json"]);
    app.client.close();
  });
});

describe("an emptied canvas", () => {
  const selectAll = (app: EditorApp) => app.editor.select(idMap(Object.keys(app.editor.doc.nodes).map((id) => [id, true as const])));

  it("is a new, untitled graph once every node is deleted; undo brings the title back with the nodes", () => {
    const app = editorWithTxt2img();
    expect(app.editor.doc.metadata?.title).toBe("Text to image (tiny world)");
    app.editor.select(idMap([["save", true as const]]));
    selectionActions.delete(app);
    expect(app.editor.doc.metadata?.title).toBe("Text to image (tiny world)"); // some nodes left: the same graph
    selectAll(app);
    selectionActions.delete(app);
    expect(Object.keys(app.editor.doc.nodes)).toEqual([]);
    expect(app.editor.doc.metadata?.title).toBeUndefined();
    app.editor.undo();
    expect(app.editor.doc.metadata?.title).toBe("Text to image (tiny world)");
  });

  it("keeps a subgraph's name when its inner nodes are all deleted, and other metadata always", () => {
    const app = editorWithTxt2img();
    selectionActions.collapse(app, ["prompt", "negative"]);
    const [name] = Object.keys(app.editor.doc.subgraphs ?? {});
    app.openSubgraph(name);
    selectAll(app);
    selectionActions.delete(app);
    expect(app.editor.doc.metadata?.title).toBe(name);
    const before = fromGraphFile({ format_version: 2, metadata: { title: "T", description: "D", author: "me" }, nodes: { a: { type: "Int" } } });
    expect(untitledWhenEmptied(before, { ...before, nodes: idMap() }).metadata).toEqual({ author: "me" });
    expect(untitledWhenEmptied(before, before)).toBe(before);
  });

  it("drops the subgraph definitions no node uses once the top level is emptied (they went into the next save)", () => {
    const app = editorWithTxt2img();
    selectionActions.collapse(app, ["prompt", "negative"]);
    expect(Object.keys(app.editor.doc.subgraphs ?? {})).toHaveLength(1);
    selectAll(app);
    selectionActions.delete(app);
    expect(app.editor.doc.subgraphs).toBeUndefined();
    app.editor.undo();
    expect(Object.keys(app.editor.doc.subgraphs ?? {})).toHaveLength(1);
  });
});
