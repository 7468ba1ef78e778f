import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { PngError, graphFromPng, imageKind, isPng, readPngTextChunks } from "../src/graph/png";
import { buildPng, chunk, concat, latin1, tEXt, utf8 } from "./pngFixture";

const graph = { format_version: 1, metadata: { title: "Ünïcode ✓" }, nodes: { a: { type: "Int", inputs: { value: 5 } } } };
const text = JSON.stringify(graph);

const zTXt = (keyword: string, value: string) =>
  chunk("zTXt", concat(latin1(keyword), new Uint8Array([0, 0]), new Uint8Array(deflateSync(Buffer.from(latin1(value))))));
const iTXt = (keyword: string, value: string, compressed: boolean) =>
  chunk(
    "iTXt",
    concat(
      latin1(keyword),
      new Uint8Array([0, compressed ? 1 : 0, 0]),
      latin1("en"),
      new Uint8Array([0]),
      utf8("Graph"),
      new Uint8Array([0]),
      compressed ? new Uint8Array(deflateSync(Buffer.from(utf8(value)))) : utf8(value),
    ),
  );

describe("image kinds", () => {
  it("names the image formats a user might open by mistake, and nothing else", () => {
    const bytes = (...values: number[]) => new Uint8Array([...values, ...new Array(16).fill(0)]);
    const ascii = (text: string) => Array.from(text).map((c) => c.charCodeAt(0));
    expect(imageKind(bytes(0xff, 0xd8, 0xff, 0xe0))).toBe("JPEG");
    expect(imageKind(bytes(...ascii("GIF89a")))).toBe("GIF");
    expect(imageKind(bytes(...ascii("RIFF"), 1, 2, 3, 4, ...ascii("WEBP")))).toBe("WebP");
    expect(imageKind(bytes(0x49, 0x49, 0x2a, 0x00))).toBe("TIFF");
    expect(imageKind(bytes(0x4d, 0x4d, 0x00, 0x2a))).toBe("TIFF");
    expect(imageKind(bytes(...ascii("BM")))).toBe("BMP");
    expect(imageKind(new Uint8Array(ascii('{"format_version": 2}')))).toBeNull();
    expect(imageKind(new Uint8Array(ascii("this is not json")))).toBeNull();
  });
});

describe("PNG text chunks", () => {
  it("reads the graph from an uncompressed iTXt chunk (UTF-8)", async () => {
    const png = buildPng(tEXt("Software", "nodegraph"), iTXt("nodegraph", text, false));
    expect(isPng(png)).toBe(true);
    expect(await graphFromPng(png)).toEqual(graph);
  });

  it("reads the graph from a compressed iTXt chunk", async () => {
    expect(await graphFromPng(buildPng(iTXt("nodegraph", text, true)))).toEqual(graph);
  });

  it("reads tEXt and zTXt chunks (Latin-1)", async () => {
    const ascii = JSON.stringify({ format_version: 1, nodes: {} });
    expect(await graphFromPng(buildPng(tEXt("nodegraph", ascii)))).toEqual({ format_version: 1, nodes: {} });
    expect(await graphFromPng(buildPng(zTXt("nodegraph", ascii)))).toEqual({ format_version: 1, nodes: {} });
  });

  it("lists every text chunk in order", async () => {
    const chunks = await readPngTextChunks(buildPng(tEXt("a", "1"), zTXt("b", "2"), iTXt("c", "3 ✓", true)));
    expect(chunks).toEqual([
      { keyword: "a", text: "1" },
      { keyword: "b", text: "2" },
      { keyword: "c", text: "3 ✓" },
    ]);
  });

  it("explains a PNG without a graph, a non-PNG and a truncated file", async () => {
    await expect(graphFromPng(buildPng(tEXt("Software", "x")))).rejects.toThrow(/no "nodegraph" text chunk/);
    await expect(graphFromPng(utf8("{}"))).rejects.toThrow(PngError);
    const png = buildPng(iTXt("nodegraph", text, false));
    await expect(graphFromPng(png.subarray(0, 60))).rejects.toThrow(/truncated/);
    await expect(graphFromPng(buildPng(tEXt("nodegraph", "{not json")))).rejects.toThrow(/not JSON/);
  });

  it("gives ComfyUI's workflow chunk (else its prompt chunk) when there is no nodegraph chunk, so it can be imported", async () => {
    // the workflow first, as ComfyUI opens its PNGs: the prompt has no layout, groups or titles (a ComfyUI user's pass)
    const prompt = { "3": { class_type: "KSampler", inputs: { seed: 5 } } };
    const workflow = { nodes: [], links: [] };
    const both = buildPng(tEXt("prompt", JSON.stringify(prompt)), tEXt("workflow", JSON.stringify(workflow)));
    expect(await graphFromPng(both)).toEqual(workflow);
    expect(await graphFromPng(buildPng(tEXt("prompt", JSON.stringify(prompt)), tEXt("workflow", "{broken")))).toEqual(prompt);
    expect(await graphFromPng(buildPng(tEXt("prompt", JSON.stringify(prompt))))).toEqual(prompt);
    expect(await graphFromPng(buildPng(tEXt("workflow", JSON.stringify(workflow))))).toEqual(workflow);
    expect(await graphFromPng(buildPng(tEXt("prompt", "{}"), iTXt("nodegraph", text, false)))).toEqual(graph); // ours first
    await expect(graphFromPng(buildPng(tEXt("Software", "x")))).rejects.toThrow(/nor ComfyUI's "prompt" or "workflow"/);
    expect(await graphFromPng(buildPng(tEXt("parameters", "x")))).toEqual({ parameters: "x" }); // A1111's: a1111Png.test
  });

  it("keeps a seed beyond 2^53 exact and refuses a graph nested too deeply", async () => {
    const big = '{"format_version": 2, "nodes": {"k": {"type": "KSampler", "inputs": {"seed": 18446744073709551615}}}}';
    const read = (await graphFromPng(buildPng(tEXt("nodegraph", big)))) as { nodes: { k: { inputs: { seed: unknown } } } };
    expect(read.nodes.k.inputs.seed).toBe(2n ** 64n - 1n);
    const deep = `{"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": ${"[".repeat(100_000)}${"]".repeat(100_000)}}}}}`;
    await expect(graphFromPng(buildPng(zTXt("nodegraph", deep)))).rejects.toThrow(/"nodegraph" chunk: the JSON is nested too deeply/);
  });
});
