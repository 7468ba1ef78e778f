/**
 * Copy and paste of nodes (Ctrl+C / Ctrl+V), as pure functions on documents.
 *
 * A clip holds the copied nodes with their inputs, titles, ui entries and
 * positions. Pasting gives every node a fresh id, rewires links between
 * copied nodes to the new ids, and drops links to nodes outside the clip —
 * unless `keepExternalLinks` (Ctrl+Shift+V) and the source still exists.
 *
 * Between tabs: the app also keeps the last clip in localStorage as the text of
 * `clipToText` — `{"clip": CLIP_VERSION, "nodes": {...}, "sizes": {...}}` (exact
 * integers, graph/exactJson.ts) — and `clipFromText` reads it back, or null when the
 * text is not a clip of this version (another version, hand-edited, truncated).
 */
import { parseJsonOrNull, stringifyJson } from "./exactJson";
import { copyIdMap, idMap } from "./idMaps";
import { isLink, newNodeId, type DocNode, type EditorDocument, type NodeMode, type Position } from "./document";

/** The version tag of a clip kept in localStorage; a clip with another tag is ignored. */
export const CLIP_VERSION = "nodegraph-clip-1";

export interface Clip {
  nodes: Record<string, DocNode>;
}

/** A node's box size as copied (so a paste in another tab lands clear of the nodes there). */
export interface ClipSize {
  width: number;
  height: number;
}

/**
 * The clip of the given nodes (null when none of them exists). `shownAt(id)` gives the
 * position a node is shown at when the file has none (auto-layout), so a pasted graph keeps
 * the arrangement the user saw instead of piling up on one spot.
 */
export function copyNodes(doc: EditorDocument, ids: Iterable<string>, shownAt: (id: string) => Position | undefined = () => undefined): Clip | null {
  const nodes = idMap<DocNode>();
  for (const id of ids) {
    if (!doc.nodes[id]) continue;
    const node = structuredClone(doc.nodes[id]);
    node.inputs = copyIdMap(node.inputs);
    const shown = node.position ?? shownAt(id);
    if (shown) node.position = [shown[0], shown[1]];
    nodes[id] = node;
  }
  return Object.keys(nodes).length ? { nodes } : null;
}

/**
 * Paste `clip` into `doc`, shifted by `offset` (nodes without a position are
 * placed at `fallback`). Returns the new document and the ids of the pasted nodes.
 */
export function pasteClip(
  doc: EditorDocument,
  clip: Clip,
  offset: Position,
  options: { keepExternalLinks?: boolean; fallback?: Position } = {},
): { doc: EditorDocument; ids: string[] } {
  const taken = new Set<string>();
  const rename = idMap<string>();
  for (const [oldId, node] of Object.entries(clip.nodes)) {
    const id = newNodeId(doc, node.type, taken);
    taken.add(id);
    rename[oldId] = id;
  }
  const nodes = copyIdMap(doc.nodes);
  for (const [oldId, node] of Object.entries(clip.nodes)) {
    const inputs = idMap<unknown>();
    for (const [name, value] of Object.entries(node.inputs)) {
      if (!isLink(value)) inputs[name] = value;
      else if (value.node in rename) inputs[name] = { node: rename[value.node], output: value.output };
      else if (options.keepExternalLinks && value.node in doc.nodes) inputs[name] = value;
    }
    const base = node.position ?? options.fallback ?? [0, 0];
    nodes[rename[oldId]] = {
      ...node,
      inputs,
      hasInputsKey: true,
      position: [Math.round(base[0] + offset[0]), Math.round(base[1] + offset[1])],
      hasUiEntry: true,
    };
  }
  return { doc: { ...doc, nodes }, ids: Object.values(rename) };
}

/** The text kept in localStorage for a clip and its node sizes. */
export function clipToText(clip: Clip, sizes: Record<string, ClipSize>): string {
  return stringifyJson({ clip: CLIP_VERSION, nodes: clip.nodes, sizes });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function finitePair(value: unknown): value is [number, number] {
  return Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === "number" && Number.isFinite(v));
}

/** One copied node read back from storage, or null when it is not one. */
function docNodeFrom(raw: unknown): DocNode | null {
  if (!isObject(raw) || typeof raw.type !== "string" || !isObject(raw.inputs) || !isObject(raw.ui)) return null;
  if (raw.title !== undefined && typeof raw.title !== "string") return null;
  if (raw.mode !== undefined && raw.mode !== "bypass" && raw.mode !== "mute") return null;
  const node: DocNode = {
    type: raw.type,
    inputs: copyIdMap(raw.inputs),
    hasInputsKey: raw.hasInputsKey !== false,
    ui: raw.ui,
    hasUiEntry: raw.hasUiEntry !== false,
  };
  if (typeof raw.title === "string") node.title = raw.title;
  if (raw.mode !== undefined) node.mode = raw.mode as NodeMode;
  if (finitePair(raw.position)) node.position = [raw.position[0], raw.position[1]];
  return node;
}

/** A clip (and its sizes) from stored text; null for anything that is not a well-formed clip of CLIP_VERSION. */
export function clipFromText(text: string | null | undefined): { clip: Clip; sizes: Record<string, ClipSize> } | null {
  const raw = parseJsonOrNull(text);
  if (!isObject(raw) || raw.clip !== CLIP_VERSION || !isObject(raw.nodes)) return null;
  const nodes = idMap<DocNode>();
  for (const [id, value] of Object.entries(raw.nodes)) {
    const node = docNodeFrom(value);
    if (!node || id === "") return null;
    nodes[id] = node;
  }
  if (!Object.keys(nodes).length) return null;
  const sizes = idMap<ClipSize>();
  for (const [id, size] of Object.entries(isObject(raw.sizes) ? raw.sizes : {})) {
    if (isObject(size) && finitePair([size.width, size.height])) sizes[id] = { width: size.width as number, height: size.height as number };
  }
  return { clip: { nodes }, sizes };
}
