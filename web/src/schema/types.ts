/**
 * The node schemas the server sends (`list_nodes` → `nodes {schema_hash, nodes, types}`).
 *
 * Nothing in the editor knows a node type by name: palette, ports, widgets and
 * type checks are all generated from these records, so plugin nodes appear
 * with no editor change. Fields mirror `nodegraph nodes --json`.
 *
 * Names (docs/plugins.md "Node type names"): a schema's `type` is its canonical
 * name (what the palette adds and a new graph saves), `qualified_type` the
 * `<plugin>.<Type>` form and `aliases` every other name that resolves to it.
 * `SchemaSet.nodes` is keyed by ALL of these, so a graph written with any of
 * them opens as a known node; `uniqueSchemas` lists each schema once.
 *
 * Graph files name node types and inputs freely (`constructor`, `__proto__`), so the maps
 * `SchemaSet.nodes`, `SchemaSet.types` and each schema's `inputs` are prototype-free
 * (graph/idMaps.ts): an unknown name reads as undefined, never as an inherited member.
 */
import { idMap } from "../graph/idMaps";

/** How an input is edited (`InputSpec.widget.kind` on the server). */
export type WidgetKind = "number" | "text" | "choice" | "seed" | "toggle" | "model_file" | "upload" | "link";

export interface WidgetSpec {
  kind: WidgetKind | string;
  step?: number;
  multiline?: boolean;
  seed?: boolean;
  model_folder?: string;
  [extra: string]: unknown;
}

/** The JSON Schema of one input's literal (pydantic field schema). */
export interface FieldSchema {
  type?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  enum?: unknown[];
  default?: unknown;
  title?: string;
  [extra: string]: unknown;
}

export interface InputSpec {
  port: string;
  required: boolean;
  lazy?: boolean;
  description?: string;
  default?: unknown;
  choices?: unknown[];
  model_folder?: string;
  widget: WidgetSpec;
  schema: FieldSchema;
}

export interface OutputSpec {
  name: string;
  port: string;
  description?: string;
}

export interface NodeSchema {
  type: string;
  version?: string;
  category: string;
  display_name: string;
  description: string;
  output_node: boolean;
  deterministic?: boolean;
  inputs: Record<string, InputSpec>;
  outputs: OutputSpec[];
  plugin?: string;
  /** `<plugin>.<Type>`: always resolves, even when the bare name is ambiguous. */
  qualified_type?: string;
  /** Other names that resolve to this node (the qualified name when `type` is the bare one, ...). */
  aliases?: string[];
  /** Inputs a newer version renamed, old name → new name (graph/renamedInputs.ts applies them to graphs opened). */
  renamed_inputs?: Record<string, string>;
}

/** A port type: colour, and which other types it accepts as a destination (INT → FLOAT). */
export interface PortType {
  name: string;
  description?: string;
  literal?: string | null;
  accepts: string[];
  color: string;
}

/** Everything the editor knows about the server's node types. */
export interface SchemaSet {
  schemaHash: string;
  /** Every name that resolves (canonical `type`, `qualified_type`, `aliases`) → its schema. */
  nodes: Record<string, NodeSchema>;
  types: Record<string, PortType>;
}

export const EMPTY_SCHEMAS: SchemaSet = { schemaHash: "", nodes: idMap(), types: idMap() };

/** Every name a schema answers to: canonical first, then the qualified name and the aliases. */
export function namesOf(node: NodeSchema): string[] {
  const names = [node.type, node.qualified_type, ...(node.aliases ?? [])];
  return [...new Set(names.filter((n): n is string => typeof n === "string" && n.length > 0))];
}

/**
 * Build a SchemaSet from a `nodes` reply's payload (nodes come as a list).
 * Canonical names are indexed first, so an alias can never hide another node's canonical name.
 */
export function schemaSetFrom(schemaHash: string, nodes: NodeSchema[], types: Record<string, PortType>): SchemaSet {
  const schemas = nodes.map((node) => ({ ...node, inputs: idMap(Object.entries(node.inputs ?? {})) }));
  const byName = idMap<NodeSchema>();
  for (const node of schemas) byName[node.type] = node;
  for (const node of schemas) {
    for (const name of namesOf(node)) if (!(name in byName)) byName[name] = node;
  }
  return { schemaHash, nodes: byName, types: idMap(Object.entries(types ?? {})) };
}

/** Each schema once (under its canonical name), whatever the number of names it has. */
export function uniqueSchemas(nodes: Record<string, NodeSchema>): NodeSchema[] {
  return Object.entries(nodes).filter(([name, node]) => name === node.type).map(([, node]) => node);
}

/** The display colour of a port type (grey for types the server did not describe). */
export function portColor(types: Record<string, PortType>, port: string): string {
  return types[port]?.color ?? "#999999";
}
