/**
 * The mask editor's pixel logic, without the DOM (editor/MaskEditor.tsx draws and uploads).
 *
 * A mask is one byte per pixel, row by row: 255 = "change this" (painted), 0 = keep. It follows
 * LoadImage's convention (nodes/image/pixels.py `load_image_file`: MASK = 1 − alpha), so
 *   maskFromAlpha(rgba)        the starting mask: an image's existing transparency
 *   withMaskAsAlpha(rgba, m)   the pixels to save: the original RGB, alpha = 255 − mask
 *   (graph/png.ts `encodePng` writes them as an RGBA PNG, not a canvas: a canvas stores premultiplied
 *                              colour, and would turn every painted (fully transparent) pixel black —
 *                              LoadImage keeps their RGB, and an inpainting run with denoise < 1 starts from them.)
 *   paintStroke(m, ...)        a round brush from one pointer position to the next (paint or erase); it returns
 *                              the rectangle it touched and how the painted count changed, so a pointer move
 *                              redraws and recounts only that rectangle (a 12 MP image took 440 ms a move when
 *                              every move redrew and recounted the whole mask)
 *   countPainted(m)            the painted pixels of a whole mask (after a load, clear, invert or undo)
 *   invertMask, clearMask      the whole mask at once (new arrays: the old one is the undo step)
 *   nextBrushSize(size, ±1)    the [ and ] keys
 *   maskFileName(name)         `<stem>_mask.png`, the upload's name (the server sanitises and numbers it)
 *   overlayPixels(m, ...)      the mask drawn as a translucent colour over the image
 *   overlayRect(m, w, rect, ...) the same for one rectangle (`putImageData` at the rectangle's corner)
 */

/** The brush's diameter limits, in image pixels. */
export const BRUSH_MIN = 1;
export const BRUSH_MAX = 512;

/** The starting mask of an RGBA image: its transparency (255 − alpha), all zeros for an opaque image. */
export function maskFromAlpha(rgba: Uint8ClampedArray | Uint8Array): Uint8Array {
  const mask = new Uint8Array(rgba.length / 4);
  for (let i = 0; i < mask.length; i++) mask[i] = 255 - rgba[i * 4 + 3];
  return mask;
}

/** A copy of `rgba` whose alpha is 255 − mask (painted = transparent); its RGB is untouched. */
export function withMaskAsAlpha(rgba: Uint8ClampedArray | Uint8Array, mask: Uint8Array): Uint8Array {
  if (rgba.length !== mask.length * 4) throw new Error(`the mask has ${mask.length} pixels, the image ${rgba.length / 4}`);
  const out = new Uint8Array(rgba);
  for (let i = 0; i < mask.length; i++) out[i * 4 + 3] = 255 - mask[i];
  return out;
}

/** The mask with every pixel's value reversed (kept ↔ changed). */
export function invertMask(mask: Uint8Array): Uint8Array {
  return mask.map((value) => 255 - value);
}

/** An empty mask (nothing to change) of `pixels` pixels. */
export function clearMask(pixels: number): Uint8Array {
  return new Uint8Array(pixels);
}

/** Whether any pixel of the mask is painted. */
export function maskIsEmpty(mask: Uint8Array): boolean {
  return mask.every((value) => value === 0);
}

/** A rectangle of image pixels: its top-left corner and its size (both in pixels). */
export interface PixelRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** What a stroke changed: the rectangle it may have touched (null: none of the image) and the change of the painted count. */
export interface StrokeChange {
  rect: PixelRect | null;
  paintedChange: number;
}

/**
 * Paint (value 255) or erase (value 0) a round brush of diameter `size` along the segment `from` → `to`
 * (image pixel coordinates, pixel centres at +0.5) into `mask` (width × height), in place: every pixel whose
 * centre lies within size/2 of the segment. A click is a segment of length 0 (a dot).
 */
export function paintStroke(
  mask: Uint8Array,
  width: number,
  height: number,
  from: [number, number],
  to: [number, number],
  size: number,
  value: 0 | 255,
): StrokeChange {
  const radius = Math.max(0.5, size / 2);
  const left = Math.max(0, Math.floor(Math.min(from[0], to[0]) - radius));
  const right = Math.min(width - 1, Math.ceil(Math.max(from[0], to[0]) + radius));
  const top = Math.max(0, Math.floor(Math.min(from[1], to[1]) - radius));
  const bottom = Math.min(height - 1, Math.ceil(Math.max(from[1], to[1]) + radius));
  if (left > right || top > bottom) return { rect: null, paintedChange: 0 };
  const [dx, dy] = [to[0] - from[0], to[1] - from[1]];
  const length2 = dx * dx + dy * dy;
  let paintedChange = 0;
  for (let y = top; y <= bottom; y++) {
    for (let x = left; x <= right; x++) {
      const [px, py] = [x + 0.5, y + 0.5];
      // the nearest point of the segment to the pixel's centre
      const t = length2 === 0 ? 0 : Math.max(0, Math.min(1, ((px - from[0]) * dx + (py - from[1]) * dy) / length2));
      const [nx, ny] = [from[0] + t * dx - px, from[1] + t * dy - py];
      if (nx * nx + ny * ny > radius * radius) continue;
      const index = y * width + x;
      paintedChange += (value > 0 ? 1 : 0) - (mask[index] > 0 ? 1 : 0);
      mask[index] = value;
    }
  }
  return { rect: { x: left, y: top, width: right - left + 1, height: bottom - top + 1 }, paintedChange };
}

/** How many pixels of the mask are painted (value > 0). */
export function countPainted(mask: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] > 0) count++;
  return count;
}

/** The brush size after a [ (−1) or ] (+1): about 20 % a step (at least 1 px), inside BRUSH_MIN..BRUSH_MAX. */
export function nextBrushSize(size: number, direction: 1 | -1): number {
  const step = Math.max(1, Math.round(size * 0.2));
  return Math.max(BRUSH_MIN, Math.min(BRUSH_MAX, size + direction * step));
}

/**
 * The upload name of a mask painted on input file `name`: its stem + `_mask.png` (`photo.jpg` →
 * `photo_mask.png`, `clipspace/a.png` → `a_mask.png`; `a_mask.png` stays `a_mask.png`, and the server adds a
 * number rather than overwrite it).
 */
export function maskFileName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? "";
  const stem = base.replace(/\.[^.]*$/, "") || "image";
  return stem.endsWith("_mask") ? `${stem}.png` : `${stem}_mask.png`;
}

/** RGBA pixels drawing the mask as `color` ([r, g, b]) at `opacity` (0..1) of each pixel's mask value. */
export function overlayPixels(mask: Uint8Array, color: [number, number, number], opacity: number): Uint8ClampedArray<ArrayBuffer> {
  return overlayRect(mask, mask.length, { x: 0, y: 0, width: mask.length, height: mask.length ? 1 : 0 }, color, opacity);
}

/**
 * The overlay of one rectangle of a mask `imageWidth` pixels wide: `rect.width × rect.height` RGBA pixels, row by
 * row, to `putImageData` at (rect.x, rect.y) — a brush stroke redraws only what it touched.
 */
export function overlayRect(
  mask: Uint8Array,
  imageWidth: number,
  rect: PixelRect,
  color: [number, number, number],
  opacity: number,
): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(rect.width * rect.height * 4);
  let o = 0;
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    for (let i = y * imageWidth + rect.x, end = i + rect.width; i < end; i++, o += 4) {
      out[o] = color[0];
      out[o + 1] = color[1];
      out[o + 2] = color[2];
      out[o + 3] = Math.round(mask[i] * opacity);
    }
  }
  return out;
}

/** `#rrggbb` → [r, g, b] (the colour input's value); red for anything else. */
export function hexColor(hex: string): [number, number, number] {
  const match = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  return match ? [parseInt(match[1], 16), parseInt(match[2], 16), parseInt(match[3], 16)] : [255, 0, 0];
}
