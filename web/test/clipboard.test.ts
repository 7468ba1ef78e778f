import { describe, expect, it } from "vitest";
import { copyNodes, pasteClip } from "../src/graph/clipboard";
import { fromGraphFile } from "../src/graph/document";

const doc = fromGraphFile({
  format_version: 1,
  nodes: {
    a: { type: "Int", inputs: { value: 1 } },
    b: { type: "Int", inputs: { value: 2 } },
    sum: { type: "IntMath", inputs: { a: { node: "a", output: "value" }, b: { node: "b", output: "value" }, op: "add" } },
  },
  ui: { nodes: { a: { position: [0, 0] }, b: { position: [0, 100] }, sum: { position: [200, 50] } } },
});

describe("copy and paste", () => {
  it("gives fresh ids, rewires internal links and drops external ones", () => {
    const clip = copyNodes(doc, ["a", "sum"])!;
    const { doc: after, ids } = pasteClip(doc, clip, [40, 40]);
    expect(ids).toEqual(["int", "intmath"]);
    expect(after.nodes.intmath.inputs).toEqual({ a: { node: "int", output: "value" }, op: "add" });
    expect(after.nodes.int.position).toEqual([40, 40]);
    expect(after.nodes.intmath.position).toEqual([240, 90]);
    expect(Object.keys(after.nodes)).toHaveLength(5);
  });

  it("keeps external links when asked", () => {
    const clip = copyNodes(doc, ["sum"])!;
    const { doc: after, ids } = pasteClip(doc, clip, [0, 0], { keepExternalLinks: true });
    expect(after.nodes[ids[0]].inputs.a).toEqual({ node: "a", output: "value" });
  });

  it("is independent of the document it was copied from", () => {
    const clip = copyNodes(doc, ["a"])!;
    (clip.nodes.a.inputs as Record<string, unknown>).value = 99;
    expect(doc.nodes.a.inputs.value).toBe(1);
    expect(copyNodes(doc, ["missing"])).toBeNull();
});
});
