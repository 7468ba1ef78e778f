/**
 * ComfyUI's wire habits as document changes (editor/wireGestures.ts): a wire picked up from an input and dropped on
 * another, Shift+drag moving every link of an output to another (all or none), and the primitive node a double-click
 * on an input socket adds, holding the widget's value. The pointer side is tests/web/test_editor_wires_e2e.py.
 */
import { describe, expect, it } from "vitest";
import { fromGraphFile, toGraphFile } from "../src/graph/document";
import { checkLink } from "../src/schema/compatibility";
import { addPrimitiveFor, moveOutputLinks, primitiveTypeFor, relink, widgetValue, type LinkChecker } from "../src/editor/wireGestures";
import { SHORTCUTS } from "../src/editor/shortcuts";
import { realSchemas } from "./helpers";

const schemas = realSchemas();
const FILE = {
  format_version: 2,
  nodes: {
    pos: { type: "EncodeText", inputs: { text: "a cat" } },
    neg: { type: "EncodeText", inputs: { text: "blurry" } },
    sampler: { type: "KSampler", inputs: { positive: { node: "pos", output: "conditioning" }, negative: { node: "pos", output: "conditioning" }, steps: 12 } },
  },
};
const check: LinkChecker = (source, target, input) => {
  const doc = fromGraphFile(FILE);
  const s = schemas.nodes[doc.nodes[source.node].type];
  const t = schemas.nodes[doc.nodes[target].type];
  return checkLink({ sourceNode: source.node, sourcePort: s.outputs.find((o) => o.name === source.output)?.port, targetNode: target, targetPort: t.inputs[input]?.port, types: schemas.types, upstreamOf: () => [] });
};

describe("a wire picked up from a connected input", () => {
  it("moves to the input it is dropped on, and stays when dropped back", () => {
    const doc = fromGraphFile({ ...FILE, nodes: { ...FILE.nodes, sampler: { type: "KSampler", inputs: { positive: { node: "pos", output: "conditioning" } } } } });
    const moved = toGraphFile(relink(doc, { target: "sampler", input: "positive" }, { target: "sampler", input: "negative" })).nodes.sampler.inputs;
    expect(moved).toEqual({ negative: { node: "pos", output: "conditioning" } });
    expect(relink(doc, { target: "sampler", input: "positive" }, { target: "sampler", input: "positive" })).toBe(doc);
  });
});

describe("Shift+drag from an output onto another output", () => {
  it("moves every link of the first to the second, in one change", () => {
    const result = moveOutputLinks(fromGraphFile(FILE), { node: "pos", output: "conditioning" }, { node: "neg", output: "conditioning" }, check);
    expect("doc" in result && result.moved).toBe(2);
    if ("doc" in result) {
      const inputs = toGraphFile(result.doc).nodes.sampler.inputs ?? {};
      expect([inputs.positive, inputs.negative]).toEqual([{ node: "neg", output: "conditioning" }, { node: "neg", output: "conditioning" }]);
    }
  });

  it("refuses the whole move, with the reason, when one link does not fit", () => {
    const file = { format_version: 2, nodes: { ...FILE.nodes, ckpt: { type: "LoadCheckpoint", inputs: {} } } };
    const doc = fromGraphFile(file);
    const refuse: LinkChecker = (_source, _target, input) => (input === "negative" ? { ok: false, reason: "MODEL does not fit CONDITIONING" } : { ok: true });
    const result = moveOutputLinks(doc, { node: "pos", output: "conditioning" }, { node: "ckpt", output: "model" }, refuse);
    expect(result).toEqual({ reason: "ckpt.model cannot feed sampler.negative: MODEL does not fit CONDITIONING" });
    expect(moveOutputLinks(doc, { node: "neg", output: "conditioning" }, { node: "pos", output: "conditioning" }, check)).toEqual({ reason: "neg.conditioning has no links to move" });
  });
});

describe("double-click on an input socket", () => {
  it("finds the primitive node of INT, FLOAT, STRING (a choice list too) and BOOLEAN, and none for MODEL", () => {
    expect(["INT", "FLOAT", "STRING", "BOOLEAN", "MODEL"].map((p) => primitiveTypeFor(schemas.nodes, p))).toEqual(["Int", "Float", "String", "Boolean", null]);
    expect(schemas.nodes.KSampler.inputs.sampler.port).toBe("STRING");
  });

  it("adds that node holding the widget's value, linked to the input, and nothing on a linked input", () => {
    const doc = fromGraphFile(FILE);
    const value = widgetValue(doc, "sampler", "steps", schemas.nodes.KSampler);
    const added = addPrimitiveFor(doc, schemas.nodes.Int, [-300, 0], "sampler", "steps", value)!;
    const file = toGraphFile(added.doc);
    expect(file.nodes[added.id]).toMatchObject({ type: "Int", inputs: { value: 12 } });
    expect(file.nodes.sampler.inputs?.steps).toEqual({ node: added.id, output: "value" });
    expect(widgetValue(doc, "sampler", "cfg", schemas.nodes.KSampler)).toBe(schemas.nodes.KSampler.inputs.cfg.default);
    expect(addPrimitiveFor(doc, schemas.nodes.String, [0, 0], "sampler", "positive", "x")).toBeNull();
  });

  it("are listed in the help panel's shortcuts", () => {
    const keys = SHORTCUTS.map((s) => s.keys).join("\n");
    expect(keys).toMatch(/Drag from a connected input/);
    expect(keys).toMatch(/Shift\+drag from an output/);
    expect(keys).toMatch(/Double-click an input socket/);
  });
});
