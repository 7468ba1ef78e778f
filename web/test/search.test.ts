import { describe, expect, it } from "vitest";
import { matchScore, searchNodes, wordsOf } from "../src/schema/search";
import { paletteGroups } from "../src/schema/palette";
import { realSchemas } from "./helpers";

const schemas = realSchemas();
const top = (query: string, n = 3) => searchNodes(schemas.nodes, query).slice(0, n).map((h) => h.schema.type);

describe("node search ranking", () => {
  it("puts the node named by the query first: int → Int, then Int Math and Random Int (not Apply Control Net)", () => {
    expect(top("int")).toEqual(["Int", "IntMath", "RandomInt"]);
    const all = searchNodes(schemas.nodes, "int").map((h) => h.schema.type);
    expect(all.indexOf("ApplyControlNet")).toBeGreaterThan(all.indexOf("RandomInt"));
  });

  it("takes a typo that leaves out a letter as a strong hit, and puts common nodes first on a tie or no query", () => {
    const typo = searchNodes(schemas.nodes, "ksamplr");
    expect(typo[0].schema.type).toBe("KSampler");
    expect(typo[0].strong).toBe(true);                 // Enter adds it, as ComfyUI's fuzzy search does
    expect(searchNodes(schemas.nodes, "qwertz").filter((h) => h.strong)).toEqual([]);
    expect(top("seed", 1)).toEqual(["KSampler"]);    // tied on the input name "seed" with rarer nodes
    const fromImage = searchNodes(schemas.nodes, "", { filter: { port: "IMAGE", from: "output" }, types: schemas.types })
      .slice(0, 4).map((h) => h.schema.type);
    expect(fromImage).toEqual(expect.arrayContaining(["PreviewImage", "SaveImage"]));
  });

  it("finds the text-encoder nodes for 'clip' (ComfyUI's name for them) before anything else", () => {
    const hits = top("clip", 8);
    expect(hits[0]).toBe("EncodeText");
    expect(hits).toContain("LoadTextEncoder");
    for (const type of hits) expect(type).toMatch(/TextEncoder|EncodeText/);   // nothing else among the first 8
  });

  it("matches camelCase words, several words, joined words and letters in order", () => {
    expect(wordsOf("VAEEncodeForInpaint")).toEqual(["vae", "encode", "for", "inpaint"]);
    expect(top("vae dec", 1)).toEqual(["VAEDecode"]);
    expect(top("ksampler", 1)).toEqual(["KSampler"]);
    expect(top("emptylat", 1)).toEqual(["EmptyLatent"]);
    expect(matchScore("ksmp", "KSampler")).toBeGreaterThan(0);
    expect(matchScore("xyz", "KSampler")).toBe(0);
    expect(searchNodes(schemas.nodes, "qqqzzz")).toEqual([]);
  });

  it("offers only nodes that accept a dragged wire's type, with the port to connect", () => {
    const fromLatent = searchNodes(schemas.nodes, "", { filter: { port: "LATENT", from: "output" }, types: schemas.types });
    expect(fromLatent.length).toBeGreaterThan(2);
    for (const hit of fromLatent) {
      const port = hit.schema.inputs[hit.port!].port;
      expect(port === "LATENT" || port === "*").toBe(true);
    }
    expect(fromLatent.find((h) => h.schema.type === "VAEDecode")?.port).toBe("latent");
    const intoImage = searchNodes(schemas.nodes, "load", { filter: { port: "IMAGE", from: "input" }, types: schemas.types });
    expect(intoImage.map((h) => h.schema.type)).toContain("LoadImage");
    for (const hit of intoImage) expect(["IMAGE", "*"]).toContain(hit.schema.outputs.find((o) => o.name === hit.port)?.port);
    // INT → FLOAT is allowed (types[FLOAT].accepts), so a FLOAT input takes an INT wire.
    const fromInt = searchNodes(schemas.nodes, "", { filter: { port: "INT", from: "output" }, types: schemas.types });
    expect(fromInt.some((h) => h.schema.inputs[h.port!].port === "FLOAT")).toBe(true);
  });

  it("keeps the palette grouped by category when there is no query", () => {
    const groups = paletteGroups(schemas.nodes, "");
    expect(groups.map((g) => g.category)).toEqual([...groups.map((g) => g.category)].sort((a, b) => a.localeCompare(b)));
  });
});

describe("strong and weak hits (what Enter may add)", () => {
  const first = (query: string) => searchNodes(schemas.nodes, query)[0];

  it("marks letters-in-order-only hits weak, so Enter adds nothing for a query with no good match", () => {
    // "load imge": Load Image by letters in order ("sharpen", letters strewn over descriptions, now finds nothing)
    const hits = searchNodes(schemas.nodes, "load imge");
    expect(hits.length).toBeGreaterThan(0);                 // offered, for a deliberate pick
    expect(hits.every((h) => !h.strong)).toBe(true);
    expect(first("ksmp")).toMatchObject({ strong: false }); // KSampler by letters in order: weak
    expect(first("ample").strong).toBe(false);              // mid-word only
  });

  it("keeps strong matches strong: names, word starts, joined words, synonyms and ComfyUI class names", () => {
    for (const [query, type] of [["int", "Int"], ["ksampler", "KSampler"], ["vae dec", "VAEDecode"], ["emptylat", "EmptyLatent"],
                                 ["encodetext", "EncodeText"], ["clip", "EncodeText"], ["CheckpointLoaderSimple", "LoadCheckpoint"],
                                 ["KSamplerAdvanced", "KSampler"], ["LoraLoader", "LoadLoRA"], ["invert", "DDIMInvert"]]) {
      expect([query, first(query).schema.type, first(query).strong]).toEqual([query, type, true]);
    }
  });

  it("lists every strong hit before any weak one, whatever their scores", () => {
    // "image inv": Mask Operation matches both words; Forward Diffuse Image only "image" well and "inv" by letters.
    const hits = searchNodes(schemas.nodes, "image inv");
    const firstWeak = hits.findIndex((h) => !h.strong);
    expect(firstWeak).toBeGreaterThan(0);
    expect(hits.slice(firstWeak).every((h) => !h.strong)).toBe(true);
    expect(hits[0].schema.type).toBe("MaskOperation");
  });
});

describe("ComfyUI class names", () => {
  it("find our equivalent first when typed as ComfyUI writes them", () => {
    const equivalents: Record<string, string> = {
      CheckpointLoaderSimple: "LoadCheckpoint",
      LoraLoader: "LoadLoRA",
      LoraLoaderModelOnly: "LoadLoRA",
      ControlNetLoader: "LoadControlNet",
      ControlNetApply: "ApplyControlNet",
      ControlNetApplyAdvanced: "ApplyControlNet",
      VAELoader: "LoadVAE",
      CLIPLoader: "LoadTextEncoder",
      UNETLoader: "LoadUNet",
      UpscaleModelLoader: "LoadUpscaleModel",
      ImageUpscaleWithModel: "UpscaleImageWithModel",
      LatentUpscale: "LatentUpscale",
      VAEEncode: "VAEEncode",
      VAEEncodeForInpaint: "VAEEncodeForInpaint",
      SetLatentNoiseMask: "SetLatentNoiseMask",
      KSamplerAdvanced: "KSampler",
      KSampler: "KSampler",
      CLIPTextEncode: "EncodeText",
      EmptyLatentImage: "EmptyLatent",
      SaveImage: "SaveImage",
      PreviewImage: "PreviewImage",
      LoadImage: "LoadImage",
    };
    for (const [comfy, ours] of Object.entries(equivalents)) expect([comfy, top(comfy, 1)[0]]).toEqual([comfy, ours]);
  });
});


describe("input and output names are searched", () => {
  it("finds the nodes that take a seed for 'seed', K Sampler among the first, as a strong hit", () => {
    const hits = searchNodes(schemas.nodes, "seed");
    const types = hits.map((h) => h.schema.type);
    expect(types.slice(0, 3)).toContain("KSampler");
    expect(hits.find((h) => h.schema.type === "KSampler")?.strong).toBe(true);
    // every strong hit names a seed somewhere: its name, an input, or its description
    for (const hit of hits.filter((h) => h.strong)) {
      const text = JSON.stringify([hit.schema.display_name, Object.keys(hit.schema.inputs), hit.schema.description]).toLowerCase();
      expect(text).toContain("seed");
    }
  });

  it("ranks a node named by the query before nodes that only have an input of that name", () => {
    for (const input of ["denoise", "steps", "width"]) {
      const first = searchNodes(schemas.nodes, input).slice(0, 8).map((h) => h.schema.type);
      expect(first).toContain(input === "width" ? "EmptyLatent" : "KSampler");
    }
    const named = searchNodes(schemas.nodes, "image").map((h) => h.schema.type);
    expect(named.indexOf("LoadImage")).toBeLessThan(named.indexOf("ApplyControlNet"));
  });
});
