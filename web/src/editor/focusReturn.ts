/**
 * Focus that comes back: a popup, menu, panel or dialog remembers what had the focus when it
 * opened (its opener: a button, a node) and gives the focus back to it when it closes — when
 * the focus was lost with it (on the page's body), never taking it from where the user moved it;
 * an opener that is gone by then (a menu item, a deleted node) gives way to the canvas.
 *
 *   useReturnFocus(open)   in the component that shows the popup while `open`
 */
import { useEffect, useRef } from "react";

/** What has the focus now, or null when nothing (the page's body) has it. */
function focused(): HTMLElement | null {
  if (typeof document === "undefined") return null;
  const active = document.activeElement;
  return active instanceof HTMLElement && active !== document.body ? active : null;
}

export function useReturnFocus(open: boolean): void {
  const opener = useRef<HTMLElement | null>(null);
  const wasOpen = useRef(false);
  // Read while rendering the opening: the popup's own autofocus has not taken the focus yet.
  if (open && !wasOpen.current) opener.current = focused();
  wasOpen.current = open;
  useEffect(() => {
    if (!open) return;
    return () => {
      const element = opener.current;
      opener.current = null;
      if (focused() !== null) return;
      // an opener that is gone (the menu item that opened the search, a deleted node): the canvas
      const target = element && element.isConnected ? element : element ? document.getElementById("ng-canvas") : null;
      target?.focus({ preventScroll: true });
    };
  }, [open]);
}

/** The elements inside `root` that Tab reaches, in order (for a dialog that keeps the focus inside). */
export function tabbables(root: HTMLElement): HTMLElement[] {
  const selector = "button:not(:disabled), a[href], input:not(:disabled):not([type=hidden]), select:not(:disabled), textarea:not(:disabled), [tabindex]:not([tabindex='-1'])";
  return [...root.querySelectorAll<HTMLElement>(selector)].filter((e) => !e.hidden && e.getClientRects().length > 0);
}

/** Tab and Shift+Tab in a modal dialog: from its last element to its first and back (the focus stays inside). */
export function trapTab(event: { key: string; shiftKey: boolean; preventDefault(): void }, root: HTMLElement | null): void {
  if (event.key !== "Tab" || !root) return;
  const list = tabbables(root);
  if (!list.length) return;
  const active = document.activeElement;
  const first = list[0];
  const last = list[list.length - 1];
  if (event.shiftKey && (active === first || !root.contains(active))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (active === last || !root.contains(active))) {
    event.preventDefault();
    first.focus();
  }
}
