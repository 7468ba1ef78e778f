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
 *                     (inside an open definition: its exposed outputs that the selection gives move to the new node)
 *   openSubgraph / closeSubgraph   edit a definition as a document of its own and write it back (the links to
 *                     ports no longer exposed go then)
 *   exposeInput / exposeOutput / stopExposingInput / stopExposingOutput / stopExposing   a definition's ports
 *                     after the collapse (the node menus; `linksToPort` names the outer links that go)
 *   outputsLeftUnfed  the exposed outputs a delete inside leaves without their node (they stay declared)
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
 * `enclosing`: the definition `doc` is the open inside of (nesting). Its exposed outputs that an inner node in the
 * selection gives cross the new node's border like links to outside: they become outputs of the new definition
 * and the enclosing declarations point at the new node's (before, they were dropped and the outer links dangled).
 * Its exposed inputs need nothing: the selection reads them through `$inputs` links, which become the new node's.
 */
export function collapseToSubgraph(
  doc: EditorDocument,
  ids: string[],
  positions: Record<string, Position>,
  name?: string,
  enclosing?: string,
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
  const outer = enclosing !== undefined ? ownValue(defs, enclosing) : undefined;
  const declared = isObject(outer) && isObject(outer.outputs) ? (outer.outputs as Record<string, unknown>) : idMap<unknown>();
  for (const target of Object.values(declared)) {
    if (isObject(target) && inside.has(String(target.node)) && typeof target.output === "string") {
      exposures.set(`${target.node}\u0000${target.output}`, { node: String(target.node), output: target.output });
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
  if (enclosing !== undefined && isObject(outer)) {
    const repointed = idMap<unknown>();
    for (const [port, target] of Object.entries(declared)) {
      const key = isObject(target) ? `${target.node}\u0000${target.output}` : "";
      repointed[port] = isObject(target) && byInnerOutput.has(key) ? { ...target, node: nodeId, output: byInnerOutput.get(key)! } : target;
    }
    subgraphs[enclosing] = { ...outer, outputs: repointed };
  }
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
  // Exposed outputs whose inner node was deleted stay declared, as a ComfyUI subgraph keeps an output slot whose
  // inner link went: the outer links keep their port and validation names the output to re-point (before, the
  // output was dropped silently and the outer links dangled; `outputsLeftUnfed` says so at the delete).
  defs[name] = def;
  return { ...outer, nodes: withoutLinksToDropped(outer, name, def), subgraphs: defs };
}

/** The names of `def`'s exposed inputs or outputs (none when it declares none). */
function portNames(def: unknown, kind: "inputs" | "outputs"): string[] {
  return isObject(def) && isObject(def[kind]) ? Object.keys(def[kind] as Record<string, unknown>) : [];
}

/**
 * `outer`'s nodes without the links to the ports that definition `name` declared in `outer` and `def` no longer does
 * (Stop exposing …): an instance's input for a dropped exposed input, and every link reading a dropped output of an
 * instance. The nodes object is kept when nothing goes.
 */
function withoutLinksToDropped(outer: EditorDocument, name: string, def: unknown): Record<string, DocNode> {
  const before = outer.subgraphs ? ownValue(outer.subgraphs, name) : undefined;
  const inputs = new Set(portNames(before, "inputs").filter((p) => !portNames(def, "inputs").includes(p)));
  const outputs = new Set(portNames(before, "outputs").filter((p) => !portNames(def, "outputs").includes(p)));
  if (!inputs.size && !outputs.size) return outer.nodes;
  const type = SUBGRAPH_PREFIX + name;
  let nodes: Record<string, DocNode> | null = null;
  for (const [id, node] of Object.entries(outer.nodes)) {
    const kept = Object.entries(node.inputs).filter(([input, value]) =>
      !(node.type === type && inputs.has(input)) && !(isLink(value) && outer.nodes[value.node]?.type === type && outputs.has(value.output)));
    if (kept.length === Object.keys(node.inputs).length) continue;
    nodes ??= copyIdMap(outer.nodes);
    nodes[id] = { ...node, inputs: idMap(kept) };
  }
  return nodes ?? outer.nodes;
}

/**
 * The links in `outer` that stopping to expose `port` of definition `name` removes, as a user reads them
 * (`sampler.positive`; an exposed input's: `enc.text_encoder → subgraph_1.text_encoder`, or the value it held).
 */
export function linksToPort(outer: EditorDocument | null, name: string, kind: "input" | "output", port: string): string[] {
  const type = SUBGRAPH_PREFIX + name;
  const out: string[] = [];
  for (const [id, node] of Object.entries(outer?.nodes ?? {})) {
    for (const [input, value] of Object.entries(node.inputs)) {
      if (kind === "input" && node.type === type && input === port) {
        out.push(isLink(value) ? `${value.node}.${value.output} → ${id}.${input}` : `${id}.${input} = ${JSON.stringify(value)}`);
      }
      if (kind === "output" && isLink(value) && value.output === port && outer?.nodes[value.node]?.type === type) out.push(`${id}.${input}`);
    }
  }
  return out;
}

/** `doc` with definition `name`'s `inputs` or `outputs` declarations replaced by `change`'s. */
function withDeclarations(doc: EditorDocument, name: string, kind: "inputs" | "outputs",
  change: (declared: Record<string, unknown>) => Record<string, unknown>): EditorDocument {
  const def = doc.subgraphs ? ownValue(doc.subgraphs, name) : undefined;
  if (!isObject(def)) throw new Error(`there is no subgraph definition named ${name}`);
  const subgraphs = copyIdMap(doc.subgraphs!);
  subgraphs[name] = { ...def, [kind]: change(copyIdMap(isObject(def[kind]) ? (def[kind] as Record<string, unknown>) : {})) };
  return { ...doc, subgraphs };
}

/**
 * Inside open definition `name` (`doc` is its inner document): input `input` of inner node `id` becomes an exposed
 * input (`inputs` with `default`: `value`, the value its widget shows, when it held one; a socket's has none and is
 * required), read through `$inputs`, so the subgraph node shows the port and, for a literal, the widget. Named after
 * the input (`text`), with the node's title before it when that name is taken (`negative_prompt_text`).
 */
export function exposeInput(doc: EditorDocument, name: string, id: string, input: string, value: unknown): { doc: EditorDocument; port: string } {
  const node = doc.nodes[id];
  if (!node) throw new Error(`there is no inner node ${id} to expose an input of`);
  const def = doc.subgraphs ? ownValue(doc.subgraphs, name) : undefined;
  const taken = new Set(portNames(def, "inputs"));
  const title = portNameFromTitle(node.title);
  const port = uniqueName(taken.has(input) && title ? `${title}_${input}` : input, taken, NOT_IN_PORT_NAME);
  const declared = value === undefined || isLink(value) ? {} : { default: structuredClone(value) };
  const next = withDeclarations(doc, name, "inputs", (inputs) => ({ ...inputs, [port]: declared }));
  const nodes = copyIdMap(next.nodes);
  nodes[id] = { ...node, inputs: idMap([...Object.entries(node.inputs), [input, { node: SUBGRAPH_INPUTS, output: port }]]) };
  return { doc: { ...next, nodes }, port };
}

/** Inside open definition `name`: output `output` of inner node `id` becomes an exposed output, named as a collapse names it. */
export function exposeOutput(doc: EditorDocument, name: string, id: string, output: string): { doc: EditorDocument; port: string } {
  if (!doc.nodes[id]) throw new Error(`there is no inner node ${id} to expose an output of`);
  const def = doc.subgraphs ? ownValue(doc.subgraphs, name) : undefined;
  const taken = new Set(portNames(def, "outputs"));
  const port = uniqueName(portNameFromTitle(doc.nodes[id].title) || output, taken, NOT_IN_PORT_NAME);
  return { doc: withDeclarations(doc, name, "outputs", (outputs) => ({ ...outputs, [port]: { node: id, output } })), port };
}

/**
 * Inside open definition `name`: exposed input `port` is no longer exposed. The inner inputs that read it get its
 * default back as their value (none: they are left unset). The subgraph nodes' inputs for it go at Back
 * (`closeSubgraph`), in the same undo step there.
 */
export function stopExposingInput(doc: EditorDocument, name: string, port: string): EditorDocument {
  const def = doc.subgraphs ? ownValue(doc.subgraphs, name) : undefined;
  const spec = isObject(def) && isObject(def.inputs) ? ownValue(def.inputs as Record<string, unknown>, port) : undefined;
  const next = withDeclarations(doc, name, "inputs", (inputs) => idMap(Object.entries(inputs).filter(([p]) => p !== port)));
  const nodes = copyIdMap(next.nodes);
  for (const [id, node] of Object.entries(next.nodes)) {
    const reads = Object.entries(node.inputs).filter(([, v]) => isLink(v) && v.node === SUBGRAPH_INPUTS && v.output === port);
    if (!reads.length) continue;
    const inputs = idMap(Object.entries(node.inputs).filter(([input]) => !reads.some(([r]) => r === input)));
    if (isObject(spec) && "default" in spec) for (const [input] of reads) inputs[input] = structuredClone(spec.default);
    nodes[id] = { ...node, inputs };
  }
  return { ...next, nodes };
}

/** Inside open definition `name`: exposed output `port` is no longer exposed (the links reading it outside go at Back). */
export function stopExposingOutput(doc: EditorDocument, name: string, port: string): EditorDocument {
  return withDeclarations(doc, name, "outputs", (outputs) => idMap(Object.entries(outputs).filter(([p]) => p !== port)));
}

/**
 * From the enclosing graph (a subgraph node's menu): definition `name`'s exposed input or output `port` is no
 * longer exposed, and the links to it in `doc` go, in one edit.
 */
export function stopExposing(doc: EditorDocument, name: string, kind: "input" | "output", port: string): EditorDocument {
  const inner = openSubgraph(doc, name);
  return closeSubgraph(doc, name, kind === "input" ? stopExposingInput(inner, name, port) : stopExposingOutput(inner, name, port));
}

/** The exposed ports of definition `name` as declared in `doc`: inputs and outputs by name. */
export function exposedPorts(doc: EditorDocument, name: string): { inputs: string[]; outputs: Record<string, { node: string; output: string }> } {
  const def = doc.subgraphs ? ownValue(doc.subgraphs, name) : undefined;
  const outputs = idMap<{ node: string; output: string }>();
  if (isObject(def) && isObject(def.outputs)) {
    for (const [port, t] of Object.entries(def.outputs)) if (isObject(t)) outputs[port] = { node: String(t.node), output: String(t.output) };
  }
  return { inputs: portNames(def, "inputs"), outputs };
}

/**
 * The exposed outputs of open definition `name` that deleting the inner nodes `ids` of `doc` leaves without the node
 * that gives them, each with the links in `outer` (the enclosing document) that read it: `negative_prompt (read by
 * sampler.negative)`. The outputs stay declared (`closeSubgraph`), so these links break until one is re-pointed.
 */
export function outputsLeftUnfed(doc: EditorDocument, name: string, ids: string[], outer: EditorDocument | null): string[] {
  const def = ownValue(doc.subgraphs ?? {}, name);
  if (!isObject(def) || !isObject(def.outputs)) return [];
  const gone = new Set(ids);
  const out: string[] = [];
  for (const [port, target] of Object.entries(def.outputs)) {
    if (!isObject(target) || !gone.has(String(target.node))) continue;
    const readers: string[] = [];
    for (const [id, node] of Object.entries(outer?.nodes ?? {})) {
      for (const [input, value] of Object.entries(node.inputs)) {
        if (isLink(value) && value.output === port && outer?.nodes[value.node]?.type === SUBGRAPH_PREFIX + name) readers.push(`${id}.${input}`);
      }
    }
    out.push(readers.length ? `${port} (read by ${readers.join(", ")})` : port);
  }
  return out;
}
