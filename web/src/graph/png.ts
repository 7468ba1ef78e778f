/**
 * Reading text chunks from PNG files, to load the graph that `SaveImage`
 * embeds (keyword `nodegraph`) when an image is dropped on the editor.
 *
 * PNG layout (RFC 2083 / ISO 15948): an 8-byte signature, then chunks of
 * `[uint32 BE length][4-byte type][data][uint32 CRC]`. Text chunks:
 *   tEXt  keyword \0 Latin-1 text
 *   zTXt  keyword \0 method(0) zlib(Latin-1 text)
 *   iTXt  keyword \0 compressed-flag method language \0 translated-keyword \0 UTF-8 text
 *         (zlib-compressed when the flag is 1)
 * Decompression uses the platform's DecompressionStream("deflate") (zlib format).
 *
 * ComfyUI writes its own chunks: `prompt` (the API-format prompt that ran) and `workflow`
 * (the UI-format workflow). A PNG without a `nodegraph` chunk gives the first of those
 * instead, so the editor can import it (state/app.ts: the server's `import_graph`).
 * The JSON is read with exact integers and a depth limit (graph/exactJson.ts).
 *
 * Writing: `encodePng(width, height, rgba)` (one IDAT, zlib by the platform's CompressionStream), `pngChunk`,
 * `crc32` — for the mask editor, whose pixels under alpha 0 must keep their colour (a canvas's toBlob
 * premultiplies them to black). Each row is filtered (`filterRows`: None, Sub, Up, Average or Paeth, the one
 * whose bytes have the smallest sum of absolute values as signed bytes — libpng's heuristic): unfiltered, a
 * 12 MP photo's mask was 22-38 MiB, past the server's 16 MiB upload limit. CompressionStream takes no level
 * (browsers use zlib's default, 6). Reading the pixels back: graph/pngDecode.ts.
 */
import { JsonDepthError, parseJson } from "./exactJson";

export const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
export const GRAPH_KEYWORD = "nodegraph";
/** ComfyUI's chunks, in the order they are tried when a PNG has no `nodegraph` chunk (`graphFromPng`). */
export const COMFYUI_KEYWORDS = ["workflow", "prompt"];
export const A1111_KEYWORD = "parameters"; // AUTOMATIC1111 WebUI's generation parameters ("PNG Info")

export class PngError extends Error {}

export interface TextChunk {
  keyword: string;
  text: string;
}

/** The kind of a non-PNG image file by its first bytes (JPEG, GIF, WebP, TIFF, BMP), else null. */
export function imageKind(bytes: Uint8Array): string | null {
  const starts = (...values: number[]) => values.every((v, i) => bytes[i] === v);
  const text = (from: number, word: string) => Array.from(word).every((c, i) => bytes[from + i] === c.charCodeAt(0));
  if (starts(0xff, 0xd8, 0xff)) return "JPEG";
  if (text(0, "GIF8")) return "GIF";
  if (text(0, "RIFF") && text(8, "WEBP")) return "WebP";
  if (starts(0x49, 0x49, 0x2a, 0x00) || starts(0x4d, 0x4d, 0x00, 0x2a)) return "TIFF";
  if (text(0, "BM") && bytes.length > 14) return "BMP";
  return null;
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

/** zlib-decompress (RFC 1950) with the platform's DecompressionStream. */
export async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });

function nullAt(data: Uint8Array, from: number): number {
  const index = data.indexOf(0, from);
  if (index < 0) throw new PngError("malformed text chunk: a separator is missing");
  return index;
}

/** Every tEXt, zTXt and iTXt chunk of a PNG file, in file order. */
export async function readPngTextChunks(bytes: Uint8Array): Promise<TextChunk[]> {
  if (!isPng(bytes)) throw new PngError("not a PNG file (the signature does not match)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: TextChunk[] = [];
  let offset = 8;
  while (offset + 12 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    const start = offset + 8;
    const end = start + length;
    if (end + 4 > bytes.length) throw new PngError(`truncated PNG: chunk ${type} runs past the end of the file`);
    const data = bytes.subarray(start, end);
    if (type === "tEXt") {
      const sep = nullAt(data, 0);
      chunks.push({ keyword: latin1.decode(data.subarray(0, sep)), text: latin1.decode(data.subarray(sep + 1)) });
    } else if (type === "zTXt") {
      const sep = nullAt(data, 0);
      const text = latin1.decode(await inflate(data.subarray(sep + 2)));
      chunks.push({ keyword: latin1.decode(data.subarray(0, sep)), text });
    } else if (type === "iTXt") {
      const sep = nullAt(data, 0);
      const compressed = data[sep + 1] === 1;
      const languageEnd = nullAt(data, sep + 3);
      const translatedEnd = nullAt(data, languageEnd + 1);
      const body = data.subarray(translatedEnd + 1);
      const text = utf8.decode(compressed ? await inflate(body) : body);
      chunks.push({ keyword: latin1.decode(data.subarray(0, sep)), text });
    }
    if (type === "IEND") break;
    offset = end + 4;
  }
  return chunks;
}

/**
 * The graph JSON embedded in a PNG: its `nodegraph` chunk, else ComfyUI's `workflow` chunk, else its `prompt`
 * chunk (parsed JSON; the caller imports those); PngError when there is none. The workflow first, as ComfyUI
 * opens its PNGs: it keeps the layout, groups and titles the API prompt has none of (every ComfyUI PNG carries
 * both; a workflow chunk that is not JSON falls back to the prompt).
 */
export async function graphFromPng(bytes: Uint8Array): Promise<unknown> {
  const chunks = await readPngTextChunks(bytes);
  let chunk = [GRAPH_KEYWORD, ...COMFYUI_KEYWORDS].map((k) => chunks.find((c) => c.keyword === k)).find(Boolean);
  const prompt = chunks.find((c) => c.keyword === "prompt");
  if (chunk?.keyword === "workflow" && prompt) {
    try {
      return parseJson(chunk.text);
    } catch {
      chunk = prompt; // a damaged workflow chunk beside a prompt: the prompt
    }
  }
  if (!chunk) {
    // AUTOMATIC1111's "PNG Info": the server makes a text-to-image graph of it (nodegraph/a1111.py; foreign.ts)
    const parameters = chunks.find((c) => c.keyword === A1111_KEYWORD);
    if (parameters && parameters.text.trim()) return { parameters: parameters.text };
    throw new PngError(
      `this PNG has no "${GRAPH_KEYWORD}" text chunk (nor ComfyUI's "prompt" or "workflow", nor AUTOMATIC1111's "parameters"): it was not saved by nodegraph's SaveImage, ComfyUI or AUTOMATIC1111`,
    );
  }
  try {
    return parseJson(chunk.text);
  } catch (error) {
    const what = error instanceof JsonDepthError ? ":" : " is not JSON:";
    throw new PngError(`the PNG's "${chunk.keyword}" chunk${what} ${(error as Error).message}`);
  }
}

// --- writing (the mask editor's PNGs: a canvas would premultiply, blackening the colour under alpha 0) ---

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The CRC-32 of PNG chunks (ISO 3309), over `bytes`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** zlib-compress (RFC 1950, what PNG's IDAT holds) with the platform's CompressionStream. */
async function zlib(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The five PNG row filters (ISO 15948 §9.2), by their type byte. */
export const FILTER_NONE = 0;
export const FILTER_SUB = 1;
export const FILTER_UP = 2;
export const FILTER_AVERAGE = 3;
export const FILTER_PAETH = 4;

/** The Paeth predictor (ISO 15948 §9.4): of left `a`, above `b`, upper-left `c`, the one nearest a + b − c. */
export function paethPredictor(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Filter one row with filter `type` into `out` (row.length bytes): each byte minus its prediction from the byte
 * `bpp` to the left, the byte above (in `prior`, the previous row unfiltered; zeros for the first row) or both.
 * One loop a type, not a test a byte: a 12 MP image is 48 M bytes, each filtered five times.
 */
export function filterRow(type: number, row: Uint8Array, prior: Uint8Array, bpp: number, out: Uint8Array): void {
  const n = row.length;
  const head = Math.min(bpp, n);   // the first pixel has no left neighbour (0)
  switch (type) {
    case FILTER_SUB:
      out.set(row.subarray(0, head));
      for (let i = head; i < n; i++) out[i] = row[i] - row[i - bpp];
      break;
    case FILTER_UP:
      for (let i = 0; i < n; i++) out[i] = row[i] - prior[i];
      break;
    case FILTER_AVERAGE:
      for (let i = 0; i < head; i++) out[i] = row[i] - (prior[i] >> 1);
      for (let i = head; i < n; i++) out[i] = row[i] - ((row[i - bpp] + prior[i]) >> 1);
      break;
    case FILTER_PAETH:
      for (let i = 0; i < head; i++) out[i] = row[i] - prior[i];
      for (let i = head; i < n; i++) out[i] = row[i] - paethPredictor(row[i - bpp], prior[i], prior[i - bpp]);
      break;
    default:
      out.set(row);
  }
}

/** The sum of a filtered row's bytes read as signed (−128..127) magnitudes: smaller usually deflates smaller. */
function filteredCost(filtered: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < filtered.length; i++) sum += filtered[i] < 128 ? filtered[i] : 256 - filtered[i];
  return sum;
}

/**
 * The scanlines of an image, `height` rows of `rowBytes` bytes (`bpp` bytes a pixel), as IDAT holds them before
 * deflate: each row its filter type byte then the row filtered with the filter of least `filteredCost`.
 */
export function filterRows(pixels: Uint8Array, height: number, rowBytes: number, bpp: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(height * (rowBytes + 1));
  const candidates = [0, 1, 2, 3, 4].map(() => new Uint8Array(rowBytes));
  let prior: Uint8Array = new Uint8Array(rowBytes);
  for (let y = 0; y < height; y++) {
    const row = pixels.subarray(y * rowBytes, (y + 1) * rowBytes);
    let best = FILTER_NONE;
    let bestCost = Infinity;
    for (let type = FILTER_NONE; type <= FILTER_PAETH; type++) {
      filterRow(type, row, prior, bpp, candidates[type]);
      const cost = filteredCost(candidates[type]);
      if (cost < bestCost) [best, bestCost] = [type, cost];
    }
    out[y * (rowBytes + 1)] = best;
    out.set(candidates[best], y * (rowBytes + 1) + 1);
    prior = row;
  }
  return out;
}

/** An 8-bit RGBA PNG of `rgba` (width × height, straight alpha), each row with its best filter (`filterRows`). */
export async function encodePng(width: number, height: number, rgba: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  if (rgba.length !== width * height * 4) throw new Error(`${rgba.length} bytes are not ${width}×${height} RGBA pixels`);
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 6, 0, 0, 0], 8);   // 8 bits per channel, RGBA, deflate, adaptive filtering, no interlace
  const rows = filterRows(rgba, height, width * 4, 4);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", header),
    pngChunk("IDAT", await zlib(rows)),
    pngChunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
