import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  cleanStoredFiles,
  cleanUsage,
  fileName,
  formatBytes,
  formatMiB,
  hasThumbnail,
  initialStorageState,
  isStorageQuota,
  listFilesMessage,
  reduceStorage,
  thumbnailUrl,
  usageFraction,
  usageText,
  type StorageAction,
  type StorageState,
} from "../src/run/storage";
import { initialSessionState, reduceSession } from "../src/run/sessionState";
import type { EditorApp } from "../src/state/app";
import { connectedApp, stopApp, type FakeSocket } from "./helpers";

const MiB = 2 ** 20;

function file(id: string, bytes = 1000, modified = 1_700_000_000, mime = "image/png") {
  return { file_id: id, bytes, modified, mime };
}

function run(state: StorageState, ...actions: StorageAction[]): StorageState {
  return actions.reduce(reduceStorage, state);
}

describe("storage words", () => {
  it("formats sizes in binary units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(12.34 * MiB)).toBe("12.3 MiB");
    expect(formatBytes(300 * MiB)).toBe("300 MiB");
    expect(formatBytes(1.5 * 1024 * MiB)).toBe("1.50 GiB");
    expect(formatBytes(Number.NaN)).toBe("? B");
  });

  it("formats the usage line's MiB", () => {
    expect(formatMiB(0)).toBe("0 MiB");
    expect(formatMiB(100)).toBe("<0.01 MiB");
    expect(formatMiB(MiB / 4)).toBe("0.25 MiB");
    expect(formatMiB(12.34 * MiB)).toBe("12.3 MiB");
    expect(formatMiB(2048 * MiB)).toBe("2048 MiB");
    expect(formatMiB(null)).toBe("? MiB");
  });

  it("says what is used of the limit, or the total listed without one", () => {
    const usage = { uploads: MiB, outputs: 2 * MiB, runs: MiB / 2, maxBytes: 10 * MiB };
    expect(usageText(usage, [], 0)).toBe("3.5 MiB of 10.0 MiB used (uploads 1.0 MiB, outputs 2.0 MiB, runs 0.50 MiB)");
    expect(usageFraction(usage)).toBeCloseTo(0.35);
    expect(usageFraction({ ...usage, runs: 20 * MiB })).toBe(1);
    expect(usageFraction(null)).toBeNull();
    const uncounted = { ...usage, outputs: null };
    expect(usageText(uncounted, [], 0)).toContain("outputs too many files to count");
    expect(usageFraction(uncounted)).toBeNull();

    const files = cleanStoredFiles([file("output/a.png", MiB), file("input/b.png", MiB)]);
    expect(usageText(null, files, 2)).toBe("2.0 MiB in the 2 files listed");
    expect(usageText(null, files.slice(0, 1), 5)).toBe("1.0 MiB in the 1 file listed (of 5)");
  });

  it("names files, thumbnails images, and tells a full storage from other quotas", () => {
    expect(fileName("output/run 1/a.png")).toBe("run 1/a.png");
    expect(fileName("input/b.png")).toBe("b.png");
    expect(fileName("other")).toBe("other");
    expect(thumbnailUrl("files/output/a.png")).toBe("files/output/a.png?size=128");
    expect(thumbnailUrl("files/output/a.png?token=t")).toBe("files/output/a.png?token=t&size=128");
    expect(hasThumbnail(cleanStoredFiles([file("output/a.png")])[0])).toBe(true);
    expect(hasThumbnail(cleanStoredFiles([file("output/a.txt", 1, 1, "text/plain")])[0])).toBe(false);
    expect(isStorageQuota("quota_exceeded", { limit: "max_bytes" })).toBe(true);
    expect(isStorageQuota("quota_exceeded", { limit: "max_queued" })).toBe(false);
    expect(isStorageQuota("quota_exceeded", undefined)).toBe(false);
    expect(isStorageQuota("not_found", { limit: "max_bytes" })).toBe(false);
  });

  it("asks for a folder's page", () => {
    expect(listFilesMessage("all", 0)).toEqual({ type: "list_files", offset: 0, limit: 100 });
    expect(listFilesMessage("input", 100, 5000)).toEqual({ type: "list_files", offset: 100, limit: 1000, folder: "input" });
  });

  it("checks what the server sent", () => {
    expect(cleanStoredFiles([file("output/a.png"), { file_id: 3 }, null, { file_id: "x", bytes: "big", modified: null, mime: 4 }])).toEqual([
      { fileId: "output/a.png", bytes: 1000, modified: 1_700_000_000, mime: "image/png" },
      { fileId: "x", bytes: 0, modified: 0, mime: "4" },
    ]);
    expect(cleanStoredFiles("nope")).toEqual([]);
    expect(cleanUsage(null)).toBeNull();
    expect(cleanUsage({ uploads: 1, outputs: 2, runs: 3, max_bytes: null })).toBeNull();
    expect(cleanUsage({ uploads: 1, outputs: null, runs: 3, max_bytes: 10 })).toEqual({ uploads: 1, outputs: null, runs: 3, maxBytes: 10 });
  });
});

describe("storage state", () => {
  it("takes pages, appends more, and drops the answers to older requests", () => {
    let state = run(initialStorageState, { type: "open", open: true }, { type: "request", offset: 0 });
    expect(state.loading).toBe(true);
    const first = state.seq;
    state = run(state, { type: "files", seq: first, reply: { files: [file("output/c.png"), file("output/b.png")], total: 3, offset: 0, complete: true, usage: null } });
    expect(state.files.map((f) => f.fileId)).toEqual(["output/c.png", "output/b.png"]);
    expect(state.total).toBe(3);
    expect(state.loading).toBe(false);

    state = run(state, { type: "request", offset: 2 });
    // a newer file moved b.png onto the next page: it is not listed twice
    state = run(state, { type: "files", seq: state.seq, reply: { files: [file("output/b.png"), file("output/a.png")], total: 4, offset: 2, usage: null } });
    expect(state.files.map((f) => f.fileId)).toEqual(["output/c.png", "output/b.png", "output/a.png"]);
    expect(state.total).toBe(4);

    // the filter changes while a page is on its way: that page is dropped
    const stale = state.seq;
    state = run(state, { type: "folder", folder: "input" }, { type: "request", offset: 0 });
    expect(state.files).toEqual([]);
    expect(state.total).toBeNull();
    state = run(state, { type: "files", seq: stale, reply: { files: [file("output/z.png")], total: 1, offset: 0 } });
    expect(state.files).toEqual([]);
    state = run(state, { type: "failed", seq: stale, message: "old" });
    expect(state.error).toBeNull();
    state = run(state, { type: "failed", seq: state.seq, message: "Could not list your files — Disconnected" });
    expect(state).toMatchObject({ loading: false, error: "Could not list your files — Disconnected" });
  });

  it("keeps the usage of each reply", () => {
    let state = run(initialStorageState, { type: "request", offset: 0 });
    state = run(state, { type: "files", seq: state.seq, reply: { files: [], total: 0, offset: 0, usage: { uploads: 0, outputs: 5, runs: 1, max_bytes: 100 } } });
    expect(state.usage).toEqual({ uploads: 0, outputs: 5, runs: 1, maxBytes: 100 });
    expect(state.complete).toBe(true);
  });

  it("marks a delete on its way, drops the row when done, shows a refusal on the row", () => {
    let state = run(initialStorageState, { type: "request", offset: 0 });
    state = run(state, { type: "files", seq: state.seq, reply: { files: [file("output/a.png"), file("output/b.png")], total: 2, offset: 0 } });
    state = run(state, { type: "deleting", fileId: "output/a.png" });
    expect(state.deleting).toEqual(["output/a.png"]);
    state = run(state, { type: "deleted", fileId: "output/a.png" });
    expect(state.files.map((f) => f.fileId)).toEqual(["output/b.png"]);
    expect(state.total).toBe(1);
    expect(state.deleting).toEqual([]);
    expect(run(state, { type: "deleted", fileId: "output/a.png" })).toBe(state); // its file_deleted after the reply

    state = run(state, { type: "deleting", fileId: "output/b.png" }, { type: "delete_failed", fileId: "output/b.png", message: "Could not delete it — Not found" });
    expect(state.deleting).toEqual([]);
    expect(state.deleteErrors).toEqual({ "output/b.png": "Could not delete it — Not found" });
    expect(state.files).toHaveLength(1);
    state = run(state, { type: "deleting", fileId: "output/b.png" });
    expect(state.deleteErrors).toEqual({});
  });

  it("drops a deleted file from the session's gallery too", () => {
    const context = { fileUrl: (id: string) => `files/${id}` };
    let session = reduceSession(initialSessionState, { type: "storage", action: { type: "request", offset: 0 } }, context);
    session = reduceSession(session, { type: "storage", action: { type: "files", seq: session.storage.seq, reply: { files: [file("output/a.png")], total: 1, offset: 0 } } }, context);
    session = reduceSession(session, { type: "file", file: { runId: "r", nodeId: "n", fileId: "output/a.png", url: "files/output/a.png", index: 0, kind: "image", mime: "image/png" } }, context);
    expect(session.gallery).toHaveLength(1);
    session = reduceSession(session, { type: "server", message: { type: "file_deleted", file_id: "output/a.png" } }, context);
    expect(session.gallery).toEqual([]);
    expect(session.storage.files).toEqual([]);
  });
});

describe("the app and the Storage panel", () => {
  let app: EditorApp;
  let socket: FakeSocket;

  beforeEach(() => {
    ({ app, socket } = connectedApp());
  });
  afterEach(() => stopApp(app));

  const last = (type: string) => socket.messages().filter((m) => m.type === type).at(-1);
  const answer = (type: string, reply: Record<string, unknown>) => socket.reply({ ...reply, request_id: last(type)!.request_id });
  const flush = async () => {
    for (let i = 0; i < 5; i += 1) await Promise.resolve();
  };

  it("lists the files when opened, pages on, filters, and deletes after the question", async () => {
    expect(last("list_files")).toBeUndefined();
    app.showStorage(true);
    expect(last("list_files")).toMatchObject({ type: "list_files", offset: 0, limit: 100 });
    const usage = { uploads: 0, outputs: 3000, runs: 100, max_bytes: 10 * MiB };
    answer("list_files", { type: "files", files: [file("output/b.png"), file("output/a.png")], total: 3, complete: true, offset: 0, usage });
    await flush();
    expect(app.session.get().storage).toMatchObject({ open: true, total: 3, usage: { maxBytes: 10 * MiB } });

    app.moreStorage();
    expect(last("list_files")).toMatchObject({ offset: 2, limit: 100 });
    answer("list_files", { type: "files", files: [file("input/c.png")], total: 3, complete: true, offset: 2, usage });
    await flush();
    expect(app.session.get().storage.files.map((f) => f.fileId)).toEqual(["output/b.png", "output/a.png", "input/c.png"]);

    const deleted = app.deleteFile("output/a.png");
    expect(last("delete_file")).toMatchObject({ file_id: "output/a.png" });
    expect(app.session.get().storage.deleting).toEqual(["output/a.png"]);
    answer("delete_file", { type: "file_deleted", file_id: "output/a.png" });
    expect(await deleted).toBe(true);
    expect(app.session.get().storage.files.map((f) => f.fileId)).toEqual(["output/b.png", "input/c.png"]);
    // then the list and the usage again, as many as were shown
    expect(last("list_files")).toMatchObject({ offset: 0, limit: 100 });

    app.setStorageFolder("output");
    expect(last("list_files")).toMatchObject({ offset: 0, folder: "output" });
    expect(app.session.get().storage.files).toEqual([]);
  });

  it("shows a refused delete on its row", async () => {
    app.showStorage(true);
    answer("list_files", { type: "files", files: [file("output/a.png")], total: 1, complete: true, offset: 0, usage: null });
    await flush();
    const deleted = app.deleteFile("output/a.png");
    answer("delete_file", { type: "error", code: "not_found", message: "no file 'output/a.png'" });
    expect(await deleted).toBe(false);
    const storage = app.session.get().storage;
    expect(storage.files).toHaveLength(1);
    expect(storage.deleteErrors["output/a.png"]).toBe("Could not delete it — Not found: no file 'output/a.png'");
  });

  it("offers Open storage on a full storage's error, and lists again while open", async () => {
    const full = "user 'alice' stores 1.0 MiB of uploads, 9.0 MiB of output files and 0.0 MiB of runs; the limit is 10.0 MiB. Free space: ... (list_files, then delete_file)";
    const running = app.run();
    answer("submit", { type: "error", code: "quota_exceeded", message: full, details: { limit: "max_bytes" } });
    await running;
    const toast = app.toasts.get().at(-1)!;
    expect(toast.kind).toBe("error");
    expect(toast.text).toContain("Quota exceeded");
    expect(toast.action?.label).toBe("Open storage");
    const asked = socket.messages().filter((m) => m.type === "list_files").length;
    toast.action!.run();
    expect(app.session.get().storage.open).toBe(true);
    expect(socket.messages().filter((m) => m.type === "list_files")).toHaveLength(asked + 1);

    // another full-storage error while the panel is open: the list and usage are read again
    socket.reply({ type: "error", code: "quota_exceeded", message: full, details: { limit: "max_bytes" } });
    expect(socket.messages().filter((m) => m.type === "list_files")).toHaveLength(asked + 2);
    expect(app.toasts.get().at(-1)!.action?.label).toBe("Open storage");

    // the run limit is not about storage: no button
    const again = app.run();
    answer("submit", { type: "error", code: "quota_exceeded", details: { limit: "max_queued" },
      message: "user 'alice' already has 2 run(s) queued or running (the limit); wait" });
    await again;
    expect(app.toasts.get().at(-1)!.action).toBeUndefined();
  });
});
