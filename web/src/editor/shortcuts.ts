/**
 * The keyboard shortcuts: one table, read by the key handler's documentation and
 * shown in the help panel (press ? or the toolbar's "?" button).
 */
export interface Shortcut {
  keys: string;
  action: string;
}

export const SHORTCUTS: Shortcut[] = [
  { keys: "Double-click canvas", action: "search nodes at the cursor" },
  { keys: "Drag a wire to empty canvas", action: "search nodes that fit that wire" },
  { keys: "Right-click", action: "menu for the canvas, a node, a wire, a group or a reroute" },
  { keys: "Ctrl+Enter", action: "run the graph" },
  { keys: "Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y", action: "undo / redo" },
  { keys: "Ctrl+C / Ctrl+V", action: "copy / paste (Ctrl+Shift+V keeps links from outside)" },
  { keys: "Ctrl+A", action: "select every node" },
  { keys: "Delete, Backspace", action: "delete the selection (nodes, wires, reroutes, groups)" },
  { keys: "Ctrl+B", action: "bypass the selected nodes (pass inputs through)" },
  { keys: "Ctrl+M", action: "mute the selected nodes (they and what depends on them do not run)" },
  { keys: "Ctrl+G", action: "group the selected nodes" },
  { keys: "Ctrl+Shift+E", action: "collapse the selection into a subgraph" },
  { keys: "Alt+L", action: "auto-layout the graph" },
  { keys: "Ctrl+S", action: "save the graph file" },
  { keys: "Escape", action: "close menus, search, viewer; leave a subgraph" },
  { keys: "?", action: "this help" },
];
