/**
 * Output files of every kind, and how the editor shows each one.
 *
 * Output nodes report files with a `kind` (docs/plugins.md "Output files"):
 * image, video, audio, mesh, pointcloud, text, file. The server sends images as
 * binary `image` frames and the other kinds as `output_file` messages;
 * `get_outputs` lists them all under `files`. Every one becomes an
 * `OutputItem`, shown on its node and in the gallery.
 *
 * Main objects:
 *   OutputItem      one output file of a run (id, node, kind, MIME, URL, media facts)
 *   outputItemFrom  a protocol file record (`output_file`, `outputs.files[i]`) → OutputItem
 *   fileView        the one rendering decision: which element shows a file
 *   textPreview     the text shown for a text file (JSON pretty-printed, long text cut)
 *   describeItem    a one-line caption (name, size in pixels / frames / seconds)
 *
 * The rendering rule (fileView), by kind and MIME type:
 *   image                         → <img>
 *   video  image/gif, image/webp  → <img> (animated images: browsers play them as images, not in <video>)
 *   video  otherwise              → <video controls> (+ a download link)
 *   audio                         → <audio controls> (+ a download link)
 *   text                          → a text preview (fetched from /files, first TEXT_PREVIEW_BYTES)
 *   mesh, pointcloud  .ply .glb .gltf .obj .stl (by MIME type or file name)
 *                                 → an interactive three.js view (editor/Model3DView.tsx) + a download link
 *   mesh, pointcloud  other formats → a download link
 *   file                          → a download link with the name, size and MIME type (any media a plugin
 *                                   writes that no other kind shows: MIDI, a zip, weights)
 *   anything else                 → a download link
 * A kind the editor does not know is never dropped: it is offered for download.
 */

export const FILE_KINDS = ["image", "video", "audio", "mesh", "pointcloud", "text", "file"] as const;
export type FileKind = (typeof FILE_KINDS)[number];

/** How many bytes of a text file the preview reads (the rest is cut, with a note). */
export const TEXT_PREVIEW_BYTES = 16 * 1024;

export interface OutputItem {
  runId: string;
  nodeId: string;
  fileId: string;
  url: string;
  index: number;
  /** One of FILE_KINDS, or whatever a newer server sends (shown as a download). */
  kind: string;
  mime?: string;
  width?: number;
  height?: number;
  frames?: number;
  fps?: number;
  duration?: number;
  sampleRate?: number;
  /** The file's size in bytes (the server's `bytes`), shown on a `file` result's download link. */
  bytes?: number;
}

/** A file record as the protocol sends it (`output_file` message or an entry of `outputs.files`). */
export interface FileRecord {
  file_id: string;
  node_id: string;
  kind?: string;
  index?: number;
  mime?: string;
  width?: number;
  height?: number;
  frames?: number;
  fps?: number;
  duration?: number;
  sample_rate?: number;
  bytes?: number;
  /** The file is no longer the one the run wrote (deleted, or its name now holds a later run's file). */
  missing?: boolean;
  [extra: string]: unknown;
}

function finiteNumber(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** An OutputItem from a protocol file record; `fallbackIndex` when the record has no index. */
export function outputItemFrom(runId: string, record: FileRecord, url: string, fallbackIndex = 0): OutputItem {
  const item: OutputItem = {
    runId,
    nodeId: String(record.node_id ?? ""),
    fileId: String(record.file_id),
    url,
    index: finiteNumber(record.index) ?? fallbackIndex,
    kind: typeof record.kind === "string" && record.kind ? record.kind : "image",
  };
  if (typeof record.mime === "string" && record.mime) item.mime = record.mime;
  const facts: [keyof OutputItem, unknown][] = [
    ["width", record.width],
    ["height", record.height],
    ["frames", record.frames],
    ["fps", record.fps],
    ["duration", record.duration],
    ["sampleRate", record.sample_rate],
    ["bytes", record.bytes],
  ];
  for (const [key, value] of facts) {
    const number = finiteNumber(value);
    if (number !== undefined) (item as unknown as Record<string, number>)[key] = number;
  }
  return item;
}

export type FileView =
  | { element: "img" }
  | { element: "video"; mime?: string }
  | { element: "audio"; mime?: string }
  | { element: "text" }
  | { element: "model3d"; format: Model3DFormat; points: boolean }
  | { element: "download"; reason: string };

export type Model3DFormat = "ply" | "glb" | "gltf" | "obj" | "stl";

const MODEL_MIMES: Record<string, Model3DFormat> = {
  "model/gltf-binary": "glb",
  "model/gltf+json": "gltf",
  "model/obj": "obj",
  "text/plain+obj": "obj",
  "model/stl": "stl",
  "application/sla": "stl",
  "model/ply": "ply",
  "application/ply": "ply",
  "model/x-ply": "ply",
};

/** The 3D format of a mesh / point-cloud file from its MIME type or extension (null: not one three.js reads here). */
export function model3DFormat(item: Pick<OutputItem, "mime" | "fileId">): Model3DFormat | null {
  const byMime = item.mime ? MODEL_MIMES[item.mime.toLowerCase()] : undefined;
  if (byMime) return byMime;
  const ext = item.fileId.split("?")[0].split(".").pop()?.toLowerCase();
  return ext === "ply" || ext === "glb" || ext === "gltf" || ext === "obj" || ext === "stl" ? ext : null;
}

const ANIMATED_IMAGE_MIMES = new Set(["image/gif", "image/webp", "image/apng"]);

/** Which element shows a file (the rule in the module docstring). */
export function fileView(item: Pick<OutputItem, "kind" | "mime"> & { fileId?: string }): FileView {
  const mime = item.mime?.toLowerCase();
  switch (item.kind) {
    case "image":
      return { element: "img" };
    case "video":
      if (mime && ANIMATED_IMAGE_MIMES.has(mime)) return { element: "img" };
      return { element: "video", mime };
    case "audio":
      return { element: "audio", mime };
    case "text":
      return { element: "text" };
    case "mesh":
    case "pointcloud": {
      const format = model3DFormat({ mime: item.mime, fileId: item.fileId ?? "" });
      if (format) return { element: "model3d", format, points: item.kind === "pointcloud" };
      return { element: "download", reason: `${item.kind === "mesh" ? "3D mesh" : "point cloud"} in a format the viewer does not read (PLY, GLB, glTF, OBJ, STL): download it to view` };
    }
    case "file":
      return { element: "download", reason: `${mime ? `a ${mime} file` : "a file"}: download it to open it` };
    default:
      return { element: "download", reason: `a ${item.kind || "file"} output: download it to view` };
  }
}

/**
 * The URL a gallery tile's video is loaded from so that it shows its first frame as a poster: a media fragment
 * (`#t=0.001`) makes the browser seek there once the metadata is in (`preload="metadata"` alone left a black box).
 * A URL that already has a fragment is kept as it is.
 */
export function posterFrameUrl(url: string): string {
  return url.includes("#") ? url : `${url}#t=0.001`;
}

/** The file name of a file id (`output/run/cat_00001.png` → `cat_00001.png`). */
export function fileName(fileId: string): string {
  const parts = fileId.split("/");
  return parts[parts.length - 1] || fileId;
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  return `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")} min`;
}

/** A caption: the file name and what is known of its size (`clip.mp4 · 64×64 · 16 frames · 2.0 s`). */
export function describeItem(item: OutputItem): string {
  const parts = [fileName(item.fileId)];
  if (item.width && item.height) parts.push(`${item.width}×${item.height}`);
  if (item.frames) parts.push(`${item.frames} frame${item.frames === 1 ? "" : "s"}`);
  if (item.duration !== undefined) parts.push(formatDuration(item.duration));
  else if (item.frames && item.fps) parts.push(formatDuration(item.frames / item.fps));
  if (item.sampleRate) parts.push(`${item.sampleRate} Hz`);
  if (item.kind === "file") {
    // a generic file has no media facts: its size and MIME type say what the download is
    if (item.bytes !== undefined) parts.push(formatBytes(item.bytes));
    if (item.mime) parts.push(item.mime);
  }
  return parts.join(" · ");
}

/** A byte count for people: `812 B`, `4.2 KB`, `1.5 MB`, `2.0 GB` (1 KB = 1024 bytes). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * The text shown for a text file: JSON (by MIME type or a `.json` name) pretty-printed,
 * anything longer than `limit` characters cut with a note; `truncated` says the file
 * itself was longer than what was read.
 */
export function textPreview(text: string, options: { mime?: string; fileId?: string; truncated?: boolean; limit?: number } = {}): string {
  const limit = options.limit ?? TEXT_PREVIEW_BYTES;
  let shown = text;
  const isJson = options.mime?.toLowerCase().includes("json") || options.fileId?.toLowerCase().endsWith(".json");
  if (isJson && !options.truncated) {
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      shown = text; // not valid JSON after all: show it as written
    }
  }
  const cut = shown.length > limit;
  if (cut) shown = shown.slice(0, limit);
  return cut || options.truncated ? `${shown}\n… (cut: download the file for the rest)` : shown;
}

/**
 * Read the start of a text file for its preview: at most `maxBytes` bytes (a stream is
 * cancelled there), decoded as UTF-8. `truncated` says the file went on. Throws on HTTP errors.
 */
export async function loadTextPreview(
  url: string,
  fetchImpl: (url: string, init?: RequestInit) => Promise<Response> = globalThis.fetch,
  maxBytes = TEXT_PREVIEW_BYTES,
): Promise<{ text: string; truncated: boolean }> {
  const response = await fetchImpl(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${fileName(url.split("?")[0])}`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  const reader = response.body?.getReader();
  if (reader) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
      if (size > maxBytes) {
        truncated = true;
        await reader.cancel();
        break;
      }
    }
  } else {
    const all = new Uint8Array(await response.arrayBuffer());
    chunks.push(all);
    size = all.length;
    truncated = size > maxBytes;
  }
  const bytes = new Uint8Array(Math.min(size, maxBytes));
  let at = 0;
  for (const chunk of chunks) {
    const take = Math.min(chunk.length, bytes.length - at);
    bytes.set(chunk.subarray(0, take), at);
    at += take;
    if (at >= bytes.length) break;
  }
  // A cut may split a multi-byte character: decoding with stream=true drops the incomplete tail.
  const text = new TextDecoder("utf-8").decode(bytes, { stream: truncated });
  return { text, truncated };
}
