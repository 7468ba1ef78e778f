/**
 * Groups and reroutes: editor-only drawing kept in the graph file's `ui`
 * (docs/graph-format.md "Editor metadata in ui"); the engine ignores both.
 *
 *   ui.groups    [{id, title, color, bounds: [x, y, w, h]}] — a titled, coloured frame;
 *                moving it moves the nodes inside its bounds (`groupMembers`).
 *   ui.reroutes  [{id, position: [x, y], to: {node, input}}] — bend points on the wire
 *                that ends at that input, drawn in list order.
 *
 * Main functions: groupsOf / reroutesOf (read, tolerant of malformed entries, which are
 * carried through untouched), addGroup (around a selection), groupSelection (addGroup, then
 * the other nodes the frame would cover moved clear of it, so its title is never hidden),
 * moveGroup (the frame and its members), updateGroup, removeGroup, groupMembers, headerMembers and
 * growFramesToHold (a frame grows with a node inside it that grew),
 * layoutWithGroups (auto-layout that keeps each group's nodes together and moves the frame
 * with them), addReroute, moveReroute, removeReroutes, and `pruneReroutes` (reroutes whose
 * wire is gone are dropped on save).
 */
import { docEdges, isLink, moveNodes, setUiKey, type EditorDocument, type Position } from "./document";
import { idMap } from "./idMaps";
import { freeSpot, layeredLayout, type Rect, type Size } from "./layout";

export interface Group {
  id: string;
  title: string;
  color: string;
  bounds: [number, number, number, number];
}

export interface Reroute {
  id: string;
  position: Position;
  to: { node: string; input: string };
}

export const GROUP_COLORS = ["#3f789e", "#8a5a9e", "#4d8a57", "#9e7a3f", "#9e4d4d", "#5f6f7f"];
export const GROUP_PADDING = 30;
export const GROUP_HEADER = 34;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function isGroup(value: unknown): value is Group {
  return (
    isObject(value) &&
    typeof value.id === "string" &&
    Array.isArray(value.bounds) &&
    value.bounds.length === 4 &&
    value.bounds.every((v) => typeof v === "number" && Number.isFinite(v))
  );
}

function isReroute(value: unknown): value is Reroute {
  return (
    isObject(value) &&
    typeof value.id === "string" &&
    Array.isArray(value.position) &&
    value.position.length === 2 &&
    isObject(value.to) &&
    typeof value.to.node === "string" &&
    typeof value.to.input === "string"
  );
}

function rawList(doc: EditorDocument, key: string): unknown[] {
  const list = doc.uiRest?.[key];
  return Array.isArray(list) ? list : [];
}

/** The well-formed groups of the document (title and colour defaulted). */
export function groupsOf(doc: EditorDocument): Group[] {
  return rawList(doc, "groups").filter(isGroup).map((g) => ({
    ...g,
    title: typeof g.title === "string" ? g.title : "Group",
    color: typeof g.color === "string" ? g.color : GROUP_COLORS[0],
  }));
}

export function reroutesOf(doc: EditorDocument): Reroute[] {
  return rawList(doc, "reroutes").filter(isReroute);
}

function freshId(prefix: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  let n = 1;
  while (used.has(`${prefix}${n}`)) n++;
  return `${prefix}${n}`;
}

/** Change the entries with ids in `changes` (malformed entries stay as they were). */
function mapList<T extends { id: string }>(doc: EditorDocument, key: string, valid: (v: unknown) => v is T, change: (item: T) => T | null): EditorDocument {
  const list = rawList(doc, key);
  const next: unknown[] = [];
  let changed = false;
  for (const item of list) {
    if (!valid(item)) {
      next.push(item);
      continue;
    }
    const out = change(item);
    if (out !== item) changed = true;
    if (out) next.push(out);
  }
  return changed ? setUiKey(doc, key, next) : doc;
}

/** A group framing `rects` (the selection) with padding and room for the title. */
export function addGroup(doc: EditorDocument, rects: Rect[], title = "Group", color?: string): { doc: EditorDocument; id: string } {
  const groups = groupsOf(doc);
  const id = freshId("group", groups.map((g) => g.id));
  const bounds: Group["bounds"] = rects.length ? frameAround(rects) : [0, 0, 400, 300];
  const group: Group = { id, title, color: color ?? GROUP_COLORS[groups.length % GROUP_COLORS.length], bounds };
  return { doc: setUiKey(doc, "groups", [...rawList(doc, "groups"), group]), id };
}

/**
 * Group the nodes `ids` (addGroup around their boxes), then move every other node the new
 * frame covers (its title bar included) to the nearest spot clear of it and of the other
 * nodes: a frame drawn behind a node above the selection would hide its title.
 */
export function groupSelection(doc: EditorDocument, ids: string[], rects: Record<string, Rect>, title = "Group"): { doc: EditorDocument; id: string } {
  const members = new Set(ids.filter((id) => rects[id]));
  const added = addGroup(doc, [...members].map((id) => rects[id]), title);
  const [gx, gy, gw, gh] = groupsOf(added.doc).find((g) => g.id === added.id)!.bounds;
  const frame: Rect = { x: gx, y: gy, width: gw, height: gh };
  const placed: Rect[] = [frame, ...Object.entries(rects).filter(([id]) => members.has(id)).map(([, r]) => r)];
  const others = Object.entries(rects).filter(([id]) => !members.has(id) && id in doc.nodes);
  const covered = new Set(others.filter(([, r]) => overlapsRect(r, frame)).map(([id]) => id));
  for (const [id, r] of others) if (!covered.has(id)) placed.push(r);
  const moved = idMap<Position>();
  for (const id of covered) {
    const r = rects[id];
    moved[id] = freeSpot([r.x, r.y], { width: r.width, height: r.height }, placed);
    placed.push({ ...r, x: moved[id][0], y: moved[id][1] });
  }
  return { doc: Object.keys(moved).length ? moveNodes(added.doc, moved) : added.doc, id: added.id };
}

function overlapsRect(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** The frame around boxes: padding on every side and room for the title above. */
function frameAround(rects: Rect[]): Group["bounds"] {
  const minX = Math.min(...rects.map((r) => r.x));
  const minY = Math.min(...rects.map((r) => r.y));
  const maxX = Math.max(...rects.map((r) => r.x + r.width));
  const maxY = Math.max(...rects.map((r) => r.y + r.height));
  return [minX - GROUP_PADDING, minY - GROUP_PADDING - GROUP_HEADER, maxX - minX + 2 * GROUP_PADDING, maxY - minY + 2 * GROUP_PADDING + GROUP_HEADER].map(Math.round) as Group["bounds"];
}

/**
 * Auto-layout (dagre, left to right) that keeps groups: each group is laid out as one box
 * (its frame and its nodes, arranged as they are), so its nodes stay together and the frame
 * moves with them. A node in several groups belongs to the largest. A group whose nodes all
 * moved by the same amount moves by it; one whose nodes were split (it shares them with a
 * larger group) is redrawn around them; a group with no nodes stays. Reroutes move with the
 * node their wire ends at. `rects`: the nodes as they are shown.
 */
export function layoutWithGroups(doc: EditorDocument, rects: Record<string, Rect>): EditorDocument {
  const groups = groupsOf(doc);
  const membersOf = new Map(groups.map((g) => [g.id, groupMembers(g, rects).filter((id) => id in doc.nodes)]));
  const owner = new Map<string, string>(); // node id → the group it is laid out with
  const bySize = [...groups].sort((a, b) => b.bounds[2] * b.bounds[3] - a.bounds[2] * a.bounds[3]);
  for (const g of bySize) for (const id of membersOf.get(g.id)!) if (!owner.has(id)) owner.set(id, g.id);
  const clusterKey = (groupId: string) => `\u0000group:${groupId}`;
  const sizeOf = (id: string): Size => rects[id] ?? { width: 300, height: 150 };

  const clusterBox = new Map<string, Rect>(); // group id → union of its frame and its owned nodes
  for (const g of groups) {
    const owned = [...owner].filter(([, gid]) => gid === g.id).map(([id]) => rects[id]);
    if (!owned.length) continue;
    const [x, y, w, h] = g.bounds;
    const all = [{ x, y, width: w, height: h }, ...owned];
    const minX = Math.min(...all.map((r) => r.x));
    const minY = Math.min(...all.map((r) => r.y));
    clusterBox.set(g.id, {
      x: minX,
      y: minY,
      width: Math.max(...all.map((r) => r.x + r.width)) - minX,
      height: Math.max(...all.map((r) => r.y + r.height)) - minY,
    });
  }
  const boxes = new Map<string, Size>();
  const boxOf = (id: string) => (owner.has(id) && clusterBox.has(owner.get(id)!) ? clusterKey(owner.get(id)!) : id);
  for (const id of Object.keys(doc.nodes)) {
    const key = boxOf(id);
    if (!boxes.has(key)) boxes.set(key, key === id ? sizeOf(id) : clusterBox.get(owner.get(id)!)!);
  }
  const links = docEdges(doc).map((e): [string, string] => [boxOf(e.source), boxOf(e.target)]);
  const placed = layeredLayout(boxes, links);

  const positions = idMap<Position>();
  for (const id of Object.keys(doc.nodes)) {
    const key = boxOf(id);
    if (key === id) positions[id] = placed[id];
    else {
      const box = clusterBox.get(owner.get(id)!)!;
      const r = rects[id];
      positions[id] = [placed[key][0] + (r.x - box.x), placed[key][1] + (r.y - box.y)];
    }
  }
  const delta = (id: string): Position => {
    const r = rects[id];
    return r ? [positions[id][0] - r.x, positions[id][1] - r.y] : [0, 0];
  };
  let next = moveNodes(doc, positions);
  next = mapList(next, "groups", isGroup, (g) => {
    const members = membersOf.get(g.id) ?? [];
    if (!members.length) return g;
    const moves = members.map(delta);
    const same = moves.every(([dx, dy]) => dx === moves[0][0] && dy === moves[0][1]);
    const bounds: Group["bounds"] = same
      ? [g.bounds[0] + moves[0][0], g.bounds[1] + moves[0][1], g.bounds[2], g.bounds[3]]
      : frameAround(members.map((id) => ({ ...rects[id], x: positions[id][0], y: positions[id][1] })));
    return { ...g, bounds };
  });
  return mapList(next, "reroutes", isReroute, (r) => {
    if (!(r.to.node in positions) || !rects[r.to.node]) return r;
    const [dx, dy] = delta(r.to.node);
    return dx || dy ? { ...r, position: [r.position[0] + dx, r.position[1] + dy] as Position } : r;
  });
}

/** The ids of the nodes whose box lies inside the group's bounds (by their centre). */
export function groupMembers(group: Group, rects: Record<string, Rect>): string[] {
  const [gx, gy, gw, gh] = group.bounds;
  return Object.entries(rects)
    .filter(([, r]) => {
      const cx = r.x + r.width / 2;
      const cy = r.y + r.height / 2;
      return cx >= gx && cx <= gx + gw && cy >= gy && cy <= gy + gh;
    })
    .map(([id]) => id);
}

/**
 * The ids of the nodes whose title bar (the middle of its top edge, which stays put when a node grows taller) lies
 * inside the group's bounds: a node that grew (a long prompt, a run's image) past the frame is still its member.
 */
export function headerMembers(group: Group, rects: Record<string, Rect>): string[] {
  const [gx, gy, gw, gh] = group.bounds;
  return Object.entries(rects)
    .filter(([, r]) => {
      const cx = r.x + r.width / 2;
      const top = r.y + 8;
      return cx >= gx && cx <= gx + gw && top >= gy && top <= gy + gh;
    })
    .map(([id]) => id);
}

/**
 * Each group's frame grown (never shrunk) to hold its `members` (group id → node ids, taken before the nodes grew
 * and pushed the others) at `rects`, with the frame's padding: as ComfyUI's group, a frame does not leave a node
 * that grew sticking out of it (the frame stays where it is; only its right and bottom edges move).
 */
export function growFramesToHold(doc: EditorDocument, members: Record<string, string[]>, rects: Record<string, Rect>): EditorDocument {
  return mapList(doc, "groups", isGroup, (g) => {
    const inside = (members[g.id] ?? []).map((id) => rects[id]).filter(Boolean);
    if (!inside.length) return g;
    const [x, y, width, height] = g.bounds;
    const right = Math.max(x + width, ...inside.map((r) => Math.round(r.x + r.width + GROUP_PADDING)));
    const bottom = Math.max(y + height, ...inside.map((r) => Math.round(r.y + r.height + GROUP_PADDING)));
    return right === x + width && bottom === y + height ? g : { ...g, bounds: [x, y, right - x, bottom - y] as Group["bounds"] };
  });
}

/** Move a group to (x, y) and its members (given at the move's start) by the same amount. */
export function moveGroup(doc: EditorDocument, id: string, to: Position, members: Record<string, Position>): EditorDocument {
  const group = groupsOf(doc).find((g) => g.id === id);
  if (!group) return doc;
  const dx = Math.round(to[0]) - group.bounds[0];
  const dy = Math.round(to[1]) - group.bounds[1];
  if (!dx && !dy) return doc;
  const moved = mapList(doc, "groups", isGroup, (g) =>
    g.id === id ? { ...g, bounds: [g.bounds[0] + dx, g.bounds[1] + dy, g.bounds[2], g.bounds[3]] as Group["bounds"] } : g,
  );
  const positions = idMap<Position>();
  for (const [node, [x, y]] of Object.entries(members)) positions[node] = [x + dx, y + dy];
  const withRoutes = mapList(moved, "reroutes", isReroute, (r) =>
    Object.hasOwn(members, r.to.node) ? { ...r, position: [r.position[0] + dx, r.position[1] + dy] as Position } : r,
  );
  return moveNodes(withRoutes, positions);
}

export function updateGroup(doc: EditorDocument, id: string, change: Partial<Omit<Group, "id">>): EditorDocument {
  return mapList(doc, "groups", isGroup, (g) => (g.id === id ? { ...g, ...change } : g));
}

export function removeGroup(doc: EditorDocument, id: string): EditorDocument {
  return mapList(doc, "groups", isGroup, (g) => (g.id === id ? null : g));
}

/** Add a bend point on the wire into `to` at `position`, after the ones it already has. */
export function addReroute(doc: EditorDocument, to: { node: string; input: string }, position: Position): { doc: EditorDocument; id: string } {
  const id = freshId("reroute", reroutesOf(doc).map((r) => r.id));
  const reroute: Reroute = { id, position: [Math.round(position[0]), Math.round(position[1])], to };
  return { doc: setUiKey(doc, "reroutes", [...rawList(doc, "reroutes"), reroute]), id };
}

export function moveReroute(doc: EditorDocument, id: string, position: Position): EditorDocument {
  const p: Position = [Math.round(position[0]), Math.round(position[1])];
  return mapList(doc, "reroutes", isReroute, (r) => (r.id === id && (r.position[0] !== p[0] || r.position[1] !== p[1]) ? { ...r, position: p } : r));
}

export function removeReroutes(doc: EditorDocument, ids: Iterable<string>): EditorDocument {
  const gone = new Set(ids);
  return mapList(doc, "reroutes", isReroute, (r) => (gone.has(r.id) ? null : r));
}

/** Drop reroutes whose wire no longer exists (its input is unlinked or its node removed). */
export function pruneReroutes(doc: EditorDocument): EditorDocument {
  return mapList(doc, "reroutes", isReroute, (r) => (isLink(doc.nodes[r.to.node]?.inputs[r.to.input]) ? r : null));
}

/** The reroute points of the wire into `node.input`, in drawing order. */
export function wirePoints(reroutes: Reroute[], node: string, input: string): Reroute[] {
  return reroutes.filter((r) => r.to.node === node && r.to.input === input);
}
