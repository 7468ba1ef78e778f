/** Building PNG files in tests: chunks with their CRC, a 1×1 image, text chunks (png.test.ts, openedSeeds.test.ts). */
import { deflateSync } from "node:zlib";
import { pngChunk } from "../src/graph/png";

/** A PNG chunk (the editor's own writer, graph/png.ts). */
export const chunk = pngChunk;

export const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
};
export const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
export const utf8 = (s: string) => new TextEncoder().encode(s);

/** A valid 1×1 RGB PNG with the given extra chunks before IDAT. */
export function buildPng(...extra: Uint8Array[]): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, 1);
  view.setUint32(4, 1);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const idat = deflateSync(Buffer.from([0, 255, 0, 0])); // filter byte + one red pixel
  return concat(
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
    ...extra,
    chunk("IDAT", new Uint8Array(idat)),
    chunk("IEND", new Uint8Array()),
  );
}

export const tEXt = (keyword: string, value: string) => chunk("tEXt", concat(latin1(keyword), new Uint8Array([0]), latin1(value)));
