/**
 * The run a tab shows on its nodes, kept in the tab's sessionStorage so that a reload shows it
 * again — whether the run ended before the reload or goes on after it.
 *
 * The app (state/app.ts) writes it when the page is hidden or closed (a reload) and when the
 * shown run ends; it forgets it when another graph is opened (the run's node ids would not
 * belong to that graph). After the reload the run is adopted (`adopt_run`) with the badges
 * kept here; a running run's next events and the outputs of an ended one (`get_outputs`)
 * complete them.
 *
 *   tabRunText(runId, nodeStates)   the stored text: `{"tab_run": 1, "run_id": ..., "node_states": {...}}`
 *   readTabRun(text)                what was stored (badges of unknown statuses dropped), or null
 */
import { idMap } from "../graph/idMaps";
import type { NodeRunState, NodeRunStatus } from "./sessionState";

const STATUSES = new Set<NodeRunStatus>(["queued", "running", "cached", "done", "error", "interrupted", "skipped"]);

export interface TabRun {
  runId: string;
  nodeStates: Record<string, NodeRunState>;
}

/** The text to keep for the run shown on the nodes and its badges. */
export function tabRunText(runId: string, nodeStates: Record<string, NodeRunState>): string {
  return JSON.stringify({ tab_run: 1, run_id: runId, node_states: nodeStates });
}

/** The run `tabRunText` kept, with its well-formed badges; null for nothing or text this version did not write. */
export function readTabRun(text: string | null | undefined): TabRun | null {
  let raw: unknown;
  try {
    raw = text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
  const kept = raw as { tab_run?: unknown; run_id?: unknown; node_states?: unknown } | null;
  if (!kept || typeof kept !== "object" || kept.tab_run !== 1 || typeof kept.run_id !== "string") return null;
  const nodeStates = idMap<NodeRunState>();
  const states = kept.node_states && typeof kept.node_states === "object" ? kept.node_states : {};
  for (const [id, state] of Object.entries(states as Record<string, unknown>)) {
    const badge = state as NodeRunState | null;
    if (badge && typeof badge === "object" && STATUSES.has(badge.status)) nodeStates[id] = cleanState(badge);
  }
  return { runId: kept.run_id, nodeStates };
}

/** A badge with only the fields a badge has, each of its type. */
function cleanState(state: NodeRunState): NodeRunState {
  const clean: NodeRunState = { status: state.status };
  for (const key of ["value", "total", "seconds"] as const) if (typeof state[key] === "number") clean[key] = state[key];
  for (const key of ["message", "exceptionType"] as const) if (typeof state[key] === "string") clean[key] = state[key];
  return clean;
}
