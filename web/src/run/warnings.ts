/**
 * Node warnings (`node_warning`: the node ran, but its result deserves a look — prompt words
 * the model never learnt, a size outside what it was trained on) and how the editor keeps them.
 *
 * Every warning of the shown run is kept per node (`SessionState.warnings`), so several
 * warnings of one run never replace each other: the nodes are marked and the warnings banner
 * lists them all.
 *
 * A result served from the cache carries the warnings of the nodes it came from, and the engine
 * gives them again (`node_warning` with `cached: true`, shown as from an earlier run). For a
 * server that does not (older ones), the editor also remembers the last warnings of each node *result* (`SessionState.warningMemory`)
 * and shows them again, marked as from an earlier run, when that result comes from the cache.
 * A result is named like the engine's cache key, from what the editor submitted: the node's
 * type, mode and literal inputs, and the names of the results it links to (`resultKeys`). A
 * node that runs again starts with no warnings under its key, so a fixed problem goes away.
 *
 * Main objects:
 *   NodeWarning     one warning on a node: its text and whether it came from an earlier run
 *   resultKeys      node id → result key for every node of a submitted graph file
 *   warningKey      the key of a node id of a run (`outer/inner` ids inside subgraphs too)
 *   warningList     every warning of the shown run, in node order, for the banner
 */
import { isLink, type GraphFile } from "../graph/document";
import { stringifyJson } from "../graph/exactJson";
import { idMap } from "../graph/idMaps";

export interface NodeWarning {
  message: string;
  /** Shown again from the run that computed a result now served from the cache. */
  earlier: boolean;
}

/** A 53-bit hash of a text (cyrb53): short keys for long prompts. */
function hashText(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

/**
 * A key per node of a graph file that changes whenever the node's result may change: its type,
 * mode and literal inputs, the keys of the nodes it links to, and for a subgraph node its
 * definition. Seeds are literals, so a new seed is a new result.
 */
export function resultKeys(graph: GraphFile): Record<string, string> {
  const keys = idMap<string>();
  const visiting = new Set<string>();
  const keyOf = (id: string): string => {
    if (keys[id] !== undefined) return keys[id];
    const node = graph.nodes[id];
    if (!node || visiting.has(id)) return `missing:${id}`;
    visiting.add(id);
    const inputs: [string, unknown][] = Object.entries(node.inputs ?? {})
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => [name, isLink(value) ? { from: keyOf(value.node), output: value.output } : value]);
    const definition = node.type.startsWith("subgraph:") ? graph.subgraphs?.[node.type.slice("subgraph:".length)] ?? null : null;
    keys[id] = hashText(stringifyJson([node.type, node.mode ?? null, inputs, definition]));
    visiting.delete(id);
    return keys[id];
  };
  for (const id of Object.keys(graph.nodes)) keyOf(id);
  return keys;
}

/**
 * The memory key of node `nodeId` of a run whose result keys are `keys` (undefined: a run this
 * editor did not submit). Nodes inside a subgraph (`outer/inner`) go by their outer node's key;
 * without keys a node goes by its id.
 */
export function warningKey(keys: Record<string, string> | undefined, nodeId: string): string {
  if (keys) {
    if (keys[nodeId] !== undefined) return `r:${keys[nodeId]}`;
    const slash = nodeId.indexOf("/");
    if (slash > 0 && keys[nodeId.slice(0, slash)] !== undefined) return `r:${keys[nodeId.slice(0, slash)]}${nodeId.slice(slash)}`;
  }
  return `node:${nodeId}`;
}

/** The warnings of the shown run as one list (node by node, in the order they came). */
export function warningList(warnings: Record<string, NodeWarning[]>): { nodeId: string; warning: NodeWarning }[] {
  return Object.entries(warnings).flatMap(([nodeId, list]) => list.map((warning) => ({ nodeId, warning })));
}
