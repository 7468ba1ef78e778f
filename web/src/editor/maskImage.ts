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
 *   paintStroke(m, ...)        a round brush from one pointer position to the next (paint or erase)
 *   invertMask, clearMask      the whole mask at once (new arrays: the old one is the undo step)
 *   nextBrushSize(size, ±1)    the [ and ] keys
 *   maskFileName(name)         `<stem>_mask.png`, the upload's name (the server sanitises and numbers it)
 *   overlayPixels(m, ...)      the mask drawn as a translucent colour over the image
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
): void {
  const radius = Math.max(0.5, size / 2);
  const left = Math.max(0, Math.floor(Math.min(from[0], to[0]) - radius));
  const right = Math.min(width - 1, Math.ceil(Math.max(from[0], to[0]) + radius));
  const top = Math.max(0, Math.floor(Math.min(from[1], to[1]) - radius));
  const bottom = Math.min(height - 1, Math.ceil(Math.max(from[1], to[1]) + radius));
  const [dx, dy] = [to[0] - from[0], to[1] - from[1]];
  const length2 = dx * dx + dy * dy;
  for (let y = top; y <= bottom; y++) {
    for (let x = left; x <= right; x++) {
      const [px, py] = [x + 0.5, y + 0.5];
      // the nearest point of the segment to the pixel's centre
      const t = length2 === 0 ? 0 : Math.max(0, Math.min(1, ((px - from[0]) * dx + (py - from[1]) * dy) / length2));
      const [nx, ny] = [from[0] + t * dx - px, from[1] + t * dy - py];
      if (nx * nx + ny * ny <= radius * radius) mask[y * width + x] = value;
    }
  }
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
  const out = new Uint8ClampedArray(mask.length * 4);
  for (let i = 0; i < mask.length; i++) {
    out[i * 4] = color[0];
    out[i * 4 + 1] = color[1];
    out[i * 4 + 2] = color[2];
    out[i * 4 + 3] = Math.round(mask[i] * opacity);
  }
  return out;
}

/** `#rrggbb` → [r, g, b] (the colour input's value); red for anything else. */
export function hexColor(hex: string): [number, number, number] {
  const match = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  return match ? [parseInt(match[1], 16), parseInt(match[2], 16), parseInt(match[3], 16)] : [255, 0, 0];
}
