/**
 * Reading text chunks from PNG files, to load the graph that `SaveImage`
 * embeds (keyword `nodegraph`) when an image is dropped on the editor.
 *
 * PNG layout (RFC 2083 / ISO 15948): an 8-byte signature, then chunks of
 * `[uint32 BE length][4-byte type][data][uint32 CRC]`. Text chunks:
 *   tEXt  keyword \0 Latin-1 text
 *   zTXt  keyword \0 method(0) zlib(Latin-1 text)
 *   iTXt  keyword \0 compressed-flag method language \0 translated-keyword \0 UTF-8 text
 *         (zlib-compressed when the flag is 1)
 * Decompression uses the platform's DecompressionStream("deflate") (zlib format).
 */

export const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
export const GRAPH_KEYWORD = "nodegraph";

export class PngError extends Error {}

export interface TextChunk {
  keyword: string;
  text: string;
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });

function nullAt(data: Uint8Array, from: number): number {
  const index = data.indexOf(0, from);
  if (index < 0) throw new PngError("malformed text chunk: a separator is missing");
  return index;
}

/** Every tEXt, zTXt and iTXt chunk of a PNG file, in file order. */
export async function readPngTextChunks(bytes: Uint8Array): Promise<TextChunk[]> {
  if (!isPng(bytes)) throw new PngError("not a PNG file (the signature does not match)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: TextChunk[] = [];
  let offset = 8;
  while (offset + 12 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    const start = offset + 8;
    const end = start + length;
    if (end + 4 > bytes.length) throw new PngError(`truncated PNG: chunk ${type} runs past the end of the file`);
    const data = bytes.subarray(start, end);
    if (type === "tEXt") {
      const sep = nullAt(data, 0);
      chunks.push({ keyword: latin1.decode(data.subarray(0, sep)), text: latin1.decode(data.subarray(sep + 1)) });
    } else if (type === "zTXt") {
      const sep = nullAt(data, 0);
      const text = latin1.decode(await inflate(data.subarray(sep + 2)));
      chunks.push({ keyword: latin1.decode(data.subarray(0, sep)), text });
    } else if (type === "iTXt") {
      const sep = nullAt(data, 0);
      const compressed = data[sep + 1] === 1;
      const languageEnd = nullAt(data, sep + 3);
      const translatedEnd = nullAt(data, languageEnd + 1);
      const body = data.subarray(translatedEnd + 1);
      const text = utf8.decode(compressed ? await inflate(body) : body);
      chunks.push({ keyword: latin1.decode(data.subarray(0, sep)), text });
    }
    if (type === "IEND") break;
    offset = end + 4;
  }
  return chunks;
}

/** The graph JSON embedded in a PNG (keyword `nodegraph`); PngError when there is none. */
export async function graphFromPng(bytes: Uint8Array): Promise<unknown> {
  const chunk = (await readPngTextChunks(bytes)).find((c) => c.keyword === GRAPH_KEYWORD);
  if (!chunk) throw new PngError(`this PNG has no "${GRAPH_KEYWORD}" text chunk: it was not saved by nodegraph's SaveImage`);
  try {
    return JSON.parse(chunk.text);
  } catch (error) {
    throw new PngError(`the PNG's "${GRAPH_KEYWORD}" chunk is not JSON: ${(error as Error).message}`);
  }
}
