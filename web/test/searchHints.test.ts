/**
 * Node search for ComfyUI words (a ComfyUI user's pass): a class with a counterpart or another home here leads
 * there, with a hint that says so, and a word with no real match finds "no good match", never unrelated nodes
 * (Reroute found Image To Audio Latent by letters strewn over its description, face found Render Turntable by
 * its "face normals").
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SEARCH_HINTS, searchHint, searchNodes, SYNONYMS } from "../src/schema/search";
import { realSchemas, REPO_ROOT } from "./helpers";

const schemas = realSchemas();
const hits = (query: string) => searchNodes(schemas.nodes, query);
const strong = (query: string) => hits(query).filter((h) => h.strong).map((h) => h.schema.type);

describe("ComfyUI words in the node search", () => {
  it("finds no good match, and no node at all for letters strewn over descriptions, for the report's words", () => {
    for (const word of ["Reroute", "ConditioningCombine", "ipadapter", "ImageInvert"]) {
      expect([word, hits(word).map((h) => h.schema.type)]).toEqual([word, []]);
    }
    for (const word of ["face", "Note"]) expect([word, strong(word)]).toEqual([word, []]);
  });

  it("leads a ComfyUI class with a counterpart to it: CLIPSetLastLayer → Encode Text, PrimitiveNode → the primitives", () => {
    expect(strong("CLIPSetLastLayer")[0]).toBe("EncodeText");
    expect(strong("PrimitiveNode").sort()).toEqual(["Boolean", "Float", "Int", "String"]);
    expect(strong("KSamplerAdvanced")[0]).toBe("KSampler");
    expect(strong("LatentUpscaleBy")[0]).toBe("LatentUpscale");
  });

  it("says where the work is done: a reroute from a wire's menu, clip_skip, no conditioning combine", () => {
    expect(searchHint("Reroute")).toMatch(/right-click a wire/);
    expect(searchHint("CLIPSetLastLayer")).toMatch(/clip_skip/);
    expect(searchHint("Conditioning Combine")).toMatch(/no conditioning combine/);
    expect(searchHint("PrimitiveNode")).toMatch(/primitive nodes/);
    expect(searchHint("KSampler")).toBeNull();
    expect(searchHint("constructor")).toBeNull();   // an Object.prototype name is no hint (nor a synonym)
    expect(hits("constructor")).toEqual(expect.any(Array));
  });

  it("has a hint or a synonym for every class of the importer's INSTEAD table (nodegraph/comfyui.py)", () => {
    const source = readFileSync(`${REPO_ROOT}nodegraph/comfyui.py`, "utf8");
    const table = source.slice(source.indexOf("INSTEAD: dict[str, str] = {"), source.indexOf("\n}\n", source.indexOf("INSTEAD:")));
    const classes = [...table.matchAll(/^ {4}"([A-Za-z0-9_]+)":/gm)].map((m) => m[1]);
    expect(classes.length).toBeGreaterThan(3);
    for (const name of classes) expect([name, name.toLowerCase() in SEARCH_HINTS || name.toLowerCase() in SYNONYMS]).toEqual([name, true]);
  });
});
