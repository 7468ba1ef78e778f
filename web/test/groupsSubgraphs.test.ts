import { describe, expect, it } from "vitest";
import { fromGraphFile, isLink, setMode, toggleMode, toGraphFile, randomizeSeeds, nextSeedMode, setSeedMode } from "../src/graph/document";
import { addGroup, addReroute, groupMembers, groupsOf, moveGroup, pruneReroutes, removeGroup, reroutesOf } from "../src/graph/groups";
import { closeSubgraph, collapseToSubgraph, openSubgraph, subgraphSchemas, SUBGRAPH_INPUTS } from "../src/graph/subgraph";
import { EditorStore, runKeyPrefix } from "../src/state/editorStore";
import { realSchemas } from "./helpers";

const schemas = realSchemas();
const chain = () =>
  fromGraphFile({
    format_version: 2,
    nodes: {
      a: { type: "Int", inputs: { value: 6 } },
      k: { type: "Int", inputs: { value: 1 } },
      mul: { type: "IntMath", inputs: { a: { node: "a", output: "value" }, b: { node: "a", output: "value" }, op: "multiply" } },
      add: { type: "IntMath", inputs: { a: { node: "mul", output: "result" }, b: { node: "k", output: "value" }, op: "add" } },
      show: { type: "ShowValue", inputs: { value: { node: "add", output: "result" } } },
    },
    ui: { nodes: { a: { position: [0, 0] }, k: { position: [0, 200] }, mul: { position: [300, 0] }, add: { position: [600, 0] }, show: { position: [900, 0] } } },
  });
const positions = { a: [0, 0], k: [0, 200], mul: [300, 0], add: [600, 0], show: [900, 0] } as Record<string, [number, number]>;

describe("groups and reroutes in ui", () => {
  it("frames a selection, moves its members with it, and round-trips through the file", () => {
    const doc = chain();
    const rects = Object.fromEntries(Object.entries(positions).map(([id, [x, y]]) => [id, { x, y, width: 250, height: 120 }]));
    const { doc: grouped, id } = addGroup(doc, [rects.mul, rects.add], "Math");
    const group = groupsOf(grouped)[0];
    expect(group).toMatchObject({ id, title: "Math" });
    expect(groupMembers(group, rects).sort()).toEqual(["add", "mul"]);
    const moved = moveGroup(grouped, id, [group.bounds[0] + 50, group.bounds[1] + 10], { mul: [300, 0], add: [600, 0] });
    expect(moved.nodes.mul.position).toEqual([350, 10]);
    expect(moved.nodes.add.position).toEqual([650, 10]);
    expect(moved.nodes.a.position).toEqual([0, 0]);
    const file = toGraphFile(moved);
    expect((file.ui!.groups as unknown[]).length).toBe(1);
    expect(toGraphFile(fromGraphFile(file))).toEqual(file);
    expect(groupsOf(removeGroup(moved, id))).toEqual([]);
  });

  it("keeps reroutes on existing wires only and carries malformed ui entries untouched", () => {
    let doc = chain();
    doc = addReroute(doc, { node: "show", input: "value" }, [800.4, 100]).doc;
    doc = { ...doc, uiRest: { ...doc.uiRest, groups: ["not a group"] } };
    expect(reroutesOf(doc)).toEqual([{ id: "reroute1", position: [800, 100], to: { node: "show", input: "value" } }]);
    const unlinked = { ...doc, nodes: { ...doc.nodes, show: { ...doc.nodes.show, inputs: {} } } };
    expect(reroutesOf(pruneReroutes(unlinked))).toEqual([]);
    expect(toGraphFile(doc).ui!.groups).toEqual(["not a group"]);
  });
});

describe("bypass, mute and seed modes", () => {
  it("toggles a mode on a selection, clears it when all have it, and writes it to the file", () => {
    let doc = toggleMode(chain(), ["mul", "add"], "bypass");
    expect(toGraphFile(doc).nodes.mul.mode).toBe("bypass");
    doc = toggleMode(doc, ["mul", "add"], "bypass");
    expect("mode" in toGraphFile(doc).nodes.mul).toBe(false);
    doc = setMode(doc, ["show"], "mute");
    expect(fromGraphFile(toGraphFile(doc)).nodes.show.mode).toBe("mute");
  });

  it("cycles a seed through randomize → increment → fixed and increments before a run, wrapping at max", () => {
    expect([nextSeedMode("randomize"), nextSeedMode("increment"), nextSeedMode("fixed")]).toEqual(["increment", "fixed", "randomize"]);
    let doc = fromGraphFile({ format_version: 2, nodes: { s: { type: "KSampler", inputs: { seed: 41 } } } });
    doc = setSeedMode(doc, "s", "seed", "increment");
    const seeds = () => [{ name: "seed", min: 0, max: 42 }];
    doc = randomizeSeeds(doc, seeds, () => 7);
    expect(doc.nodes.s.inputs.seed).toBe(42);
    doc = randomizeSeeds(doc, seeds, () => 7);
    expect(doc.nodes.s.inputs.seed).toBe(0);
  });
});

describe("subgraphs", () => {
  it("collapses a selection into a definition with exposed inputs and outputs, and types its ports", () => {
    const result = collapseToSubgraph(chain(), ["mul", "add"], positions)!;
    const { doc, id, name } = result;
    expect(Object.keys(doc.nodes).sort()).toEqual(["a", id, "k", "show"].sort());
    const def = doc.subgraphs![name] as { inputs: Record<string, unknown>; outputs: Record<string, unknown>; nodes: Record<string, { inputs: Record<string, unknown> }> };
    expect(Object.keys(def.inputs)).toEqual(["a", "b"]); // a.value (used twice → one input) and k.value
    expect(def.outputs).toEqual({ result: { node: "add", output: "result" } });
    expect(def.nodes.mul.inputs.a).toEqual({ node: SUBGRAPH_INPUTS, output: "a" });
    expect(def.nodes.mul.inputs.b).toEqual({ node: SUBGRAPH_INPUTS, output: "a" });
    expect(doc.nodes[id].inputs).toEqual({ a: { node: "a", output: "value" }, b: { node: "k", output: "value" } });
    expect(doc.nodes.show.inputs.value).toEqual({ node: id, output: "result" });
    const schema = subgraphSchemas(doc, schemas.nodes)[`subgraph:${name}`];
    expect(schema.outputs).toEqual([{ name: "result", port: "INT", description: "" }]);
    expect(schema.inputs.a.port).toBe("INT");
    expect(schema.inputs.a.required).toBe(true);
    const file = toGraphFile(doc);
    expect(file.format_version).toBe(2);
    expect(toGraphFile(fromGraphFile(file))).toEqual(file);
  });

  it("opens a definition as its own document and writes edits back on close (also through the store)", () => {
    const { doc, name, id } = collapseToSubgraph(chain(), ["mul", "add"], positions)!;
    const inner = openSubgraph(doc, name);
    expect(Object.keys(inner.nodes).sort()).toEqual(["add", "mul"]);
    expect(isLink(inner.nodes.mul.inputs.a)).toBe(true);
    const edited = { ...inner, nodes: { ...inner.nodes, mul: { ...inner.nodes.mul, inputs: { ...inner.nodes.mul.inputs, op: "add" } } } };
    const back = closeSubgraph(doc, name, edited);
    expect(((back.subgraphs![name] as { nodes: Record<string, { inputs: { op: string } }> }).nodes.mul.inputs.op)).toBe("add");

    const store = new EditorStore(doc);
    store.openSubgraph(name);
    expect(store.state.path.map((p) => p.name)).toEqual([name]);
    store.edit((d) => ({ ...d, nodes: { ...d.nodes, add: { ...d.nodes.add, title: "plus k" } } }));
    expect(toGraphFile(store.rootDoc()).nodes[id]).toBeDefined();
    expect(((toGraphFile(store.rootDoc()).subgraphs![name] as { nodes: Record<string, { title?: string }> }).nodes.add.title)).toBe("plus k");
    store.closeSubgraph();
    expect(store.state.path).toEqual([]);
    expect(((store.doc.subgraphs![name] as { nodes: Record<string, { title?: string }> }).nodes.add.title)).toBe("plus k");
    store.undo(); // the whole visit is one undo step in the outer graph
    expect(((store.doc.subgraphs![name] as { nodes: Record<string, { title?: string }> }).nodes.add.title)).toBeUndefined();
  });

  it("names the shown nodes as a run's events do only when the subgraph was opened from its node", () => {
    const { doc, name, id } = collapseToSubgraph(chain(), ["mul", "add"], positions)!;
    const store = new EditorStore(doc);
    expect(runKeyPrefix(store.state)).toBe("");
    store.openSubgraph(name, id);
    expect(runKeyPrefix(store.state)).toBe(`${id}/`);       // the engine's expanded ids: subgraph_1/mul
    store.closeSubgraph();
    store.openSubgraph(name);                                // by name: no node's run is shown inside
    expect(runKeyPrefix(store.state)).toBeNull();
    expect(runKeyPrefix({ path: [{ instance: "a" }, { instance: "b" }] as never })).toBe("a/b/");
    expect(runKeyPrefix({ path: [{ instance: "a" }, { instance: null }] as never })).toBeNull();
  });
});

describe("a subgraph node's run state", () => {
  it("summarises its inner nodes' namespaced events", async () => {
    const { subgraphRunState } = await import("../src/run/sessionState");
    expect(subgraphRunState({ other: { status: "done" } }, "sq")).toBeUndefined();
    expect(subgraphRunState({ "sq/mul": { status: "done", seconds: 0.5 }, "sq/add": { status: "running", value: 2, total: 5 } }, "sq"))
      .toEqual({ status: "running", value: 2, total: 5 });
    expect(subgraphRunState({ "sq/mul": { status: "done", seconds: 0.5 }, "sq/add": { status: "done", seconds: 0.25 } }, "sq"))
      .toEqual({ status: "done", seconds: 0.75 });
    expect(subgraphRunState({ "sq/mul": { status: "cached" }, "sq/add": { status: "cached" } }, "sq")).toEqual({ status: "cached" });
    expect(subgraphRunState({ "sq/mul": { status: "done" }, "sq/add": { status: "error", message: "boom" } }, "sq")?.status).toBe("error");
    expect(subgraphRunState({ "sq/a/b": { status: "queued" }, "sqx/a": { status: "error" } }, "sq")).toEqual({ status: "queued" });
  });

  it("names the inner node that runs (its step preview is shown on the subgraph node)", async () => {
    const { runningInnerId } = await import("../src/run/sessionState");
    const states = { "sq/mul": { status: "done" as const }, "sq/k/sample": { status: "running" as const, value: 3, total: 20 },
      "sqx/a": { status: "running" as const } };
    expect(runningInnerId(states, "sq")).toBe("sq/k/sample");
    expect(runningInnerId(states, "sq/k")).toBe("sq/k/sample");
    expect(runningInnerId({ "sq/mul": { status: "done" } }, "sq")).toBeUndefined();
  });
});
