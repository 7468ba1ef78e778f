/**
 * The editor's document: the graph file (docs/graph-format.md, format_version 2)
 * held so that it saves back exactly as loaded (apart from `format_version`,
 * always written as the current one), plus pure edit operations.
 *
 * Main objects:
 *   GraphFile        the JSON the CLI runs (`nodes`, `metadata`, `ui`).
 *   EditorDocument   what the editor edits; every operation returns a new one
 *                    (immutable values make undo a stack of snapshots).
 *   fromGraphFile / toGraphFile   the conversion both ways; a document loaded
 *                    and saved with no edit gives the same JSON (key order aside).
 *
 * What is carried through untouched: `metadata`; every key of `ui` except the
 * per-node entries; every key of `ui.nodes.<id>` besides `position`; `ui.nodes`
 * entries whose node is not in the graph; the literal inputs as written (inputs
 * left out stay left out — the widget shows the default). The editor itself
 * writes only `ui.nodes.<id>.position` (a node that was moved or added),
 * `ui.nodes.<id>.size` (a resized node), `ui.nodes.<id>.seed_modes` (a seed
 * input's randomise/fixed/increment/decrement control), `ui.groups` and `ui.reroutes`
 * (graph/groups.ts), `ui.notes` (graph/notes.ts), a node's `mode` (bypass / mute) and `subgraphs`
 * (graph/subgraph.ts) — all per the version-2 conventions of docs/graph-format.md.
 *
 * Every map keyed by a node id or an input name is prototype-free (graph/idMaps.ts), so a
 * node called `constructor` or `__proto__` is an ordinary node. Values may hold BigInts
 * (integers beyond 2^53, read exactly by graph/exactJson.ts): documents are copied with
 * structuredClone, never through JSON text. A load is refused (GraphFormatError) for what
 * the engine refuses too and the editor could not show: an empty node id, a title that is
 * not text.
 */
import type { NodeSchema } from "../schema/types";
import { decrementedSeed, incrementedSeed } from "../schema/widgets";
import { copyIdMap, idMap, ownValue, withId } from "./idMaps";

export const FORMAT_VERSION = 2;

export interface Link {
  node: string;
  output: string;
}

export type InputValue = unknown; // a literal or a Link

export type NodeMode = "bypass" | "mute";

export interface GraphFileNode {
  type: string;
  title?: string;
  inputs?: Record<string, InputValue>;
  mode?: NodeMode;
}

export interface GraphFile {
  format_version: number;
  metadata?: Record<string, unknown>;
  nodes: Record<string, GraphFileNode>;
  subgraphs?: Record<string, unknown>;
  ui?: Record<string, unknown>;
}

export type Position = [number, number];
export type SeedMode = "randomize" | "fixed" | "increment" | "decrement";

export interface DocNode {
  type: string;
  title?: string;
  /** `"bypass"` or `"mute"` (docs/graph-format.md "Bypass and mute"); undefined: runs normally. */
  mode?: NodeMode;
  inputs: Record<string, InputValue>;
  /** Whether the file had an `inputs` key (kept so that `{}` and absence both round-trip). */
  hasInputsKey: boolean;
  /** `ui.nodes.<id>.position`; undefined when the file gave none and the node was never moved. */
  position?: Position;
  /** Every other key of `ui.nodes.<id>` (carried through; `seed_modes` lives here). */
  ui: Record<string, unknown>;
  /** Whether the file had a `ui.nodes.<id>` entry (even an empty one). */
  hasUiEntry: boolean;
}

export interface EditorDocument {
  formatVersion: number;
  /** Nodes by id, in file order (new nodes last). */
  nodes: Record<string, DocNode>;
  metadata?: Record<string, unknown>;
  /** Subgraph definitions by name (graph/subgraph.ts), carried through as written. */
  subgraphs?: Record<string, unknown>;
  /** `ui` without `nodes` (undefined when the file had no `ui`). */
  uiRest?: Record<string, unknown>;
  /** `ui.nodes` entries for ids that are not nodes of the graph. */
  uiOrphans: Record<string, unknown>;
  /** Whether the file had `ui.nodes` (so an empty one round-trips). */
  hasUiNodes: boolean;
}

export class GraphFormatError extends Error {}

export function emptyDocument(): EditorDocument {
  return { formatVersion: FORMAT_VERSION, nodes: idMap(), uiOrphans: idMap(), hasUiNodes: false };
}

/** True for a link value: an object with exactly the two string keys `node` and `output`. */
export function isLink(value: unknown): value is Link {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  const v = value as Record<string, unknown>;
  return keys.length === 2 && typeof v.node === "string" && typeof v.output === "string";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}

/** A prototype-free copy of a map keyed by ids or input names, its values cloned. */
function cloneIdMap<T>(map: Record<string, T>): Record<string, T> {
  return idMap(Object.entries(map).map(([key, value]): [string, T] => [key, clone(value)]));
}

/** "a string", "an object", ... for messages (the engine's words). */
export function jsonTypeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "bigint") return "a number";
  return typeof value === "string" ? "a string" : `a ${typeof value}`;
}

/** v0 (pre-release) → v1, the same steps as nodegraph/graph.py `_migrate_v0_to_v1`. */
function migrateV0(data: Record<string, unknown>): Record<string, unknown> {
  const list = data.nodes;
  if (!Array.isArray(list)) throw new GraphFormatError('version 0 files have "nodes" as a list of objects with an "id"');
  const ids = new Set(list.filter(isObject).map((n) => String(n.id)));
  const nodes = idMap<unknown>();
  const uiNodes = idMap<unknown>();
  for (const n of list) {
    if (!isObject(n) || !("id" in n)) throw new GraphFormatError('every version 0 node must be an object with an "id"');
    const id = String(n.id);
    const inputs = idMap<unknown>();
    for (const [name, value] of Object.entries(isObject(n.inputs) ? n.inputs : {})) {
      inputs[name] =
        Array.isArray(value) && value.length === 2 && typeof value[1] === "string" && ids.has(String(value[0]))
          ? { node: String(value[0]), output: value[1] }
          : value;
    }
    const node: Record<string, unknown> = { type: n.type, inputs };
    if ("title" in n) node.title = n.title;
    nodes[id] = node;
    if ("pos" in n) uiNodes[id] = { position: n.pos };
  }
  const out: Record<string, unknown> = { format_version: 1, nodes };
  if (Object.keys(uiNodes).length) out.ui = { nodes: uiNodes };
  return out;
}

/** Read a graph file (already parsed JSON) into a document; GraphFormatError says what is wrong. */
export function fromGraphFile(raw: unknown): EditorDocument {
  if (!isObject(raw)) throw new GraphFormatError("a graph file is a JSON object with format_version and nodes");
  let data = raw;
  if (data.format_version === undefined && data.version === 0) data = migrateV0(data);
  const version = data.format_version;
  if (typeof version !== "number" || !Number.isInteger(version)) {
    throw new GraphFormatError("format_version is missing: this is not a nodegraph graph file");
  }
  if (version < 1) throw new GraphFormatError(`format_version ${version} is not a version nodegraph ever wrote`);
  if (version > FORMAT_VERSION) {
    throw new GraphFormatError(`the file has format_version ${version}; this editor reads up to ${FORMAT_VERSION} — upgrade nodegraph`);
  }
  if (!isObject(data.nodes)) throw new GraphFormatError('"nodes" must be an object of nodes keyed by id');
  if (data.metadata !== undefined && !isObject(data.metadata)) throw new GraphFormatError('"metadata" must be an object');
  if (data.ui !== undefined && !isObject(data.ui)) throw new GraphFormatError('"ui" must be an object');
  if (data.subgraphs !== undefined && !isObject(data.subgraphs)) throw new GraphFormatError('"subgraphs" must be an object of definitions keyed by name');
  // Version 1 → 2 changes nothing but the number (docs/graph-format.md "Versions and migration").
  const ui = clone(data.ui) as Record<string, unknown> | undefined;
  const uiNodes = ui && isObject(ownValue(ui, "nodes")) ? (ui.nodes as Record<string, unknown>) : undefined;
  const uiRest = ui ? { ...ui } : undefined;
  if (uiRest && uiNodes) delete uiRest.nodes;

  const nodes = idMap<DocNode>();
  for (const [id, rawNode] of Object.entries(data.nodes)) {
    if (id === "") throw new GraphFormatError('a node id must be a non-empty string: the file has a node named "" (rename it)');
    if (!isObject(rawNode) || typeof rawNode.type !== "string") {
      throw new GraphFormatError(`node ${JSON.stringify(id)} must be an object with a string "type"`);
    }
    if (rawNode.inputs !== undefined && !isObject(rawNode.inputs)) {
      throw new GraphFormatError(`node ${JSON.stringify(id)}: "inputs" must be an object keyed by input name`);
    }
    if (rawNode.title !== undefined && typeof rawNode.title !== "string") {
      throw new GraphFormatError(`node ${JSON.stringify(id)}: "title" must be a string, found ${jsonTypeName(rawNode.title)} (write it as text or leave it out)`);
    }
    const uiEntry = ownValue(uiNodes, id);
    const entry = isObject(uiEntry) ? clone(uiEntry) : undefined;
    const { position, ...rest } = entry ?? {};
    const node: DocNode = {
      type: rawNode.type,
      inputs: cloneIdMap((rawNode.inputs as Record<string, unknown>) ?? {}),
      hasInputsKey: rawNode.inputs !== undefined,
      ui: rest,
      hasUiEntry: entry !== undefined,
    };
    if (isPosition(position)) node.position = [position[0], position[1]];
    else if (position !== undefined) node.ui.position = position; // malformed: carried through untouched
    if (typeof rawNode.title === "string") node.title = rawNode.title;
    if (rawNode.mode === "bypass" || rawNode.mode === "mute") node.mode = rawNode.mode;
    else if (rawNode.mode !== undefined) throw new GraphFormatError(`node ${JSON.stringify(id)}: "mode" must be "bypass" or "mute"`);
    nodes[id] = node;
  }
  const uiOrphans = idMap<unknown>();
  for (const [id, entry] of Object.entries(uiNodes ?? {})) {
    if (!(id in nodes) || !isObject(entry)) uiOrphans[id] = entry;
  }
  const doc: EditorDocument = { formatVersion: FORMAT_VERSION, nodes, uiOrphans, hasUiNodes: uiNodes !== undefined };
  if (data.metadata !== undefined) doc.metadata = clone(data.metadata as Record<string, unknown>);
  if (data.subgraphs !== undefined) doc.subgraphs = cloneIdMap(data.subgraphs as Record<string, unknown>);
  if (uiRest !== undefined) doc.uiRest = uiRest;
  return doc;
}

/** Coordinates beyond this are not drawn (SVG cannot place 1e300): such a position or size is kept in the file as it
 * was and the node is laid out as if it had none. */
export const MAX_COORDINATE = 1e7;

function isPosition(value: unknown): value is Position {
  return Array.isArray(value) && value.length === 2
    && value.every((v) => typeof v === "number" && Number.isFinite(v) && Math.abs(v) <= MAX_COORDINATE);
}

/** The graph file of a document (what Save writes and Run submits). */
export function toGraphFile(doc: EditorDocument): GraphFile {
  const nodes = idMap<GraphFileNode>();
  const uiNodes = cloneIdMap(doc.uiOrphans);
  for (const [id, node] of Object.entries(doc.nodes)) {
    const out: GraphFileNode = { type: node.type };
    if (node.title !== undefined) out.title = node.title;
    if (node.mode !== undefined) out.mode = node.mode;
    if (node.hasInputsKey || Object.keys(node.inputs).length) out.inputs = cloneIdMap(node.inputs);
    nodes[id] = out;
    const entry: Record<string, unknown> = clone(node.ui);
    if (node.position) entry.position = [node.position[0], node.position[1]];
    if (node.hasUiEntry || Object.keys(entry).length) uiNodes[id] = entry;
  }
  const file: Record<string, unknown> = { format_version: FORMAT_VERSION };
  if (doc.metadata !== undefined) file.metadata = clone(doc.metadata);
  file.nodes = nodes;
  if (doc.subgraphs !== undefined) file.subgraphs = cloneIdMap(doc.subgraphs);
  const ui: Record<string, unknown> = { ...clone(doc.uiRest ?? {}) };
  if (doc.hasUiNodes || Object.keys(uiNodes).length) ui.nodes = uiNodes;
  if (doc.uiRest !== undefined || Object.keys(ui).length) file.ui = ui;
  return file as unknown as GraphFile;
}

// --- queries ----------------------------------------------------------------

export interface DocEdge {
  id: string;
  source: string;
  output: string;
  target: string;
  input: string;
}

export function edgeId(source: string, output: string, target: string, input: string): string {
  return `${source}.${output}->${target}.${input}`;
}

/** Every link of the document as an edge (dangling ones included; the view filters). */
export function docEdges(doc: EditorDocument): DocEdge[] {
  const edges: DocEdge[] = [];
  for (const [target, node] of Object.entries(doc.nodes)) {
    for (const [input, value] of Object.entries(node.inputs)) {
      if (isLink(value)) {
        edges.push({ id: edgeId(value.node, value.output, target, input), source: value.node, output: value.output, target, input });
      }
    }
  }
  return edges;
}

/** The ids of the nodes that `nodeId` reads from. */
export function upstreamNodes(doc: EditorDocument, nodeId: string): string[] {
  const node = doc.nodes[nodeId];
  if (!node) return [];
  return Object.values(node.inputs).filter(isLink).map((link) => link.node);
}

/** A fresh node id derived from the type (`ksampler`, `ksampler_2`, ...), unique in `doc`. */
export function newNodeId(doc: EditorDocument, type: string, taken: Set<string> = new Set()): string {
  const base = type.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_+|_+$/g, "").toLowerCase() || "node";
  let id = base;
  for (let n = 2; id in doc.nodes || taken.has(id); n++) id = `${base}_${n}`;
  return id;
}

// --- edits (each returns a new document) --------------------------------------

function withNodes(doc: EditorDocument, nodes: Record<string, DocNode>): EditorDocument {
  return { ...doc, nodes };
}

function replaceNode(doc: EditorDocument, id: string, node: DocNode): EditorDocument {
  return withNodes(doc, withId(doc.nodes, id, node));
}

/** Inputs a new node starts with: the defaults of its widget inputs (link-only inputs stay empty). */
export function defaultInputs(schema: NodeSchema): Record<string, InputValue> {
  const inputs = idMap<InputValue>();
  for (const [name, spec] of Object.entries(schema.inputs)) {
    if (spec.widget?.kind === "link" || spec.required || spec.default === undefined || spec.default === null) continue;
    inputs[name] = clone(spec.default);
  }
  return inputs;
}

/**
 * Add a node of `schema` at `position`; new seed inputs start in "randomize" mode — except a training node's
 * (category "training"), whose seed is part of what the training is: drawn anew before each Run, a stopped
 * training never resumed (it restarted from step 0 beside a kept `training_state_N`; a kohya user's pass).
 */
export function addNode(doc: EditorDocument, schema: NodeSchema, position: Position, id?: string): { doc: EditorDocument; id: string } {
  const nodeId = id ?? newNodeId(doc, schema.type);
  const seeds = Object.entries(schema.inputs).filter(([, spec]) => spec.widget?.kind === "seed").map(([name]) => name);
  const ui: Record<string, unknown> = {};
  const training = (schema.category ?? "").split("/").includes("training");
  if (seeds.length && !training) ui.seed_modes = idMap(seeds.map((name) => [name, "randomize"]));
  const node: DocNode = {
    type: schema.type,
    inputs: defaultInputs(schema),
    hasInputsKey: true,
    position: [Math.round(position[0]), Math.round(position[1])],
    ui,
    hasUiEntry: true,
  };
  return { doc: replaceNode(doc, nodeId, node), id: nodeId };
}

/** Remove nodes and every link that read from them. */
export function removeNodes(doc: EditorDocument, ids: Iterable<string>): EditorDocument {
  const gone = new Set(ids);
  if (![...gone].some((id) => id in doc.nodes)) return doc;
  const nodes = idMap<DocNode>();
  for (const [id, node] of Object.entries(doc.nodes)) {
    if (gone.has(id)) continue;
    const dropped = Object.entries(node.inputs).filter(([, v]) => isLink(v) && gone.has(v.node));
    if (!dropped.length) {
      nodes[id] = node;
      continue;
    }
    const inputs = copyIdMap(node.inputs);
    for (const [name] of dropped) delete inputs[name];
    nodes[id] = { ...node, inputs };
  }
  return withNodes(doc, nodes);
}

/**
 * The graph left when a delete took its last node: a new, untitled one — `metadata.title` and
 * `metadata.description` (which named and described the nodes now gone) and the subgraph definitions
 * (no node uses them now) dropped, the rest of the metadata and the group frames (seen, deleted by hand) kept. Otherwise `doc` as it is. Without this, an emptied txt2img canvas kept "Text to image
 * (tiny world)" in the toolbar, and the graph built on it next ran and saved under that name (the
 * editor has no "New" and no way to rename a graph).
 */
export function untitledWhenEmptied(before: EditorDocument, doc: EditorDocument): EditorDocument {
  if (Object.keys(doc.nodes).length || !Object.keys(before.nodes).length) return doc;
  let out = doc;
  if (doc.subgraphs && Object.keys(doc.subgraphs).length) {
    // the definitions no node uses any more: invisible, they went into the next save (a re-test); frames stay
    out = { ...out };
    delete out.subgraphs;
  }
  if (!out.metadata || (!("title" in out.metadata) && !("description" in out.metadata))) return out;
  const metadata = { ...out.metadata };
  delete metadata.title;
  delete metadata.description;
  return { ...out, metadata };
}

/** Set input `input` of node `id` to a literal or a link; `undefined` removes it (the default applies). */
export function setInput(doc: EditorDocument, id: string, input: string, value: InputValue | undefined): EditorDocument {
  const node = doc.nodes[id];
  if (!node) return doc;
  const inputs = copyIdMap(node.inputs);
  if (value === undefined) {
    if (!(input in inputs)) return doc;
    delete inputs[input];
  } else {
    if (input in inputs && Object.is(inputs[input], value)) return doc;
    inputs[input] = value;
  }
  return replaceNode(doc, id, { ...node, inputs });
}

/** Link `source.output` to `target.input`, replacing whatever the input held (one link per input). */
export function connect(doc: EditorDocument, source: string, output: string, target: string, input: string): EditorDocument {
  return setInput(doc, target, input, { node: source, output });
}

/** Remove the link into `target.input` (the input falls back to its default). */
export function disconnect(doc: EditorDocument, target: string, input: string): EditorDocument {
  const value = doc.nodes[target]?.inputs[input];
  return isLink(value) ? setInput(doc, target, input, undefined) : doc;
}

/** Move nodes (positions are rounded to whole pixels so saved files stay tidy). */
export function moveNodes(doc: EditorDocument, positions: Record<string, Position>): EditorDocument {
  const nodes = copyIdMap(doc.nodes);
  let changed = false;
  for (const [id, [x, y]] of Object.entries(positions)) {
    const node = nodes[id];
    if (!node) continue;
    const position: Position = [Math.round(x), Math.round(y)];
    if (node.position && node.position[0] === position[0] && node.position[1] === position[1]) continue;
    nodes[id] = { ...node, position };
    changed = true;
  }
  return changed ? withNodes(doc, nodes) : doc;
}

/** Set (or clear, with an empty string) a node's display title. */
export function setTitle(doc: EditorDocument, id: string, title: string): EditorDocument {
  const node = doc.nodes[id];
  if (!node) return doc;
  const next: DocNode = { ...node };
  if (title.trim()) next.title = title.trim();
  else delete next.title;
  return replaceNode(doc, id, next);
}

/** The randomise/fixed control of a seed input (files without one: fixed, so a loaded graph reproduces). */
export function seedMode(node: DocNode, input: string): SeedMode {
  const mode = ownValue(node.ui.seed_modes, input);
  return mode === "randomize" || mode === "increment" || mode === "decrement" ? mode : "fixed";
}

/** The next mode of the seed control's button: randomize → increment → fixed → randomize (decrement, which only
 *  a ComfyUI import sets, → fixed). */
export function nextSeedMode(mode: SeedMode): SeedMode {
  return mode === "randomize" ? "increment" : mode === "increment" || mode === "decrement" ? "fixed" : "randomize";
}

export function setSeedMode(doc: EditorDocument, id: string, input: string, mode: SeedMode): EditorDocument {
  const node = doc.nodes[id];
  if (!node) return doc;
  const modes = copyIdMap(isObject(node.ui.seed_modes) ? node.ui.seed_modes : {});
  modes[input] = mode;
  return replaceNode(doc, id, { ...node, ui: { ...node.ui, seed_modes: modes } });
}

/**
 * After a submit (ComfyUI's "control after generate": the run used the seeds shown, the next ones are shown now):
 * give every unlinked seed input in "randomize" mode a new value, add one to those in "increment" mode (wrapping
 * from max to min) and take one from those in "decrement" mode (wrapping from min to max).
 * `seedInputs(type)` lists a node type's seed inputs with their bounds.
 */
export function randomizeSeeds(
  doc: EditorDocument,
  seedInputs: (type: string) => { name: string; min: number; max: number }[],
  draw: (min: number, max: number) => number,
): EditorDocument {
  const advanced = withDefinitions(doc, (inner) => randomizeSeeds(inner, seedInputs, draw));
  let next = advanced;
  for (const [id, node] of Object.entries(advanced.nodes)) {
    for (const { name, min, max } of seedInputs(node.type)) {
      if (isLink(node.inputs[name])) continue;
      const mode = seedMode(node, name);
      if (mode === "randomize") next = setInput(next, id, name, draw(min, max));
      else if (mode === "increment") next = setInput(next, id, name, incrementedSeed(node.inputs[name], min, max));
      else if (mode === "decrement") next = setInput(next, id, name, decrementedSeed(node.inputs[name], min, max));
    }
  }
  return next;
}

/**
 * The seeds a refused submit had used, given back: each seed input that `randomizeSeeds` moved from `submitted` to
 * `advanced` and that still holds the advanced value in `doc` gets the submitted one again (ComfyUI steps a seed only
 * for a prompt it queued); a seed typed since, or a node removed, is left as it is.
 */
export function seedsGivenBack(doc: EditorDocument, submitted: EditorDocument, advanced: EditorDocument): EditorDocument {
  let next = withDefinitions(doc, (inner, name) => {
    const [before, after] = [definitionDocument(submitted, name), definitionDocument(advanced, name)];
    return before && after ? seedsGivenBack(inner, before, after) : inner;
  });
  for (const [id, node] of Object.entries(advanced.nodes)) {
    const before = submitted.nodes[id];
    const now = doc.nodes[id];
    if (!before || !now || node === before) continue;
    for (const [name, value] of Object.entries(node.inputs)) {
      if (value !== before.inputs[name] && now.inputs[name] === value) next = setInput(next, id, name, before.inputs[name]);
    }
  }
  return next;
}

/**
 * Subgraph definition `name` of `doc` as a document of its own (its nodes and ui), or null when there is none.
 * (graph/subgraph.ts `openSubgraph` adds the enclosing file's definitions, for the editor.)
 */
export function definitionDocument(doc: EditorDocument, name: string): EditorDocument | null {
  const def = ownValue(doc.subgraphs ?? {}, name);
  if (!isObject(def) || !isObject(def.nodes)) return null;
  const file: Record<string, unknown> = { format_version: FORMAT_VERSION, nodes: def.nodes };
  if (def.ui !== undefined) file.ui = def.ui;
  return fromGraphFile(file);
}

/**
 * `doc` with `change` applied to each of its subgraph definitions once (as a document of its own; nested ones
 * too, since they are all listed at the top level): a definition that several subgraph nodes use is changed once,
 * its instances share it. A definition `change` leaves alone keeps its object, so an unchanged graph saves back
 * unchanged. Seeds use this: "+1 / run" and random modes inside a subgraph step like those at the top level.
 */
export function withDefinitions(doc: EditorDocument, change: (inner: EditorDocument, name: string) => EditorDocument): EditorDocument {
  if (!doc.subgraphs) return doc;
  let subgraphs: Record<string, unknown> | null = null;
  for (const name of Object.keys(doc.subgraphs)) {
    const inner = definitionDocument(doc, name);
    if (!inner) continue;
    const changed = change(inner, name);
    if (changed === inner) continue;
    const file = toGraphFile(changed);
    const def: Record<string, unknown> = { ...(doc.subgraphs[name] as Record<string, unknown>), nodes: file.nodes };
    if (file.ui !== undefined) def.ui = file.ui;
    else delete def.ui;
    subgraphs ??= copyIdMap(doc.subgraphs);
    subgraphs[name] = def;
  }
  return subgraphs ? { ...doc, subgraphs } : doc;
}

/** Give positions to nodes that have none: columns by link depth, rows in file order. */
export function layoutPositions(doc: EditorDocument): Record<string, Position> {
  const depth = idMap<number>();
  const visiting = new Set<string>();
  const depthOf = (id: string): number => {
    if (depth[id] !== undefined) return depth[id];
    if (visiting.has(id) || !doc.nodes[id]) return 0; // cycles and dangling links: stop
    visiting.add(id);
    const ups = upstreamNodes(doc, id).filter((u) => u in doc.nodes);
    depth[id] = ups.length ? 1 + Math.max(...ups.map(depthOf)) : 0;
    visiting.delete(id);
    return depth[id];
  };
  const rows: Record<number, number> = {};
  const out = idMap<Position>();
  for (const [id, node] of Object.entries(doc.nodes)) {
    if (node.position) {
      out[id] = node.position;
      continue;
    }
    const column = depthOf(id);
    const row = rows[column] ?? 0;
    rows[column] = row + 1;
    out[id] = [column * 300, row * 180];
  }
  return out;
}

/** Set or clear (null) a node's mode: bypass or mute. */
export function setMode(doc: EditorDocument, ids: Iterable<string>, mode: NodeMode | null): EditorDocument {
  const nodes = copyIdMap(doc.nodes);
  let changed = false;
  for (const id of ids) {
    const node = nodes[id];
    if (!node || (node.mode ?? null) === mode) continue;
    const next: DocNode = { ...node };
    if (mode) next.mode = mode;
    else delete next.mode;
    nodes[id] = next;
    changed = true;
  }
  return changed ? withNodes(doc, nodes) : doc;
}

/** Ctrl+B / Ctrl+M on a selection: set `mode` on all, or clear it when all already have it. */
export function toggleMode(doc: EditorDocument, ids: string[], mode: NodeMode): EditorDocument {
  const present = ids.filter((id) => id in doc.nodes);
  const all = present.length > 0 && present.every((id) => doc.nodes[id].mode === mode);
  return setMode(doc, present, all ? null : mode);
}

/** The size a user gave a node (`ui.nodes.<id>.size`), or null. */
export function nodeSize(node: DocNode): Position | null {
  const size = node.ui.size;
  return isPosition(size) ? [size[0], size[1]] : null;
}

/** Set a node's user size (rounded), `null` removes it. */
export function setNodeSize(doc: EditorDocument, id: string, size: Position | null): EditorDocument {
  const node = doc.nodes[id];
  if (!node) return doc;
  const ui = { ...node.ui };
  if (size) ui.size = [Math.round(size[0]), Math.round(size[1])];
  else delete ui.size;
  return replaceNode(doc, id, { ...node, ui, hasUiEntry: true });
}

/** Replace the `ui` keys other than `nodes` (groups, reroutes, view): `undefined` removes a key. */
export function setUiKey(doc: EditorDocument, key: string, value: unknown): EditorDocument {
  const rest = { ...(doc.uiRest ?? {}) };
  if (value === undefined) delete rest[key];
  else rest[key] = value;
  return { ...doc, uiRest: rest };
}
