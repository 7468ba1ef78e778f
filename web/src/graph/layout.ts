/**
 * Node placement: a layered auto-layout (dagre, the Sugiyama method), free
 * spots for new nodes, pushing neighbours away when a node grows, and
 * align / distribute for a selection. All pure functions over rectangles.
 *
 * Main objects:
 *   Size, Rect          a node's size and its box on the canvas (top-left + size)
 *   estimateSize        a node's size before the browser measured it (from its schema)
 *   autoLayout          positions for every node, left to right by link depth (dagre)
 *   layeredLayout       the same for any boxes and links (groups.ts lays out groups as one box)
 *   foldColumns         a layout much wider than tall (a long chain) folded into bands, one below the other
 *   effectivePositions  the positions the canvas shows: the file's; for nodes the file gives
 *                       none, those the canvas froze once they were shown; for the rest, the
 *                       auto-layout's (moved clear of the placed nodes)
 *   unfrozenNodes       the nodes still placed by the auto-layout (no position in the file, none frozen)
 *   freeSpot            the nearest spot to a wanted position where a box overlaps nothing (inside the
 *                       view, for a node the user adds: intoView)
 *   pushApart           after nodes grew: move the nodes they now cover down (cascading)
 *   separateAll         no two boxes overlapping (a ComfyUI import: its layout was made for narrower nodes)
 *   separateInFrames    separateAll keeping each group's nodes inside its frame (frames grow, and move with their nodes)
 *   pushGrown           pushApart / separateInFrames on the canvas: the moves split into the file's and the frozen ones
 *                       (a ComfyUI import's notes are boxes too: ComfyUI's nodes were shorter than ours, notes ended under them)
 *   besideTheirNode     where the nodes an import made for another (`10.schedule` for `10`) start: on that node
 *   alignNodes / distributeNodes   the selection's edges lined up / gaps made equal
 *
 * Decisions: layout runs left to right (inputs on the left of a node, outputs on
 * the right); auto-layout of a graph without positions is shown but not written into
 * the file until the user moves a node or asks for "Auto-layout" (so an unedited graph
 * saves back unchanged); nodes never overlap when placed, pasted or grown. A node never
 * moves on its own: once the nodes the file gives no position have been laid out and
 * measured, the canvas freezes where they are (`EditorState.shownPositions`, never written
 * into the file) and later size changes never run the auto-layout again; a node that grows
 * (a run's images) pushes only the nodes it now covers, downwards, as for positioned nodes
 * (before, every result re-ran dagre on the new sizes and a batch of 6 moved all 7 txt2img
 * nodes out of a 1024×700 view). A layered layout over FOLD_ASPECT times wider than tall
 * and over FOLD_MIN_WIDTH wide (a 300-node chain is one row ~100,000 units long, of which a
 * zoomed-out screen shows ~30 nodes) is folded like lines of text: runs of columns become
 * bands stacked top to bottom, each read left to right (ComfyUI users lay long chains out
 * so by hand); a graph of ordinary shape is left as dagre placed it.
 *
 * Node ids are the user's (`constructor`, `__proto__`, ...): results are prototype-free maps
 * (graph/idMaps.ts), and dagre, whose graph keeps nodes in plain objects, sees `n0`, `n1`, ...
 */
import dagre from "@dagrejs/dagre";
import { docEdges, type EditorDocument, type Position } from "./document";
import { idMap } from "./idMaps";
import type { NodeSchema } from "../schema/types";

export interface Size {
  width: number;
  height: number;
}

export interface Rect extends Size {
  x: number;
  y: number;
}

export const NODE_WIDTH = 300;
export const GAP = 24;

/** A node's size before it was measured: header, outputs and one row per input (taller for text and images). */
export function estimateSize(schema: NodeSchema | undefined, width = NODE_WIDTH): Size {
  if (!schema) return { width, height: 120 };
  let height = 40 + schema.outputs.length * 26;
  for (const spec of Object.values(schema.inputs)) {
    const tall = spec.widget?.multiline ? 70 : 30;
    height += spec.widget?.kind === "link" ? 26 : tall;
  }
  return { width, height };
}

export function overlaps(a: Rect, b: Rect, gap = 0): boolean {
  return a.x < b.x + b.width + gap && b.x < a.x + a.width + gap && a.y < b.y + b.height + gap && b.y < a.y + a.height + gap;
}

/** Positions for every node by a layered layout (dagre), left to right, top-left corners. */
export function autoLayout(
  doc: EditorDocument,
  sizeOf: (id: string) => Size,
  options: { ids?: string[]; origin?: Position } = {},
): Record<string, Position> {
  const ids = new Set(options.ids ?? Object.keys(doc.nodes));
  const boxes = new Map<string, Size>();
  for (const id of Object.keys(doc.nodes)) if (ids.has(id)) boxes.set(id, sizeOf(id));
  return layeredLayout(boxes, docEdges(doc).map((e): [string, string] => [e.source, e.target]), options.origin);
}

/**
 * The layered layout (dagre) of boxes by name and the links between them (links to unknown
 * names, and self links, are ignored): top-left corners, the whole moved to `origin`.
 */
export function layeredLayout(boxes: Map<string, Size>, links: [string, string][], origin: Position = [0, 0]): Record<string, Position> {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 36, ranksep: 80, marginx: 0, marginy: 0 });
  g.setDefaultEdgeLabel(() => ({}));
  const dagreName = new Map<string, string>(); // box name → the name dagre sees
  for (const [id, size] of boxes) {
    dagreName.set(id, `n${dagreName.size}`);
    g.setNode(dagreName.get(id)!, { width: size.width, height: size.height });
  }
  for (const [from, to] of links) {
    const source = dagreName.get(from);
    const target = dagreName.get(to);
    if (source && target && source !== target) g.setEdge(source, target);
  }
  dagre.layout(g);
  const centres = new Map<string, Rect>(); // dagre gives centres; a rank (column) shares its centre x
  for (const [id, name] of dagreName) {
    const n = g.node(name) as { x: number; y: number; width: number; height: number };
    centres.set(id, { x: n.x, y: n.y, width: n.width, height: n.height });
  }
  const out = foldColumns(centres);
  let minX = Infinity;
  let minY = Infinity;
  for (const [x, y] of Object.values(out)) {
    minX = Math.min(minX, x);
    minY = Math.min(minY, y);
  }
  const [ox, oy] = origin;
  for (const id of Object.keys(out)) out[id] = [Math.round(out[id][0] - minX + ox), Math.round(out[id][1] - minY + oy)];
  return out;
}

/** A layout more than this many times wider than tall, and wider than FOLD_MIN_WIDTH, is folded into bands. */
export const FOLD_ASPECT = 4;
/** Canvas units: about ten columns of default nodes, which a screen still shows readably when fitted. */
export const FOLD_MIN_WIDTH = 4000;
/** The shape folded bands aim for, width / height (a landscape screen's, roughly). */
export const FOLDED_ASPECT = 1.6;
/** Vertical space between two bands of a folded layout. */
export const BAND_GAP = 120;

/**
 * Top-left corners for boxes given by their centres (x, y) as a left-to-right layered layout
 * places them: unchanged unless the whole is over FOLD_ASPECT times wider than tall and
 * over FOLD_MIN_WIDTH wide; then its columns (boxes sharing a centre x) are cut into
 * consecutive runs of about equal width, and each run is moved under the one before,
 * left-aligned, BAND_GAP below it. The number of bands is the one that brings the whole
 * closest to FOLDED_ASPECT.
 */
export function foldColumns(centres: Map<string, Rect>): Record<string, Position> {
  const out = idMap<Position>();
  const columns = new Map<number, string[]>();
  let left = Infinity;
  let right = -Infinity;
  let top = Infinity;
  let bottom = -Infinity;
  for (const [id, r] of centres) {
    out[id] = [r.x - r.width / 2, r.y - r.height / 2];
    const key = Math.round(r.x);
    const column = columns.get(key);
    if (column) column.push(id);
    else columns.set(key, [id]);
    left = Math.min(left, out[id][0]);
    right = Math.max(right, out[id][0] + r.width);
    top = Math.min(top, out[id][1]);
    bottom = Math.max(bottom, out[id][1] + r.height);
  }
  const width = right - left;
  const height = Math.max(bottom - top, 1);
  if (width <= FOLD_MIN_WIDTH || width <= FOLD_ASPECT * height) return out;
  const bands = Math.min(columns.size, Math.max(2, Math.round(Math.sqrt(width / (FOLDED_ASPECT * (height + BAND_GAP))))));
  const ordered = [...columns.keys()].sort((a, b) => a - b);
  const extent = (key: number) => {
    const ids = columns.get(key)!;
    return [Math.min(...ids.map((id) => out[id][0])), Math.max(...ids.map((id) => out[id][0] + centres.get(id)!.width))];
  };
  let bandTop = top;
  let start = 0;
  for (let band = 0; band < bands && start < ordered.length; band++) {
    // this band's columns: up to where the next band's share of the width begins
    const bandLeft = extent(ordered[start])[0];
    const share = (right - bandLeft) / (bands - band);
    let end = start + 1;
    while (end < ordered.length && extent(ordered[end])[1] - bandLeft <= share) end++;
    if (band === bands - 1) end = ordered.length;
    const ids = ordered.slice(start, end).flatMap((key) => columns.get(key)!);
    const ownTop = Math.min(...ids.map((id) => out[id][1]));
    const ownBottom = Math.max(...ids.map((id) => out[id][1] + centres.get(id)!.height));
    for (const id of ids) out[id] = [out[id][0] - bandLeft + left, out[id][1] - ownTop + bandTop];
    bandTop += ownBottom - ownTop + BAND_GAP;
    start = end;
  }
  return out;
}

/**
 * The canvas positions: the file's; for nodes the file gives none, the canvas's frozen ones
 * (`frozen`, a prototype-free map: where they were shown, the decision above); and for the other nodes an
 * auto-layout of them, placed to the right of (or, with none placed, at the origin of) the placed ones.
 */
export function effectivePositions(
  doc: EditorDocument,
  sizeOf: (id: string) => Size,
  frozen: Record<string, Position> = idMap(),
): Record<string, Position> {
  const out = idMap<Position>();
  const missing: string[] = [];
  let right = -Infinity;
  let top = Infinity;
  for (const [id, node] of Object.entries(doc.nodes)) {
    const placed = node.position ?? frozen[id];
    if (placed) {
      out[id] = placed;
      right = Math.max(right, placed[0] + sizeOf(id).width);
      top = Math.min(top, placed[1]);
    } else missing.push(id);
  }
  if (!missing.length) return out;
  const origin: Position = Number.isFinite(right) ? [right + 80, top] : [0, 0];
  return idMap([...Object.entries(out), ...Object.entries(autoLayout(doc, sizeOf, { ids: missing, origin }))]);
}

/** The nodes the canvas still places by the auto-layout: no position in the file and none frozen. */
export function unfrozenNodes(doc: EditorDocument, frozen: Record<string, Position>): string[] {
  return Object.keys(doc.nodes).filter((id) => !doc.nodes[id].position && !frozen[id]);
}

/**
 * The spot nearest to `wanted` where a box of `size` overlaps none of `others` (with a gap):
 * tried in rings of growing distance, below and to the right first. With `view` (the part of the
 * canvas the user sees), only spots where the box lies inside it count (each tried spot is moved into
 * it, `intoView`), and with none free there the answer is `wanted` moved into the view, overlapping:
 * a node the user just added must be seen.
 */
export function freeSpot(wanted: Position, size: Size, others: Rect[], gap = GAP, view: Rect | null = null): Position {
  const fits = (x: number, y: number) => !others.some((o) => overlaps({ x, y, ...size }, o, gap));
  const place = (p: Position): Position => (view ? intoView(p, size, view) : [Math.round(p[0]), Math.round(p[1])]);
  const [x0, y0] = place(wanted);
  if (fits(x0, y0)) return [x0, y0];
  const step = 40;
  // past this ring every tried spot, moved into the view, is one already tried
  const rings = view ? Math.min(200, Math.ceil((view.width + view.height) / step) + 1) : 200;
  for (let ring = 1; ring < rings; ring++) {
    const candidates: Position[] = [];
    for (let i = -ring; i <= ring; i++) {
      candidates.push([x0 + i * step, y0 + ring * step], [x0 + ring * step, y0 + i * step]);
      candidates.push([x0 + i * step, y0 - ring * step], [x0 - ring * step, y0 + i * step]);
    }
    candidates.sort((a, b) => Math.hypot(a[0] - x0, a[1] - y0) - Math.hypot(b[0] - x0, b[1] - y0));
    for (const candidate of candidates) {
      const [x, y] = place(candidate);
      if (fits(x, y)) return [x, y];
    }
  }
  return [x0, y0];
}

/**
 * A box's top-left `p` moved the least that puts the box of `size` inside `view`; along an axis where
 * the box is larger than the view, its top (or left) edge at the view's, so its title bar is seen.
 */
export function intoView(p: Position, size: Size, view: Rect): Position {
  const axis = (at: number, length: number, start: number, extent: number) =>
    Math.round(Math.max(start, Math.min(at, start + extent - length)));
  return [axis(p[0], size.width, view.x, view.width), axis(p[1], size.height, view.y, view.height)];
}

/**
 * After the nodes in `grown` changed size: every node a grown node now covers (and whose
 * top is below the grown node's top) moves down under it; moved nodes push in turn.
 * Returns only the positions that changed.
 */
export function pushApart(rects: Record<string, Rect>, grown: Iterable<string>, gap = GAP): Record<string, Position> {
  const boxes = idMap(Object.entries(rects).map(([id, r]): [string, Rect] => [id, { ...r }]));
  const moved = idMap<Position>();
  const queue = [...grown].filter((id) => id in boxes);
  let guard = 0;
  while (queue.length && guard++ < 10_000) {
    const id = queue.shift()!;
    const a = boxes[id];
    for (const [other, b] of Object.entries(boxes)) {
      if (other === id || b.y < a.y || !overlaps(a, b, gap / 2)) continue;
      b.y = a.y + a.height + gap;
      moved[other] = [b.x, b.y];
      queue.push(other);
    }
  }
  return moved;
}

/**
 * No two boxes overlapping (a ComfyUI workflow's layout, made for narrower nodes): pushApart with every box
 * as grown, top to bottom, again until nothing moves (a box pushed down may land on one above the box that
 * pushed it). Returns only the positions that changed.
 */
export function separateAll(rects: Record<string, Rect>, gap = GAP): Record<string, Position> {
  const boxes = idMap(Object.entries(rects).map(([id, r]): [string, Rect] => [id, { ...r }]));
  const moved = idMap<Position>();
  for (let round = 0; round < 100; round++) {
    const order = Object.keys(boxes).sort((a, b) => boxes[a].y - boxes[b].y || boxes[a].x - boxes[b].x);
    const pushed = Object.entries(pushApart(boxes, order, gap));
    if (!pushed.length) break;
    for (const [id, [x, y]] of pushed) {
      boxes[id] = { ...boxes[id], x, y };
      moved[id] = [x, y];
    }
  }
  return moved;
}

/** The frame of a group (`ui.groups` bounds, as a Rect) and what separateInFrames did with it. */
export type Frame = Rect;

/** The id of the largest of `frames` that holds `point` (a node's centre: the rule of groups.ts `groupMembers`), or null. */
function largestFrameAround(point: Position, frames: Record<string, Frame>): string | null {
  let best: string | null = null;
  for (const [id, f] of Object.entries(frames)) {
    if (!holds(f, point)) continue;
    if (best === null || f.width * f.height > frames[best].width * frames[best].height) best = id;
  }
  return best;
}

function holds(frame: Frame, point: Position): boolean {
  return point[0] >= frame.x && point[0] <= frame.x + frame.width && point[1] >= frame.y && point[1] <= frame.y + frame.height;
}

function centre(r: Rect): Position {
  return [r.x + r.width / 2, r.y + r.height / 2];
}

/**
 * separateAll that keeps groups (ComfyUI's frames, `frames` by group id): a node whose centre lies inside a frame
 * stays inside it, so dragging the frame still takes it along. Three steps:
 *   1. the nodes of each frame (a node in several: the largest's) are separated among themselves;
 *   2. each frame grows rightwards / downwards where one of its nodes now sticks out (+ `padding`);
 *   3. each outermost frame with its nodes (and the frames inside it) is one box, pushed apart from the other boxes
 *      and the nodes in no frame as separateAll does (downwards), so no node ends up inside a frame it was not in.
 * Returns the node positions and the frames that changed.
 */
export function separateInFrames(
  rects: Record<string, Rect>,
  frames: Record<string, Frame>,
  options: { gap?: number; padding?: number } = {},
): { positions: Record<string, Position>; frames: Record<string, Frame> } {
  const { gap = GAP, padding = 30 } = options; // groups.ts GROUP_PADDING (groups.ts imports this module, not the other way)
  const boxes = idMap(Object.entries(rects).map(([id, r]): [string, Rect] => [id, { ...r }]));
  const owner = idMap<string | null>(); // node → the frame it moves with
  const inside = idMap<string[]>(); // frame → every node whose centre it holds (also those of a larger frame)
  for (const [id, r] of Object.entries(boxes)) {
    owner[id] = largestFrameAround(centre(r), frames);
    for (const frame of Object.keys(frames)) if (holds(frames[frame], centre(r))) (inside[frame] ??= []).push(id);
  }
  // 1. inside each frame
  for (const frame of Object.keys(frames)) {
    const own = idMap(Object.keys(boxes).filter((id) => owner[id] === frame).map((id): [string, Rect] => [id, boxes[id]]));
    for (const [id, [x, y]] of Object.entries(separateAll(own, gap))) boxes[id] = { ...boxes[id], x, y };
  }
  // 2. frames grown around their nodes
  const grown = idMap(Object.entries(frames).map(([id, f]): [string, Frame] => {
    const members = (inside[id] ?? []).map((m) => boxes[m]);
    const [right, bottom] = [f.x + f.width, f.y + f.height];
    const sticksOut = (end: number, edge: number) => (end > edge ? end + padding : edge);
    const newRight = Math.max(right, ...members.map((r) => sticksOut(r.x + r.width, right)));
    const newBottom = Math.max(bottom, ...members.map((r) => sticksOut(r.y + r.height, bottom)));
    return [id, { x: f.x, y: f.y, width: Math.round(newRight - f.x), height: Math.round(newBottom - f.y) }];
  }));
  // 3. outermost frames (with their nodes and inner frames) and the other nodes, as boxes
  // a frame inside a larger one (by its centre) moves with the largest frame around it
  const outermost = (frame: string): string => largestFrameAround(centre(frames[frame]), frames) ?? frame;
  const clusterOf = (id: string) => (owner[id] !== null ? `\u0000frame:${outermost(owner[id]!)}` : id);
  const clusters = idMap<Rect>();
  const union = (a: Rect | undefined, b: Rect): Rect => {
    if (!a) return { ...b };
    const x = Math.min(a.x, b.x);
    const y = Math.min(a.y, b.y);
    return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
  };
  for (const id of Object.keys(frames)) {
    const key = `\u0000frame:${outermost(id)}`;
    clusters[key] = union(clusters[key], grown[id]);
  }
  for (const [id, r] of Object.entries(boxes)) clusters[clusterOf(id)] = union(clusters[clusterOf(id)], r);
  const shifted = separateAll(clusters, gap);
  const delta = (key: string): Position => (shifted[key] ? [shifted[key][0] - clusters[key].x, shifted[key][1] - clusters[key].y] : [0, 0]);
  const positions = idMap<Position>();
  for (const [id, r] of Object.entries(boxes)) {
    const [dx, dy] = delta(clusterOf(id));
    const at: Position = [Math.round(r.x + dx), Math.round(r.y + dy)];
    if (at[0] !== rects[id].x || at[1] !== rects[id].y) positions[id] = at;
  }
  const moved = idMap<Frame>();
  for (const [id, f] of Object.entries(grown)) {
    const [dx, dy] = delta(`\u0000frame:${outermost(id)}`);
    const next = { ...f, x: Math.round(f.x + dx), y: Math.round(f.y + dy) };
    const was = frames[id];
    if (next.x !== was.x || next.y !== was.y || next.width !== was.width || next.height !== was.height) moved[id] = next;
  }
  return { positions, frames: moved };
}

/**
 * After the nodes in `grown` changed size on the canvas (`rects`, as shown): pushApart among the placed
 * nodes (a position in the file or a frozen one; nodes still auto-laid-out are left to the layout; "all":
 * separateInFrames, every overlap undone, the groups' `frames` keeping their nodes: the frames that changed come back), its
 * moves split into `file` (nodes with a position in the file: written into the document) and `frozen`
 * (nodes the file gives none: they stay out of the file, as the frozen layout does). With "all", `notes` (by note id)
 * are boxes like the nodes, kept in their frames as nodes are: the ones moved come back in `notes` (a ComfyUI import's
 * notes were hidden under our taller nodes, which kept ComfyUI's positions).
 */
export function pushGrown(
  doc: EditorDocument,
  frozen: Record<string, Position>,
  rects: Record<string, Rect>,
  grown: Iterable<string> | "all",
  frames: Record<string, Frame> = idMap(),
  notes: Record<string, Rect> = idMap(),
): { file: Record<string, Position>; frozen: Record<string, Position>; frames: Record<string, Frame>; notes: Record<string, Position> } {
  const placed = idMap(Object.entries(rects).filter(([id]) => doc.nodes[id]?.position || frozen[id]));
  const noteKey = (id: string) => `\u0000note:${id}`; // never a node id: node ids are the user's text, "note:x" included
  if (grown === "all") for (const [id, r] of Object.entries(notes)) placed[noteKey(id)] = r;
  const separated = grown === "all" ? separateInFrames(placed, frames) : { positions: pushApart(placed, grown), frames: idMap<Frame>() };
  const out = { file: idMap<Position>(), frozen: idMap<Position>(), frames: separated.frames, notes: idMap<Position>() };
  for (const [id, position] of Object.entries(separated.positions)) {
    if (id.startsWith(noteKey(""))) out.notes[id.slice(noteKey("").length)] = position;
    else (doc.nodes[id].position ? out.file : out.frozen)[id] = position;
  }
  return out;
}

/**
 * Where the nodes a ComfyUI import made for another node start (a split KSamplerAdvanced's `10.schedule`,
 * `10.guider`, ... for the Sample `10`: ids `<node>.<part>`, no position in the file, `<node>` has one): on that
 * node, each a pixel lower than the one before, so the import's push-apart (separateInFrames) stacks them in a column
 * under it, inside its group frame (a node belongs to the frame around its centre). Without, the auto-layout put them
 * in one column right of the whole graph, wires crossing the canvas. Returns their positions.
 */
export function besideTheirNode(doc: EditorDocument): Record<string, Position> {
  const out = idMap<Position>();
  const count = idMap<number>();
  for (const [id, node] of Object.entries(doc.nodes)) {
    const dot = id.lastIndexOf(".");
    const owner = dot > 0 ? doc.nodes[id.slice(0, dot)]?.position : undefined;
    if (node.position || !owner) continue;
    const n = (count[id.slice(0, dot)] = (count[id.slice(0, dot)] ?? 0) + 1);
    out[id] = [owner[0], owner[1] + n];
  }
  return out;
}

export type AlignEdge = "left" | "right" | "top" | "bottom" | "center-x" | "center-y";

/** Line up the boxes on one edge (or centre line) of the selection's bounding box. */
export function alignNodes(rects: Record<string, Rect>, edge: AlignEdge): Record<string, Position> {
  const list = Object.values(rects);
  if (list.length < 2) return {};
  const minX = Math.min(...list.map((r) => r.x));
  const maxX = Math.max(...list.map((r) => r.x + r.width));
  const minY = Math.min(...list.map((r) => r.y));
  const maxY = Math.max(...list.map((r) => r.y + r.height));
  const out = idMap<Position>();
  for (const [id, r] of Object.entries(rects)) {
    switch (edge) {
      case "left": out[id] = [minX, r.y]; break;
      case "right": out[id] = [maxX - r.width, r.y]; break;
      case "top": out[id] = [r.x, minY]; break;
      case "bottom": out[id] = [r.x, maxY - r.height]; break;
      case "center-x": out[id] = [Math.round((minX + maxX) / 2 - r.width / 2), r.y]; break;
      case "center-y": out[id] = [r.x, Math.round((minY + maxY) / 2 - r.height / 2)]; break;
    }
  }
  return out;
}

/** Equal gaps between the boxes along one axis (the first and last stay where they are). */
export function distributeNodes(rects: Record<string, Rect>, axis: "x" | "y"): Record<string, Position> {
  const entries = Object.entries(rects);
  if (entries.length < 3) return {};
  const extent = axis === "x" ? "width" : "height";
  entries.sort(([, a], [, b]) => a[axis] - b[axis]);
  const first = entries[0][1];
  const last = entries[entries.length - 1][1];
  const total = entries.reduce((sum, [, r]) => sum + r[extent], 0);
  const span = last[axis] + last[extent] - first[axis];
  const gap = (span - total) / (entries.length - 1);
  const out = idMap<Position>();
  let at = first[axis];
  for (const [id, r] of entries) {
    out[id] = axis === "x" ? [Math.round(at), r.y] : [r.x, Math.round(at)];
    at += r[extent] + gap;
  }
  return out;
}
