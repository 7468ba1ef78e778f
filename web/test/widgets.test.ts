import { describe, expect, it } from "vitest";
import { paletteGroups } from "../src/schema/palette";
import { uniqueSchemas, type InputSpec } from "../src/schema/types";
import {
  isImageUploadInput,
  parseNumber,
  randomSeed,
  UPLOAD_ACCEPT,
  uploadedFileId,
  uploadKindOf,
  uploadPreview,
  widgetFor,
} from "../src/schema/widgets";
import { realSchemas } from "./helpers";

const { nodes } = realSchemas();

const spec = (over: Partial<InputSpec>): InputSpec => ({ port: "STRING", required: false, widget: { kind: "text" }, schema: {}, ...over });

describe("widgets from schemas", () => {
  it("maps the real primitive schemas", () => {
    expect(widgetFor("value", nodes.Int.inputs.value)).toMatchObject({ kind: "number", integer: true, step: 1 });
    expect(widgetFor("value", nodes.Float.inputs.value)).toMatchObject({ kind: "number", integer: false, step: 0.01, min: -1e300 });
    expect(widgetFor("op", nodes.Compare.inputs.op)).toEqual({ kind: "choice", choices: ["==", "!=", "<", "<=", ">", ">="] });
    expect(widgetFor("template", nodes.FormatText.inputs.template)).toEqual({ kind: "text", multiline: true });
    expect(widgetFor("value", nodes.Boolean.inputs.value)).toEqual({ kind: "toggle" });
    expect(widgetFor("value", nodes.ShowValue.inputs.value)).toEqual({ kind: "link" });
  });

  it("maps seeds and model files", () => {
    expect(widgetFor("seed", spec({ port: "INT", widget: { kind: "seed", seed: true }, schema: { minimum: 0, maximum: 2 ** 64 - 1 } })))
      .toEqual({ kind: "seed", min: 0, max: 2 ** 64 }); // 2^64−1 arrives rounded; parseNumber reads it back exactly
    expect(widgetFor("ckpt", spec({ widget: { kind: "model_file", model_folder: "checkpoints" }, model_folder: "checkpoints" })))
      .toEqual({ kind: "model_file", folder: "checkpoints" });
  });

  it("detects image upload inputs by the one heuristic", () => {
    expect(isImageUploadInput("image", spec({}))).toBe("image");
    expect(isImageUploadInput("mask", spec({}))).toBe("mask");
    expect(isImageUploadInput("image", spec({ widget: { kind: "text", multiline: true } }))).toBeNull();
    expect(isImageUploadInput("prompt", spec({}))).toBeNull();
    expect(isImageUploadInput("picture", spec({ widget: { kind: "model_file" } }))).toBe("image");
    expect(isImageUploadInput("ckpt", spec({ widget: { kind: "model_file" }, model_folder: "checkpoints" }))).toBeNull();
    expect(isImageUploadInput("x", spec({ widget: { kind: "text", upload: "image" } }))).toBe("image");
    expect(widgetFor("image", spec({}))).toEqual({ kind: "file_upload", uploadKind: "image" });
    expect(uploadedFileId("cat.png")).toBe("input/cat.png");
    expect(uploadedFileId("")).toBeNull();
    // among the real nodes, exactly LoadImage.image takes an upload
    const uploads = uniqueSchemas(nodes).flatMap((node) =>
      Object.entries(node.inputs).filter(([name, input]) => isImageUploadInput(name, input)).map(([name]) => `${node.type}.${name}`));
    expect(uploads).toEqual(["LoadImage.image"]);
    expect(widgetFor("image", nodes.LoadImage.inputs.image)).toEqual({ kind: "file_upload", uploadKind: "image" });
  });

  it("gives media inputs an upload of their kind, a picker for their formats and a player", () => {
    const media = (upload: string) => spec({ widget: { kind: "upload", upload } });
    for (const kind of ["audio", "video", "mesh", "pointcloud"] as const) {
      expect(uploadKindOf("file", media(kind))).toBe(kind);
      expect(widgetFor("file", media(kind))).toEqual({ kind: "file_upload", uploadKind: kind });
      expect(isImageUploadInput("file", media(kind))).toBeNull();   // not an image: no <img> preview
    }
    expect(uploadKindOf("file", media("pdf"))).toBe("image");      // an unknown hint: the widget kind decides
    expect(UPLOAD_ACCEPT.audio).toContain(".flac");
    expect(UPLOAD_ACCEPT.mesh).toBe(".glb,.ply,.obj");
    expect(uploadPreview("audio", "a.wav")).toBe("audio");
    expect(uploadPreview("video", "clip.mp4")).toBe("video");
    expect(uploadPreview("video", "blink.GIF")).toBe("image");
    expect(uploadPreview("mesh", "tri.obj")).toBeNull();
    expect(uploadPreview("mask", "m.png")).toBe("image");
  });

  it("parses numbers strictly within bounds", () => {
    const int = { integer: true, min: 0, max: 10 };
    expect(parseNumber("7", int)).toEqual({ ok: true, value: 7 });
    expect(parseNumber("7.5", int)).toMatchObject({ ok: false, reason: "must be a whole number" });
    expect(parseNumber("11", int)).toMatchObject({ ok: false, reason: "must be ≤ 10" });
    expect(parseNumber("-1", int)).toMatchObject({ ok: false });
    expect(parseNumber("abc", int)).toMatchObject({ ok: false, reason: "not a number" });
    expect(parseNumber("", int)).toMatchObject({ ok: false });
    expect(parseNumber("1e2", { integer: false })).toEqual({ ok: true, value: 100 });
    expect(parseNumber(".5", { integer: false })).toEqual({ ok: true, value: 0.5 });
  });

  it("draws seeds within bounds", () => {
    for (const r of [0, 0.5, 0.999999]) {
      const seed = randomSeed(5, 9, () => r);
      expect(seed).toBeGreaterThanOrEqual(5);
      expect(seed).toBeLessThanOrEqual(9);
      expect(Number.isInteger(seed)).toBe(true);
    }
    expect(randomSeed(0, 2 ** 64, () => 0.999999)).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
  });
});

describe("palette", () => {
  it("groups by category and searches every word", () => {
    const groups = paletteGroups(nodes, "");
    expect(groups.map((g) => g.category)).toEqual([...groups.map((g) => g.category)].sort());
    expect(groups.find((g) => g.category === "primitives/math")!.nodes.map((n) => n.type)).toEqual(["Compare", "IntMath", "Math"]);
    const found = paletteGroups(nodes, "int math");
    expect(found.flatMap((g) => g.nodes.map((n) => n.type))).toEqual(["IntMath"]);
    expect(paletteGroups(nodes, "zzz")).toEqual([]);
  });
});
