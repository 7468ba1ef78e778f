/**
 * Which widget edits an input, decided from its schema alone.
 *
 * `widgetFor(name, spec)` maps the server's `widget.kind` to one of the
 * editor's widgets, with the numeric bounds and step taken from the JSON
 * Schema. The upload rule lives here and only here (`uploadKindOf`,
 * documented in docs/editor.md); an input takes an uploaded file when
 *   1. its widget says so: `widget.upload` is one of UPLOAD_KINDS (what
 *      `Input(upload="image")` declares, e.g. LoadImage.image; "audio" for
 *      LoadAudio.file, "video", "mesh", "pointcloud"), or `widget.kind` is
 *      "upload" (also "image"/"image_upload": an image); or
 *   2. it is a one-line STRING text input named `image` (or `mask`); or
 *   3. it is a file input (`widget.kind == "model_file"`) without a
 *      `model_folder`, i.e. a file that is not a model (an image).
 * Such an input's value is the uploaded file's name in the server's input
 * folder (the `name` of the `uploaded` reply); its preview is
 * `/files/input/<name>` in an <img>, <audio> or <video> (3D files: the name only).
 *
 * Integers are exact: what the user types into an integer box is read digit for digit
 * (`parseNumber` gives a BigInt beyond 2^53, graph/exactJson.ts writes it back as a plain
 * JSON number), so a seed up to 2^64−1 is never rounded. A value of the wrong JSON type
 * is shown as `invalid value: <its JSON>` (`widgetText`), never "[object Object]".
 */
import { jsonPreview } from "../graph/exactJson";
import type { InputSpec } from "./types";

/** The seed bound used when a schema gives none (the largest integer a number holds exactly). */
export const SEED_SAFE_MAX = Number.MAX_SAFE_INTEGER;

export type Widget =
  | { kind: "link" }
  | { kind: "number"; integer: boolean; min?: number; max?: number; step?: number }
  | { kind: "seed"; min: number; max: number }
  | { kind: "text"; multiline: boolean }
  | { kind: "choice"; choices: unknown[] }
  | { kind: "model_file"; folder: string }
  | { kind: "toggle" }
  | { kind: "file_upload"; uploadKind: UploadKind };

/** What the server's upload frame takes (nodegraph/files.py UPLOAD_KINDS). */
export const UPLOAD_KINDS = ["image", "mask", "audio", "video", "mesh", "pointcloud"] as const;
export type UploadKind = (typeof UPLOAD_KINDS)[number];

/** The file picker's `accept` per upload kind: the formats the server stores (files.MEDIA_FORMATS). */
export const UPLOAD_ACCEPT: Record<UploadKind, string> = {
  image: "image/*",
  mask: "image/*",
  audio: "audio/*,.wav,.flac,.ogg,.opus,.mp3,.m4a,.mp4,.mka,.mkv,.webm", // a video's sound track too (LoadAudio reads it)
  video: "video/*,.mp4,.m4v,.mov,.webm,.mkv,.gif,.webp",
  mesh: ".glb,.ply,.obj",
  pointcloud: ".ply,.glb,.obj",
};

/** The upload kind of an input that takes an uploaded file, or null (see the module docstring). */
export function uploadKindOf(name: string, spec: InputSpec): UploadKind | null {
  const widget = spec.widget ?? { kind: "link" };
  const hint = widget.upload;
  if (typeof hint === "string" && (UPLOAD_KINDS as readonly string[]).includes(hint)) return hint as UploadKind;
  if (widget.kind === "upload" || widget.kind === "image" || widget.kind === "image_upload") return name === "mask" ? "mask" : "image";
  if (spec.port === "STRING" && widget.kind === "text" && !widget.multiline && (name === "image" || name === "mask")) {
    return name;
  }
  if (widget.kind === "model_file" && !spec.model_folder && !widget.model_folder) return name === "mask" ? "mask" : "image";
  return null;
}

/** The upload kind of an input that takes an uploaded *image* ("image" or "mask"), or null. */
export function isImageUploadInput(name: string, spec: InputSpec): "image" | "mask" | null {
  const kind = uploadKindOf(name, spec);
  return kind === "image" || kind === "mask" ? kind : null;
}

/**
 * The inputs of a node the mask editor can paint on (editor/MaskEditor.tsx), in schema order: those that take
 * an uploaded image ("image" or "mask" kind) and whose value names a file (not empty, not a link).
 */
export function maskEditableInputs(specs: Record<string, InputSpec>, values: Record<string, unknown>): { input: string; file: string }[] {
  return Object.entries(specs).flatMap(([name, spec]) => {
    const value = Object.hasOwn(values, name) ? values[name] : spec.default;
    return isImageUploadInput(name, spec) && typeof value === "string" && value.trim() !== "" ? [{ input: name, file: value }] : [];
  });
}

/**
 * The input of a node that an image file dropped on it fills (as ComfyUI's LoadImage takes a dropped image): the
 * first input taking an uploaded "image", else the first taking a "mask", that is not fed by a link; null for none.
 */
export function imageDropInput(specs: Record<string, InputSpec>, values: Record<string, unknown>): { input: string; kind: "image" | "mask" } | null {
  const free = Object.entries(specs).flatMap(([name, spec]) => {
    const kind = isImageUploadInput(name, spec);
    const value = values[name];
    return kind && !(value !== null && typeof value === "object") ? [{ input: name, kind }] : [];
  });
  return free.find((c) => c.kind === "image") ?? free[0] ?? null;
}

/** How an uploaded input's file is previewed: by its kind, a GIF / WebP "video" as an image. */
export function uploadPreview(kind: UploadKind, value: unknown): "image" | "audio" | "video" | null {
  if (kind === "image" || kind === "mask") return "image";
  if (kind === "audio") return "audio";
  if (kind === "video") return typeof value === "string" && /\.(gif|webp)$/i.test(value) ? "image" : "video";
  return null;
}

/** The file id under which an uploaded input's value can be fetched (`/files/<id>`). */
export function uploadedFileId(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? `input/${value}` : null;
}

/** The editor widget for input `name` with schema `spec`. */
export function widgetFor(name: string, spec: InputSpec): Widget {
  const upload = uploadKindOf(name, spec);
  if (upload) return { kind: "file_upload", uploadKind: upload };
  const schema = spec.schema ?? {};
  const widget = spec.widget ?? { kind: "link" };
  switch (widget.kind) {
    case "choice":
      return { kind: "choice", choices: spec.choices ?? schema.enum ?? [] };
    case "model_file":
      return { kind: "model_file", folder: spec.model_folder ?? String(widget.model_folder ?? "") };
    case "seed":
      return {
        kind: "seed",
        min: Math.max(0, typeof schema.minimum === "number" ? schema.minimum : 0),
        max: typeof schema.maximum === "number" ? schema.maximum : SEED_SAFE_MAX,
      };
    case "number": {
      const integer = spec.port === "INT" || schema.type === "integer";
      return {
        kind: "number",
        integer,
        min: lowerBound(schema),
        max: upperBound(schema),
        step: typeof widget.step === "number" ? widget.step : integer ? 1 : undefined,
      };
    }
    case "text":
      return { kind: "text", multiline: Boolean(widget.multiline) };
    case "toggle":
      return { kind: "toggle" };
    default:
      return { kind: "link" };
  }
}

function lowerBound(schema: InputSpec["schema"]): number | undefined {
  if (typeof schema.minimum === "number") return schema.minimum;
  return typeof schema.exclusiveMinimum === "number" ? schema.exclusiveMinimum : undefined;
}

function upperBound(schema: InputSpec["schema"]): number | undefined {
  if (typeof schema.maximum === "number") return schema.maximum;
  return typeof schema.exclusiveMaximum === "number" ? schema.exclusiveMaximum : undefined;
}

/** An integer as a number when a number holds it exactly, else as a BigInt. */
export function integerValue(value: bigint): number | bigint {
  return value >= -BigInt(Number.MAX_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

const NUMBER_TEXT = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/;

/** The exact integer a number literal stands for ("12", "1.5e3", "-7E+2"); null when it is not whole. */
export function exactInteger(text: string): bigint | null {
  const match = NUMBER_TEXT.exec(text.trim());
  if (!match || (match[2] === "" && !match[3])) return null;
  const fraction = match[3] ?? "";
  const digits = (match[2] + fraction).replace(/^0+/, "");
  if (digits === "") return 0n;
  const exponent = Number(match[4] ?? 0) - fraction.length;
  const sign = match[1] === "-" ? -1n : 1n;
  if (exponent >= 0) return exponent > 400 ? null : sign * BigInt(digits) * 10n ** BigInt(exponent);
  const kept = digits.length + exponent;
  if (!/^0*$/.test(digits.slice(Math.max(0, kept)))) return null;
  return kept <= 0 ? 0n : sign * BigInt(digits.slice(0, kept));
}

/**
 * An integer bound of a schema as an exact BigInt. JSON numbers beyond 2^53 arrive rounded:
 * the two usual limits 2^63−1 (int64) and 2^64−1 (uint64, the engine's seeds) arrive as exactly
 * 2^63 and 2^64, which no schema uses as an inclusive bound, so they are read back as written.
 * A fractional bound is rounded inwards.
 */
export function exactIntegerBound(bound: number, side: "min" | "max"): bigint {
  if (side === "max" && bound === 2 ** 64) return 2n ** 64n - 1n;
  if (side === "max" && bound === 2 ** 63) return 2n ** 63n - 1n;
  return BigInt(side === "min" ? Math.ceil(bound) : Math.floor(bound));
}

/**
 * Parse what the user typed into a number widget: the number, or the reason it is refused.
 * Integers must be whole and are read exactly (a BigInt beyond 2^53); values outside
 * [min, max] are refused (the engine would refuse them too).
 */
export function parseNumber(text: string, widget: { integer: boolean; min?: number; max?: number }):
  { ok: true; value: number | bigint } | { ok: false; reason: string } {
  const trimmed = text.trim();
  if (trimmed === "" || !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed)) {
    return { ok: false, reason: "not a number" };
  }
  const value = Number(trimmed);
  if (!Number.isFinite(value)) return { ok: false, reason: "too large to be a number" };
  if (widget.integer) {
    const exact = exactInteger(trimmed);
    if (exact === null) return { ok: false, reason: "must be a whole number" };
    if (widget.min !== undefined && exact < exactIntegerBound(widget.min, "min")) return { ok: false, reason: `must be ≥ ${exactIntegerBound(widget.min, "min")}` };
    if (widget.max !== undefined && exact > exactIntegerBound(widget.max, "max")) return { ok: false, reason: `must be ≤ ${exactIntegerBound(widget.max, "max")}` };
    return { ok: true, value: integerValue(exact) };
  }
  if (widget.min !== undefined && value < widget.min) return { ok: false, reason: `must be ≥ ${widget.min}` };
  if (widget.max !== undefined && value > widget.max) return { ok: false, reason: `must be ≤ ${widget.max}` };
  return { ok: true, value };
}

/**
 * What a number box applies while the user types `text`: the parsed value, or — when the text
 * is not a valid entry — `before`, the input's value when editing began. So a half-typed "1e3"
 * on its way to "1e308", or a seed typed past the maximum, never leaves a prefix of itself in
 * the graph; `reason` says why the text is not applied (null when it is).
 */
export function numberEntry(text: string, widget: { integer: boolean; min?: number; max?: number }, before: unknown):
  { value: unknown; reason: string | null } {
  const parsed = parseNumber(text, widget);
  return parsed.ok ? { value: parsed.value, reason: null } : { value: before, reason: parsed.reason };
}

/** The note under a number box left with text that is not a valid entry: what was typed, why not, what was kept. */
export function refusedEntryNote(text: string, reason: string, keptText: string): string {
  const typed = text.length > 24 ? `${text.slice(0, 24)}…` : text;
  return `"${typed}" ${reason}; kept ${keptText || "the default"}`;
}

/** The seed after `current` in increment mode: one more, wrapping from max to min (exact beyond 2^53). */
export function incrementedSeed(current: unknown, min: number, max: number): number | bigint {
  const lo = exactIntegerBound(min, "min");
  const hi = exactIntegerBound(max, "max");
  const base = typeof current === "bigint" ? current : typeof current === "number" && Number.isInteger(current) ? BigInt(current) : lo - 1n;
  const next = base + 1n;
  return integerValue(next > hi || next < lo ? lo : next);
}

/** The seed after `current` in decrement mode (ComfyUI's "decrement"): one less, wrapping from min to max. */
export function decrementedSeed(current: unknown, min: number, max: number): number | bigint {
  const lo = exactIntegerBound(min, "min");
  const hi = exactIntegerBound(max, "max");
  const base = typeof current === "bigint" ? current : typeof current === "number" && Number.isInteger(current) ? BigInt(current) : hi + 1n;
  const next = base - 1n;
  return integerValue(next < lo || next > hi ? hi : next);
}

/**
 * The text a widget shows for a value: a string as it is, a number (or BigInt) or boolean
 * written out, nothing for no value; any other JSON value (an object for an INT, a list for
 * a seed) as `invalid value: <its JSON>` — the engine refuses it, the data is kept.
 */
export function widgetText(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value);
  return `invalid value: ${jsonPreview(value)}`;
}

/** A fresh random seed in [min, max] (bounded to what a JS number holds exactly). */
export function randomSeed(min: number, max: number, random: () => number = Math.random): number {
  const hi = Math.min(max, SEED_SAFE_MAX);
  const lo = Math.max(0, Math.min(min, hi));
  // Two draws so the full 53-bit range is reachable (one Math.random() has 52 bits of mantissa).
  const span = hi - lo + 1;
  const draw = Math.floor(random() * 2 ** 26) * 2 ** 27 + Math.floor(random() * 2 ** 27);
  return lo + (draw % span);
}

/**
 * The slider of a number widget, or null: shown for bounded ranges a slider can cover —
 * integers spanning at most 4096 values, other numbers at most 1000 units (cfg 0–100,
 * denoise 0–1). The step is the widget's, else 1 for integers and range/100 otherwise.
 */
export function sliderRange(widget: { integer: boolean; min?: number; max?: number; step?: number }): { min: number; max: number; step: number } | null {
  const { min, max } = widget;
  if (min === undefined || max === undefined || !Number.isFinite(min) || !Number.isFinite(max) || max <= min) return null;
  const span = max - min;
  if (widget.integer ? span > 4096 : span > 1000) return null;
  const step = widget.step ?? (widget.integer ? 1 : span / 100);
  return { min, max, step };
}

/**
 * Choices matching every word of `query` (case-insensitive), those starting with it first; all of them for an empty
 * query. A query nothing matches is tried again as a sampler name other tools write (`toolNeutralWords`): "DPM++ 2M
 * Karras" showed "no match" although it means dpmpp_2m (an A1111 user's pass); the exact name then comes first.
 */
export function filterChoices(choices: unknown[], query: string): unknown[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return choices;
  const matching = choicesWithWords(choices, words);
  if (matching.length) return matching;
  const neutral = toolNeutralWords(query);
  if (!neutral.length) return [];
  const exact = neutral.join("_");
  const found = choicesWithWords(choices, neutral);
  return [...found.filter((c) => String(c).toLowerCase() === exact), ...found.filter((c) => String(c).toLowerCase() !== exact)];
}

function choicesWithWords(choices: unknown[], words: string[]): unknown[] {
  const matching = choices.filter((c) => words.every((w) => String(c).toLowerCase().includes(w)));
  const first = words[0];
  return [
    ...matching.filter((c) => String(c).toLowerCase().startsWith(first)),
    ...matching.filter((c) => !String(c).toLowerCase().startsWith(first)),
  ];
}

/**
 * A1111's spelling of a sampler in our words: "++" is "pp" ("DPM++ 2M" → dpmpp 2m), its old API names lose their
 * "k_" ("k_euler_a" → euler a), and the schedule it appends ("Karras", "Exponential", "_ka") goes: that is the
 * scheduler input here (nodegraph/validation.py `_alias_key` reads the same names for `validate`).
 */
function toolNeutralWords(query: string): string[] {
  const words = query.toLowerCase().replace(/\+\+/g, "pp").replace(/^k_/, "").split(/[\s_-]+/).filter(Boolean);
  return words.filter((w) => w !== "karras" && w !== "exponential" && w !== "ka");
}

/** Lists longer than this get the searchable combo instead of a plain <select>. */
export const COMBO_THRESHOLD = 8;
