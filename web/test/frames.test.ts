import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, FrameError, imageMime } from "../src/protocol/frames";

describe("binary frames", () => {
  it("round-trips header and payload", () => {
    const payload = new Uint8Array([0, 1, 2, 255]);
    const frame = encodeFrame({ type: "upload", name: "ünïcode.png", kind: "image" }, payload);
    const { header, payload: back } = decodeFrame(frame);
    expect(header).toEqual({ type: "upload", name: "ünïcode.png", kind: "image" });
    expect([...back]).toEqual([0, 1, 2, 255]);
  });

  it("uses a 4-byte big-endian header length, as protocol.py does", () => {
    const frame = encodeFrame({ type: "x" }, new Uint8Array());
    const head = new TextEncoder().encode('{"type":"x"}');
    expect([...frame.subarray(0, 4)]).toEqual([0, 0, 0, head.length]);
    expect(new TextDecoder().decode(frame.subarray(4))).toBe('{"type":"x"}');
  });

  it("decodes a frame built like the server builds a preview", () => {
    const head = new TextEncoder().encode(JSON.stringify({ type: "preview", run_id: "r", node_id: "k", format: "jpeg", step: 3 }));
    const frame = new Uint8Array(4 + head.length + 2);
    new DataView(frame.buffer).setUint32(0, head.length);
    frame.set(head, 4);
    frame.set([0xff, 0xd8], 4 + head.length);
    const { header, payload } = decodeFrame(frame.buffer);
    expect(header.node_id).toBe("k");
    expect([...payload]).toEqual([0xff, 0xd8]);
    expect(imageMime(header.format)).toBe("image/jpeg");
  });

  it("refuses malformed frames", () => {
    expect(() => decodeFrame(new Uint8Array([0, 0]))).toThrow(FrameError);
    expect(() => decodeFrame(new Uint8Array([0, 0, 0, 9, 1]))).toThrow(FrameError);
    const notObject = encodeFrame({ type: "x" }, new Uint8Array());
    notObject.set(new TextEncoder().encode("[1,2,3,4,5,6"), 4);
    expect(() => decodeFrame(notObject)).toThrow(FrameError);
  });
});
