/**
 * Inputs that a newer version of a node class renamed (docs/plugins.md "Versioning"): the class
 * declares `renamed_inputs = {"old": "new"}` and the server's schema carries it (`renamed_inputs`,
 * old name → new name) for clients loading old graphs. Every graph that enters the editor (a file,
 * a template, History → Open, pasted text, a ComfyUI import, the graph kept across a reload) goes
 * through `withRenamedInputs`, so its widgets show the saved values and Save writes the new names.
 *
 * The rule is the engine's (nodegraph/graph.py `with_renamed_inputs`), input by input in the file's
 * order: an input under an old name takes the new name, with its value — a literal or a link —,
 * unless the node also sets the new name: then both are left as they are (the new one is used, and
 * the old one shows as an unknown input that the server's validation names, so the clash is seen
 * rather than silently resolved). Like the engine, the editor renames the inner nodes of every
 * subgraph definition too, and carries what it keeps per input along with a renamed one: the seed
 * control (`ui.nodes.<id>.seed_modes`) and the reroutes of the link (`ui.reroutes`, `to.input`).
 *
 * Main functions:
 *   renamesOf          a node type's renames from the schemas (own keys, string values only)
 *   renamedInputMap    one node's inputs renamed: the engine's rule
 *   withRenamedInputs  a document with every node renamed (the same object when nothing applies),
 *                      and what was renamed or left for the user (`InputRename`)
 *   renamesText        a short notice of them for a toast
 *
 * Input names and node ids are the user's (`constructor`, `__proto__`): maps are prototype-free
 * (graph/idMaps.ts) and the schemas' maps are read by own keys only.
 */
import type { NodeSchema } from "../schema/types";
import type { DocNode, EditorDocument } from "./document";
import { copyIdMap, hasOwnKey, idMap, ownValue } from "./idMaps";

/** One renamed input of one node, or one left as written because the node sets the new name too (`clash`). */
export interface InputRename {
  /** The node's id; inside a subgraph definition, `definition/id`. */
  node: string;
  type: string;
  from: string;
  to: string;
  clash: boolean;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The renames of node type `type` (old name → new name), from the server's schemas; null when it has none. */
export function renamesOf(schemas: Record<string, NodeSchema>, type: string): Record<string, string> | null {
  const renames = ownValue(ownValue(schemas, type), "renamed_inputs");
  if (!isObject(renames)) return null;
  const out = idMap(Object.entries(renames).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
  return Object.keys(out).length ? out : null;
}

/**
 * `inputs` with each input under an old name of `renames` under its new name, in place (the engine's
 * rule: unless the new name is set too — then both stay); null when no input has an old name.
 */
export function renamedInputMap(inputs: Record<string, unknown>, renames: Record<string, string>):
  { inputs: Record<string, unknown>; renamed: [string, string][]; clashes: [string, string][] } | null {
  const names = Object.keys(inputs);
  if (!names.some((name) => hasOwnKey(renames, name))) return null;
  const out = idMap<unknown>();
  const renamed: [string, string][] = [];
  const clashes: [string, string][] = [];
  for (const name of names) {
    const to = hasOwnKey(renames, name) ? renames[name] : null;
    if (to !== null && !hasOwnKey(inputs, to)) {
      out[to] = inputs[name];
      renamed.push([name, to]);
    } else {
      if (to !== null) clashes.push([name, to]);
      out[name] = inputs[name];
    }
  }
  return { inputs: out, renamed, clashes };
}

/** A per-input map (`seed_modes`) with each renamed input's entry under its new name, unless that has one. */
function renamedKeys(map: unknown, renamed: [string, string][]): unknown {
  if (!isObject(map) || !renamed.some(([from]) => hasOwnKey(map, from))) return map;
  const out = copyIdMap(map);
  for (const [from, to] of renamed) {
    if (!hasOwnKey(out, from)) continue;
    if (!hasOwnKey(out, to)) out[to] = out[from];
    delete out[from];
  }
  return out;
}

/** `ui.reroutes` with the reroutes of each renamed link's wire pointing at the new input name. */
function renamedReroutes(list: unknown, renamedOf: Record<string, [string, string][]>): unknown {
  if (!Array.isArray(list)) return list;
  let changed = false;
  const out = list.map((reroute) => {
    const to = isObject(reroute) ? reroute.to : undefined;
    if (!isObject(to) || typeof to.node !== "string" || typeof to.input !== "string") return reroute;
    const pair = ownValue(renamedOf, to.node) as [string, string][] | undefined;
    const hit = pair?.find(([from]) => from === to.input);
    if (!hit) return reroute;
    changed = true;
    return { ...reroute, to: { ...to, input: hit[1] } };
  });
  return changed ? out : list;
}

/**
 * A subgraph definition (as written in the file: `nodes`, `ui.nodes`, `ui.reroutes`) with its inner
 * nodes' inputs renamed; the same object when nothing applies.
 */
function renamedDefinition(def: unknown, name: string, renamesFor: (type: string) => Record<string, string> | null, found: InputRename[]): unknown {
  if (!isObject(def) || !isObject(def.nodes)) return def;
  const nodes = copyIdMap(def.nodes);
  const ui = isObject(def.ui) ? def.ui : undefined;
  const uiNodes = ui && isObject(ui.nodes) ? copyIdMap(ui.nodes) : undefined;
  const renamedOf = idMap<[string, string][]>();
  for (const [id, node] of Object.entries(def.nodes)) {
    if (!isObject(node) || typeof node.type !== "string" || !isObject(node.inputs)) continue;
    const renames = renamesFor(node.type);
    const result = renames && renamedInputMap(node.inputs, renames);
    if (!result) continue;
    note(found, `${name}/${id}`, node.type, result);
    if (!result.renamed.length) continue;
    nodes[id] = { ...node, inputs: result.inputs };
    renamedOf[id] = result.renamed;
    const entry = uiNodes ? ownValue(uiNodes, id) : undefined;
    if (uiNodes && isObject(entry) && entry.seed_modes !== undefined) uiNodes[id] = { ...entry, seed_modes: renamedKeys(entry.seed_modes, result.renamed) };
  }
  if (!Object.keys(renamedOf).length) return def;
  const next: Record<string, unknown> = { ...def, nodes };
  if (ui) next.ui = { ...ui, ...(uiNodes ? { nodes: uiNodes } : {}), ...(ui.reroutes !== undefined ? { reroutes: renamedReroutes(ui.reroutes, renamedOf) } : {}) };
  return next;
}

function note(found: InputRename[], node: string, type: string, result: { renamed: [string, string][]; clashes: [string, string][] }): void {
  for (const [from, to] of result.renamed) found.push({ node, type, from, to, clash: false });
  for (const [from, to] of result.clashes) found.push({ node, type, from, to, clash: true });
}

/**
 * `doc` with the inputs its node types renamed under their new names (the module's rule), at the top
 * level and in every subgraph definition, and the list of what was renamed or left (`clash`). The same
 * document when no node writes an old name.
 */
export function withRenamedInputs(doc: EditorDocument, schemas: Record<string, NodeSchema>): { doc: EditorDocument; renames: InputRename[] } {
  const found: InputRename[] = [];
  const renamesFor = (type: string) => renamesOf(schemas, type);
  let nodes: Record<string, DocNode> | null = null;
  const renamedOf = idMap<[string, string][]>();
  for (const [id, node] of Object.entries(doc.nodes)) {
    const renames = renamesFor(node.type);
    const result = renames && renamedInputMap(node.inputs, renames);
    if (!result) continue;
    note(found, id, node.type, result);
    if (!result.renamed.length) continue;
    nodes ??= copyIdMap(doc.nodes);
    const ui = node.ui.seed_modes === undefined ? node.ui : { ...node.ui, seed_modes: renamedKeys(node.ui.seed_modes, result.renamed) };
    nodes[id] = { ...node, inputs: result.inputs, ui };
    renamedOf[id] = result.renamed;
  }
  let subgraphs = doc.subgraphs;
  for (const [name, def] of Object.entries(doc.subgraphs ?? {})) {
    const next = renamedDefinition(def, name, renamesFor, found);
    if (next === def) continue;
    if (subgraphs === doc.subgraphs) subgraphs = copyIdMap(doc.subgraphs);
    subgraphs![name] = next;
  }
  if (!nodes && subgraphs === doc.subgraphs) return { doc, renames: found };
  const next: EditorDocument = { ...doc, nodes: nodes ?? doc.nodes };
  if (subgraphs !== undefined) next.subgraphs = subgraphs;
  const reroutes = doc.uiRest?.reroutes;
  if (nodes && reroutes !== undefined) {
    const moved = renamedReroutes(reroutes, renamedOf);
    if (moved !== reroutes) next.uiRest = { ...doc.uiRest, reroutes: moved };
  }
  return { doc: next, renames: found };
}

/** A one-line notice of `renames` (null for none): what was renamed, and the clashes left for the user. */
export function renamesText(renames: InputRename[]): string | null {
  if (!renames.length) return null;
  const list = (items: InputRename[]) => {
    const shown = items.slice(0, 3).map((r) => `${r.node}.${r.from} → ${r.to}`).join(", ");
    return items.length > 3 ? `${shown} and ${items.length - 3} more` : shown;
  };
  const renamed = renames.filter((r) => !r.clash);
  const clashes = renames.filter((r) => r.clash);
  const parts: string[] = [];
  if (renamed.length) {
    parts.push(`Inputs renamed by a newer version of their node, now under their new names (Save writes them so): ${list(renamed)}`);
  }
  if (clashes.length) {
    parts.push(`Old input names kept where the node also sets the new one (remove one of the two): ${list(clashes)}`);
  }
  return parts.join(". ");
}
