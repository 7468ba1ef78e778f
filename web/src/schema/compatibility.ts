/**
 * Port-type compatibility, the same rule as the engine's validation
 * (docs/graph-format.md): a link is allowed when both ends have the same type,
 * when the destination type accepts the source type (`types[dst].accepts`,
 * built in: INT → FLOAT), or when either end is the generic "*".
 *
 * `checkLink` also refuses links the engine would reject for structural
 * reasons (self links, cycles) and always returns a sentence the editor shows
 * to the user when it refuses.
 */
import type { PortType } from "./types";

export const ANY_PORT = "*";

export type LinkCheck = { ok: true } | { ok: false; reason: string };

/** True when an output of type `source` may feed an input of type `destination`. */
export function portsCompatible(source: string, destination: string, types: Record<string, PortType>): boolean {
  if (source === destination || source === ANY_PORT || destination === ANY_PORT) return true;
  return (types[destination]?.accepts ?? []).includes(source);
}

/** The reason shown when `source` cannot feed `destination` (or null when it can). */
export function incompatibilityReason(
  source: string,
  destination: string,
  types: Record<string, PortType>,
): string | null {
  if (portsCompatible(source, destination, types)) return null;
  const accepted = [destination, ...(types[destination]?.accepts ?? [])].join(" or ");
  return `${source} output cannot feed ${article(destination)} ${destination} input (it takes ${accepted})`;
}

function article(word: string): string {
  return /^[AEIOU]/i.test(word) ? "an" : "a";
}

/**
 * Whether linking `sourceNode` → `targetNode` creates a cycle, given the
 * existing links as a map node id → ids of the nodes it reads from.
 */
export function createsCycle(
  sourceNode: string,
  targetNode: string,
  upstreamOf: (nodeId: string) => Iterable<string>,
): boolean {
  if (sourceNode === targetNode) return true;
  // A cycle appears when targetNode is already upstream of sourceNode.
  const seen = new Set<string>();
  const stack = [sourceNode];
  while (stack.length) {
    const current = stack.pop()!;
    if (current === targetNode) return true;
    if (seen.has(current)) continue;
    seen.add(current);
    for (const next of upstreamOf(current)) stack.push(next);
  }
  return false;
}

/** Every rule for a new link, with the reason when it is refused. */
export function checkLink(args: {
  sourceNode: string;
  sourcePort: string | undefined;
  targetNode: string;
  targetPort: string | undefined;
  types: Record<string, PortType>;
  upstreamOf: (nodeId: string) => Iterable<string>;
}): LinkCheck {
  const { sourceNode, sourcePort, targetNode, targetPort, types, upstreamOf } = args;
  if (sourcePort === undefined) return { ok: false, reason: "the source output is unknown (its node type is not registered)" };
  if (targetPort === undefined) return { ok: false, reason: "the destination input is unknown (its node type is not registered)" };
  if (sourceNode === targetNode) return { ok: false, reason: "a node cannot feed its own input" };
  const reason = incompatibilityReason(sourcePort, targetPort, types);
  if (reason) return { ok: false, reason };
  if (createsCycle(sourceNode, targetNode, upstreamOf)) {
    return { ok: false, reason: "this link would create a cycle: the destination already feeds the source" };
  }
  return { ok: true };
}
