/**
 * Copy and paste of nodes (Ctrl+C / Ctrl+V), as pure functions on documents.
 *
 * A clip holds the copied nodes with their inputs, titles, ui entries and
 * positions. Pasting gives every node a fresh id, rewires links between
 * copied nodes to the new ids, and drops links to nodes outside the clip —
 * unless `keepExternalLinks` (Ctrl+Shift+V) and the source still exists.
 */
import { isLink, newNodeId, type DocNode, type EditorDocument, type Position } from "./document";

export interface Clip {
  nodes: Record<string, DocNode>;
}

/**
 * The clip of the given nodes (null when none of them exists). `shownAt(id)` gives the
 * position a node is shown at when the file has none (auto-layout), so a pasted graph keeps
 * the arrangement the user saw instead of piling up on one spot.
 */
export function copyNodes(doc: EditorDocument, ids: Iterable<string>, shownAt: (id: string) => Position | undefined = () => undefined): Clip | null {
  const nodes: Record<string, DocNode> = {};
  for (const id of ids) {
    if (!doc.nodes[id]) continue;
    const node = JSON.parse(JSON.stringify(doc.nodes[id])) as DocNode;
    const shown = node.position ?? shownAt(id);
    if (shown) node.position = [shown[0], shown[1]];
    nodes[id] = node;
  }
  return Object.keys(nodes).length ? { nodes } : null;
}

/**
 * Paste `clip` into `doc`, shifted by `offset` (nodes without a position are
 * placed at `fallback`). Returns the new document and the ids of the pasted nodes.
 */
export function pasteClip(
  doc: EditorDocument,
  clip: Clip,
  offset: Position,
  options: { keepExternalLinks?: boolean; fallback?: Position } = {},
): { doc: EditorDocument; ids: string[] } {
  const taken = new Set<string>();
  const rename: Record<string, string> = {};
  for (const [oldId, node] of Object.entries(clip.nodes)) {
    const id = newNodeId(doc, node.type, taken);
    taken.add(id);
    rename[oldId] = id;
  }
  const nodes = { ...doc.nodes };
  for (const [oldId, node] of Object.entries(clip.nodes)) {
    const inputs: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(node.inputs)) {
      if (!isLink(value)) inputs[name] = value;
      else if (value.node in rename) inputs[name] = { node: rename[value.node], output: value.output };
      else if (options.keepExternalLinks && value.node in doc.nodes) inputs[name] = value;
    }
    const base = node.position ?? options.fallback ?? [0, 0];
    nodes[rename[oldId]] = {
      ...node,
      inputs,
      hasInputsKey: true,
      position: [Math.round(base[0] + offset[0]), Math.round(base[1] + offset[1])],
      hasUiEntry: true,
    };
  }
  return { doc: { ...doc, nodes }, ids: Object.values(rename) };
}
