/**
 * Copy and paste of nodes (Ctrl+C / Ctrl+V), as pure functions on documents.
 *
 * A clip holds the copied nodes with their inputs, titles, ui entries and
 * positions. Pasting gives every node a fresh id, rewires links between
 * copied nodes to the new ids, and drops links to nodes outside the clip —
 * unless `keepExternalLinks` (Ctrl+Shift+V) and the source still exists.
 *
 * Subgraph nodes travel with their definitions: a clip carries the `subgraphs` its nodes use
 * (`subgraph:<name>`, and the ones those definitions use in turn), as ComfyUI copies a subgraph's
 * blueprint, so a subgraph node pasted into another graph or tab is not a placeholder "with no
 * definition". Pasting adds each definition to the target graph: one already there under the same
 * name with the same content is reused; a different one under that name keeps the target's, and the
 * pasted definition takes a free name (`name_2`, ...), its nodes' types following (`mergeDefinitions`).
 *
 * Notes (graph/notes.ts) travel with the nodes: a selection's `note:<id>` keys copy those notes, and a paste adds
 * them with fresh ids, shifted as the nodes are (a clip may hold notes only).
 *
 * Between tabs: the app also keeps the last clip in localStorage as the text of
 * `clipToText` — `{"clip": CLIP_VERSION, "nodes": {...}, "notes": [...], "subgraphs": {...}, "sizes": {...}}`
 * (exact integers, graph/exactJson.ts; `subgraphs` only when a node uses one, `notes` only when notes were copied) — and
 * `clipFromText` reads it back, or null when the text is not a clip of this version (another
 * version, hand-edited, truncated).
 */
import { parseJsonOrNull, stringifyJson } from "./exactJson";
import { copyIdMap, idMap } from "./idMaps";
import { isLink, newNodeId, type DocNode, type EditorDocument, type NodeMode, type Position } from "./document";
import { copyNotes, isNote, NOTE_PREFIX, pastedNotes, type Note } from "./notes";
import { SUBGRAPH_PREFIX, subgraphName } from "./subgraph";

/** The version tag of a clip kept in localStorage; a clip with another tag is ignored. */
export const CLIP_VERSION = "nodegraph-clip-1";

export interface Clip {
  nodes: Record<string, DocNode>;
  /** The copied notes (`ui.notes` entries; absent when none was copied). */
  notes?: Note[];
  /** The subgraph definitions the nodes use, nested ones included, by name (absent when they use none). */
  subgraphs?: Record<string, unknown>;
}

/** A node's box size as copied (so a paste in another tab lands clear of the nodes there). */
export interface ClipSize {
  width: number;
  height: number;
}

/**
 * The clip of the given nodes and notes (`note:<id>` in `ids`; null when none of them exists). `shownAt(id)` gives the
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
  const notes = copyNotes(doc, [...ids].filter((id) => id.startsWith(NOTE_PREFIX)).map((id) => id.slice(NOTE_PREFIX.length)));
  if (!Object.keys(nodes).length && !notes.length) return null;
  const subgraphs = usedDefinitions(doc.subgraphs ?? {}, Object.values(nodes).map((n) => n.type));
  return { nodes, ...(notes.length ? { notes } : {}), ...(Object.keys(subgraphs).length ? { subgraphs } : {}) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The types of a definition's inner nodes (its `nodes` as written in the file). */
function innerTypes(definition: unknown): string[] {
  const nodes = isObject(definition) && isObject(definition.nodes) ? Object.values(definition.nodes) : [];
  return nodes.flatMap((n) => (isObject(n) && typeof n.type === "string" ? [n.type] : []));
}

/** Copies of the definitions (of `definitions`) that nodes of `types` use, and those they use in turn, by name. */
export function usedDefinitions(definitions: Record<string, unknown>, types: Iterable<string>): Record<string, unknown> {
  const used = idMap<unknown>();
  const queue = [...types];
  while (queue.length) {
    const name = subgraphName(queue.pop()!);
    if (name === null || name in used || !Object.hasOwn(definitions, name)) continue;
    used[name] = structuredClone(definitions[name]);
    queue.push(...innerTypes(used[name]));
  }
  return used;
}

/** `value` as JSON with every object's keys sorted: two definitions written in another key order compare equal. */
function canonical(value: unknown): string {
  const sorted = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sorted) : isObject(v) ? idMap(Object.keys(v).sort().map((k): [string, unknown] => [k, sorted(v[k])])) : v;
  return stringifyJson(sorted(value));
}

/** A definition with the subgraph types of its inner nodes renamed (`renames`: old name → new name). */
function withRenamedTypes(definition: unknown, renames: Record<string, string>): unknown {
  if (!isObject(definition) || !isObject(definition.nodes)) return definition;
  const nodes = idMap<unknown>();
  for (const [id, node] of Object.entries(definition.nodes)) {
    const name = isObject(node) && typeof node.type === "string" ? subgraphName(node.type) : null;
    nodes[id] = name !== null && name in renames ? { ...(node as Record<string, unknown>), type: SUBGRAPH_PREFIX + renames[name] } : node;
  }
  return { ...definition, nodes };
}

/**
 * The clip's definitions added to `target` (the graph's `subgraphs`): a name the target lacks is added; one it has
 * with the same content (keys in any order) is reused; one it has with other content keeps the target's, and the
 * pasted definition is added as `<name>_2` (`_3`, ...). Definitions that use renamed ones are rewritten first (inner
 * node types), so a nested definition is compared as it will be written. Returns the merged definitions and the
 * renames (old name → new name) the pasted nodes' types must follow.
 */
export function mergeDefinitions(
  target: Record<string, unknown>,
  pasted: Record<string, unknown>,
): { subgraphs: Record<string, unknown>; renames: Record<string, string> } {
  const subgraphs = copyIdMap(target);
  const renames = idMap<string>();
  const done = new Set<string>();
  const visiting = new Set<string>();
  const add = (name: string): void => {
    if (done.has(name) || visiting.has(name)) return; // a cycle (a definition using itself) is written as it is
    visiting.add(name);
    for (const type of innerTypes(pasted[name])) {
      const inner = subgraphName(type);
      if (inner !== null && Object.hasOwn(pasted, inner)) add(inner);
    }
    const definition = withRenamedTypes(pasted[name], renames);
    let free = name;
    // (a name is at most 64 characters: docs/graph-format.md "Subgraphs")
    for (let n = 2; Object.hasOwn(subgraphs, free) && canonical(subgraphs[free]) !== canonical(definition); n++) free = `${name.slice(0, 60)}_${n}`;
    if (!Object.hasOwn(subgraphs, free)) subgraphs[free] = definition;
    if (free !== name) renames[name] = free;
    visiting.delete(name);
    done.add(name);
  };
  for (const name of Object.keys(pasted)) add(name);
  return { subgraphs, renames };
}

/**
 * Paste `clip` into `doc`, shifted by `offset` (nodes without a position are
 * placed at `fallback`). Returns the new document, the ids of the pasted nodes and those of the pasted notes.
 */
export function pasteClip(
  doc: EditorDocument,
  clip: Clip,
  offset: Position,
  options: { keepExternalLinks?: boolean; fallback?: Position } = {},
): { doc: EditorDocument; ids: string[]; notes: string[] } {
  const merged = clip.subgraphs ? mergeDefinitions(doc.subgraphs ?? idMap(), clip.subgraphs) : null;
  const typeOf = (type: string): string => {
    const name = subgraphName(type);
    return name !== null && merged && name in merged.renames ? SUBGRAPH_PREFIX + merged.renames[name] : type;
  };
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
      type: typeOf(node.type),
      inputs,
      hasInputsKey: true,
      position: [Math.round(base[0] + offset[0]), Math.round(base[1] + offset[1])],
      hasUiEntry: true,
    };
  }
  const withNodes = merged ? { ...doc, nodes, subgraphs: merged.subgraphs } : { ...doc, nodes };
  const notes = pastedNotes(withNodes, clip.notes ?? [], offset);
  return { doc: notes.doc, ids: Object.values(rename), notes: notes.ids };
}

/** The text kept in localStorage for a clip and its node sizes. */
export function clipToText(clip: Clip, sizes: Record<string, ClipSize>): string {
  return stringifyJson({
    clip: CLIP_VERSION,
    nodes: clip.nodes,
    ...(clip.notes?.length ? { notes: clip.notes } : {}),
    ...(clip.subgraphs ? { subgraphs: clip.subgraphs } : {}),
    sizes,
  });
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
  if (raw.notes !== undefined && !(Array.isArray(raw.notes) && raw.notes.every(isNote))) return null;
  const notes = (raw.notes ?? []) as Note[];
  if (!Object.keys(nodes).length && !notes.length) return null;
  if (raw.subgraphs !== undefined && !isObject(raw.subgraphs)) return null;
  const subgraphs = copyIdMap(isObject(raw.subgraphs) ? raw.subgraphs : {});
  const sizes = idMap<ClipSize>();
  for (const [id, size] of Object.entries(isObject(raw.sizes) ? raw.sizes : {})) {
    if (isObject(size) && finitePair([size.width, size.height])) sizes[id] = { width: size.width as number, height: size.height as number };
  }
  return { clip: { nodes, ...(notes.length ? { notes } : {}), ...(Object.keys(subgraphs).length ? { subgraphs } : {}) }, sizes };
}
