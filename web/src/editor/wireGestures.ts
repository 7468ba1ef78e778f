/**
 * ComfyUI's wire habits on the canvas (editor/GraphCanvas.tsx wires the pointer to them):
 *
 *   pick up a wire     drag from a *connected* input: its link is detached and follows the pointer from its
 *                      source's output; dropped on a compatible input it links there, anywhere else it is removed
 *                      (on empty canvas the node search for that output opens, as for a wire dragged from it)
 *   move all links     Shift+drag from a connected output onto another output: every link of the first goes to
 *                      the second (each type-checked first, all or none: one undo step)
 *   primitive node     double-click an unconnected input socket whose type has a primitive node (Int, Float,
 *                      String, Boolean; a choice list is a STRING): that node is added left of it, linked to it
 *                      and holding the widget's current value
 *
 * The document changes are pure functions here, so they are tested without a page (web/test/wireGestures.test.ts).
 */
import { addNode, connect, disconnect, docEdges, isLink, setInput, type EditorDocument, type InputValue, type Position } from "../graph/document";
import type { LinkCheck } from "../schema/compatibility";
import { uniqueSchemas, type NodeSchema } from "../schema/types";

/** One end of a wire: a node's output. */
export interface OutputEnd {
  node: string;
  output: string;
}

/** Whether `source.output` may feed `target.input` (GraphCanvas's `checkConnection`, without the handle ids). */
export type LinkChecker = (source: OutputEnd, target: string, input: string) => LinkCheck;

/** The link into `target.input`, or null when the input holds a literal or nothing (then there is no wire to pick up). */
export function linkInto(doc: EditorDocument, target: string, input: string): OutputEnd | null {
  const value = doc.nodes[target]?.inputs[input];
  return isLink(value) ? { node: value.node, output: value.output } : null;
}

/**
 * A picked-up wire dropped on `to` (an input): the link leaves `from` and goes there, one document change.
 * Dropped back on the input it came from, nothing changes.
 */
export function relink(doc: EditorDocument, from: { target: string; input: string }, to: { target: string; input: string }): EditorDocument {
  const link = linkInto(doc, from.target, from.input);
  if (!link || (from.target === to.target && from.input === to.input)) return doc;
  return connect(disconnect(doc, from.target, from.input), link.node, link.output, to.target, to.input);
}

/**
 * Shift+drag from output `from` onto output `to`: every link of `from` now comes from `to`. Each is checked
 * first (`check`); one refused link refuses the whole move, with its reason, so a move is never half done.
 */
export function moveOutputLinks(doc: EditorDocument, from: OutputEnd, to: OutputEnd, check: LinkChecker): { doc: EditorDocument; moved: number } | { reason: string } {
  if (from.node === to.node && from.output === to.output) return { doc, moved: 0 };
  const links = docEdges(doc).filter((e) => e.source === from.node && e.output === from.output);
  if (!links.length) return { reason: `${from.node}.${from.output} has no links to move` };
  for (const link of links) {
    const verdict = check(to, link.target, link.input);
    if (!verdict.ok) return { reason: `${to.node}.${to.output} cannot feed ${link.target}.${link.input}: ${verdict.reason}` };
  }
  let next = doc;
  for (const link of links) next = connect(next, to.node, to.output, link.target, link.input);
  return { doc: next, moved: links.length };
}

/**
 * The primitive node type for inputs of `port` (INT → Int, FLOAT → Float, STRING → String, BOOLEAN → Boolean), or
 * null: a schema of the "primitives" category with one input, `value`, and one output of exactly that port — read
 * from the schemas, so a server without the primitives plugin simply offers none.
 */
export function primitiveTypeFor(schemas: Record<string, NodeSchema>, port: string): string | null {
  const found = uniqueSchemas(schemas).find((s) => {
    const inputs = Object.keys(s.inputs);
    return s.category === "primitives" && inputs.length === 1 && inputs[0] === "value" && s.inputs.value.port === port && s.outputs.length === 1 && s.outputs[0].port === port;
  });
  return found ? found.type : null;
}

/** The widget's current value of `node.input`: its literal, else the schema's default (undefined: none). */
export function widgetValue(doc: EditorDocument, node: string, input: string, schema: NodeSchema | undefined): InputValue | undefined {
  const value = doc.nodes[node]?.inputs[input];
  if (value !== undefined && !isLink(value)) return value;
  return schema?.inputs[input]?.default as InputValue | undefined;
}

/**
 * Add primitive node `primitive` at `at`, holding `value`, linked to `target.input` (one document change).
 * Returns null when the input is already linked (the double-click is then not this gesture's).
 */
export function addPrimitiveFor(
  doc: EditorDocument, primitive: NodeSchema, at: Position, target: string, input: string, value: InputValue | undefined,
): { doc: EditorDocument; id: string } | null {
  if (!doc.nodes[target] || linkInto(doc, target, input)) return null;
  const added = addNode(doc, primitive, at);
  let next = value === undefined ? added.doc : setInput(added.doc, added.id, "value", value);
  next = connect(next, added.id, primitive.outputs[0].name, target, input);
  return { doc: next, id: added.id };
}
