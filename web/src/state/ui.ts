/**
 * Transient view state that is neither the document nor the server's: the
 * open popups and panels, the theme. One store, changed only through the
 * small functions below.
 *
 * Fields of `UiState`:
 *   search      the node search popup: screen position, graph position to add at, and
 *               the wire it was opened from (port filter + the handle to connect), or null.
 *   menu        the open context menu: screen position and what was right-clicked, or null.
 *   viewer      the image viewer: the images, the one shown, and the one compared with, or null.
 *   model3d     the mesh / point-cloud file shown large in the 3D viewer (editor/Model3DViewer.tsx),
 *               or null.
 *   maskEditor  the mask editor's input (editor/MaskEditor.tsx): node, input and the file it holds, or null.
 *   renaming    what is being renamed inline: "group:<id>" or "node:<id>", or null.
 *   help        whether the keyboard-shortcut panel is open.
 *   templates   whether the templates menu is open.
 *   theme       "dark" or "light" (kept in localStorage, applied as <html data-theme>).
 *   historyFilter  the status the history panel shows ("all" or a run status).
 */
import type { Position } from "../graph/document";
import type { OutputItem } from "../run/media";
import type { PortFilter } from "../schema/search";
import { createStore, type Store } from "./store";

export type MenuTarget =
  | { kind: "canvas" }
  | { kind: "node"; id: string }
  | { kind: "wire"; target: string; input: string }
  | { kind: "group"; id: string }
  | { kind: "reroute"; id: string }
  /** A note on the canvas (graph/notes.ts). */
  | { kind: "note"; id: string }
  /** The links a node can make (editor/connectChoices.ts): the keyboard's way to wire. */
  | { kind: "connect"; id: string }
  /** The colours for the nodes `ids` (graph/nodeLook.ts NODE_COLORS): a node menu's "Colour…". */
  | { kind: "color"; ids: string[] };

export interface SearchPopupState {
  screen: Position;
  at: Position;
  /** The wire being dragged when the popup opened: connect the new node to it. */
  wire?: { filter: PortFilter; node: string; handle: string };
}

export interface ViewerState {
  items: OutputItem[];
  index: number;
  compare: number | null;
}

/** The image input the mask editor paints on: its node, its name and the input file it names. */
export interface MaskEditorState {
  nodeId: string;
  input: string;
  file: string;
}

export type Theme = "dark" | "light";

export interface UiState {
  search: SearchPopupState | null;
  menu: { screen: Position; at: Position; target: MenuTarget } | null;
  viewer: ViewerState | null;
  model3d: OutputItem | null;
  maskEditor: MaskEditorState | null;
  renaming: string | null;
  help: boolean;
  templates: boolean;
  theme: Theme;
  historyFilter: string;
  /**
   * The palette and the side panels folded away (the canvas control "Hide the palette and the side panels"):
   * true / false as the user chose, null while they have not (then `panelsFolded` decides by the window's width).
   */
  panelsHidden: boolean | null;
}

/**
 * Below this window width (CSS px) the panels start folded: at 320 px the palette and the side panel
 * (150 + 170 px) left the canvas 0 px wide. 600, not the toolbar's 720: a 640 px window (200 % zoom of
 * a 1280 px one) still has a 310 px canvas beside them.
 */
export const FOLD_PANELS_BELOW = 600;

/** Whether the palette and the side panels are folded away: the user's choice, else folded in a narrow window. */
export function panelsFolded(choice: boolean | null, windowWidth: number): boolean {
  return choice ?? windowWidth < FOLD_PANELS_BELOW;
}

const THEME_KEY = "nodegraph.theme";

function storedTheme(): Theme {
  try {
    return globalThis.localStorage?.getItem(THEME_KEY) === "light" ? "light" : "dark";
  } catch {
    return "dark";
  }
}

export function createUiStore(): Store<UiState> {
  return createStore<UiState>({
    search: null,
    menu: null,
    viewer: null,
    model3d: null,
    maskEditor: null,
    renaming: null,
    help: false,
    templates: false,
    theme: storedTheme(),
    historyFilter: "all",
    panelsHidden: null,
  });
}

/** Apply and remember a theme. */
export function setTheme(ui: Store<UiState>, theme: Theme): void {
  ui.set((s) => ({ ...s, theme }));
  try {
    globalThis.localStorage?.setItem(THEME_KEY, theme);
  } catch {
    // storage disabled: the theme lasts for this page
  }
  if (typeof document !== "undefined") document.documentElement.dataset.theme = theme;
}

/** Open the viewer on `items[index]` (images only; other kinds have their own players). */
export function openViewer(ui: Store<UiState>, items: OutputItem[], index: number): void {
  if (!items.length) return;
  ui.set((s) => ({ ...s, viewer: { items, index: Math.max(0, Math.min(index, items.length - 1)), compare: null } }));
}

/** Open the mask editor on input `input` of node `nodeId`, which names the input file `file`. */
export function openMaskEditor(ui: Store<UiState>, nodeId: string, input: string, file: string): void {
  ui.set((s) => ({ ...s, menu: null, maskEditor: { nodeId, input, file } }));
}

/** Open the 3D viewer on a mesh or point-cloud file (a gallery tile's click). */
export function openModel3D(ui: Store<UiState>, item: OutputItem): void {
  ui.set((s) => ({ ...s, model3d: item }));
}

/** Step the viewer's frame by `delta`, wrapping around. */
export function stepViewer(viewer: ViewerState, delta: number): ViewerState {
  const n = viewer.items.length;
  return { ...viewer, index: (((viewer.index + delta) % n) + n) % n };
}

/** The viewer's scale limits, in screen pixels per image pixel. */
export const VIEWER_MIN_SCALE = 0.05;
export const VIEWER_MAX_SCALE = 64;

/**
 * The scale (screen pixels per image pixel) at which an image of `natural` [w, h] fits `stage` [w, h]
 * whole, small images enlarged to fill it; 1 while either size is unknown (0).
 */
export function fitScale(natural: [number, number], stage: [number, number]): number {
  if (natural[0] <= 0 || natural[1] <= 0 || stage[0] <= 0 || stage[1] <= 0) return 1;
  return clampScale(Math.min(stage[0] / natural[0], stage[1] / natural[1]));
}

/** `scale` kept inside the viewer's limits. */
export function clampScale(scale: number): number {
  return Math.max(VIEWER_MIN_SCALE, Math.min(VIEWER_MAX_SCALE, scale));
}
