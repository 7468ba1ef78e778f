/**
 * Subgraph edits a ComfyUI power user tried (round 3): a collapse inside an open subgraph keeps the enclosing
 * definition's exposed outputs, an exposed output whose inner node was deleted stays declared (and the delete names
 * the outer links it breaks), seed modes step inside subgraphs, an opened subgraph is fitted under its bar, and the
 * invalid-graph banner goes once the graph it described changed.
 */
import { afterEach, describe, expect, it } from "vitest";
import { fromGraphFile, randomizeSeeds, removeNodes, seedsGivenBack, toGraphFile, type EditorDocument } from "../src/graph/document";
import {
  closeSubgraph, collapseToSubgraph, exposeInput, exposeOutput, openSubgraph, outputsLeftUnfed, stopExposing, stopExposingInput, stopExposingOutput,
  subgraphSchemas,
} from "../src/graph/subgraph";
import { EditorStore } from "../src/state/editorStore";
import { subgraphFit } from "../src/editor/GraphCanvas";
import { connectedApp, realSchemas, stopApp } from "./helpers";

type Def = { inputs: Record<string, unknown>; outputs: Record<string, { node: string; output: string }>; nodes: Record<string, { inputs: Record<string, unknown> }> };

/** txt2img's two prompts already collapsed into `subgraph_1` (outputs `prompt`, `negative_prompt`). */
const COLLAPSED = {
  format_version: 2,
  nodes: {
    enc: { type: "LoadTextEncoder", inputs: {} },
    subgraph_1: { type: "subgraph:subgraph_1", inputs: { text_encoder: { node: "enc", output: "text_encoder" } } },
    sampler: { type: "KSampler", inputs: { seed: 42, positive: { node: "subgraph_1", output: "prompt" }, negative: { node: "subgraph_1", output: "negative_prompt" } } },
  },
  subgraphs: {
    subgraph_1: {
      metadata: { title: "subgraph_1" },
      inputs: { text_encoder: {} },
      outputs: { prompt: { node: "pos", output: "conditioning" }, negative_prompt: { node: "neg", output: "conditioning" } },
      nodes: {
        pos: { type: "EncodeText", title: "Prompt", inputs: { text_encoder: { node: "$inputs", output: "text_encoder" }, text: "a cat" } },
        neg: { type: "EncodeText", title: "Negative prompt", inputs: { text_encoder: { node: "$inputs", output: "text_encoder" }, text: "blurry" } },
      },
      ui: { nodes: { pos: { position: [0, 0] }, neg: { position: [0, 200] } } },
    },
  },
};

const defOf = (doc: EditorDocument, name: string) => doc.subgraphs![name] as Def;

describe("a collapse inside an open subgraph", () => {
  it("exposes the enclosing definition's outputs on the new node and points the declarations at it", () => {
    const outer = fromGraphFile(structuredClone(COLLAPSED));
    const inner = openSubgraph(outer, "subgraph_1");
    const result = collapseToSubgraph(inner, ["pos", "neg"], { pos: [0, 0], neg: [0, 200] }, undefined, "subgraph_1")!;
    const nested = defOf(result.doc, result.name);
    expect(nested.outputs).toEqual({ prompt: { node: "pos", output: "conditioning" }, negative_prompt: { node: "neg", output: "conditioning" } });
    expect(defOf(result.doc, "subgraph_1").outputs).toEqual({
      prompt: { node: result.id, output: "prompt" }, negative_prompt: { node: result.id, output: "negative_prompt" },
    });
    // the enclosing definition's inputs reach the nested node through `$inputs`
    expect(result.doc.nodes[result.id].inputs).toEqual({ text_encoder: { node: "$inputs", output: "text_encoder" } });
    // written back, the whole graph still links: the sampler reads outputs that exist
    const back = closeSubgraph(outer, "subgraph_1", result.doc);
    expect(Object.keys(defOf(back, "subgraph_1").outputs)).toEqual(["prompt", "negative_prompt"]);
  });

  it("without the enclosing name (the top level) nothing of another definition changes", () => {
    const outer = fromGraphFile(structuredClone(COLLAPSED));
    const inner = openSubgraph(outer, "subgraph_1");
    const result = collapseToSubgraph(inner, ["pos", "neg"], {}, undefined)!;
    expect(defOf(result.doc, result.name).outputs).toEqual({});
    expect(defOf(result.doc, "subgraph_1").outputs.prompt.node).toBe("pos");
  });
});

describe("deleting an inner node that gives an exposed output", () => {
  it("keeps the output declared (validation names it) and names the outer links it breaks", () => {
    const outer = fromGraphFile(structuredClone(COLLAPSED));
    const inner = openSubgraph(outer, "subgraph_1");
    expect(outputsLeftUnfed(inner, "subgraph_1", ["neg"], outer)).toEqual(["negative_prompt (read by sampler.negative)"]);
    expect(outputsLeftUnfed(inner, "subgraph_1", ["other"], outer)).toEqual([]);
    const back = closeSubgraph(outer, "subgraph_1", removeNodes(inner, ["neg"]));
    expect(defOf(back, "subgraph_1").outputs.negative_prompt).toEqual({ node: "neg", output: "conditioning" });
  });
});

const SEEDED = {
  format_version: 2,
  nodes: {
    a: { type: "subgraph:s", inputs: {} },
    b: { type: "subgraph:s", inputs: {} },
    top: { type: "KSampler", inputs: { seed: 1 } },
  },
  ui: { nodes: { top: { seed_modes: { seed: "increment" } } } },
  subgraphs: {
    s: {
      outputs: {},
      nodes: { sampler: { type: "KSampler", inputs: { seed: 42 } } },
      ui: { nodes: { sampler: { seed_modes: { seed: "increment" } } } },
    },
  },
};
const seeds = () => [{ name: "seed", min: 0, max: 100 }];
const innerSeed = (doc: EditorDocument) => defOf(doc, "s").nodes.sampler.inputs.seed;

describe("seed modes inside subgraphs", () => {
  it("step each definition once (its two instances share it), the top level too", () => {
    const doc = fromGraphFile(structuredClone(SEEDED));
    const next = randomizeSeeds(doc, seeds, () => 0);
    expect(innerSeed(next)).toBe(43);
    expect(next.nodes.top.inputs.seed).toBe(2);
  });

  it("a refused run gives the inner seeds back; an untouched definition keeps its object", () => {
    const doc = fromGraphFile(structuredClone(SEEDED));
    const advanced = fromGraphFile({ ...structuredClone(SEEDED), subgraphs: { s: { ...SEEDED.subgraphs.s, nodes: { sampler: { type: "KSampler", inputs: { seed: 43 } } } } } });
    expect(innerSeed(seedsGivenBack(advanced, doc, advanced))).toBe(42);
    const fixed = fromGraphFile({ ...structuredClone(SEEDED), ui: {}, subgraphs: { s: { ...SEEDED.subgraphs.s, ui: {} } } });
    expect(randomizeSeeds(fixed, seeds, () => 0)).toBe(fixed);
  });
});

describe("a Run", () => {
  let opened: ReturnType<typeof connectedApp>;
  afterEach(() => stopApp(opened.app));
  const submits = () => opened.socket.messages().filter((m) => m.type === "submit");
  const start = () => {
    opened = connectedApp();
    const schemas = realSchemas();
    opened.socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
    expect(opened.app.loadGraph(structuredClone(SEEDED))).toBe(true);
  };

  it("from inside a subgraph steps the inner seeds and those of the top level", async () => {
    start();
    opened.app.editor.openSubgraph("s", "a");
    const done = opened.app.run();
    opened.socket.reply({ type: "submitted", run_id: "r1", position: 0, request_id: submits()[0].request_id });
    await done;
    expect(opened.app.editor.doc.nodes.sampler.inputs.seed).toBe(43);
    const root = opened.app.editor.rootDoc();
    expect(root.nodes.top.inputs.seed).toBe(2);
    expect(innerSeed(root)).toBe(43);
    expect(((submits()[0].graph as typeof SEEDED).subgraphs.s.nodes.sampler.inputs.seed)).toBe(42);
  });

  it("refused as invalid: the banner goes once the graph changes (Ctrl+Z), not when a subgraph is opened", async () => {
    start();
    opened.app.editor.edit((doc) => ({ ...doc, nodes: { ...doc.nodes, top: { ...doc.nodes.top, title: "broken" } } }));
    const done = opened.app.run();
    opened.socket.reply({
      type: "error", code: "invalid_graph", message: "the graph is invalid (1 error(s)); nothing was queued", request_id: submits()[0].request_id,
      details: { errors: [{ code: "dangling_link", message: "input 'positive' links to a missing node", node_id: "top" }] },
    });
    await done;
    const banner = () => opened.app.session.get().banner;
    expect(banner()?.text).toMatch(/The graph is invalid/);
    opened.app.editor.openSubgraph("s", "a");
    expect(banner()?.text).toMatch(/The graph is invalid/);
    opened.app.editor.closeSubgraph();
    opened.app.editor.undo();
    expect(banner()).toBeNull();
  });
});

describe("an opened subgraph's fit", () => {
  it("stops at 100 % and keeps what covers the canvas's top as padding", () => {
    expect(subgraphFit(40)).toMatchObject({ maxZoom: 1, padding: { top: "56px" } });
  });

  it("the store's levels are the top level first, the shown one last", () => {
    const store = new EditorStore(fromGraphFile(structuredClone(COLLAPSED)));
    store.openSubgraph("subgraph_1", "subgraph_1");
    const levels = store.levels();
    expect(levels.map((d) => Object.keys(d.nodes))).toEqual([["enc", "subgraph_1", "sampler"], ["pos", "neg"]]);
    expect(toGraphFile(store.rootDoc()).nodes.sampler).toBeDefined();
  });
});

describe("exposing and un-exposing a subgraph's ports after the collapse", () => {
  it("an inner widget becomes an exposed input with its value as default; the subgraph node shows port and widget", () => {
    const outer = fromGraphFile(structuredClone(COLLAPSED));
    const made = exposeInput(openSubgraph(outer, "subgraph_1"), "subgraph_1", "pos", "text", "a cat");
    expect(made.port).toBe("text");
    expect(made.doc.nodes.pos.inputs.text).toEqual({ node: "$inputs", output: "text" });
    const back = closeSubgraph(outer, "subgraph_1", made.doc);
    expect(defOf(back, "subgraph_1").inputs.text).toEqual({ default: "a cat" });
    const schema = subgraphSchemas(back, realSchemas().nodes)["subgraph:subgraph_1"];
    expect(schema.inputs.text).toMatchObject({ port: "STRING", required: false, default: "a cat", widget: { kind: "text" } });
    // a second `text` is named after its node's title
    expect(exposeInput(made.doc, "subgraph_1", "neg", "text", "blurry").port).toBe("negative_prompt_text");
  });

  it("an inner output becomes an exposed output named as a collapse names it", () => {
    const outer = fromGraphFile(structuredClone(COLLAPSED));
    const inner = stopExposingOutput(openSubgraph(outer, "subgraph_1"), "subgraph_1", "prompt");
    const made = exposeOutput(inner, "subgraph_1", "pos", "conditioning");
    expect(made.port).toBe("prompt");
    expect(defOf(made.doc, "subgraph_1").outputs.prompt).toEqual({ node: "pos", output: "conditioning" });
  });

  it("stop exposing inside: the inner input gets the default back, and at Back the outer links to the port go", () => {
    const outer = fromGraphFile(structuredClone(COLLAPSED));
    const exposed = closeSubgraph(outer, "subgraph_1", exposeInput(openSubgraph(outer, "subgraph_1"), "subgraph_1", "pos", "text", "a cat").doc);
    const withValue = { ...exposed, nodes: { ...exposed.nodes, subgraph_1: { ...exposed.nodes.subgraph_1, inputs: { ...exposed.nodes.subgraph_1.inputs, text: "a dog" } } } };
    const inner = stopExposingInput(openSubgraph(withValue, "subgraph_1"), "subgraph_1", "text");
    expect(inner.nodes.pos.inputs.text).toBe("a cat");
    const back = closeSubgraph(withValue, "subgraph_1", inner);
    expect(back.nodes.subgraph_1.inputs).toEqual({ text_encoder: { node: "enc", output: "text_encoder" } });
    const noOutput = closeSubgraph(outer, "subgraph_1", stopExposingOutput(openSubgraph(outer, "subgraph_1"), "subgraph_1", "negative_prompt"));
    expect(noOutput.nodes.sampler.inputs.negative).toBeUndefined();
    expect(noOutput.nodes.sampler.inputs.positive).toEqual({ node: "subgraph_1", output: "prompt" });
  });

  it("stop exposing from the subgraph node: declaration and links go in one edit", () => {
    const outer = fromGraphFile(structuredClone(COLLAPSED));
    const next = stopExposing(outer, "subgraph_1", "output", "prompt");
    expect(Object.keys(defOf(next, "subgraph_1").outputs)).toEqual(["negative_prompt"]);
    expect(next.nodes.sampler.inputs.positive).toBeUndefined();
    const noInput = stopExposing(outer, "subgraph_1", "input", "text_encoder");
    expect(noInput.nodes.subgraph_1.inputs).toEqual({});
    expect(defOf(noInput, "subgraph_1").nodes.pos.inputs.text_encoder).toBeUndefined();
  });
});

describe("the node menu inside a subgraph", () => {
  let opened: ReturnType<typeof connectedApp>;
  afterEach(() => stopApp(opened.app));

  it("offers expose / stop exposing for the right-clicked port, each one undo step", async () => {
    const { menuItems } = await import("../src/editor/Overlays");
    opened = connectedApp();
    const schemas = realSchemas();
    opened.socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
    expect(opened.app.loadGraph(structuredClone(COLLAPSED))).toBe(true);
    const outer = () => opened.app.editor.doc;
    expect(menuItems(opened.app, { kind: "node", id: "subgraph_1" }, [0, 0], [0, 0]).map((i) => i.key))
      .toEqual(expect.arrayContaining(["unexpose-input-text_encoder", "unexpose-output-prompt", "unexpose-output-negative_prompt"]));
    opened.app.editor.openSubgraph("subgraph_1", "subgraph_1");
    opened.app.canvas.menuPort = { node: "pos", input: "text" };
    const items = menuItems(opened.app, { kind: "node", id: "pos" }, [0, 0], [0, 0]);
    expect(items.filter((i) => i.key.includes("expose")).map((i) => i.key)).toEqual(["expose-input-text"]);
    items.find((i) => i.key === "expose-input-text")!.run();
    expect(opened.app.editor.doc.nodes.pos.inputs.text).toEqual({ node: "$inputs", output: "text" });
    opened.app.canvas.menuPort = { node: "pos", output: "conditioning" };
    expect(menuItems(opened.app, { kind: "node", id: "pos" }, [0, 0], [0, 0]).filter((i) => i.key.includes("expose")).map((i) => i.key))
      .toEqual(["unexpose-output-prompt"]);
    opened.app.editor.undo();
    expect(opened.app.editor.doc.nodes.pos.inputs.text).toBe("a cat");
    opened.app.editor.redo();
    opened.app.editor.closeSubgraph();
    expect(defOf(outer(), "subgraph_1").inputs.text).toEqual({ default: "a cat" });
  });
});
