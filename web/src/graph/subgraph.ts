/**
 * Subgraphs in the editor (docs/graph-format.md "Subgraphs"): a graph used as
 * a node, defined under the file's top-level `subgraphs` and used by nodes of
 * type `subgraph:<name>`.
 *
 * Main functions:
 *   subgraphSchemas   a NodeSchema per definition, so a subgraph node draws, links and type-checks
 *                     like any node: exposed inputs typed from the inner inputs that read them
 *                     (`*` when none does or they disagree), exposed outputs from the inner outputs
 *   collapseToSubgraph  a selection → a new definition + one node using it: links from outside
 *                     become exposed inputs (one per distinct source), links to outside become
 *                     exposed outputs (named after a titled inner node: `prompt`, `negative_prompt`);
 *                     literals, titles, modes and positions move inside
 *   openSubgraph / closeSubgraph   edit a definition as a document of its own and write it back
 *
 * `$inputs` (SUBGRAPH_INPUTS) is the reserved inner node id that exposed inputs are read from.
 * Definitions, inner nodes and exposed ports are keyed by names from the file: prototype-free
 * maps (graph/idMaps.ts) throughout.
 */
import {
  fromGraphFile,
  isLink,
  newNodeId,
  toGraphFile,
  type DocNode,
  type EditorDocument,
  type Link,
  type Position,
} from "./document";
import { copyIdMap, idMap, ownValue } from "./idMaps";
import type { InputSpec, NodeSchema, OutputSpec } from "../schema/types";

export const SUBGRAPH_PREFIX = "subgraph:";
export const SUBGRAPH_INPUTS = "$inputs";

export interface SubgraphDefinition {
  nodes: Record<string, unknown>;
  inputs?: Record<string, { default?: unknown; title?: string }>;
  outputs?: Record<string, { node: string; output: string; title?: string }>;
  metadata?: Record<string, unknown>;
  ui?: Record<string, unknown>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export function subgraphName(type: string): string | null {
  return type.startsWith(SUBGRAPH_PREFIX) ? type.slice(SUBGRAPH_PREFIX.length) : null;
}

function definitions(doc: { subgraphs?: Record<string, unknown> }): Record<string, SubgraphDefinition> {
  const out = idMap<SubgraphDefinition>();
  for (const [name, def] of Object.entries(doc.subgraphs ?? {})) if (isObject(def) && isObject(def.nodes)) out[name] = def as unknown as SubgraphDefinition;
  return out;
}

/**
 * Schemas for the subgraph node types of `doc` (`subgraph:<name>` → schema), typed from
 * `schemas` (the server's; nested definitions resolve in dependency order, cycles give `*`).
 */
export function subgraphSchemas(doc: { subgraphs?: Record<string, unknown> }, schemas: Record<string, NodeSchema>): Record<string, NodeSchema> {
  const defs = definitions(doc);
  const out = idMap<NodeSchema>();
  const visiting = new Set<string>();
  const build = (name: string): NodeSchema | undefined => {
    const type = SUBGRAPH_PREFIX + name;
    if (out[type]) return out[type];
    const def = defs[name];
    if (!def || visiting.has(name)) return undefined;
    visiting.add(name);
    const lookup = (innerType: string): NodeSchema | undefined => {
      const inner = subgraphName(innerType);
      return inner !== null ? build(inner) : (ownValue(schemas, innerType) as NodeSchema | undefined);
    };
    const inputPorts = idMap<Set<string>>();
    for (const raw of Object.values(def.nodes)) {
      if (!isObject(raw) || typeof raw.type !== "string" || !isObject(raw.inputs)) continue;
      const schema = lookup(raw.type);
      for (const [input, value] of Object.entries(raw.inputs)) {
        if (isLink(value) && value.node === SUBGRAPH_INPUTS) {
          const port = schema?.inputs[input]?.port ?? "*";
          (inputPorts[value.output] ??= new Set()).add(port);
        }
      }
    }
    const inputs = idMap<InputSpec>();
    for (const [name2, spec] of Object.entries(isObject(def.inputs) ? def.inputs : {})) {
      const ports = [...(inputPorts[name2] ?? [])].filter((p) => p !== "*");
      const port = new Set(ports).size === 1 ? ports[0] : "*";
      const hasDefault = isObject(spec) && "default" in spec;
      const literal = ["INT", "FLOAT", "STRING", "BOOLEAN"].includes(port);
      inputs[name2] = {
        port,
        required: !hasDefault,
        description: isObject(spec) && typeof spec.title === "string" ? spec.title : "",
        default: hasDefault ? spec.default : undefined,
        widget: { kind: literal && hasDefault ? (port === "STRING" ? "text" : port === "BOOLEAN" ? "toggle" : "number") : "link" },
        schema: { type: port === "INT" ? "integer" : port === "FLOAT" ? "number" : undefined },
      };
    }
    const outputs: OutputSpec[] = [];
    for (const [name2, target] of Object.entries(isObject(def.outputs) ? def.outputs : {})) {
      const raw = isObject(target) ? ownValue(def.nodes, String(target.node)) : undefined;
      const schema = isObject(raw) && typeof raw.type === "string" ? lookup(raw.type) : undefined;
      const port = schema?.outputs.find((o) => o.name === target?.output)?.port ?? "*";
      outputs.push({ name: name2, port, description: typeof target?.title === "string" ? target.title : "" });
    }
    visiting.delete(name);
    const title = def.metadata?.title;
    out[type] = {
      type,
      category: "subgraphs",
      display_name: typeof title === "string" && title ? title : name,
      description: typeof def.metadata?.description === "string" ? def.metadata.description : `subgraph ${name}`,
      output_node: false,
      inputs,
      outputs,
    };
    return out[type];
  };
  for (const name of Object.keys(defs)) build(name);
  return out;
}

/** Characters outside a subgraph definition's name (docs/graph-format.md: 1–64 of `A–Z a–z 0–9 _ - .`). */
const NOT_IN_DEFINITION_NAME = /[^A-Za-z0-9_.-]+/g;
/**
 * Characters outside an exposed port's name as the editor makes it: the graph format takes any string as a port
 * name (as for any input name; nodegraph/graph.py checks only a definition's name), so a name keeps the letters
 * (with their marks) and digits of every script — `正向提示`, `négatif` — and "_" "." "-".
 */
const NOT_IN_PORT_NAME = /[^\p{L}\p{M}\p{Nd}_.-]+/gu;

/** `text`'s first `count` characters (code points: a cut never splits a character written as two UTF-16 units). */
function firstChars(text: string, count: number): string {
  return Array.from(text).slice(0, count).join("");
}

function uniqueName(base: string, taken: Set<string>, notAllowed: RegExp = NOT_IN_DEFINITION_NAME): string {
  const clean = firstChars(base.replace(notAllowed, "_"), 60) || "port";
  let name = clean;
  for (let n = 2; taken.has(name); n++) name = `${clean}_${n}`;
  taken.add(name);
  return name;
}

/**
 * A node title as a port name: lower case, words joined by "_" ("Negative prompt" → `negative_prompt`, "正向提示" →
 * `正向提示`); "" when it has no letter or digit (then the port keeps its own name: `value`, `value_2`).
 */
export function portNameFromTitle(title: string | undefined): string {
  return firstChars((title ?? "").toLowerCase().replace(/[^\p{L}\p{M}\p{Nd}]+/gu, "_").replace(/^_+|_+$/g, ""), 60);
}

/**
 * The names of a collapse's exposed outputs, keyed like `exposures` ("node\0output"), in order. A titled inner
 * node names what it gives: its title (`prompt`, `negative_prompt` — where both are Encode Texts, named by
 * their output alone they were `conditioning` and `conditioning_2`, positive and negative impossible to tell
 * apart), with the output's name after it when several of its outputs are exposed (`base_model`, `base_vae`);
 * an untitled node's outputs keep their own names. Made unique with `_2`, `_3`, ...
 */
function exposedOutputNames(exposures: { node: string; output: string }[], titleOf: (id: string) => string | undefined): Map<string, string> {
  const exposedPerNode = new Map<string, number>();
  for (const { node } of exposures) exposedPerNode.set(node, (exposedPerNode.get(node) ?? 0) + 1);
  const taken = new Set<string>();
  const names = new Map<string, string>();
  for (const { node, output } of exposures) {
    const title = portNameFromTitle(titleOf(node));
    const base = !title ? output : exposedPerNode.get(node)! > 1 ? `${title}_${output}` : title;
    names.set(`${node}\u0000${output}`, uniqueName(base, taken, NOT_IN_PORT_NAME));
  }
  return names;
}

/**
 * The names of a collapse's exposed inputs, keyed by their outside source ("node\0output"), in order: the name of
 * the first inner input that reads it (`model`, `text_encoder`: a title says what a node makes, not what it
 * takes); where two exposed inputs would share that name, each read by one titled node is prefixed with its
 * title (`prompt_text`, `negative_prompt_text`, not `text` and `text_2`). Made unique with `_2`, `_3`, ...
 */
function exposedInputNames(
  sources: { key: string; readers: { node: string; input: string }[] }[],
  titleOf: (id: string) => string | undefined,
): Map<string, string> {
  const plain = (source: { readers: { input: string }[] }) => source.readers[0].input;
  const sharing = new Map<string, number>();
  for (const source of sources) sharing.set(plain(source), (sharing.get(plain(source)) ?? 0) + 1);
  const taken = new Set<string>();
  const names = new Map<string, string>();
  for (const source of sources) {
    const readerNodes = new Set(source.readers.map((r) => r.node));
    const title = readerNodes.size === 1 ? portNameFromTitle(titleOf(source.readers[0].node)) : "";
    const base = title && sharing.get(plain(source))! > 1 ? `${title}_${plain(source)}` : plain(source);
    names.set(source.key, uniqueName(base, taken, NOT_IN_PORT_NAME));
  }
  return names;
}

/**
 * Collapse the nodes `ids` into a new subgraph definition `name` and one node using it
 * (at the selection's top-left). Returns the document and the new node's id.
 */
export function collapseToSubgraph(
  doc: EditorDocument,
  ids: string[],
  positions: Record<string, Position>,
  name?: string,
): { doc: EditorDocument; id: string; name: string } | null {
  const inside = new Set(ids.filter((id) => id in doc.nodes));
  if (!inside.size) return null;
  const defs = doc.subgraphs ?? idMap();
  const defName = name ?? uniqueName("subgraph_1", new Set(Object.keys(defs)));
  if (defName in defs) throw new Error(`a subgraph named ${defName} already exists`);

  const exposedIn = idMap<{ default?: unknown }>();
  const outerInputs = idMap<unknown>();
  const innerNodes = idMap<unknown>();
  const innerUi = idMap<unknown>();
  const minX = Math.min(...[...inside].map((id) => positions[id]?.[0] ?? 0));
  const minY = Math.min(...[...inside].map((id) => positions[id]?.[1] ?? 0));
  const titleOf = (id: string) => doc.nodes[id]?.title;

  // links from outside: one exposed input per distinct source, named once every inner input reading it is known
  const sources = new Map<string, { key: string; link: Link; readers: { node: string; input: string }[] }>();
  for (const id of inside) {
    for (const [input, value] of Object.entries(doc.nodes[id].inputs)) {
      if (!isLink(value) || inside.has(value.node)) continue;
      const key = `${value.node}\u0000${value.output}`;
      if (!sources.has(key)) sources.set(key, { key, link: { node: value.node, output: value.output }, readers: [] });
      sources.get(key)!.readers.push({ node: id, input });
    }
  }
  const bySource = exposedInputNames([...sources.values()], titleOf); // "node\0output" → exposed input name
  for (const source of sources.values()) {
    const exposed = bySource.get(source.key)!;
    exposedIn[exposed] = {};
    outerInputs[exposed] = source.link;
  }

  for (const id of inside) {
    const node = doc.nodes[id];
    const inputs = idMap<unknown>();
    for (const [input, value] of Object.entries(node.inputs)) {
      if (isLink(value) && !inside.has(value.node)) {
        inputs[input] = { node: SUBGRAPH_INPUTS, output: bySource.get(`${value.node}\u0000${value.output}`)! };
      } else {
        inputs[input] = structuredClone(value);
      }
    }
    const file: Record<string, unknown> = { type: node.type, inputs };
    if (node.title !== undefined) file.title = node.title;
    if (node.mode !== undefined) file.mode = node.mode;
    innerNodes[id] = file;
    const p = positions[id] ?? [0, 0];
    innerUi[id] = { ...structuredClone(node.ui), position: [Math.round(p[0] - minX), Math.round(p[1] - minY)] };
  }

  // links to outside: one exposed output per inner output read outside, named once all of them are known
  const exposures = new Map<string, { node: string; output: string }>();
  for (const [id, node] of Object.entries(doc.nodes)) {
    if (inside.has(id)) continue;
    for (const value of Object.values(node.inputs)) {
      if (isLink(value) && inside.has(value.node)) exposures.set(`${value.node}\u0000${value.output}`, { node: value.node, output: value.output });
    }
  }
  const byInnerOutput = exposedOutputNames([...exposures.values()], titleOf);
  const exposedOut = idMap<{ node: string; output: string }>();
  for (const [key, target] of exposures) exposedOut[byInnerOutput.get(key)!] = target;
  const rewired = idMap<Record<string, Link>>(); // outside node → input → new link
  const nodeId = newNodeId(doc, defName);
  for (const [id, node] of Object.entries(doc.nodes)) {
    if (inside.has(id)) continue;
    for (const [input, value] of Object.entries(node.inputs)) {
      if (!isLink(value) || !inside.has(value.node)) continue;
      (rewired[id] ??= idMap())[input] = { node: nodeId, output: byInnerOutput.get(`${value.node}\u0000${value.output}`)! };
    }
  }

  const definition: SubgraphDefinition = {
    metadata: { title: defName },
    inputs: exposedIn,
    outputs: exposedOut,
    nodes: innerNodes,
    ui: { nodes: innerUi },
  };
  const nodes = idMap<DocNode>();
  for (const [id, node] of Object.entries(doc.nodes)) {
    if (inside.has(id)) continue;
    nodes[id] = rewired[id] ? { ...node, inputs: idMap([...Object.entries(node.inputs), ...Object.entries(rewired[id])]) } : node;
  }
  nodes[nodeId] = {
    type: SUBGRAPH_PREFIX + defName,
    inputs: outerInputs,
    hasInputsKey: true,
    position: [Math.round(minX), Math.round(minY)],
    ui: {},
    hasUiEntry: true,
  };
  const subgraphs = copyIdMap(defs);
  subgraphs[defName] = definition;
  return { doc: { ...doc, nodes, subgraphs }, id: nodeId, name: defName };
}

/** A definition as a document of its own (its nodes and ui; the outer file's subgraphs for nested ones). */
export function openSubgraph(doc: EditorDocument, name: string): EditorDocument {
  const def = definitions(doc)[name];
  if (!def) throw new Error(`there is no subgraph definition named ${name}`);
  const file: Record<string, unknown> = { format_version: 2, nodes: def.nodes };
  if (def.ui !== undefined) file.ui = def.ui;
  if (def.metadata !== undefined) file.metadata = def.metadata;
  const inner = fromGraphFile(file);
  return { ...inner, subgraphs: doc.subgraphs };
}

/** Write an edited inner document back into the outer document's definition `name`. */
export function closeSubgraph(outer: EditorDocument, name: string, inner: EditorDocument): EditorDocument {
  const defs = copyIdMap(inner.subgraphs ?? outer.subgraphs ?? {});
  const previous = isObject(defs[name]) ? (defs[name] as Record<string, unknown>) : {};
  const file = toGraphFile(inner);
  const def: Record<string, unknown> = { ...previous, nodes: file.nodes };
  if (file.ui !== undefined) def.ui = file.ui;
  else delete def.ui;
  // Exposed outputs whose inner node was deleted are dropped (the engine would refuse them).
  if (isObject(def.outputs)) {
    def.outputs = idMap(Object.entries(def.outputs).filter(([, t]) => isObject(t) && String(t.node) in file.nodes));
  }
  defs[name] = def;
  return { ...outer, subgraphs: defs };
}
