/**
 * Decoding a PNG's pixels in the page, for the mask editor (editor/MaskEditor.tsx): straight (not premultiplied)
 * 8-bit RGBA, so the colour under a fully transparent pixel survives. A canvas premultiplies: it reads such a
 * pixel as 0,0,0, and saving a re-edited mask then blackened what the previous mask had hidden — the RGB that
 * LoadImage keeps and an inpainting run with denoise < 1 starts from.
 *
 *   decodePng(bytes)        IHDR → (PLTE, tRNS) → IDATs inflated → rows unfiltered → RGBA, as PIL's
 *                           `Image.open(...).convert("RGBA")` reads them (no gamma or colour profile applied:
 *                           LoadImage applies none either)
 *   unfilterRows(...)       the five row filters undone (ISO 15948 §9.2), the inverse of png.ts `filterRows`
 *   UnsupportedPngError     a PNG this decoder leaves to the browser (interlaced, or with an EXIF orientation
 *                           chunk): the caller reads it through a canvas, with that path's known limit
 *
 * Colour types 0 (grey), 2 (RGB), 3 (palette), 4 (grey + alpha), 6 (RGBA); bit depths 1/2/4/8 (grey, palette)
 * and 8/16 (the others; 16 bits keep the high byte); tRNS for types 0, 2 and 3.
 */
import { FILTER_AVERAGE, FILTER_NONE, FILTER_PAETH, FILTER_SUB, FILTER_UP, inflate, isPng, paethPredictor, PngError } from "./png";

/** A PNG this decoder does not read (the reason says which feature); the browser's decoder can. */
export class UnsupportedPngError extends PngError {}

export interface DecodedImage {
  width: number;
  height: number;
  /** width × height pixels, row by row, 4 bytes each (R, G, B, straight alpha). */
  rgba: Uint8ClampedArray<ArrayBuffer>;
}

interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colourType: number;
  interlace: number;
}

/** Samples a pixel of each colour type has. */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** The bit depths each colour type allows (ISO 15948 §11.2.2). */
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
/** Above it a decoded image would not fit in the page's memory (a canvas limit too: 16384² in Chromium). */
const MAX_PIXELS = 16384 * 16384;

/** The chunks of a PNG file in order, as (type, data) pairs; PngError when one runs past the end. */
function pngChunks(bytes: Uint8Array): { type: string; data: Uint8Array }[] {
  if (!isPng(bytes)) throw new PngError("not a PNG file (the signature does not match)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: { type: string; data: Uint8Array }[] = [];
  for (let offset = 8; offset + 12 <= bytes.length; ) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    const end = offset + 8 + length;
    if (end + 4 > bytes.length) throw new PngError(`truncated PNG: chunk ${type} runs past the end of the file`);
    chunks.push({ type, data: bytes.subarray(offset + 8, end) });
    if (type === "IEND") break;
    offset = end + 4;
  }
  return chunks;
}

function readHeader(data: Uint8Array | undefined): PngHeader {
  if (!data || data.length < 13) throw new PngError("the PNG has no valid IHDR chunk");
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const header = { width: view.getUint32(0), height: view.getUint32(4), bitDepth: data[8], colourType: data[9], interlace: data[12] };
  if (!(header.colourType in CHANNELS)) throw new PngError(`the PNG's colour type ${header.colourType} is not one of 0, 2, 3, 4, 6`);
  if (!DEPTHS[header.colourType].includes(header.bitDepth)) {
    throw new PngError(`bit depth ${header.bitDepth} is not allowed for colour type ${header.colourType}`);
  }
  if (!header.width || !header.height || header.width * header.height > MAX_PIXELS) {
    throw new PngError(`the PNG is ${header.width}×${header.height} pixels: empty, or too large to edit in the page`);
  }
  return header;
}

/**
 * Undo the row filters of `height` scanlines (each a filter type byte, then `rowBytes` bytes; `bpp` bytes a
 * pixel, at least 1) into the raw rows, `height × rowBytes` bytes.
 */
export function unfilterRows(scanlines: Uint8Array, height: number, rowBytes: number, bpp: number): Uint8Array {
  if (scanlines.length < height * (rowBytes + 1)) {
    throw new PngError(`the image data is ${scanlines.length} bytes, short of the ${height * (rowBytes + 1)} its size needs`);
  }
  const out = new Uint8Array(height * rowBytes);
  const zeros = new Uint8Array(rowBytes);
  for (let y = 0; y < height; y++) {
    const type = scanlines[y * (rowBytes + 1)];
    const line = scanlines.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
    const row = out.subarray(y * rowBytes, (y + 1) * rowBytes);
    const prior = y ? out.subarray((y - 1) * rowBytes, y * rowBytes) : zeros;
    switch (type) {
      case FILTER_NONE:
        row.set(line);
        break;
      case FILTER_SUB:
        for (let i = 0; i < rowBytes; i++) row[i] = line[i] + (i >= bpp ? row[i - bpp] : 0);
        break;
      case FILTER_UP:
        for (let i = 0; i < rowBytes; i++) row[i] = line[i] + prior[i];
        break;
      case FILTER_AVERAGE:
        for (let i = 0; i < rowBytes; i++) row[i] = line[i] + (((i >= bpp ? row[i - bpp] : 0) + prior[i]) >> 1);
        break;
      case FILTER_PAETH:
        for (let i = 0; i < rowBytes; i++) {
          row[i] = line[i] + (i >= bpp ? paethPredictor(row[i - bpp], prior[i], prior[i - bpp]) : prior[i]);
        }
        break;
      default:
        throw new PngError(`row ${y} has filter type ${type}; PNG defines 0 to 4`);
    }
  }
  return out;
}

/** Sample `index` of a row at `bitDepth` bits a sample (16 bits: the full value). */
function sample(row: Uint8Array, index: number, bitDepth: number): number {
  if (bitDepth === 8) return row[index];
  if (bitDepth === 16) return (row[index * 2] << 8) | row[index * 2 + 1];
  const perByte = 8 / bitDepth;
  const shift = 8 - bitDepth * ((index % perByte) + 1);
  return (row[Math.floor(index / perByte)] >> shift) & ((1 << bitDepth) - 1);
}

/** A sample at `bitDepth` bits scaled to 8 (16 bits: the high byte, as PIL does). */
function to8(value: number, bitDepth: number): number {
  if (bitDepth === 8) return value;
  if (bitDepth === 16) return value >> 8;
  return Math.round((value * 255) / ((1 << bitDepth) - 1));
}

/** The raw rows of an image as RGBA, with the palette (PLTE) and the transparency (tRNS) applied. */
function toRgba(raw: Uint8Array, header: PngHeader, palette: Uint8Array | undefined, transparency: Uint8Array | undefined): Uint8ClampedArray<ArrayBuffer> {
  const { width, height, bitDepth, colourType } = header;
  const channels = CHANNELS[colourType];
  const rowBytes = Math.ceil((width * channels * bitDepth) / 8);
  const out = new Uint8ClampedArray(width * height * 4);
  const trns = transparency && transparency.length >= 2 ? new DataView(transparency.buffer, transparency.byteOffset, transparency.byteLength) : null;
  const keyGrey = colourType === 0 && trns ? trns.getUint16(0) : -1;
  const keyRgb = colourType === 2 && trns && transparency!.length >= 6 ? [trns.getUint16(0), trns.getUint16(2), trns.getUint16(4)] : null;
  if (colourType === 3 && !palette) throw new PngError("a palette PNG (colour type 3) without a PLTE chunk");
  for (let y = 0; y < height; y++) {
    const row = raw.subarray(y * rowBytes, (y + 1) * rowBytes);
    for (let x = 0, o = y * width * 4; x < width; x++, o += 4) {
      if (colourType === 3) {
        const index = sample(row, x, bitDepth);
        if (index * 3 + 2 >= palette!.length) throw new PngError(`pixel (${x}, ${y}) uses palette entry ${index}, past the palette's end`);
        out[o] = palette![index * 3];
        out[o + 1] = palette![index * 3 + 1];
        out[o + 2] = palette![index * 3 + 2];
        out[o + 3] = transparency && index < transparency.length ? transparency[index] : 255;
      } else if (colourType === 0 || colourType === 4) {
        const grey = sample(row, x * (channels), bitDepth);
        out[o] = out[o + 1] = out[o + 2] = to8(grey, bitDepth);
        out[o + 3] = colourType === 4 ? to8(sample(row, x * 2 + 1, bitDepth), bitDepth) : grey === keyGrey ? 0 : 255;
      } else {
        const [r, g, b] = [sample(row, x * channels, bitDepth), sample(row, x * channels + 1, bitDepth), sample(row, x * channels + 2, bitDepth)];
        out[o] = to8(r, bitDepth);
        out[o + 1] = to8(g, bitDepth);
        out[o + 2] = to8(b, bitDepth);
        const keyed = keyRgb !== null && r === keyRgb[0] && g === keyRgb[1] && b === keyRgb[2];
        out[o + 3] = colourType === 6 ? to8(sample(row, x * 4 + 3, bitDepth), bitDepth) : keyed ? 0 : 255;
      }
    }
  }
  return out;
}

/**
 * The pixels of a PNG file as straight 8-bit RGBA. PngError for a broken file; UnsupportedPngError for an
 * interlaced one or one with an eXIf chunk (it may rotate the image: the browser's decoder handles both).
 */
export async function decodePng(bytes: Uint8Array): Promise<DecodedImage> {
  const chunks = pngChunks(bytes);
  const header = readHeader(chunks.find((c) => c.type === "IHDR")?.data);
  if (header.interlace !== 0) throw new UnsupportedPngError("the PNG is interlaced (Adam7)");
  if (chunks.some((c) => c.type === "eXIf")) throw new UnsupportedPngError("the PNG carries EXIF data, which may rotate it");
  const idat = chunks.filter((c) => c.type === "IDAT");
  if (!idat.length) throw new PngError("the PNG has no image data (IDAT chunk)");
  const joined = new Uint8Array(idat.reduce((sum, c) => sum + c.data.length, 0));
  idat.reduce((offset, c) => (joined.set(c.data, offset), offset + c.data.length), 0);
  let scanlines: Uint8Array;
  try {
    scanlines = await inflate(joined);
  } catch (error) {
    throw new PngError(`the PNG's image data does not decompress: ${(error as Error).message}`);
  }
  const channels = CHANNELS[header.colourType];
  const rowBytes = Math.ceil((header.width * channels * header.bitDepth) / 8);
  const bpp = Math.max(1, (channels * header.bitDepth) / 8);
  const raw = unfilterRows(scanlines, header.height, rowBytes, bpp);
  const palette = chunks.find((c) => c.type === "PLTE")?.data;
  const transparency = chunks.find((c) => c.type === "tRNS")?.data;
  return { width: header.width, height: header.height, rgba: toRgba(raw, header, palette, transparency) };
}
