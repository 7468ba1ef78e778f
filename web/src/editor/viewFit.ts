/**
 * Following a run on the canvas (docs/editor.md, "Opening a graph"): while a followed run's results
 * render, its nodes grow and push the nodes below them, and the view is fitted to the whole graph
 * again, until the user moves the view or edits, or another run or graph is shown.
 *
 * A run opened from History or shown again after a reload is always followed, and refitted at every
 * change of the boxes. A run the user starts here (Run, Ctrl+Enter) is followed only when the whole
 * graph was in view when it was started (`wholeInView`: every node at least mostly inside the canvas),
 * and refitted only once a node no longer lies wholly inside the canvas, so the view the user chose is
 * kept while it still shows everything. A user zoomed into part of the graph keeps their view.
 */
import type { Rect } from "../graph/layout";

export interface View {
  x: number;
  y: number;
  zoom: number;
}

/** What the follow compares to tell the user's changes from the run's: the editor state it keeps. */
export interface FollowState {
  history: unknown;
  loadCount: number;
  dragBase: unknown;
}

export interface FollowedRun<S extends FollowState = FollowState> {
  runId: string;
  /** The editor state and the view when the follow began or last fitted: a change to either is the user's. */
  state: S;
  viewport: View;
  /** Set for a run started here: the run shown when Run was pressed (it may go on showing until this one
   * starts), and whether this one has been seen shown since. */
  here?: { before: string | null; started: boolean };
}

/** A node counts as mostly in view with at least this share of its box inside the canvas. */
export const MOSTLY_SHOWN = 0.5;
/** ... and as wholly in view with this share (a rounding pixel aside). */
const WHOLLY_SHOWN = 0.995;

/** The share (0 to 1) of flow-space box `rect` that view `view` shows in a canvas `width` × `height` screen pixels. */
export function shownShare(rect: Rect, view: View, width: number, height: number): number {
  const left = rect.x * view.zoom + view.x;
  const top = rect.y * view.zoom + view.y;
  const w = rect.width * view.zoom;
  const h = rect.height * view.zoom;
  if (!(w > 0) || !(h > 0)) return left >= 0 && left <= width && top >= 0 && top <= height ? 1 : 0;
  const shownW = Math.max(0, Math.min(left + w, width) - Math.max(left, 0));
  const shownH = Math.max(0, Math.min(top + h, height) - Math.max(top, 0));
  return (shownW * shownH) / (w * h);
}

/** Every node has at least `share` of its box inside the canvas (false for an empty graph or canvas). */
export function wholeInView(rects: Record<string, Rect>, view: View, width: number, height: number, share = MOSTLY_SHOWN): boolean {
  const boxes = Object.values(rects);
  return width > 0 && height > 0 && boxes.length > 0 && boxes.every((rect) => shownShare(rect, view, width, height) >= share);
}

/**
 * What a followed run's view does when the boxes change: `stop` following (the user moved the view,
 * edited, dragged, opened another graph, or another run is shown), `fit` the whole graph again, or
 * `keep` the view (a run started here whose graph is still wholly in view). Marks `followed.here.started`.
 */
export function followStep<S extends FollowState>(
  followed: FollowedRun<S>,
  now: { state: FollowState; viewport: View; activeRun: string | null; rects: Record<string, Rect>; width: number; height: number },
): "stop" | "fit" | "keep" {
  const { state, viewport } = now;
  const moved = Math.abs(viewport.x - followed.viewport.x) > 0.5 || Math.abs(viewport.y - followed.viewport.y) > 0.5 ||
    Math.abs(viewport.zoom - followed.viewport.zoom) > 1e-4;
  if (moved || state.history !== followed.state.history || state.loadCount !== followed.state.loadCount || state.dragBase) return "stop";
  const here = followed.here;
  if (now.activeRun === followed.runId) {
    if (here) here.started = true;
  } else if (!here || here.started || now.activeRun !== here.before) {
    return "stop"; // another run is shown (a run started here may wait behind the one shown when Run was pressed)
  }
  if (here && wholeInView(now.rects, viewport, now.width, now.height, WHOLLY_SHOWN)) return "keep";
  return "fit";
}
