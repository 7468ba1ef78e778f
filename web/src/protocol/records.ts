/**
 * Records from the server checked at the boundary, before anything renders them.
 *
 * A run summary's `title` is the submitted graph's `metadata.title`, which older servers
 * stored unchecked (an object, a number); one such run in the history must not take the
 * editor down for everyone who sees it. So every text field the editor shows is made a
 * string here, once, as the records arrive (run/sessionState.ts):
 *
 *   textOf(value)          a string for any JSON value: strings as they are, numbers and
 *                          booleans written out, nothing for null, anything else as its JSON
 *   cleanRunSummary(raw)   a run of `queue` / `history`: run_id and status strings, title
 *                          text, seeds as numbers (or exact decimal strings beyond 2^53)
 *   cleanRuns(raw)         a list of them (entries without a run id dropped)
 *   cleanTemplates(raw)    `templates` entries: id, title, source, description as text
 */
import { jsonPreview } from "../graph/exactJson";
import type { Template } from "../run/sessionState";
import type { RunSummary } from "./messages";

/** A string to show for any value (the JSON of an object or list, cut to `limit` characters). */
export function textOf(value: unknown, limit = 200): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value);
  return jsonPreview(value, limit);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A seed as the history shows it: a number, or the exact digits of an integer beyond 2^53. */
function seedValue(value: unknown): number | string | null {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "bigint") return value.toString();
  return null;
}

/** A run summary with every field the editor shows of the right type; null without a run id. */
export function cleanRunSummary(raw: unknown): RunSummary | null {
  if (!isObject(raw) || (typeof raw.run_id !== "string" && typeof raw.run_id !== "number")) return null;
  const run: RunSummary = { ...raw, run_id: String(raw.run_id), status: textOf(raw.status) as RunSummary["status"] };
  if (raw.title !== undefined && raw.title !== null) run.title = textOf(raw.title);
  if (raw.seed !== undefined) run.seed = seedValue(raw.seed);
  if (Array.isArray(raw.seeds)) run.seeds = raw.seeds.map(seedValue);
  else if (isObject(raw.seeds)) run.seeds = Object.fromEntries(Object.entries(raw.seeds).map(([key, v]) => [key, seedValue(v)]));
  else if (raw.seeds !== undefined) run.seeds = null;
  if (raw.thumbnail !== undefined && typeof raw.thumbnail !== "string") run.thumbnail = null;
  if (raw.duration !== undefined && (typeof raw.duration !== "number" || !Number.isFinite(raw.duration))) run.duration = null;
  if (raw.user !== undefined && raw.user !== null) run.user = textOf(raw.user);
  return run;
}

/** The run summaries of a `history` or `queue` message (malformed entries dropped). */
export function cleanRuns(raw: unknown): RunSummary[] {
  return Array.isArray(raw) ? raw.map(cleanRunSummary).filter((run): run is RunSummary => run !== null) : [];
}

/** The entries of a `templates` reply with a string id; title, source and description made text. */
export function cleanTemplates(raw: unknown): Template[] {
  if (!Array.isArray(raw)) return [];
  const out: Template[] = [];
  for (const entry of raw) {
    if (!isObject(entry) || typeof entry.id !== "string") continue;
    const template: Template = { ...entry, id: entry.id, title: textOf(entry.title) || entry.id };
    if (entry.description !== undefined) template.description = textOf(entry.description);
    if (entry.source !== undefined) template.source = textOf(entry.source);
    out.push(template);
  }
  return out;
}
