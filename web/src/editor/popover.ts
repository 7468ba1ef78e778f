/**
 * Where a popover opened from a button goes (the templates menu): under the button, left-aligned with it,
 * moved left as far as it must to end inside the window, and never wider than the window less a margin on
 * each side. At 200 % zoom the 380 px templates menu, hung from its button at x 456 of a 640 px window,
 * scrolled the whole page sideways when its filter took the focus.
 *
 *   popoverPlace(anchor, width, window)   { left, top, width } in viewport (position: fixed) pixels
 */

export interface PopoverPlace {
  left: number;
  top: number;
  width: number;
}

/** The gap kept between a popover and the window's edges, and under its button. */
export const POPOVER_MARGIN = 8;

export function popoverPlace(
  anchor: { left: number; bottom: number },
  wantedWidth: number,
  window: { width: number },
  margin = POPOVER_MARGIN,
): PopoverPlace {
  const width = Math.max(0, Math.min(wantedWidth, window.width - 2 * margin));
  const left = Math.max(margin, Math.min(anchor.left, window.width - margin - width));
  return { left, top: anchor.bottom + 4, width };
}
