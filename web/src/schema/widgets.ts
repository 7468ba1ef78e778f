/**
 * Which widget edits an input, decided from its schema alone.
 *
 * `widgetFor(name, spec)` maps the server's `widget.kind` to one of the
 * editor's widgets, with the numeric bounds and step taken from the JSON
 * Schema. The image-upload rule lives here and only here
 * (`isImageUploadInput`, documented in docs/editor.md); an input is treated
 * as an uploaded image when
 *   1. its widget says so: `widget.upload` is "image" or "mask" (what
 *      `Input(upload="image")` declares, e.g. LoadImage.image), or
 *      `widget.kind` is "upload" (also "image"/"image_upload"); or
 *   2. it is a one-line STRING text input named `image` (or `mask`); or
 *   3. it is a file input (`widget.kind == "model_file"`) without a
 *      `model_folder`, i.e. a file that is not a model.
 * Such an input's value is the uploaded file's name in the server's input
 * folder (the `name` of the `uploaded` reply); its preview is
 * `/files/input/<name>`.
 */
import type { InputSpec } from "./types";

export const SEED_SAFE_MAX = Number.MAX_SAFE_INTEGER;

export type Widget =
  | { kind: "link" }
  | { kind: "number"; integer: boolean; min?: number; max?: number; step?: number }
  | { kind: "seed"; min: number; max: number }
  | { kind: "text"; multiline: boolean }
  | { kind: "choice"; choices: unknown[] }
  | { kind: "model_file"; folder: string }
  | { kind: "toggle" }
  | { kind: "image_upload"; uploadKind: "image" | "mask" };

/** The upload kind of an input that takes an uploaded image, or null (see the module docstring). */
export function isImageUploadInput(name: string, spec: InputSpec): "image" | "mask" | null {
  const widget = spec.widget ?? { kind: "link" };
  const hint = widget.upload;
  if (hint === "image" || hint === "mask") return hint;
  if (widget.kind === "upload" || widget.kind === "image" || widget.kind === "image_upload") return name === "mask" ? "mask" : "image";
  if (spec.port === "STRING" && widget.kind === "text" && !widget.multiline && (name === "image" || name === "mask")) {
    return name;
  }
  if (widget.kind === "model_file" && !spec.model_folder && !widget.model_folder) return name === "mask" ? "mask" : "image";
  return null;
}

/** The file id under which an uploaded input's value can be fetched (`/files/<id>`). */
export function uploadedFileId(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? `input/${value}` : null;
}

/** The editor widget for input `name` with schema `spec`. */
export function widgetFor(name: string, spec: InputSpec): Widget {
  const upload = isImageUploadInput(name, spec);
  if (upload) return { kind: "image_upload", uploadKind: upload };
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
        max: Math.min(SEED_SAFE_MAX, typeof schema.maximum === "number" ? schema.maximum : SEED_SAFE_MAX),
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

/**
 * Parse what the user typed into a number widget: the number, or the reason it is refused.
 * Integers must be whole; values outside [min, max] are refused (the engine would refuse them too).
 */
export function parseNumber(text: string, widget: { integer: boolean; min?: number; max?: number }):
  { ok: true; value: number } | { ok: false; reason: string } {
  const trimmed = text.trim();
  if (trimmed === "" || !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed)) {
    return { ok: false, reason: "not a number" };
  }
  const value = Number(trimmed);
  if (!Number.isFinite(value)) return { ok: false, reason: "not a finite number" };
  if (widget.integer && !Number.isInteger(value)) return { ok: false, reason: "must be a whole number" };
  if (widget.min !== undefined && value < widget.min) return { ok: false, reason: `must be ≥ ${widget.min}` };
  if (widget.max !== undefined && value > widget.max) return { ok: false, reason: `must be ≤ ${widget.max}` };
  return { ok: true, value };
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

/** Choices matching every word of `query` (case-insensitive), those starting with it first; all of them for an empty query. */
export function filterChoices(choices: unknown[], query: string): unknown[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return choices;
  const matching = choices.filter((c) => words.every((w) => String(c).toLowerCase().includes(w)));
  const first = words[0];
  return [
    ...matching.filter((c) => String(c).toLowerCase().startsWith(first)),
    ...matching.filter((c) => !String(c).toLowerCase().startsWith(first)),
  ];
}

/** Lists longer than this get the searchable combo instead of a plain <select>. */
export const COMBO_THRESHOLD = 8;
