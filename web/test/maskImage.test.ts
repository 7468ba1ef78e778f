/** The mask editor's pixel logic (editor/maskImage.ts): alpha ↔ mask, the brush, naming, the PNG it uploads. */
import { inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  BRUSH_MAX,
  BRUSH_MIN,
  clearMask,
  hexColor,
  invertMask,
  maskFileName,
  maskFromAlpha,
  maskIsEmpty,
  nextBrushSize,
  overlayPixels,
  paintStroke,
  withMaskAsAlpha,
} from "../src/editor/maskImage";
import { crc32, encodePng } from "../src/graph/png";
import { unfilterRows } from "../src/graph/pngDecode";
import { maskEditableInputs } from "../src/schema/widgets";
import { realSchemas } from "./helpers";

/** A width × height RGBA image whose pixel i is (i, 2i, 3i, alpha(i)) (mod 256). */
function image(width: number, height: number, alpha: (i: number) => number = () => 255): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) rgba.set([i & 255, (2 * i) & 255, (3 * i) & 255, alpha(i)], i * 4);
  return rgba;
}

/** The painted pixels of a mask as "x,y" strings. */
function painted(mask: Uint8Array, width: number): string[] {
  return [...mask].flatMap((value, i) => (value ? [`${i % width},${Math.floor(i / width)}`] : []));
}

describe("alpha and mask (LoadImage's convention: MASK = 1 − alpha)", () => {
  it("starts from the image's transparency, and an opaque image has an empty mask", () => {
    expect([...maskFromAlpha(image(2, 2, (i) => [255, 0, 128, 255][i]))]).toEqual([0, 255, 127, 0]);
    expect(maskIsEmpty(maskFromAlpha(image(3, 3)))).toBe(true);
  });

  it("saves the original RGB with alpha = 255 − mask, painted pixels fully transparent", () => {
    const rgba = image(2, 2);
    const out = withMaskAsAlpha(rgba, new Uint8Array([255, 0, 0, 255]));
    expect([...out]).toEqual([0, 0, 0, 0, 1, 2, 3, 255, 2, 4, 6, 255, 3, 6, 9, 0]);
    expect(rgba[3]).toBe(255);                      // the input is not changed
    expect(() => withMaskAsAlpha(rgba, new Uint8Array(3))).toThrow(/3 pixels, the image 4/);
  });

  it("round-trips: the saved image's alpha gives the painted mask back", () => {
    const mask = new Uint8Array([0, 255, 255, 0, 0, 255]);
    expect([...maskFromAlpha(withMaskAsAlpha(image(3, 2), mask))]).toEqual([...mask]);
  });

  it("inverts and clears into new arrays (the old mask is the undo step)", () => {
    const mask = new Uint8Array([0, 255, 100]);
    expect([...invertMask(mask)]).toEqual([255, 0, 155]);
    expect([...mask]).toEqual([0, 255, 100]);
    expect(maskIsEmpty(clearMask(4))).toBe(true);
  });
});

describe("the brush", () => {
  it("paints a round dot for a click", () => {
    const mask = new Uint8Array(25);
    paintStroke(mask, 5, 5, [2.5, 2.5], [2.5, 2.5], 2, 255);   // radius 1: the corners (1.41 away) stay out
    expect(painted(mask, 5).sort()).toEqual(["1,2", "2,1", "2,2", "2,3", "3,2"]);
  });

  it("covers the whole segment between two pointer positions, clipped to the image", () => {
    const mask = new Uint8Array(10 * 4);
    paintStroke(mask, 10, 4, [-3, 1.5], [20, 1.5], 1, 255);
    expect(painted(mask, 10)).toEqual(Array.from({ length: 10 }, (_, x) => `${x},1`));
  });

  it("erases with value 0", () => {
    const mask = new Uint8Array(9).fill(255);
    paintStroke(mask, 3, 3, [0.5, 0.5], [2.5, 2.5], 1, 0);
    expect([...mask]).toEqual([0, 255, 255, 255, 0, 255, 255, 255, 0]);
  });

  it("[ and ] step the size by about 20 %, inside its limits", () => {
    expect(nextBrushSize(20, 1)).toBe(24);
    expect(nextBrushSize(20, -1)).toBe(16);
    expect(nextBrushSize(2, 1)).toBe(3);
    expect(nextBrushSize(BRUSH_MIN, -1)).toBe(BRUSH_MIN);
    expect(nextBrushSize(BRUSH_MAX, 1)).toBe(BRUSH_MAX);
  });
});

describe("naming and overlay", () => {
  it("names the upload <stem>_mask.png", () => {
    expect(maskFileName("photo.jpg")).toBe("photo_mask.png");
    expect(maskFileName("clipspace/a.b.png")).toBe("a.b_mask.png");
    expect(maskFileName("photo_mask.png")).toBe("photo_mask.png");
    expect(maskFileName(".png")).toBe("image_mask.png");
  });

  it("draws the mask as a translucent colour", () => {
    expect([...overlayPixels(new Uint8Array([0, 255]), [10, 20, 30], 0.5)]).toEqual([10, 20, 30, 0, 10, 20, 30, 128]);
    expect(hexColor("#ff8000")).toEqual([255, 128, 0]);
    expect(hexColor("red")).toEqual([255, 0, 0]);
  });
});

describe("the PNG it uploads", () => {
  it("has the standard CRC-32", () => {
    expect(crc32(new TextEncoder().encode("IEND"))).toBe(0xae426082);
  });

  it("is an 8-bit RGBA PNG whose (filtered) rows hold the pixels exactly, transparent ones keeping their RGB", async () => {
    const rgba = withMaskAsAlpha(image(3, 2), new Uint8Array([255, 0, 0, 0, 0, 255]));
    const png = await encodePng(3, 2, rgba);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const view = new DataView(png.buffer, png.byteOffset);
    expect(new TextDecoder().decode(png.subarray(12, 16))).toBe("IHDR");
    expect([view.getUint32(16), view.getUint32(20), png[24], png[25]]).toEqual([3, 2, 8, 6]);
    expect(view.getUint32(29)).toBe(crc32(png.subarray(12, 29)));
    const idatLength = view.getUint32(33);
    expect(new TextDecoder().decode(png.subarray(37, 41))).toBe("IDAT");
    const rows = inflateSync(png.subarray(41, 41 + idatLength));
    expect(rows.length).toBe(2 * (1 + 3 * 4));   // each row: its filter type byte, then its 3 pixels filtered
    expect([...unfilterRows(rows, 2, 12, 4)]).toEqual([...rgba]);
    expect(new TextDecoder().decode(png.subarray(png.length - 8, png.length - 4))).toBe("IEND");
    await expect(encodePng(2, 2, rgba)).rejects.toThrow(/not 2×2/);
  });
});

describe("which inputs offer Edit mask…", () => {
  it("LoadImage's image once it names a file; not a link, not an empty name, not other nodes' inputs", () => {
    const nodes = realSchemas().nodes;
    const loadImage = nodes.LoadImage.inputs;
    expect(maskEditableInputs(loadImage, { image: "photo.png" })).toEqual([{ input: "image", file: "photo.png" }]);
    expect(maskEditableInputs(loadImage, { image: "" })).toEqual([]);
    expect(maskEditableInputs(loadImage, { image: { node: "a", output: "text" } })).toEqual([]);
    expect(maskEditableInputs(nodes.KSampler.inputs, { seed: 1 })).toEqual([]);
    const audio = { port: "STRING", widget: { kind: "text", upload: "audio" } } as never;
    expect(maskEditableInputs({ file: audio }, { file: "take.wav" })).toEqual([]);   // an upload, not an image
  });

  it("a one-line STRING input named mask counts (the upload rule's second case)", () => {
    const spec = { port: "STRING", widget: { kind: "text", multiline: false } } as never;
    expect(maskEditableInputs({ mask: spec, prompt: spec }, { mask: "m.png", prompt: "p.png" })).toEqual([{ input: "mask", file: "m.png" }]);
  });
});
