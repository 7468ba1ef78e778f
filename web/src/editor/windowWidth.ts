/**
 * The window's width in CSS px as React state (it changes with the window and with the browser's zoom:
 * 200 % zoom halves it), for layout decisions CSS alone cannot make — the panels folded by default in a
 * narrow window (state/ui.ts `panelsFolded`), which the user can then unfold.
 *
 *   useWindowWidth()   the current `innerWidth` (1280 outside a browser)
 */
import { useSyncExternalStore } from "react";

function subscribe(changed: () => void): () => void {
  window.addEventListener("resize", changed);
  return () => window.removeEventListener("resize", changed);
}

export function useWindowWidth(): number {
  return useSyncExternalStore(subscribe, () => window.innerWidth, () => 1280);
}
