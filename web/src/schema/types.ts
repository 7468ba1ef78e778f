/**
 * The node schemas the server sends (`list_nodes` → `nodes {schema_hash, nodes, types}`).
 *
 * Nothing in the editor knows a node type by name: palette, ports, widgets and
 * type checks are all generated from these records, so plugin nodes appear
 * with no editor change. Fields mirror `nodegraph nodes --json`.
 */

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
  nodes: Record<string, NodeSchema>;
  types: Record<string, PortType>;
}

export const EMPTY_SCHEMAS: SchemaSet = { schemaHash: "", nodes: {}, types: {} };

/** Build a SchemaSet from a `nodes` reply's payload (nodes come as a list). */
export function schemaSetFrom(schemaHash: string, nodes: NodeSchema[], types: Record<string, PortType>): SchemaSet {
  const byType: Record<string, NodeSchema> = {};
  for (const node of nodes) byType[node.type] = node;
  return { schemaHash, nodes: byType, types };
}

/** The display colour of a port type (grey for types the server did not describe). */
export function portColor(types: Record<string, PortType>, port: string): string {
  return types[port]?.color ?? "#999999";
}
