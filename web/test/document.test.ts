import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  addNode,
  connect,
  docEdges,
  FORMAT_VERSION,
  fromGraphFile,
  GraphFormatError,
  isLink,
  layoutPositions,
  moveNodes,
  nodeSize,
  randomizeSeeds,
  removeNodes,
  seedMode,
  setInput,
  setSeedMode,
  setTitle,
  toGraphFile,
} from "../src/graph/document";
import { EditorStore } from "../src/state/editorStore";
import { realSchemas, REPO_ROOT } from "./helpers";

const schemas = realSchemas();

/** JSON equality with key order ignored. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

const rich = {
  format_version: 1,
  metadata: { title: "Rich", author: "me", extra: { nested: [1, 2, { x: null }] } },
  nodes: {
    a: { type: "Int", inputs: { value: 3 } },
    b: { type: "Int", title: "B" },
    c: { type: "IntMath", inputs: { a: { node: "a", output: "value" }, b: { node: "b", output: "value" }, op: "add" } },
    d: { type: "NotARealNode", inputs: { whatever: { deep: [1, 2] }, link: { node: "c", output: "result" } } },
    e: { type: "ShowValue", inputs: {} },
  },
  ui: {
    groups: [{ title: "g", bounds: [0, 0, 10, 10] }],
    notes: "keep me",
    nodes: {
      a: { position: [1.5, -2], color: "#f00" },
      b: {},
      c: { position: [300, 40] },
      ghost: { position: [9, 9], note: "node no longer in the graph" },
      d: { position: "not a position" },
    },
  },
};

/** A file as the editor saves it: the same JSON with the current format_version (the only migration from 1 to 2). */
const current = (file: Record<string, unknown>) => ({ ...file, format_version: FORMAT_VERSION });

describe("graph file round trip", () => {
  const graphsDir = `${REPO_ROOT}graphs/`;
  for (const name of readdirSync(graphsDir).filter((f) => f.endsWith(".json"))) {
    it(`saves ${name} back unchanged`, () => {
      const raw = JSON.parse(readFileSync(graphsDir + name, "utf8"));
      expect(canonical(toGraphFile(fromGraphFile(raw)))).toEqual(canonical(current(raw)));
    });
  }

  it("keeps unknown metadata, ui keys, orphan and empty ui entries, odd positions, unknown node types", () => {
    expect(canonical(toGraphFile(fromGraphFile(rich)))).toEqual(canonical(current(rich)));
  });

  it("lays out a node whose position or size is too far to draw, and keeps the file's values", () => {
    const far = {
      format_version: 2,
      nodes: { a: { type: "Int" }, b: { type: "Int" } },
      ui: { nodes: { a: { position: [1e300, 0], size: [1e300, 40] }, b: { position: [10, 20] } } },
    };
    const doc = fromGraphFile(far);
    expect(doc.nodes.a.position).toBeUndefined();
    expect(nodeSize(doc.nodes.a)).toBeNull();
    expect(doc.nodes.b.position).toEqual([10, 20]);
    expect(toGraphFile(doc)).toEqual(current(far));
  });

  it("keeps a file without ui and metadata free of them", () => {
    const bare = { format_version: 1, nodes: { x: { type: "Int" } } };
    expect(toGraphFile(fromGraphFile(bare))).toEqual(current(bare));
  });

  it("round-trips through edits that are undone", () => {
    const store = new EditorStore();
    store.load(fromGraphFile(rich));
    store.edit((doc) => setInput(doc, "a", "value", 10), "input:a:value");
    store.edit((doc) => removeNodes(doc, ["c"]));
    store.dragMove({ a: [50, 50] });
    store.dragEnd();
    store.undo();
    store.undo();
    store.undo();
    expect(canonical(toGraphFile(store.doc))).toEqual(canonical(current(rich)));
    store.redo();
    expect(store.doc.nodes.a.inputs.value).toBe(10);
  });

  it("migrates version 0 files", () => {
    const v0 = JSON.parse(readFileSync(`${REPO_ROOT}tests/fixtures/v0_graph.json`, "utf8"));
    const file = toGraphFile(fromGraphFile(v0));
    expect(file.format_version).toBe(FORMAT_VERSION);
    expect(file.nodes["3"]).toEqual({ type: "IntMath", title: "product", inputs: { a: { node: "1", output: "value" }, b: { node: "2", output: "value" }, op: "multiply" } });
    expect((file.ui as { nodes: Record<string, unknown> }).nodes["4"]).toEqual({ position: [400, 50] });
  });

  it("refuses what is not a graph, with a reason", () => {
    expect(() => fromGraphFile([])).toThrow(GraphFormatError);
    expect(() => fromGraphFile({ nodes: {} })).toThrow(/format_version/);
    expect(() => fromGraphFile({ format_version: FORMAT_VERSION + 1, nodes: {} })).toThrow(/upgrade/);
    expect(() => fromGraphFile({ format_version: 2, nodes: { a: { type: "Int", mode: "sleep" } } })).toThrow(/"mode"/);
    expect(() => fromGraphFile({ format_version: 1, nodes: { a: { inputs: {} } } })).toThrow(/"type"/);
  });
});

describe("document edits", () => {
  const base = () => fromGraphFile(JSON.parse(readFileSync(`${REPO_ROOT}graphs/arithmetic.json`, "utf8")));

  it("recognises links exactly", () => {
    expect(isLink({ node: "a", output: "b" })).toBe(true);
    expect(isLink({ node: "a", output: "b", x: 1 })).toBe(false);
    expect(isLink({ node: 1, output: "b" })).toBe(false);
    expect(isLink([1, 2])).toBe(false);
  });

  it("adds a node with its widget defaults, a position and a unique id", () => {
    const { doc, id } = addNode(base(), schemas.nodes.IntMath, [10.4, 20.6]);
    expect(id).toBe("intmath");
    expect(doc.nodes[id].inputs).toEqual({ a: 0, b: 0, op: "add" });
    expect(doc.nodes[id].position).toEqual([10, 21]);
    const second = addNode(doc, schemas.nodes.IntMath, [0, 0]);
    expect(second.id).toBe("intmath_2");
    const show = addNode(doc, schemas.nodes.ShowValue, [0, 0]);
    expect(show.doc.nodes[show.id].inputs).toEqual({}); // link-only inputs start empty
  });

  it("replaces the link of an input (one link per input)", () => {
    const doc = connect(base(), "height", "value", "pixels", "a");
    expect(doc.nodes.pixels.inputs.a).toEqual({ node: "height", output: "value" });
    expect(docEdges(doc).filter((e) => e.target === "pixels" && e.input === "a")).toHaveLength(1);
  });

  it("removes a node and the links that read from it", () => {
    const doc = removeNodes(base(), ["width"]);
    expect(doc.nodes.width).toBeUndefined();
    expect("a" in doc.nodes.pixels.inputs).toBe(false);
    expect("a" in doc.nodes.message.inputs).toBe(false);
    expect(toGraphFile(doc).ui!.nodes).not.toHaveProperty("width");
  });

  it("moves, renames and leaves unchanged documents identical", () => {
    const doc = base();
    expect(moveNodes(doc, { width: [0, 0] })).toBe(doc);
    const moved = moveNodes(doc, { width: [5.2, 6.7] });
    expect(moved.nodes.width.position).toEqual([5, 7]);
    expect(setTitle(doc, "width", "").nodes.width.title).toBeUndefined();
    expect(setTitle(doc, "pixels", "Pixels").nodes.pixels.title).toBe("Pixels");
  });

  it("lays out nodes without positions by link depth", () => {
    const doc = fromGraphFile({ format_version: 1, nodes: { a: { type: "Int" }, b: { type: "ShowValue", inputs: { value: { node: "a", output: "value" } } } } });
    const positions = layoutPositions(doc);
    expect(positions.a[0]).toBeLessThan(positions.b[0]);
    expect(toGraphFile(doc).ui).toBeUndefined(); // computed positions are not saved until a node moves
  });

  it("randomises seeds in randomize mode only and records the mode in ui", () => {
    const seedSchema = { ...schemas.nodes.Int, type: "Seeded", inputs: { seed: { ...schemas.nodes.Int.inputs.value, widget: { kind: "seed" } } } };
    let { doc, id } = addNode(base(), seedSchema, [0, 0]);
    expect(seedMode(doc.nodes[id], "seed")).toBe("randomize");
    const seeds = (type: string) => (type === "Seeded" ? [{ name: "seed", min: 0, max: 100 }] : []);
    doc = randomizeSeeds(doc, seeds, () => 42);
    expect(doc.nodes[id].inputs.seed).toBe(42);
    doc = setSeedMode(doc, id, "seed", "fixed");
    expect(randomizeSeeds(doc, seeds, () => 7).nodes[id].inputs.seed).toBe(42);
    expect((toGraphFile(doc).ui!.nodes as Record<string, { seed_modes: unknown }>)[id].seed_modes).toEqual({ seed: "fixed" });
  });

  it("starts a training node's seed fixed: drawn anew before each Run, a stopped training never resumed", () => {
    const { doc, id } = addNode(base(), schemas.nodes.TrainDiffusion, [0, 0]);
    expect(seedMode(doc.nodes[id], "seed")).toBe("fixed");
    const sampler = addNode(base(), schemas.nodes.KSampler, [0, 0]);
    expect(seedMode(sampler.doc.nodes[sampler.id], "seed")).toBe("randomize");
  });
});
