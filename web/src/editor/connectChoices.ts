/**
 * Making a wire without a mouse: the node menu's "Connect an output…" (Shift+F10 on a focused
 * node) lists every link the node can take part in — each of its outputs into an input of another
 * node, and each other node's output into one of its inputs — that the typed-port rules allow
 * (schema/compatibility.ts: equal types, `accepts`, `*`; no self links, no cycles). Choosing one
 * links it as a normal, undoable edit (a new link into an input replaces the old one).
 *
 *   connectChoices(doc, schemas, types, nodeId)   [{source, output, target, input, port, replaces}]
 */
import { isLink, upstreamNodes, type EditorDocument } from "../graph/document";
import { checkLink } from "../schema/compatibility";
import type { NodeSchema, PortType } from "../schema/types";

export interface ConnectChoice {
  source: string;
  output: string;
  target: string;
  input: string;
  /** The output's port type. */
  port: string;
  /** The link this one would replace ("node.output"), or null when the input has none. */
  replaces: string | null;
}

/** The links `nodeId` can make: its outputs to others' inputs first, then others' outputs to its inputs. */
export function connectChoices(doc: EditorDocument, schemas: Record<string, NodeSchema>, types: Record<string, PortType>, nodeId: string): ConnectChoice[] {
  const node = doc.nodes[nodeId];
  if (!node) return [];
  const upstreamOf = (id: string) => upstreamNodes(doc, id);
  const outgoing: ConnectChoice[] = [];
  const incoming: ConnectChoice[] = [];
  const consider = (source: string, output: string, port: string, target: string, into: ConnectChoice[]) => {
    const schema = schemas[doc.nodes[target].type];
    for (const [input, spec] of Object.entries(schema?.inputs ?? {})) {
      const current = doc.nodes[target].inputs[input];
      if (isLink(current) && current.node === source && current.output === output) continue; // already linked so
      if (!checkLink({ sourceNode: source, sourcePort: port, targetNode: target, targetPort: spec.port, types, upstreamOf }).ok) continue;
      into.push({ source, output, target, input, port, replaces: isLink(current) ? `${current.node}.${current.output}` : null });
    }
  };
  const own = schemas[node.type];
  for (const other of Object.keys(doc.nodes)) {
    if (other === nodeId) continue;
    for (const out of own?.outputs ?? []) consider(nodeId, out.name, out.port, other, outgoing);
    for (const out of schemas[doc.nodes[other].type]?.outputs ?? []) consider(other, out.name, out.port, nodeId, incoming);
  }
  return [...outgoing, ...incoming];
}

/** A choice as a menu line: "checkpoint.model → sampler.model (MODEL)", with the link it replaces. */
export function choiceLabel(choice: ConnectChoice): string {
  return `${choice.source}.${choice.output} → ${choice.target}.${choice.input} (${choice.port})${choice.replaces ? `, replaces ${choice.replaces}` : ""}`;
}
