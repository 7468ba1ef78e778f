/**
 * Undo/redo as a stack of document snapshots (documents are immutable, so a
 * snapshot is just a reference).
 *
 * `record(history, before, key, now)` is called with the document as it was
 * *before* an edit. Consecutive edits with the same non-null `key` within
 * `COALESCE_MS` (typing into one widget) make one undo step. Transient edits
 * (a drag in progress) are not recorded; the drag's start is recorded once at
 * its end.
 */
export const COALESCE_MS = 1000;
export const MAX_UNDO = 200;

export interface History<T> {
  past: T[];
  future: T[];
  lastKey: string | null;
  lastTime: number;
}

export function emptyHistory<T>(): History<T> {
  return { past: [], future: [], lastKey: null, lastTime: 0 };
}

/** Record `before` as an undo step (dropping the redo stack). */
export function record<T>(history: History<T>, before: T, key: string | null = null, now = 0): History<T> {
  if (key !== null && key === history.lastKey && now - history.lastTime <= COALESCE_MS && history.past.length) {
    return { ...history, future: [], lastTime: now };
  }
  const past = [...history.past, before].slice(-MAX_UNDO);
  return { past, future: [], lastKey: key, lastTime: now };
}

/** Step back: the document to show and the new history; null when there is nothing to undo. */
export function undo<T>(history: History<T>, current: T): { history: History<T>; value: T } | null {
  if (!history.past.length) return null;
  const value = history.past[history.past.length - 1];
  return {
    value,
    history: { past: history.past.slice(0, -1), future: [...history.future, current], lastKey: null, lastTime: 0 },
  };
}

/** Step forward again after an undo; null when there is nothing to redo. */
export function redo<T>(history: History<T>, current: T): { history: History<T>; value: T } | null {
  if (!history.future.length) return null;
  const value = history.future[history.future.length - 1];
  return {
    value,
    history: { past: [...history.past, current], future: history.future.slice(0, -1), lastKey: null, lastTime: 0 },
  };
}
