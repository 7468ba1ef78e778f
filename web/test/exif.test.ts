import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ExifError, graphFromExif, imageDescription, jpegExif, webpExif } from "../src/graph/exif";

/** Images written by SaveImage's own EXIF writer (nodes/image/nodes.py `exif_record`) through Pillow. */
const fixture = (name: string) => new Uint8Array(readFileSync(fileURLToPath(new URL(`fixtures/${name}`, import.meta.url))));

describe("graphs in JPEG and WebP EXIF", () => {
  it("reads the graph SaveImage wrote into a JPEG and a WebP, big seed exact and text as written", () => {
    for (const [name, kind] of [["saved.jpg", "JPEG"], ["saved.webp", "WebP"]] as const) {
      const graph = graphFromExif(fixture(name), kind) as { metadata: { title: string }; nodes: { k: { inputs: { seed: unknown } } } };
      expect(graph.metadata.title).toBe("Ünïcode ✓");
      expect(graph.nodes.k.inputs.seed).toBe(2n ** 64n - 1n);
    }
  });

  it("says why when the graph was left out, when there is no EXIF, and when the EXIF is a camera's", () => {
    expect(() => graphFromExif(fixture("omitted.jpg"), "JPEG")).toThrow(/left its graph out .*save the image as PNG/);
    expect(() => graphFromExif(fixture("plain.jpg"), "JPEG")).toThrow(/carries no graph: its EXIF has neither nodegraph's SaveImage record nor ComfyUI's/);
    expect(jpegExif(fixture("camera.jpg"))).not.toBeNull();
    expect(() => graphFromExif(fixture("camera.jpg"), "JPEG")).toThrow(/carries no graph/);
  });

  it("refuses damaged files with an ExifError, never reading past the end", () => {
    const jpeg = fixture("saved.jpg");
    for (let cut = 4; cut < 200; cut += 7) {
      expect(() => graphFromExif(jpeg.subarray(0, cut), "JPEG")).toThrow(ExifError);
    }
    const webp = fixture("saved.webp");
    expect(() => graphFromExif(webp.subarray(0, 60), "WebP")).toThrow(ExifError);
    const tiff = jpegExif(jpeg)!;
    const broken = tiff.slice();
    new DataView(broken.buffer).setUint32(4, 0xfffffff0, broken[0] === 0x49); // IFD 0 far past the end
    expect(() => imageDescription(broken)).toThrow(/first directory lies past the end/);
    const badOrder = tiff.slice();
    badOrder[0] = 0x58;
    expect(() => imageDescription(badOrder)).toThrow(/byte order/);
    expect(webpExif(new Uint8Array([...new TextEncoder().encode("RIFF"), 4, 0, 0, 0, ...new TextEncoder().encode("WEBP")]))).toBeNull();
  });

  it("says a graph record cut short is damaged (as the CLI does), not that there is none", () => {
    const text = '{"nodegraph": {"format_version": 2, "nod';
    const bytes = new TextEncoder().encode(text + "\0");
    const tiff = new Uint8Array(8 + 2 + 12 + 4 + bytes.length);
    const view = new DataView(tiff.buffer);
    tiff.set([0x49, 0x49, 42, 0]);
    view.setUint32(4, 8, true);
    view.setUint16(8, 1, true);
    view.setUint16(10, 0x010e, true);
    view.setUint16(12, 2, true);
    view.setUint32(14, bytes.length, true);
    view.setUint32(18, 26, true);
    tiff.set(bytes, 26);
    expect(imageDescription(tiff)).toBe(text);
    const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe1, 0, 0, ...[0x45, 0x78, 0x69, 0x66, 0, 0], ...tiff, 0xff, 0xd9]);
    new DataView(jpeg.buffer).setUint16(4, 2 + 6 + tiff.length);
    expect(() => graphFromExif(jpeg, "JPEG")).toThrow(/graph record is not valid JSON .*damaged or cut short/);
  });

  it("reads big-endian TIFF and a short inline description", () => {
    // MM, 42, IFD at 8; one entry: ImageDescription, ASCII, 4 bytes inline "{}\0\0"
    const tiff = new Uint8Array([0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x0e, 0, 2, 0, 0, 0, 3, 0x7b, 0x7d, 0, 0, 0, 0, 0, 0]);
    expect(imageDescription(tiff)).toBe("{}");
  });
});
