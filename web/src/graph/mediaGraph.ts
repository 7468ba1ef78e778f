/**
 * The graph a video or GIF saved by the video plugin's SaveVideo carries (nodegraph/media_graph.py, the same
 * rules): an MP4's "comment" metadata (`moov/udta/meta/ilst/©cmt/data`), a WebM / Matroska COMMENT tag
 * (`Segment/Tags/Tag/SimpleTag`), a GIF's comment extension — read by walking the container, never decoding a
 * frame, so a saved clip dropped on the editor opens as the graph that made it (as VideoHelperSuite's MP4s do
 * in ComfyUI). The audio and 3D plugins' files carry it too, read here as nodegraph/media_graph.py reads them:
 * SaveAudio's WAV in a LIST/INFO `ICMT` chunk, SaveMesh / SavePointCloud's GLB in its JSON chunk's
 * `asset.extras.nodegraph`, a PLY in a `comment nodegraph <json>` header line, an OBJ in a leading
 * `# nodegraph <json>` line (only the first MAX_HEADER_BYTES of a PLY / OBJ are looked at).
 *
 *   mediaKind(bytes)          "MP4" | "Matroska" | "GIF" | "WAV" | "GLB" | "PLY" | "OBJ" | null (by the first bytes)
 *   graphTextFromMedia(bytes) the embedded text, or null (no such field, damaged, or not these formats)
 */

import { parseJson, stringifyJson } from "./exactJson";

const MAX_STEPS = 100_000; // boxes / elements / blocks walked in one file
const MAX_COMMENT_BYTES = 64 * 1024 * 1024; // a graph is at most this (the server's limit)
// of a PLY header / an OBJ's leading comments looked at (the 3D plugin writes at most 60,000 bytes of them)
const MAX_HEADER_BYTES = 128 * 1024;

export type MediaKind = "MP4" | "Matroska" | "GIF" | "WAV" | "GLB" | "PLY" | "OBJ";

export function mediaKind(bytes: Uint8Array): MediaKind | null {
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes.length >= 8 && ascii(4, 8) === "ftyp") return "MP4";
  if (bytes.length >= 4 && bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) return "Matroska";
  if (bytes.length >= 6 && (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a")) return "GIF";
  if (bytes.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WAVE") return "WAV";
  if (bytes.length >= 4 && ascii(0, 4) === "glTF") return "GLB";
  if (ascii(0, 4) === "ply\n" || ascii(0, 5) === "ply\r\n") return "PLY";
  if (ascii(0, 12) === "# nodegraph ") return "OBJ"; // only an OBJ that carries a graph: others are plain text
  return null;
}

/** What an opened file of `kind` that carries no graph is told: which node saves that kind with its graph, and
 *  where the file goes instead as an input. */
export function noGraphText(kind: MediaKind): string {
  const saver = { MP4: "SaveVideo", Matroska: "SaveVideo", GIF: "SaveVideo", WAV: "SaveAudio", GLB: "SaveMesh or SavePointCloud",
    PLY: "SaveMesh or SavePointCloud", OBJ: "SaveMesh" }[kind];
  const loader = { MP4: "LoadVideo", Matroska: "LoadVideo", GIF: "LoadVideo", WAV: "LoadAudio", GLB: "LoadMesh",
    PLY: "LoadMesh or LoadPointCloud", OBJ: "LoadMesh" }[kind];
  const what = kind === "Matroska" ? "WebM / MKV" : kind;
  const field = kind === "WAV" ? "its comment chunk" : kind === "GLB" ? "asset.extras" : kind === "PLY" ? "a header comment" : "its comment field";
  return `this ${what} file carries no graph: only files saved by ${saver} do (${field}); to use it as an input, ` +
    `upload it with a ${loader} node's Upload`;
}

export function graphTextFromMedia(bytes: Uint8Array): string | null {
  let text: string | null;
  try {
    switch (mediaKind(bytes)) {
      case "MP4":
        text = mp4Comment(bytes) ?? quicktimeComment(bytes);
        break;
      case "Matroska":
        text = matroskaComment(bytes);
        break;
      case "GIF":
        text = gifComment(bytes);
        break;
      case "WAV":
        text = wavComment(bytes);
        break;
      case "GLB":
        text = gltfGraph(bytes);
        break;
      case "PLY":
        text = headerLine(bytes, "comment nodegraph ", "end_header");
        break;
      case "OBJ":
        text = headerLine(bytes, "# nodegraph ", null);
        break;
      default:
        return null;
    }
  } catch {
    return null; // truncated or damaged: no graph
  }
  return text === null ? null : unwrapped(text);
}

/** VideoHelperSuite's comment {"prompt": "<json>", "workflow": {...}} → the workflow's (else the prompt's) JSON, which
 *  the editor imports as a ComfyUI file; any other text as it is. */
function unwrapped(text: string): string {
  if (!text.includes('"workflow"') && !text.includes('"prompt"')) return text;
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    if (value === null || typeof value !== "object" || Array.isArray(value) || "format_version" in value) return text;
    const inner = value.workflow !== null && typeof value.workflow === "object" ? value.workflow : value.prompt;
    if (typeof inner === "string") return inner;
    if (inner !== null && typeof inner === "object") return JSON.stringify(inner);
  } catch {
    // not JSON: as it is
  }
  return text;
}

const utf8 = (bytes: Uint8Array) => new TextDecoder("utf-8", { fatal: true }).decode(bytes);

// --- MP4 boxes -----------------------------------------------------------------------------------------------

function findBox(bytes: Uint8Array, start: number, end: number, wanted: string, budget: { left: number }): [number, number] | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let position = start;
  while (position + 8 <= end) {
    if (--budget.left < 0) return null;
    let size = view.getUint32(position);
    const kind = String.fromCharCode(...bytes.subarray(position + 4, position + 8));
    let header = 8;
    if (size === 1) {
      size = Number(view.getBigUint64(position + 8));
      header = 16;
    } else if (size === 0) size = end - position;
    if (size < header || position + size > end) return null;
    if (kind === wanted) return [position + header, position + size];
    position += size;
  }
  return null;
}

function mp4Comment(bytes: Uint8Array): string | null {
  const budget = { left: MAX_STEPS };
  let here: [number, number] | null = [0, bytes.length];
  for (const [wanted, skip] of [["moov", 0], ["udta", 0], ["meta", 4], ["ilst", 0], ["\u00a9cmt", 0], ["data", 0]] as const) {
    here = findBox(bytes, here[0], here[1], wanted, budget);
    if (!here) return null;
    if (skip) here = [here[0] + skip, here[1]]; // `meta` is a full box: version and flags first
  }
  const [start, end] = here;
  if (end - start < 8) return null;
  const kind = new DataView(bytes.buffer, bytes.byteOffset + start, 4).getUint32(0) & 0xffffff;
  return kind === 1 ? utf8(bytes.subarray(start + 8, end)) : null; // type 1: UTF-8 text
}

/** A MOV's `moov/udta/©cmt`: a 16-bit length and a 16-bit language, then the text (QuickTime's own form). */
function quicktimeComment(bytes: Uint8Array): string | null {
  const budget = { left: MAX_STEPS };
  let here = findBox(bytes, 0, bytes.length, "moov", budget);
  here = here && findBox(bytes, here[0], here[1], "udta", budget);
  here = here && findBox(bytes, here[0], here[1], "\u00a9cmt", budget);
  if (!here || here[1] - here[0] < 4) return null;
  const length = (bytes[here[0]] << 8) | bytes[here[0] + 1];
  return utf8(bytes.subarray(here[0] + 4, Math.min(here[1], here[0] + 4 + length)));
}

// --- Matroska elements ---------------------------------------------------------------------------------------

const SEGMENT = 0x18538067;
const TAGS = 0x1254c367;
const TAG = 0x7373;
const SIMPLE_TAG = 0x67c8;
const TAG_NAME = 0x45a3;
const TAG_STRING = 0x4487;

function vint(bytes: Uint8Array, position: number, keepMarker: boolean): [number, number] {
  const first = bytes[position];
  let length = 0;
  for (let n = 1; n <= 8; n++) if (first & (0x80 >> (n - 1))) { length = n; break; }
  if (!length || position + length > bytes.length) throw new Error("not an EBML number");
  let value = keepMarker ? first : first & (0xff >> length);
  for (let i = 1; i < length; i++) value = value * 256 + bytes[position + i];
  return [value, length];
}

function* elements(bytes: Uint8Array, start: number, end: number, budget: { left: number }): Generator<[number, number, number]> {
  let position = start;
  while (position < end) {
    if (--budget.left < 0) return;
    const [id, idLength] = vint(bytes, position, true);
    const [size, sizeLength] = vint(bytes, position + idLength, false);
    const body = position + idLength + sizeLength;
    const unknown = size === 2 ** (7 * sizeLength) - 1; // all ones: "unknown size"
    const stop = unknown ? end : Math.min(end, body + size);
    yield [id, body, stop];
    position = stop;
  }
}

function matroskaComment(bytes: Uint8Array): string | null {
  const budget = { left: MAX_STEPS };
  for (const [id, start, end] of elements(bytes, 0, bytes.length, budget)) {
    if (id !== SEGMENT) continue;
    for (const [child, cStart, cEnd] of elements(bytes, start, end, budget)) {
      if (child !== TAGS) continue;
      for (const [tag, tStart, tEnd] of elements(bytes, cStart, cEnd, budget)) {
        if (tag !== TAG) continue;
        for (const [simple, sStart, sEnd] of elements(bytes, tStart, tEnd, budget)) {
          if (simple !== SIMPLE_TAG) continue;
          const fields = new Map<number, Uint8Array>();
          for (const [field, fStart, fEnd] of elements(bytes, sStart, sEnd, budget)) fields.set(field, bytes.subarray(fStart, fEnd));
          const name = fields.get(TAG_NAME);
          const text = fields.get(TAG_STRING);
          if (name && text && utf8(name).toUpperCase() === "COMMENT") return utf8(text);
        }
      }
    }
  }
  return null;
}

// --- GIF blocks ----------------------------------------------------------------------------------------------

/** A chain of GIF sub-blocks at `position`: their bytes only when `keep` (skipping an image's data or another
 *  extension collects nothing: 10 M two-byte blocks took 45× the file's size), and the position after it. The kept
 *  bytes are copied into one buffer that doubles as it fills, up to MAX_COMMENT_BYTES (plus the last block's 255):
 *  one view per block took 65× the file's size for a comment cut into millions of 1-byte blocks. */
function subBlocks(bytes: Uint8Array, position: number, keep: boolean): [Uint8Array, number] {
  let out: Uint8Array = new Uint8Array(keep ? 1024 : 0);
  let kept = 0;
  for (;;) {
    const size = bytes[position++];
    if (size === undefined) throw new Error("truncated");
    if (size === 0) break;
    if (keep && kept < MAX_COMMENT_BYTES) {
      const end = Math.min(position + size, bytes.length);
      if (kept + end - position > out.length) out = grown(out, kept, kept + end - position);
      for (let from = position; from < end; from++) out[kept++] = bytes[from]; // no view object per block
    }
    position += size;
  }
  return [out.subarray(0, kept), position];
}

/** `buffer`'s first `used` bytes in a buffer of at least `needed` bytes: double the size, so that n appends copy
 *  O(n) bytes in all, never more than the comment limit (plus one block) needs. */
function grown(buffer: Uint8Array, used: number, needed: number): Uint8Array {
  const larger = new Uint8Array(Math.max(needed, Math.min(buffer.length * 2, MAX_COMMENT_BYTES + 255)));
  larger.set(buffer.subarray(0, used));
  return larger;
}

function gifComment(bytes: Uint8Array): string | null {
  const flags = bytes[10];
  let position = 13 + (flags & 0x80 ? 3 * 2 ** ((flags & 7) + 1) : 0); // header, screen, global colours
  for (let step = 0; step < MAX_STEPS; step++) {
    const block = bytes[position];
    if (block === 0x21) {
      const label = bytes[position + 1];
      const [body, next] = subBlocks(bytes, position + 2, label === 0xfe);
      if (label === 0xfe) {
        // the first comment that is JSON (an image editor may have added "Created with GIMP" before it)
        try {
          const text = utf8(body);
          if (text.trimStart().startsWith("{")) return text;
        } catch {
          // not UTF-8: another comment
        }
      }
      position = next;
    } else if (block === 0x2c) {
      const local = bytes[position + 9];
      position += 10 + (local & 0x80 ? 3 * 2 ** ((local & 7) + 1) : 0) + 1; // descriptor, local colours, LZW size
      position = subBlocks(bytes, position, false)[1];
    } else return null; // the trailer (0x3b) or anything else
  }
  return null;
}

// --- WAV: RIFF chunks ----------------------------------------------------------------------------------------

const ascii4 = (bytes: Uint8Array, at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));

/** A WAV's LIST/INFO `ICMT` text (SaveAudio's graph), its trailing NULs dropped; chunks are skipped by their sizes
 *  (the sound itself is never copied), MAX_STEPS of them at most. */
function wavComment(bytes: Uint8Array): string | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  let position = 12;
  for (let step = 0; step < MAX_STEPS; step++) {
    if (position + 8 > end) return null;
    const size = view.getUint32(position + 4, true);
    const body = position + 8;
    const stop = Math.min(end, body + size);
    if (ascii4(bytes, position) === "LIST" && body + 4 <= end && ascii4(bytes, body) === "INFO") {
      let inner = body + 4;
      while (inner + 8 <= stop) {
        const length = view.getUint32(inner + 4, true);
        if (ascii4(bytes, inner) === "ICMT" && length <= MAX_COMMENT_BYTES) {
          let last = Math.min(stop, inner + 8 + length);
          while (last > inner + 8 && bytes[last - 1] === 0) last--;
          return utf8(bytes.subarray(inner + 8, last));
        }
        inner += 8 + length + (length % 2);
      }
    }
    position = body + size + (size % 2);
  }
  return null;
}

// --- glTF (GLB), PLY, OBJ: the 3D plugin's files -------------------------------------------------------------

/** A binary glTF's JSON chunk's `asset.extras.nodegraph` (a JSON object), as JSON text (large integers kept). */
function gltfGraph(bytes: Uint8Array): string | null {
  if (bytes.length < 20) return null;
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(12, true);
  if (ascii4(bytes, 16) !== "JSON" || length > MAX_COMMENT_BYTES) return null;
  const document = parseJson(utf8(bytes.subarray(20, 20 + length)));
  const field = (value: unknown, key: string): unknown =>
    value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
  const graph = field(field(field(document, "asset"), "extras"), "nodegraph");
  return graph !== null && typeof graph === "object" && !Array.isArray(graph) ? stringifyJson(graph) : null;
}

/** The rest of the first line starting with `prefix` in a file's first MAX_HEADER_BYTES: in a PLY header (before
 *  `stop`, end_header), or among an OBJ's leading `#` lines (`stop` null: the first other line ends them). */
function headerLine(bytes: Uint8Array, prefix: string, stop: string | null): string | null {
  const head = bytes.subarray(0, MAX_HEADER_BYTES);
  const marker = Uint8Array.from(prefix, (c) => c.charCodeAt(0));
  for (let start = 0; start <= head.length; ) {
    let end = head.indexOf(0x0a, start);
    if (end < 0) end = head.length;
    let last = end;
    if (last > start && head[last - 1] === 0x0d) last--; // a CRLF line
    const line = head.subarray(start, last);
    if (stop !== null ? isWord(line, stop) : line[0] !== 0x23) return null; // end_header, or an OBJ's first non-# line
    if (marker.every((byte, i) => line[i] === byte)) return utf8(line.subarray(marker.length));
    start = end + 1;
  }
  return null;
}

/** Whether `line` is `word` with only ASCII white space around it (Python's bytes.strip()). */
function isWord(line: Uint8Array, word: string): boolean {
  if (line.length > word.length + 256) return false; // a long line is no keyword (and is not copied)
  return String.fromCharCode(...line).replace(/^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g, "") === word;
}
