import { describe, expect, it } from "vitest";
import { graphTextFromMedia, mediaKind } from "../src/graph/mediaGraph";
import { concat as cat } from "./pngFixture";

// A clip SaveVideo wrote carries its graph (nodegraph/media_graph.py reads the same fields); the editor's Load said
// "not valid JSON: Unexpected token '\x00'" for an MP4 and "not a graph" for a GIF (a media creator's pass).
const text = '{"format_version":2,"nodes":{}}';
const enc = (s: string) => new TextEncoder().encode(s);
const box = (kind: string, ...body: Uint8Array[]) => {
  const inner = cat(...body);
  const head = new Uint8Array(8);
  new DataView(head.buffer).setUint32(0, inner.length + 8);
  head.set(Uint8Array.from(kind, (c) => c.charCodeAt(0)), 4);
  return cat(head, inner);
};
const u32 = (n: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; };

function mp4(comment: string): Uint8Array {
  const data = box("data", u32(1), u32(0), enc(comment));
  return cat(box("ftyp", enc("isom"), u32(0)), box("moov", box("udta", box("meta", u32(0), box("ilst", box("\u00a9cmt", data))))));
}

// an EBML element with a 1-byte size (enough here): id bytes, size | 0x80, body
const ebml = (id: number[], ...body: Uint8Array[]) => { const inner = cat(...body); return cat(Uint8Array.from([...id, 0x80 | inner.length]), inner); };
const ebml8 = (id: number[], ...body: Uint8Array[]) => { // an 8-byte size for the big ones
  const inner = cat(...body);
  const size = new Uint8Array(8);
  size[0] = 0x01;
  new DataView(size.buffer).setUint32(4, inner.length);
  return cat(Uint8Array.from(id), size, inner);
};
function webm(comment: string): Uint8Array {
  const simple = ebml([0x67, 0xc8], ebml([0x45, 0xa3], enc("COMMENT")), ebml([0x44, 0x87], enc(comment)));
  return cat(ebml([0x1a, 0x45, 0xdf, 0xa3], enc("webm")), ebml8([0x18, 0x53, 0x80, 0x67], ebml8([0x12, 0x54, 0xc3, 0x67], ebml([0x73, 0x73], simple))));
}

function gif(comment: string | null): Uint8Array {
  const head = cat(enc("GIF89a"), Uint8Array.from([1, 0, 1, 0, 0, 0, 0]));
  const ext = comment === null ? new Uint8Array() : cat(Uint8Array.from([0x21, 0xfe, comment.length]), enc(comment), Uint8Array.from([0]));
  const image = Uint8Array.from([0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4c, 0x01, 0]);
  return cat(head, image, ext, Uint8Array.from([0x3b]));
}

describe("the graph a saved clip carries", () => {
  it("is read from an MP4, a WebM and a GIF", () => {
    expect(mediaKind(mp4(text))).toBe("MP4");
    expect(graphTextFromMedia(mp4(text))).toBe(text);
    expect(graphTextFromMedia(webm(text))).toBe(text);
    expect(graphTextFromMedia(gif(text))).toBe(text);
  });

  it("is null for a clip without one, a damaged one or another file", () => {
    expect(graphTextFromMedia(gif(null))).toBeNull();
    expect(graphTextFromMedia(mp4(text).subarray(0, 40))).toBeNull();
    expect(graphTextFromMedia(enc("{}"))).toBeNull();
    const looped = cat(box("ftyp", enc("isom")), Uint8Array.from([0, 0, 0, 0, 0x6d, 0x6f, 0x6f, 0x76])); // size 0: to the end
    expect(graphTextFromMedia(looped)).toBeNull();
  });

  it("reads a MOV's own comment box, VideoHelperSuite's wrapped workflow and a GIF's second comment (a re-test)", () => {
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint16(0, text.length);
    const mov = cat(box("ftyp", enc("qt  "), u32(0)), box("moov", box("udta", box("\u00a9cmt", head, enc(text)))));
    expect(graphTextFromMedia(mov)).toBe(text);
    const workflow = { nodes: [], links: [] };
    expect(JSON.parse(graphTextFromMedia(mp4(JSON.stringify({ prompt: "{}", workflow })))!)).toEqual(workflow);
    const gimp = cat(enc("GIF89a"), Uint8Array.from([1, 0, 1, 0, 0, 0, 0]), Uint8Array.from([0x21, 0xfe, 4]), enc("GIMP"),
      Uint8Array.from([0, 0x21, 0xfe, text.length]), enc(text), Uint8Array.from([0, 0x3b]));
    expect(graphTextFromMedia(gimp)).toBe(text);
  });
});

describe("a GIF comment cut into a million 1-byte sub-blocks (a hostile re-test)", () => {
  it("is read back in about its own size: one growing buffer, not one view per block (20 MB took 1.3 GB)", () => {
    const blocks = 1_000_000;
    const gif = new Uint8Array(15 + 2 * blocks + 2);
    gif.set([...enc("GIF89a"), 1, 0, 1, 0, 0, 0, 0, 0x21, 0xfe]);
    for (let i = 0; i < blocks; i++) gif.set([1, i === 0 ? 0x7b : 0x20], 15 + 2 * i); // "{" then spaces
    gif.set([0, 0x3b], 15 + 2 * blocks);
    const before = process.memoryUsage().heapTotal;
    const comment = graphTextFromMedia(gif);
    const grown = process.memoryUsage().heapTotal - before;
    expect(comment?.length).toBe(blocks);
    expect(comment?.startsWith("{ ")).toBe(true);
    expect(grown).toBeLessThan(32 * 1024 * 1024); // one view per block: about 150 MB more heap
  });
});
