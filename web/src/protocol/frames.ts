/**
 * Frames of the websocket protocol (docs/protocol.md, version 1).
 *
 * Text frames are JSON objects with a `type`; binary frames are
 * `[uint32 big-endian header length][UTF-8 JSON header][payload]` — uploads
 * from the client, previews and output images from the server. These helpers
 * mirror `nodegraph/protocol.py: encode_frame / decode_frame`.
 */

export const PROTOCOL_VERSION = 1;
export const MAX_FRAME_HEADER = 64 * 1024;

export type FrameHeader = Record<string, unknown> & { type: string };

export class FrameError extends Error {}

/** A binary frame: 4-byte big-endian header length, JSON header, payload. */
export function encodeFrame(header: FrameHeader, payload: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const frame = new Uint8Array(4 + head.length + payload.length);
  new DataView(frame.buffer).setUint32(0, head.length, false);
  frame.set(head, 4);
  frame.set(payload, 4 + head.length);
  return frame;
}

/** Split a binary frame into its header and payload; FrameError when it is malformed. */
export function decodeFrame(frame: ArrayBuffer | Uint8Array): { header: FrameHeader; payload: Uint8Array } {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  if (bytes.length < 4) throw new FrameError("a binary frame starts with a 4-byte header length");
  const size = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, false);
  if (size > MAX_FRAME_HEADER || 4 + size > bytes.length) throw new FrameError(`binary frame header length ${size} is invalid`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(4, 4 + size)));
  } catch (error) {
    throw new FrameError(`binary frame header is not UTF-8 JSON: ${(error as Error).message}`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header) || typeof (header as FrameHeader).type !== "string") {
    throw new FrameError("a binary frame header is a JSON object with a type");
  }
  return { header: header as FrameHeader, payload: bytes.subarray(4 + size) };
}

/** The MIME type of an image payload given the header's `format`. */
export function imageMime(format: unknown): string {
  switch (String(format ?? "").toLowerCase()) {
    case "jpeg":
    case "jpg":
      return "image/jpeg";
    case "webp":
      return "image/webp";
    case "gif":
      return "image/gif";
    default:
      return "image/png";
  }
}
