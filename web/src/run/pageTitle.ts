/**
 * The browser tab's title: the graph's, and while the shown run goes, its progress in front of it, as
 * ComfyUI does — "[45%] nodegraph — Text to image" — so a run is followed from another tab; back to
 * "nodegraph — Text to image" when it ends. (It was always "nodegraph".)
 *
 *   runProgress(nodeStates)          0..1 of the shown run while it goes (nodes ended, plus the running
 *                                    nodes' steps), or null when no node waits or runs
 *   pageTitle(graphTitle, progress)  the tab's title
 */
import type { NodeRunState } from "./sessionState";

export function runProgress(nodeStates: Record<string, NodeRunState>): number | null {
  const states = Object.values(nodeStates).filter((s) => s.status !== "skipped");
  if (!states.some((s) => s.status === "queued" || s.status === "running")) return null;
  let done = 0;
  for (const s of states) {
    if (s.status === "running") done += s.total ? Math.min(1, (s.value ?? 0) / s.total) : 0;
    else if (s.status !== "queued") done += 1;
  }
  return done / states.length;
}

export function pageTitle(graphTitle: unknown, progress: number | null): string {
  const titled = typeof graphTitle === "string" && graphTitle.trim() ? `nodegraph — ${graphTitle.trim()}` : "nodegraph";
  return progress === null ? titled : `[${Math.floor(progress * 100)}%] ${titled}`;
}
