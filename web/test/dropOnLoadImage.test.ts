/**
 * An image dropped on a node with an image upload input (LoadImage) is uploaded and becomes that input, as ComfyUI
 * does; dropped on the canvas, an image without a graph is refused with a hint saying where it goes (a persona test
 * found both drops refused with "this PNG has no nodegraph text chunk").
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { imageDropInput } from "../src/schema/widgets";
import { connectedApp, realSchemas, stopApp } from "./helpers";
import { buildPng, tEXt } from "./pngFixture";

const GRAPH = {
  format_version: 2,
  nodes: {
    load: { type: "LoadImage", inputs: { image: "old.png" } },
    show: { type: "MaskToImage", inputs: { mask: { node: "load", output: "mask" } } },
  },
};

describe("which input a dropped image fills", () => {
  it("LoadImage's image; a node without an image upload input has none", () => {
    const nodes = realSchemas().nodes;
    expect(imageDropInput(nodes.LoadImage.inputs, { image: "" })).toEqual({ input: "image", kind: "image" });
    expect(imageDropInput(nodes.KSampler.inputs, {})).toBeNull();
  });

  it("prefers an image input to a mask input, and skips one fed by a link", () => {
    const spec = { port: "STRING", widget: { kind: "text", multiline: false } } as never;
    expect(imageDropInput({ mask: spec, image: spec }, {})).toEqual({ input: "image", kind: "image" });
    expect(imageDropInput({ mask: spec, image: spec }, { image: { node: "a", output: "text" } })).toEqual({ input: "mask", kind: "mask" });
  });
});

describe("dropping a file", () => {
  let opened: ReturnType<typeof connectedApp>;
  afterEach(() => stopApp(opened.app));

  function start() {
    opened = connectedApp();
    const schemas = realSchemas();
    opened.socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
    expect(opened.app.loadGraph(GRAPH)).toBe(true);
    return vi.spyOn(opened.app.client, "upload").mockImplementation(async (name: string) => ({ type: "uploaded", file_id: `input/${name}`, name }));
  }
  const photo = () => new File([buildPng() as Uint8Array<ArrayBuffer>], "photo.png", { type: "image/png" });

  it("on LoadImage uploads the image and sets its input (one undo step)", async () => {
    const upload = start();
    expect(await opened.app.dropFile(photo(), "load")).toBe(true);
    expect(upload).toHaveBeenCalledTimes(1);
    expect(upload.mock.calls[0][0]).toBe("photo.png");
    expect(upload.mock.calls[0][2]).toBe("image");
    expect(opened.app.editor.doc.nodes.load.inputs.image).toBe("photo.png");
    expect(Object.keys(opened.app.editor.doc.nodes).sort()).toEqual(["load", "show"]);   // the graph stays
    opened.app.editor.undo();
    expect(opened.app.editor.doc.nodes.load.inputs.image).toBe("old.png");
  });

  it("on LoadImage uses even an image that carries a graph (a result fed back in to inpaint it)", async () => {
    const upload = start();
    const saved = new File([buildPng(tEXt("nodegraph", JSON.stringify({ format_version: 2, nodes: {} }))) as Uint8Array<ArrayBuffer>], "result.png");
    expect(await opened.app.dropFile(saved, "load")).toBe(true);
    expect(upload).toHaveBeenCalledTimes(1);
    expect(opened.app.editor.doc.nodes.load.inputs.image).toBe("result.png");
  });

  it("on a node without an image input, or on the canvas, opens it as a graph; a photo is refused with the hint", async () => {
    const upload = start();
    expect(await opened.app.dropFile(photo(), "show")).toBe(false);
    expect(await opened.app.dropFile(photo(), null)).toBe(false);
    expect(upload).not.toHaveBeenCalled();
    const banner = opened.app.session.get().banner?.text ?? "";
    expect(banner).toMatch(/no "nodegraph" text chunk/);
    expect(banner).toMatch(/To use it as an input image, drop it on a LoadImage node/);
    expect(opened.app.editor.doc.nodes.load.inputs.image).toBe("old.png");
  });

  it("a .json graph dropped on LoadImage opens as a graph, not as an upload", async () => {
    const upload = start();
    const json = new File([JSON.stringify({ format_version: 2, nodes: { a: { type: "ShowValue" } } })], "g.json", { type: "application/json" });
    expect(await opened.app.dropFile(json, "load")).toBe(true);
    expect(upload).not.toHaveBeenCalled();
    expect(Object.keys(opened.app.editor.doc.nodes)).toEqual(["a"]);
  });
});

describe("Use as input (the image viewer)", () => {
  let opened: ReturnType<typeof connectedApp>;
  afterEach(() => {
    stopApp(opened.app);
    vi.unstubAllGlobals();
  });

  function start(graph: object) {
    opened = connectedApp();
    const schemas = realSchemas();
    opened.socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
    expect(opened.app.loadGraph(graph)).toBe(true);
    vi.stubGlobal("fetch", vi.fn(async () => new Response(buildPng() as Uint8Array<ArrayBuffer>, { headers: { "content-type": "image/png" } })));
    return vi.spyOn(opened.app.client, "upload").mockImplementation(async (name: string) => ({ type: "uploaded", file_id: `input/${name}`, name }));
  }

  it("uploads the shown image and sets the graph's one LoadImage to it", async () => {
    const upload = start(GRAPH);
    expect(await opened.app.useImageAsInput("files/output/result_00001.png", "result_00001.png")).toBe(true);
    expect(upload.mock.calls[0][0]).toBe("result_00001.png");
    expect(opened.app.editor.doc.nodes.load.inputs.image).toBe("result_00001.png");
  });

  it("with several LoadImages fills the selected one, and with none selected says to select one", async () => {
    const two = { format_version: 2, nodes: { a: { type: "LoadImage", inputs: { image: "" } }, b: { type: "LoadImage", inputs: { image: "" } } } };
    const upload = start(two);
    expect(await opened.app.useImageAsInput("x", "r.png")).toBe(false);
    expect(opened.app.toasts.get().at(-1)?.text).toMatch(/2 nodes that take an image \(a, b\): select the one to fill/);
    opened.app.editor.select({ b: true });
    expect(await opened.app.useImageAsInput("x", "r.png")).toBe(true);
    expect([opened.app.editor.doc.nodes.a.inputs.image, opened.app.editor.doc.nodes.b.inputs.image]).toEqual(["", "r.png"]);
    expect(upload).toHaveBeenCalledTimes(1);
  });

  it("says what to add when no node takes an image", async () => {
    const upload = start({ format_version: 2, nodes: { s: { type: "ShowValue" } } });
    expect(await opened.app.useImageAsInput("x", "r.png")).toBe(false);
    expect(opened.app.toasts.get().at(-1)?.text).toMatch(/no node that takes an uploaded image: add a LoadImage node/);
    expect(upload).not.toHaveBeenCalled();
  });
});
