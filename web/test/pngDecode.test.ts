/** Reading a PNG's pixels in the page (graph/pngDecode.ts) and the row filters the mask editor's PNGs use (graph/png.ts). */
import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { decodePng, unfilterRows, UnsupportedPngError } from "../src/graph/pngDecode";
import { encodePng, filterRows, FILTER_NONE, FILTER_PAETH, FILTER_SUB, FILTER_UP, PngError } from "../src/graph/png";
import { buildPng, chunk, concat } from "./pngFixture";
import { DECODE_FIXTURES, FIXTURE_SIZE } from "./pngDecodeFixtures";

const fromBase64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));

/** Deterministic pseudo-random bytes (a linear congruential generator: the tests need no seed library). */
function noise(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

/** A PNG of `width` × `height` with IHDR bytes `depthTypeInterlace` ([bit depth, colour type, interlace]) and scanlines `rows`. */
function rawPng(width: number, height: number, [depth, type, interlace]: number[], rows: Uint8Array, ...extra: Uint8Array[]): Uint8Array {
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([depth, type, 0, 0, interlace], 8);
  return concat(new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), ...extra,
    chunk("IDAT", new Uint8Array(deflateSync(Buffer.from(rows)))), chunk("IEND", new Uint8Array(0)));
}

describe("decodePng reads what Pillow reads", () => {
  it.each(DECODE_FIXTURES)("%s", async (_name, base64, expected) => {
    const image = await decodePng(fromBase64(base64));
    expect([image.width, image.height]).toEqual(FIXTURE_SIZE);
    expect([...image.rgba]).toEqual(expected);
  });

  it("keeps the colour under fully transparent pixels (a canvas reads them as black)", async () => {
    const fixture = DECODE_FIXTURES.find(([name]) => name.startsWith("PIL RGBA"))!;
    const { rgba } = await decodePng(fromBase64(fixture[1]));
    const hidden = [...Array(rgba.length / 4).keys()].filter((i) => rgba[i * 4 + 3] === 0);
    expect(hidden.length).toBeGreaterThan(3);
    expect(hidden.some((i) => rgba[i * 4] + rgba[i * 4 + 1] + rgba[i * 4 + 2] > 0)).toBe(true);
  });
});

describe("decodePng refuses what it does not read, saying why", () => {
  it("leaves an interlaced PNG and one with EXIF to the browser (UnsupportedPngError)", async () => {
    const interlaced = rawPng(1, 1, [8, 2, 1], new Uint8Array([0, 1, 2, 3]));
    await expect(decodePng(interlaced)).rejects.toThrow(UnsupportedPngError);
    await expect(decodePng(interlaced)).rejects.toThrow(/interlaced/);
    const withExif = rawPng(1, 1, [8, 2, 0], new Uint8Array([0, 1, 2, 3]), chunk("eXIf", new Uint8Array([77, 77, 0, 42])));
    await expect(decodePng(withExif)).rejects.toThrow(/EXIF/);
  });

  it("names a broken file's problem (PngError, not UnsupportedPngError)", async () => {
    const badFilter = rawPng(1, 1, [8, 2, 0], new Uint8Array([7, 1, 2, 3]));
    await expect(decodePng(badFilter)).rejects.toThrow(/row 0 has filter type 7/);
    const short = rawPng(2, 2, [8, 2, 0], new Uint8Array([0, 1, 2, 3]));
    await expect(decodePng(short)).rejects.toThrow(/short of the 14/);
    await expect(decodePng(rawPng(1, 1, [3, 2, 0], new Uint8Array(4)))).rejects.toThrow(/bit depth 3 is not allowed for colour type 2/);
    await expect(decodePng(new Uint8Array([1, 2, 3]))).rejects.toThrow(PngError);
    const noPalette = rawPng(1, 1, [8, 3, 0], new Uint8Array([0, 0]));
    await expect(decodePng(noPalette)).rejects.toThrow(/without a PLTE/);
    expect((await decodePng(buildPng())).rgba).toEqual(new Uint8ClampedArray([255, 0, 0, 255]));
  });
});

describe("row filters (the mask editor's PNGs: a 12 MP mask did not fit the upload limit unfiltered)", () => {
  it.each([1, 2, 3, 4, 8])("unfilterRows undoes filterRows, %i bytes a pixel", (bpp) => {
    const [rowBytes, height] = [bpp * 9, 6];
    const pixels = noise(rowBytes * height, bpp);
    const rows = filterRows(pixels, height, rowBytes, bpp);
    expect(rows.length).toBe(height * (rowBytes + 1));
    expect(unfilterRows(rows, height, rowBytes, bpp)).toEqual(pixels);
  });

  it("chooses each row's filter by the smallest sum of absolute differences", () => {
    const width = 16;
    const rowBytes = width * 4;
    const pixels = new Uint8Array(rowBytes * 4);
    for (let x = 0; x < width; x++) pixels.set([x * 10, x * 10, x * 10, 255], x * 4);   // a ramp: Sub makes it 10s
    pixels.set(pixels.subarray(0, rowBytes), rowBytes);                                // the same again: Up makes it 0s
    pixels.set(noise(rowBytes, 5), rowBytes * 2);
    pixels.fill(0, rowBytes * 3);                                                       // all zeros: None is already 0
    const rows = filterRows(pixels, 4, rowBytes, 4);
    const types = [0, 1, 2, 3].map((y) => rows[y * (rowBytes + 1)]);
    expect(types[0]).toBe(FILTER_SUB);
    expect(types[1]).toBe(FILTER_UP);
    expect(types[3]).toBe(FILTER_NONE);
    expect(types[2]).toBeLessThanOrEqual(FILTER_PAETH);
  });

  it("encodePng → decodePng gives the same straight RGBA back, RGB under alpha 0 included", async () => {
    const [width, height] = [37, 23];
    const rgba = noise(width * height * 4, 9);
    for (let i = 0; i < width * height; i += 3) rgba[i * 4 + 3] = 0;
    const image = await decodePng(await encodePng(width, height, rgba));
    expect([image.width, image.height]).toEqual([width, height]);
    expect(new Uint8Array(image.rgba.buffer)).toEqual(rgba);
  });

  it("makes a smooth image far smaller than unfiltered rows would be", async () => {
    const [width, height] = [256, 128];
    const rgba = new Uint8Array(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) rgba.set([x, (x + y) & 255, (x * y) >> 7, 255], (y * width + x) * 4);
    }
    const unfiltered = new Uint8Array(height * (width * 4 + 1));
    for (let y = 0; y < height; y++) unfiltered.set(rgba.subarray(y * width * 4, (y + 1) * width * 4), y * (width * 4 + 1) + 1);
    const png = await encodePng(width, height, rgba);
    expect(png.length).toBeLessThan(deflateSync(Buffer.from(unfiltered)).length / 2);
  });
});
