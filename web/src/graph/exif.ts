/**
 * Reading the graph a JPEG or WebP saved by SaveImage carries, for an image dropped on the editor
 * (the CLI's `nodegraph run image.jpg` reads the same: nodegraph/graph.py `graph_from_exif`).
 *
 * SaveImage writes EXIF with one tag, ImageDescription (0x010E), holding ASCII JSON
 * `{"nodegraph": graph, "nodegraph_run": record}` — or `{"nodegraph_run": ..., "graph_omitted": why}`
 * when the graph did not fit in the 64 KB an EXIF segment holds.
 *
 * ComfyUI's WebPs (SaveAnimatedWEBP, its video workflows) have no text chunks, so ComfyUI writes `prompt:<json>` in
 * Model (0x0110) and each extra_pnginfo entry as `<key>:<json>` from Make (0x010F) down — `workflow:<json>` in Make.
 * The editor opens the workflow (as a ComfyUI PNG's workflow chunk), else the prompt; the caller imports either
 * (`comfyuiTexts`; the CLI's reader is nodegraph/graph.py `comfyui_texts_from_exif`).
 *
 * Where the EXIF is:
 *   JPEG  segments `FF xx [uint16 BE length incl. itself][data]` after SOI (FF D8); APP1 (FF E1)
 *         starting "Exif\0\0" holds a TIFF structure; the scan (SOS, FF DA) ends the headers.
 *   WebP  a RIFF file: chunks `[4-char id][uint32 LE size][data, padded to even]` after "RIFF....WEBP";
 *         the "EXIF" chunk holds the TIFF structure (Pillow keeps its "Exif\0\0" prefix; others do not).
 *   TIFF  "II" (little-endian) or "MM" (big-endian), 42, the offset of IFD 0; an IFD is a uint16 count of
 *         12-byte entries `[tag u16][type u16][count u32][value, or its offset when over 4 bytes]`.
 * Every offset is checked against the data: a damaged file gives an ExifError, never a read past the end.
 */
import { JsonDepthError, parseJson } from "./exactJson";

export class ExifError extends Error {}

const IMAGE_DESCRIPTION = 0x010e;
const EXIF_PREFIX = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"

function startsWith(bytes: Uint8Array, prefix: number[], at = 0): boolean {
  return bytes.length >= at + prefix.length && prefix.every((b, i) => bytes[at + i] === b);
}

const ascii = (bytes: Uint8Array, from: number, length: number) => String.fromCharCode(...bytes.subarray(from, from + length));

/** The TIFF structure of a JPEG's Exif APP1 segment, or null when it has none. */
export function jpegExif(bytes: Uint8Array): Uint8Array | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 2; // after SOI
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) throw new ExifError("damaged JPEG: a segment marker is missing");
    const marker = bytes[offset + 1];
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return null; // the scan (or the end) starts: no more headers
    const length = view.getUint16(offset + 2);
    const end = offset + 2 + length;
    if (length < 2 || end > bytes.length) throw new ExifError("truncated JPEG: a segment runs past the end of the file");
    if (marker === 0xe1 && startsWith(bytes, EXIF_PREFIX, offset + 4)) return bytes.subarray(offset + 10, end);
    offset = end;
  }
  return null;
}

/** The TIFF structure of a WebP's EXIF chunk (its "Exif\0\0" prefix dropped), or null when it has none. */
export function webpExif(bytes: Uint8Array): Uint8Array | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 12; // after "RIFF" size "WEBP"
  while (offset + 8 <= bytes.length) {
    const id = ascii(bytes, offset, 4);
    const size = view.getUint32(offset + 4, true);
    const start = offset + 8;
    if (start + size > bytes.length) throw new ExifError(`truncated WebP: chunk ${id} runs past the end of the file`);
    if (id === "EXIF") {
      const data = bytes.subarray(start, start + size);
      return startsWith(data, EXIF_PREFIX) ? data.subarray(6) : data;
    }
    offset = start + size + (size % 2);
  }
  return null;
}

/** The ImageDescription text of IFD 0 of a TIFF structure, or null when the tag is absent. */
export function imageDescription(tiff: Uint8Array): string | null {
  return ifdTexts(tiff, (tag) => tag === IMAGE_DESCRIPTION).get(IMAGE_DESCRIPTION) ?? null;
}

const COMFYUI_MODEL = 0x0110; // "prompt:<json>"
const COMFYUI_LOWEST = 0x0100; // ComfyUI counts down from Make (0x010f), one tag per extra_pnginfo entry

/** ComfyUI's `prompt` and `workflow` JSON texts in IFD 0 (a WebP ComfyUI saved), by key; empty when neither is. */
export function comfyuiTexts(tiff: Uint8Array): { prompt?: string; workflow?: string } {
  const found: { prompt?: string; workflow?: string } = {};
  const texts = ifdTexts(tiff, (tag) => tag >= COMFYUI_LOWEST && tag <= COMFYUI_MODEL, true);
  for (const tag of [...texts.keys()].sort((a, b) => b - a)) {
    const text = texts.get(tag)!;
    const colon = text.indexOf(":");
    const key = text.slice(0, colon);
    if (colon > 0 && (key === "prompt" || key === "workflow") && found[key] === undefined) found[key] = text.slice(colon + 1);
  }
  return found;
}

/** The text values (ASCII or UNDEFINED) of the IFD 0 tags `wanted` picks, by tag; `utf8`: read as UTF-8 where they
 *  are (ComfyUI's JSON), else Latin-1 as written. */
function ifdTexts(tiff: Uint8Array, wanted: (tag: number) => boolean, utf8 = false): Map<number, string> {
  if (tiff.length < 8) throw new ExifError("damaged EXIF: too short for its header");
  const order = ascii(tiff, 0, 2);
  if (order !== "II" && order !== "MM") throw new ExifError("damaged EXIF: the byte order mark is neither II nor MM");
  const little = order === "II";
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const u16 = (at: number) => view.getUint16(at, little);
  const u32 = (at: number) => view.getUint32(at, little);
  const ifd = u32(4);
  if (ifd + 2 > tiff.length) throw new ExifError("damaged EXIF: its first directory lies past the end");
  const count = u16(ifd);
  const texts = new Map<number, string>();
  for (let k = 0; k < count; k++) {
    const entry = ifd + 2 + 12 * k;
    if (entry + 12 > tiff.length) throw new ExifError("damaged EXIF: a directory entry lies past the end");
    const tag = u16(entry);
    if (!wanted(tag) || texts.has(tag)) continue;
    const type = u16(entry + 2);
    if (type !== 2 && type !== 7) continue; // ASCII, or UNDEFINED bytes; anything else is no text
    const length = u32(entry + 4);
    const start = length <= 4 ? entry + 8 : u32(entry + 8);
    if (start + length > tiff.length) {
      throw new ExifError(`damaged EXIF: ${tag === IMAGE_DESCRIPTION ? "the image description" : `tag 0x${tag.toString(16)}`} runs past the end`);
    }
    const bytes = tiff.subarray(start, start + length);
    let text: string;
    try {
      text = new TextDecoder(utf8 ? "utf-8" : "latin1", { fatal: utf8 }).decode(bytes);
    } catch {
      text = new TextDecoder("latin1").decode(bytes);
    }
    if (text.endsWith("\0")) text = text.slice(0, -1);
    texts.set(tag, text);
  }
  return texts;
}

/** A ComfyUI WebP's workflow (as ComfyUI opens it: layout, groups, titles), else its prompt, parsed; null when the
 *  EXIF holds neither; ExifError when what it holds is not JSON. */
function comfyuiGraph(tiff: Uint8Array, kind: string): unknown {
  const { prompt, workflow } = comfyuiTexts(tiff);
  let failure: Error | null = null;
  for (const text of [workflow, prompt]) {
    if (text === undefined) continue;
    try {
      return parseJson(text);
    } catch (error) {
      failure = error as Error;
    }
  }
  if (failure) throw new ExifError(`this ${kind}'s ComfyUI workflow / prompt (its EXIF) is not JSON: ${failure.message}`);
  return null;
}

/**
 * The graph JSON embedded in a JPEG or WebP by SaveImage (exact integers, depth-limited, as for PNGs);
 * ExifError naming what is missing or damaged otherwise.
 */
export function graphFromExif(bytes: Uint8Array, kind: "JPEG" | "WebP"): unknown {
  const tiff = kind === "JPEG" ? jpegExif(bytes) : webpExif(bytes);
  const text = tiff ? imageDescription(tiff) : null;
  let record: unknown = null;
  if (text !== null) {
    try {
      record = parseJson(text);
    } catch (error) {
      if (error instanceof JsonDepthError) throw new ExifError(`the ${kind}'s image description: ${error.message}`);
      if (text.trimStart().startsWith('{"nodegraph')) {
        throw new ExifError(`this ${kind}'s graph record is not valid JSON (${(error as Error).message}); it was damaged or cut short`);
      }
      record = null; // a camera's or editor's description, not ours
    }
  }
  const fields = record && typeof record === "object" && !Array.isArray(record) ? (record as Record<string, unknown>) : {};
  const graph = fields.nodegraph;
  if (graph && typeof graph === "object" && !Array.isArray(graph)) return graph;
  if ("graph_omitted" in fields) {
    throw new ExifError(
      `this ${kind}'s record left its graph out (too large for EXIF); save the image as PNG to keep the graph, or open the graph file itself`,
    );
  }
  const comfyui = tiff ? comfyuiGraph(tiff, kind) : null;
  if (comfyui !== null) return comfyui;
  throw new ExifError(
    `this ${kind} carries no graph: its EXIF has neither nodegraph's SaveImage record nor ComfyUI's workflow / prompt ` +
      "(as its SaveAnimatedWEBP writes them); open the .json graph instead",
  );
}
