/**
 * How a node looks, set from its right-click menu (and Alt+C) and saved with the graph in `ui.nodes.<id>`
 * (docs/graph-format.md):
 *
 *   color / bgcolor   its title bar's and its body's colour, as ComfyUI writes them ("#322" / "#533" for its red;
 *                     kept from a ComfyUI import, nodegraph/comfyui.py `_node_colors`). Only a hex colour is shown:
 *                     a file's text never reaches CSS as it is.
 *   collapsed         `true`: minimised, only the title bar shows (ComfyUI's collapse, Alt+C or the title's dot);
 *                     its wires still end on it.
 *
 * Pure functions of the document (graph/document.ts); the node component draws what they read.
 */
import type { DocNode, EditorDocument } from "./document";
import { copyIdMap } from "./idMaps";

/** A colour of the node menu: ComfyUI's `LGraphCanvas.node_colors`, so a colour set here means the same there. */
export interface NodeColor {
  name: string;
  color: string;
  bgcolor: string;
}

export const NODE_COLORS: NodeColor[] = [
  { name: "red", color: "#322", bgcolor: "#533" },
  { name: "brown", color: "#332922", bgcolor: "#593930" },
  { name: "green", color: "#232", bgcolor: "#353" },
  { name: "blue", color: "#223", bgcolor: "#335" },
  { name: "pale blue", color: "#2a363b", bgcolor: "#3f5159" },
  { name: "cyan", color: "#233", bgcolor: "#355" },
  { name: "purple", color: "#323", bgcolor: "#535" },
  { name: "yellow", color: "#432", bgcolor: "#653" },
  { name: "black", color: "#222", bgcolor: "#000" },
];

const HEX_COLOR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6}|[0-9a-f]{8})$/i;

/** `value` when it is a hex colour ("#322", "#a1b2c3", "#a1b2c3ff"), else null. */
export function hexColor(value: unknown): string | null {
  return typeof value === "string" && HEX_COLOR.test(value) ? value : null;
}

/** A node's colours from `ui.nodes.<id>`: each only when it is a hex colour. */
export function nodeColors(node: DocNode): { color: string | null; bgcolor: string | null } {
  return { color: hexColor(node.ui.color), bgcolor: hexColor(node.ui.bgcolor) };
}

/** Black or white text, whichever reads better on `hex` (its relative luminance, WCAG). */
export function textColorOn(hex: string): "#ffffff" | "#111111" {
  const digits = hex.slice(1);
  const full = digits.length === 3 ? [...digits].map((d) => d + d).join("") : digits.slice(0, 6);
  const [r, g, b] = [0, 2, 4].map((i) => {
    const c = parseInt(full.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) ? "#111111" : "#ffffff";
}

/** Apply `change` to the `ui` entry of each node of `ids` (those in the graph). */
function withNodeUi(doc: EditorDocument, ids: string[], change: (ui: Record<string, unknown>) => void): EditorDocument {
  const nodes = copyIdMap(doc.nodes);
  let changed = false;
  for (const id of ids) {
    const node = nodes[id];
    if (!node) continue;
    const ui = { ...node.ui };
    change(ui);
    nodes[id] = { ...node, ui, hasUiEntry: true };
    changed = true;
  }
  return changed ? { ...doc, nodes } : doc;
}

/** Give the nodes of `ids` a colour of NODE_COLORS, or none (`null`: the theme's). */
export function setNodeColor(doc: EditorDocument, ids: string[], choice: NodeColor | null): EditorDocument {
  return withNodeUi(doc, ids, (ui) => {
    if (choice) Object.assign(ui, { color: choice.color, bgcolor: choice.bgcolor });
    else {
      delete ui.color;
      delete ui.bgcolor;
    }
  });
}

/** Whether a node is minimised (`ui.nodes.<id>.collapsed`). */
export function isMinimised(node: DocNode): boolean {
  return node.ui.collapsed === true;
}

/** Minimise the nodes of `ids`, or expand them when every one of them is minimised already (Alt+C, as ComfyUI). */
export function toggleMinimised(doc: EditorDocument, ids: string[]): EditorDocument {
  const present = ids.filter((id) => doc.nodes[id]);
  const expand = present.length > 0 && present.every((id) => isMinimised(doc.nodes[id]));
  return withNodeUi(doc, present, (ui) => {
    if (expand) delete ui.collapsed;
    else ui.collapsed = true;
  });
}
