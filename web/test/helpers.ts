/** Shared test helpers: the real node schemas captured from `nodegraph nodes --json`. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { schemaSetFrom, type NodeSchema, type PortType, type SchemaSet } from "../src/schema/types";

const here = fileURLToPath(new URL(".", import.meta.url));

export function realSchemas(): SchemaSet {
  const raw = JSON.parse(readFileSync(`${here}fixtures/nodes.json`, "utf8")) as {
    schema_hash: string;
    nodes: NodeSchema[];
    types: Record<string, PortType>;
  };
  return schemaSetFrom(raw.schema_hash, raw.nodes, raw.types);
}

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
