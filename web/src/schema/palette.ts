/**
 * The palette's content: node schemas filtered by a search string and grouped
 * by category (categories sorted, nodes by display name within each).
 */
import { uniqueSchemas, type NodeSchema } from "./types";

export interface PaletteGroup {
  category: string;
  nodes: NodeSchema[];
}

/** True when every word of `query` appears in the node's names (type, qualified, aliases), display name, category or description. */
export function matchesSearch(node: NodeSchema, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const haystack = [node.type, node.qualified_type ?? "", ...(node.aliases ?? []), node.display_name, node.category, node.description]
    .join(" ")
    .toLowerCase();
  return words.every((word) => haystack.includes(word));
}

/** Schemas matching `query`, grouped by category (each schema once, though it is indexed under all its names). */
export function paletteGroups(nodes: Record<string, NodeSchema>, query: string): PaletteGroup[] {
  const groups = new Map<string, NodeSchema[]>();
  for (const node of uniqueSchemas(nodes)) {
    if (!matchesSearch(node, query)) continue;
    const category = node.category || "other";
    if (!groups.has(category)) groups.set(category, []);
    groups.get(category)!.push(node);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([category, list]) => ({
      category,
      nodes: list.sort((a, b) => (a.display_name || a.type).localeCompare(b.display_name || b.type)),
    }));
}
