/**
 * Runs this tab watches but did not submit (docs/protocol.md, `watch`): e.g. a run of a second tab of
 * the same person, heard of through `queue_changed`. Their events only feed a compact progress line in
 * the Queue panel; they never touch the canvas (node badges, previews, the shown run).
 *
 * Main objects:
 *   WatchedRun          what the progress line shows of one watched run (fields below).
 *   startWatching       a new entry when the app sends `watch` (nothing known yet).
 *   watchedRunAfter     the entry after one of its run's events; null once the run ended.
 *   watchedProgressText the line itself: "3/7 nodes · sampler 12/20", or "sampler 12/20" when the
 *                       node total is unknown (the watch began mid-run, after `run_started`).
 */
import type { ServerMessage } from "../protocol/messages";

export interface WatchedRun {
  /** Nodes that finished or came from the cache. */
  nodesDone: number;
  /** Nodes the run will compute (`run_started`'s `nodes` less `skipped`); null when unseen. */
  nodesTotal: number | null;
  /** The id of the node running now, null between nodes. */
  node: string | null;
  /** That node's progress (`node_progress`), null before its first step. */
  value: number | null;
  total: number | null;
}

/** The events of a run that feed its watched entry (docs/protocol.md, "Run events"). */
const RUN_EVENTS = new Set([
  "run_started", "node_started", "node_cached", "node_progress", "node_finished", "node_error",
  "node_warning", "run_finished", "run_failed", "run_interrupted",
]);

const RUN_ENDS = new Set(["run_finished", "run_failed", "run_interrupted"]);

export function startWatching(): WatchedRun {
  return { nodesDone: 0, nodesTotal: null, node: null, value: null, total: null };
}

/** Whether a message is one of a run's events (those have a `run_id`). */
export function isRunEvent(message: ServerMessage): message is Extract<ServerMessage, { run_id: string }> {
  return RUN_EVENTS.has(message.type) && typeof (message as { run_id?: unknown }).run_id === "string";
}

/** The entry after one of its run's events; null when the event ends the run. */
export function watchedRunAfter(run: WatchedRun, message: ServerMessage): WatchedRun | null {
  if (RUN_ENDS.has(message.type)) return null;
  switch (message.type) {
    case "run_started": {
      const skipped = new Set((message.skipped ?? []).map(String));
      const nodes = (message.nodes ?? []).map(String).filter((id) => !skipped.has(id));
      return { ...startWatching(), nodesTotal: nodes.length };
    }
    case "node_started":
      return { ...run, node: String(message.node_id), value: null, total: null };
    case "node_progress":
      return {
        ...run,
        node: String(message.node_id),
        value: numberOrNull(message.value),
        total: numberOrNull(message.total),
      };
    case "node_cached":
    case "node_finished": {
      const left = run.node === message.node_id ? { node: null, value: null, total: null } : {};
      return { ...run, nodesDone: run.nodesDone + 1, ...left };
    }
    default:
      return run;
  }
}

/** The Queue panel's line for a watched run: "3/7 nodes · sampler 12/20" (parts left out when unknown). */
export function watchedProgressText(run: WatchedRun): string {
  const parts: string[] = [];
  if (run.nodesTotal !== null) parts.push(`${run.nodesDone}/${run.nodesTotal} nodes`);
  if (run.node !== null) {
    parts.push(run.value !== null && run.total !== null ? `${run.node} ${run.value}/${run.total}` : run.node);
  }
  return parts.join(" · ");
}

function numberOrNull(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}
