/**
 * The keyboard shortcuts: one table, read by the key handler's documentation and
 * shown in the help panel (press ? or the toolbar's "?" button).
 *
 * Inside a text field (a prompt, a number, a title being renamed) the field keeps its
 * own keys — Ctrl+Z undoes typing, Ctrl+A selects text — except the graph-wide ones
 * that `shortcutInField` names: run (Ctrl+Enter), run first (Ctrl+Shift+Enter) and save
 * (Ctrl+S, instead of the browser's "save page"), as in ComfyUI's prompt box; in a prompt or
 * text input, undo and redo are the graph's (a burst of typing is one step).
 *
 * ComfyUI's everyday keys work as there (`habitShortcut`): `.` fits the graph in view, Alt+C minimises the
 * selected nodes (or expands them), Ctrl+O opens a file, Ctrl+Alt+Enter interrupts the running run (these two
 * from inside a text field too).
 */
import type { EditorApp } from "../state/app";
import { toggleMinimised } from "../graph/nodeLook";

export interface Shortcut {
  keys: string;
  action: string;
}

export const SHORTCUTS: Shortcut[] = [
  { keys: "Double-click canvas", action: "search nodes at the cursor" },
  { keys: "Drag a wire to empty canvas", action: "search nodes that fit that wire" },
  { keys: "Drag from a connected input", action: "pick up its wire: drop it on another input to move it there, anywhere else to remove it (on empty canvas the search opens)" },
  { keys: "Shift+drag from an output onto another output", action: "move all its links to that output (type-checked, one undo step)" },
  { keys: "Double-click an input socket", action: "add a primitive node (Int, Float, String, Boolean) holding the widget's value, linked to it" },
  { keys: "Right-click", action: "menu for the canvas, a node, a wire, a group or a reroute" },
  { keys: "Ctrl+Enter", action: "run the graph (also from inside a text field)" },
  { keys: "Ctrl+Shift+Enter", action: "run the graph before the queued runs (admins, on a server with users)" },
  { keys: "Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y", action: "undo / redo (inside a prompt too: a burst of typing is one step)" },
  { keys: "Ctrl+C / Ctrl+V", action: "copy / paste (Ctrl+Shift+V keeps links from outside)" },
  { keys: "Ctrl+A", action: "select every node" },
  { keys: "Delete, Backspace", action: "delete the selection (nodes, wires, reroutes, groups)" },
  { keys: "Ctrl+B", action: "bypass the selected nodes (pass inputs through)" },
  { keys: "Ctrl+M", action: "mute the selected nodes (they and what depends on them do not run)" },
  { keys: "Ctrl+G", action: "group the selected nodes" },
  { keys: "Ctrl+Shift+E", action: "collapse the selection into a subgraph" },
  { keys: "Alt+L", action: "auto-layout the graph" },
  { keys: "Alt+C, the ▾ before a title", action: "minimise the selected nodes to their title bar, or expand them (ComfyUI's collapse)" },
  { keys: ". (full stop)", action: "fit the whole graph in view" },
  { keys: "Ctrl+O", action: "open a graph, image or ComfyUI file (also from inside a text field)" },
  { keys: "Ctrl+Alt+Enter", action: "interrupt the running run (also from inside a text field)" },
  { keys: "Right-click a node → Colour…", action: "colour the selected nodes (ComfyUI's colours; kept from a ComfyUI file)" },
  { keys: "Ctrl+S", action: "save the graph file (also from inside a text field)" },
  { keys: "Escape", action: "close menus, search, viewer, the Plugins or Storage panel; leave a subgraph" },
  { keys: "Tab / Shift+Tab", action: "move through the page: Skip to canvas, the toolbar, the canvas's nodes and wires, the panels" },
  { keys: "Enter / Space (node or wire focused)", action: "select it" },
  { keys: "Arrow keys (selected node focused)", action: "move the selected nodes" },
  { keys: "Shift+F10, Menu key", action: "menu of the focused node or wire, or of the canvas (Add node…); ↑/↓ to pick, Enter, Escape" },
  { keys: "Shift+F10 → Connect an output…", action: "make a wire without the mouse: pick one of the links the node can make (its outputs to inputs that take them, and back)" },
  { keys: "[ / ], B / E, Ctrl+Z (mask editor)", action: "brush smaller / larger, brush / eraser, undo the last stroke; Escape discards" },
  { keys: "?", action: "this help" },
];

/** The keys that matter here: what a KeyboardEvent carries. */
export interface KeyPress {
  key: string;
  ctrlKey: boolean;
  metaKey: boolean;
  shiftKey: boolean;
  altKey: boolean;
}

/** The graph-wide action of a key pressed inside a text field, or null: the field's own key.
 *
 * `graphUndo`: the field writes each keystroke into the graph (a prompt, a text input): its undo
 * and redo are the graph's, whose steps merge a burst of typing into one field (graph/history.ts)
 * — the browser's own undo of such a field steps back one character at a time. */
export function shortcutInField(event: KeyPress, graphUndo = false): "run" | "run-front" | "save" | "undo" | "redo" | null {
  if (!(event.ctrlKey || event.metaKey) || event.altKey) return null;
  const key = event.key.toLowerCase();
  if (event.key === "Enter") return event.shiftKey ? "run-front" : "run";
  if (key === "s" && !event.shiftKey) return "save";
  if (graphUndo && key === "z") return event.shiftKey ? "redo" : "undo";
  if (graphUndo && key === "y" && !event.shiftKey) return "redo";
  return null;
}

/** A ComfyUI key of this editor (see the module's note). */
export type HabitAction = "fit" | "minimise" | "open" | "interrupt";

/** The ComfyUI key `event` is, or null. `inField`: typed into a text field (only Ctrl+O and Ctrl+Alt+Enter apply
 *  there); `onCanvas`: the focus is on the page, the canvas or a node (`.` and Alt+C apply only there). Alt+C is
 *  read from the key's place (`code`): on a Mac, Alt+C types "ç". */
export function habitShortcut(event: KeyPress & { code?: string }, inField: boolean, onCanvas: boolean): HabitAction | null {
  const mod = event.ctrlKey || event.metaKey;
  if (mod && event.altKey && event.key === "Enter") return "interrupt";
  if (mod && !event.altKey && !event.shiftKey && event.key.toLowerCase() === "o") return "open";
  if (inField || !onCanvas) return null;
  if (!mod && !event.altKey && event.key === ".") return "fit";
  if (!mod && event.altKey && !event.shiftKey && (event.code === "KeyC" || event.key.toLowerCase() === "c")) return "minimise";
  return null;
}

/** Do a ComfyUI key's action: fit the view, minimise / expand the selection, open the file chooser (the toolbar's
 *  Load), interrupt the running run (nothing when none runs). */
export function runHabit(app: EditorApp, action: HabitAction): void {
  if (action === "fit") app.canvas.fit();
  else if (action === "minimise") {
    const ids = Object.keys(app.editor.state.selectedNodes).filter((id) => id in app.editor.doc.nodes);
    if (ids.length) app.editor.edit((doc) => toggleMinimised(doc, ids));
  } else if (action === "open") {
    app.canvas.element?.ownerDocument.querySelector<HTMLInputElement>("input[type=file][data-testid=load-input]")?.click();
  } else {
    const running = app.session.get().queue.running;
    if (running) void app.interrupt(running.run_id);
  }
}
