import { describe, expect, it } from "vitest";
import { searchNodes } from "../src/schema/search";
import type { NodeSchema } from "../src/schema/types";
import { realSchemas } from "./helpers";

/**
 * A plugin's ComfyUI class names (`register_comfyui_classes`, sent as each schema's `comfyui_classes`) find its
 * nodes: a ported pack's users typed "FaceDetailer" and got "no good match — letters in order | Object Detailer",
 * "SDXLPromptStyler" got "no node matches", while built-in ComfyUI names were found through SYNONYMS.
 */
function pluginNode(type: string, display: string, comfyui: string[]): NodeSchema {
  return {
    type, display_name: display, category: "detailpack", description: "", output_node: false,
    inputs: { image: { port: "IMAGE" } }, outputs: [{ name: "image", port: "IMAGE" }],
    plugin: "detailpack", qualified_type: `detailpack.${type}`, aliases: [`detailpack.${type}`],
    comfyui_classes: comfyui,
  } as unknown as NodeSchema;
}

const base = realSchemas();
const nodes: Record<string, NodeSchema> = {
  ...base.nodes,
  ObjectDetailer: pluginNode("ObjectDetailer", "Object Detailer", ["FaceDetailer", "DetailerForEach"]),
  PromptStyler: pluginNode("PromptStyler", "Prompt Styler", ["SDXLPromptStyler"]),
  ImageFilterAdjustments: pluginNode("ImageFilterAdjustments", "Image Filter Adjustments", ["Image Filter Adjustments"]),
  TextLoadLine: pluginNode("TextLoadLine", "Text Load Line", ["Text Load Line From File"]),
};
const first = (query: string) => searchNodes(nodes, query)[0];

describe("search by a plugin's ComfyUI class names", () => {
  it("finds the node a class imports as, as a strong hit (Enter adds it), typed as ComfyUI writes it", () => {
    for (const [query, type] of [["FaceDetailer", "ObjectDetailer"], ["facedetailer", "ObjectDetailer"],
      ["DetailerForEach", "ObjectDetailer"], ["SDXLPromptStyler", "PromptStyler"]]) {
      const hit = first(query);
      expect(hit?.schema.type, query).toBe(type);
      expect(hit.strong, query).toBe(true);
    }
  });

  it("takes class names with spaces (WAS style) word by word or run together", () => {
    expect(first("Text Load Line From File").schema.type).toBe("TextLoadLine");
    expect(first("TextLoadLineFromFile").schema.type).toBe("TextLoadLine");
    expect(first("TextLoadLineFromFile").strong).toBe(true);
  });

  it("ranks a class-name hit below a node named so itself, as a synonym does (0.9 of a direct match)", () => {
    const named = pluginNode("FaceDetailer", "Face Detailer", []);
    const hits = searchNodes({ ...nodes, FaceDetailer: named }, "FaceDetailer").map((h) => h.schema.type);
    expect(hits.slice(0, 2)).toEqual(["FaceDetailer", "ObjectDetailer"]);
  });

  it("changes nothing for schemas without the field (built-in nodes, older servers)", () => {
    expect(searchNodes(base.nodes, "FaceDetailer").filter((h) => h.strong)).toEqual([]);
    expect(searchNodes(nodes, "ksampler")[0].schema.type).toBe("KSampler");
  });
});
