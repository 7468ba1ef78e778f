/**
 * History rows: what the history panel shows for one run of the server's
 * history (`history {runs}`, docs/protocol.md) — title, local time, duration,
 * seed, status and a thumbnail — computed from the run summary and the run's
 * output files (fetched with `get_outputs`).
 *
 *   historyRow(run, files, now?)   the row's texts and thumbnail
 *   runSeed(run)                   the seed the run used: `seed`, else the first of `seeds` (a number, or
 *                                  the exact digits of a seed beyond 2^53)
 *   formatTime / formatDuration    "14:03:07" today, "2 Dec 14:03" before; "850 ms", "12.3 s", "2 min 5 s"
 *   HISTORY_STATUSES               the filter's choices
 *
 * Every text is a string whatever the server stored (`textOf`, protocol/records.ts): a run
 * whose title is an object shows that object's JSON, and never takes the panel down.
 */
import type { RunSummary } from "../protocol/messages";
import { textOf } from "../protocol/records";
import { fileView, type OutputItem } from "./media";

export const HISTORY_STATUSES = ["all", "succeeded", "failed", "interrupted", "cancelled"] as const;

/** Seconds since the epoch from a number (seconds or milliseconds) or an ISO string; null when unknown. */
export function toSeconds(value: unknown): number | null {
  if (typeof value === "number" && Number.isFinite(value)) return value > 1e12 ? value / 1000 : value;
  if (typeof value === "string" && value) {
    const ms = Date.parse(value);
    return Number.isFinite(ms) ? ms / 1000 : null;
  }
  return null;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** A local time: the clock time for today, the day and time for earlier days. */
export function formatTime(seconds: number, now: Date = new Date()): string {
  const d = new Date(seconds * 1000);
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const today = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return today ? `${clock}:${pad(d.getSeconds())}` : `${d.getDate()} ${MONTHS[d.getMonth()]} ${clock}`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function isSeed(value: unknown): value is number | string {
  return (typeof value === "number" && Number.isFinite(value)) || (typeof value === "string" && /^-?\d+$/.test(value));
}

/** The seed a run used (`seed`, else the first value of `seeds`), or null when the server did not say. */
export function runSeed(run: RunSummary): number | string | null {
  if (isSeed(run.seed)) return run.seed;
  const seeds = run.seeds;
  if (Array.isArray(seeds)) return isSeed(seeds[0]) ? seeds[0] : null;
  if (seeds && typeof seeds === "object") return Object.values(seeds).find(isSeed) ?? null;
  return null;
}

export interface HistoryRowView {
  title: string;
  time: string;
  duration: string | null;
  seed: number | string | null;
  thumbnail: OutputItem | null;
  /** For runs without an image: the kind of their first file ("audio", "text", ...) or the status. */
  kindLabel: string;
  tooltip: string;
}

/**
 * The row of `run`; `files` are its output files when fetched; `fileUrl` makes the URL of the
 * server's `thumbnail` file id when the files are not known (yet).
 */
export function historyRow(run: RunSummary, files: OutputItem[] | undefined, now: Date = new Date(), fileUrl?: (id: string) => string): HistoryRowView {
  const submitted = toSeconds(run.submitted_at);
  const started = toSeconds(run.started_at);
  const finished = toSeconds(run.finished_at);
  const seconds = typeof run.duration === "number" ? run.duration : started !== null && finished !== null ? Math.max(0, finished - started) : null;
  const when = finished ?? started ?? submitted;
  const thumbServer = typeof run.thumbnail === "string" ? (files ?? []).find((f) => f.fileId === run.thumbnail) : undefined;
  const fromServer: OutputItem | null = typeof run.thumbnail === "string" && fileUrl
    ? { runId: run.run_id, nodeId: "", fileId: run.thumbnail, url: fileUrl(run.thumbnail), index: 0, kind: "image" }
    : null;
  // The server's small thumbnail first (fewer bytes), else the run's first image file.
  const thumbnail = fromServer ?? thumbServer ?? (files ?? []).find((f) => fileView(f).element === "img") ?? null;
  const error = run.error && typeof run.error === "object" ? (run.error as { message?: unknown }).message : run.error;
  return {
    title: textOf(run.title) || "untitled graph",
    time: when !== null ? formatTime(when, now) : "",
    duration: seconds !== null ? formatDuration(seconds) : null,
    seed: runSeed(run),
    thumbnail,
    kindLabel: files?.length ? files[0].kind : run.status === "succeeded" ? "✓" : "—",
    // never the run id: a row is named by its title and time (and why it failed)
    tooltip: [textOf(run.title) || "untitled graph", when !== null ? formatTime(when, now) : "", textOf(error)].filter(Boolean).join("\n"),
  };
}
