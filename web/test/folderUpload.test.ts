/**
 * A training dataset from the editor: ImageFolderDataset's `folder` has "Upload folder…" (a directory picker), whose
 * files go into the input folder under the chosen folder's name, subfolders kept (kohya's `10_name`), images as kind
 * image and .txt / .caption as kind caption (docs/protocol.md `upload`: `subfolder`, `caption`). Before, only one file
 * at a time went, into the input folder itself, and no caption at all. The browser side: tests/web/test_editor_folder_upload_e2e.py.
 */
import { describe, expect, it, vi } from "vitest";
import { folderUploadPlan, folderUploadSummary, MAX_FOLDER_FILES } from "../src/editor/InputWidget";
import { NodegraphClient, type SocketLike } from "../src/protocol/client";
import { decodeFrame } from "../src/protocol/frames";

/** A File as a directory picker gives it: `webkitRelativePath` from the chosen folder's name down. */
const picked = (path: string) => {
  const file = new File(["x"], path.split("/").at(-1)!);
  Object.defineProperty(file, "webkitRelativePath", { value: path });
  return file;
};

describe("a folder upload", () => {
  it("sends images and captions into the chosen folder's name and its subfolders, skipping and counting the rest", () => {
    const plan = folderUploadPlan(["zorb/10_zorb/a.png", "zorb/10_zorb/a.txt", "zorb/b.JPG", "zorb/b.caption", "zorb/notes.md",
      "zorb/.DS_Store", "zorb/.git/x.png", "zorb/1/2/3/4/deep.png"].map(picked));
    expect(plan.folder).toBe("zorb");
    expect(plan.uploads.map((u) => [u.subfolder, u.file.name, u.kind])).toEqual([
      ["zorb/10_zorb", "a.png", "image"], ["zorb/10_zorb", "a.txt", "caption"], ["zorb", "b.JPG", "image"], ["zorb", "b.caption", "caption"]]);
    expect(plan.skipped).toBe(4);
    expect(folderUploadSummary(plan)).toBe("Uploaded 2 images and 2 captions into zorb; skipped 4 other files (not an image or a .txt / .caption)");
    expect(folderUploadSummary(folderUploadPlan([picked("d/a.png")]))).toBe("Uploaded 1 image and 0 captions into d");
  });

  it("refuses a file that is no folder's, and more than MAX_FOLDER_FILES files, saying what to do", () => {
    expect(() => folderUploadPlan([new File(["x"], "a.png")])).toThrow(/choose a folder/);
    const many = Array.from({ length: MAX_FOLDER_FILES + 1 }, (_, i) => picked(`big/${i}.png`));
    expect(() => folderUploadPlan(many)).toThrow("big has 2,001 images and captions; an upload takes at most 2,000: upload it in parts");
    expect(folderUploadPlan(many.slice(1)).uploads).toHaveLength(MAX_FOLDER_FILES);
  });

  it("names the subfolder in the upload frame's header, and leaves it out for the input folder itself", () => {
    vi.useFakeTimers();
    const sent: (string | Uint8Array)[] = [];
    const socket: SocketLike = {
      binaryType: "blob", readyState: 0, onopen: null, onclose: null, onerror: null, onmessage: null,
      send: (data: string | ArrayBufferLike | Uint8Array) => void sent.push(data as string | Uint8Array), close: () => undefined,
    } as unknown as SocketLike;
    const client = new NodegraphClient(() => socket, { onMessage: () => undefined, onBinary: () => undefined }, "tok");
    client.connect();
    (socket as { readyState: number }).readyState = 1;
    socket.onopen?.({});
    socket.onmessage?.({ data: JSON.stringify({ type: "welcome", protocol_version: 1, server_version: "0", client_id: "c1", schema_hash: "h" }) });
    void client.upload("a.txt", new Uint8Array([65]), "caption", "zorb/10_zorb").catch(() => undefined);
    void client.upload("b.png", new Uint8Array([1])).catch(() => undefined);
    const headers = sent.filter((s): s is Uint8Array => typeof s !== "string").map((frame) => decodeFrame(frame).header);
    expect(headers[0]).toMatchObject({ type: "upload", name: "a.txt", kind: "caption", subfolder: "zorb/10_zorb" });
    expect(headers[1]).toMatchObject({ type: "upload", name: "b.png", kind: "image" });
    expect(headers[1]).not.toHaveProperty("subfolder");
    client.close();
    vi.useRealTimers();
  });
});
