/**
 * The working graph kept across reloads and closed tabs (ComfyUI does the same), and the
 * clipboard shared between tabs — both in localStorage, both written as JSON text with
 * exact integers (graph/exactJson.ts).
 *
 * The app (state/app.ts) writes the whole graph file half a second after the last change
 * (and at once when the page is hidden or closed), and reads it back when the editor opens.
 * It is written twice: to this tab's sessionStorage (TAB_AUTOSAVE_KEY), which a reload of
 * the tab restores, so two tabs never swap graphs; and to localStorage (AUTOSAVE_KEY), which
 * a new tab (nothing kept in its sessionStorage yet) opens: the graph edited last.
 * A graph whose text is longer than STORAGE_LIMIT characters (~4 MB: images pasted into
 * prompts, huge literals) is not kept; a small note says so instead, so that a reload
 * neither restores an older version nor opens a template over it. A full or disabled
 * storage is not an error: the graph simply is not kept (one console line, no toasts).
 *
 *   AUTOSAVE_KEY, CLIPBOARD_KEY   the localStorage keys (versioned)
 *   TAB_AUTOSAVE_KEY              the sessionStorage key of this tab's working graph
 *   keptText(tab, shared)         the text to restore: this tab's, else the newest of any tab
 *   autosaveText(graph)           the stored text: `{"autosave": 1, "graph": {...}}`, or
 *                                 `{"autosave": 1, "too_large": <characters>}` past the limit
 *   readAutosave(text)            what was stored: a graph, a too-large note, or null
 *   storeText(storage, key, text) setItem that reports quota errors as false instead of throwing
 */
import { parseJsonOrNull, stringifyJson } from "../graph/exactJson";

export const AUTOSAVE_KEY = "nodegraph.autosave.v1";
export const CLIPBOARD_KEY = "nodegraph.clipboard.v1";
export const TAB_AUTOSAVE_KEY = "nodegraph.tab.autosave.v1";
/** Longer texts are not kept (localStorage holds about 5 M characters per site, shared with the schema cache). */
export const STORAGE_LIMIT = 4_000_000;
export const AUTOSAVE_DELAY_MS = 500;

/** The part of the Web Storage API the editor uses. */
export type StorageLike = Pick<Storage, "getItem" | "setItem" | "removeItem">;

export type Autosaved = { graph: unknown } | { tooLarge: number };

/** The text to store for a graph file: the graph, or a note when it is longer than `limit`. */
export function autosaveText(graph: unknown, limit = STORAGE_LIMIT): string {
  const text = stringifyJson({ autosave: 1, graph });
  return text.length > limit ? JSON.stringify({ autosave: 1, too_large: text.length }) : text;
}

/** What `autosaveText` stored (null: nothing, or text this version did not write). */
export function readAutosave(text: string | null | undefined): Autosaved | null {
  const raw = parseJsonOrNull(text);
  if (raw === null || typeof raw !== "object" || (raw as { autosave?: unknown }).autosave !== 1) return null;
  const stored = raw as { graph?: unknown; too_large?: unknown };
  if (typeof stored.too_large === "number") return { tooLarge: stored.too_large };
  return stored.graph !== undefined ? { graph: stored.graph } : null;
}

/** The autosave text to restore: this tab's own (a reload), else the one any tab wrote last (a new tab). */
export function keptText(tabText: string | null, sharedText: string | null): string | null {
  return readAutosave(tabText) !== null ? tabText : sharedText;
}

/** Store `text` under `key`; false when the storage refused it (full, disabled). */
export function storeText(storage: StorageLike, key: string, text: string): boolean {
  try {
    storage.setItem(key, text);
    return true;
  } catch {
    return false;
  }
}

/** The storage of this page, or null where there is none (tests, storage disabled). */
export function pageStorage(): StorageLike | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // a sandboxed frame throws on access
  }
}

/** This tab's storage (sessionStorage: it survives a reload, not a new tab), or null where there is none. */
export function tabStorage(): StorageLike | null {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}
