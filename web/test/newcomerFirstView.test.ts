/**
 * A new user's first hour (docs/editor.md): "Queued Text to image (tiny world)" stayed on screen after the run had
 * succeeded (the toast's six seconds outlasted a two-second run), and the palette opened on 20+ 3D and audio plugin
 * nodes with Load Checkpoint and K Sampler far down.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { paletteGroups } from "../src/schema/palette";
import { orderPaletteGroups } from "../src/schema/search";
import { QUEUED_TOAST_MIN_MS, type EditorApp } from "../src/state/app";
import { connectedApp, realSchemas, stopApp } from "./helpers";

let app: EditorApp | null = null;
afterEach(() => {
  if (app) stopApp(app);
  app = null;
  vi.useRealTimers();
});

const texts = (a: EditorApp) => a.toasts.get().map((t) => t.text);

describe("the Queued toast", () => {
  it("goes when its run starts (after a moment on screen), not six seconds later", async () => {
    vi.useFakeTimers();
    const connected = connectedApp();
    app = connected.app;
    const { socket } = connected;
    app.loadGraph({ format_version: 2, metadata: { title: "Quick" }, nodes: { a: { type: "Int", inputs: { value: 1 } } } });
    const done = app.run();
    socket.reply({ type: "submitted", run_id: "r1", position: 1, request_id: socket.messages().at(-1)!.request_id });
    await done;
    expect(texts(app)).toContain("Queued Quick (1 ahead of it)");
    vi.advanceTimersByTime(QUEUED_TOAST_MIN_MS + 100);
    expect(texts(app)).toContain("Queued Quick (1 ahead of it)"); // still waiting: still said
    socket.reply({ type: "run_started", run_id: "r1", nodes: ["a"], total: 1 });
    expect(texts(app)).not.toContain("Queued Quick (1 ahead of it)");
  });

  it("stays QUEUED_TOAST_MIN_MS when the run started at once, and goes when it ends", async () => {
    vi.useFakeTimers();
    const connected = connectedApp();
    app = connected.app;
    const { socket } = connected;
    app.loadGraph({ format_version: 2, metadata: { title: "Quick" }, nodes: { a: { type: "Int", inputs: { value: 1 } } } });
    const done = app.run();
    const request = socket.messages().at(-1)!.request_id;
    socket.reply({ type: "run_started", run_id: "r2", nodes: ["a"], total: 1 }); // before the reply is read
    socket.reply({ type: "submitted", run_id: "r2", position: 0, request_id: request });
    await done;
    expect(texts(app)).toContain("Queued Quick");
    socket.reply({ type: "run_finished", run_id: "r2", seconds: 0.1 });
    expect(texts(app)).toContain("Queued Quick"); // readable for a moment: Run did something
    vi.advanceTimersByTime(QUEUED_TOAST_MIN_MS);
    expect(texts(app)).not.toContain("Queued Quick");
  });

  it("leaves other toasts and other runs' toasts alone", async () => {
    const connected = connectedApp();
    app = connected.app;
    const { socket } = connected;
    app.loadGraph({ format_version: 2, metadata: { title: "Slow" }, nodes: { a: { type: "Int", inputs: { value: 1 } } } });
    const done = app.run();
    socket.reply({ type: "submitted", run_id: "r3", position: 0, request_id: socket.messages().at(-1)!.request_id });
    await done;
    app.toast("Uploaded a.png");
    socket.reply({ type: "run_finished", run_id: "someone-else", seconds: 1 });
    expect(texts(app)).toEqual(expect.arrayContaining(["Queued Slow", "Uploaded a.png"]));
  });
});

describe("the palette with no search", () => {
  it("lists the core categories first (loaders, conditioning, sampling, latent, image), then the rest", () => {
    const nodes = { ...realSchemas().nodes };
    const base = nodes.Int;
    for (const [type, category] of [["AudioGain", "audio"], ["TextToPoints", "3d"], ["LoadMesh", "3d/files"], ["TrainTextToPoints", "3d/training"]]) {
      nodes[type] = { ...base, type, display_name: type, category, plugin: category.split("/")[0], aliases: [], qualified_type: undefined };
    }
    const groups = orderPaletteGroups(paletteGroups(nodes, ""));
    const categories = groups.map((g) => g.category);
    const types = groups.flatMap((g) => g.nodes.map((n) => n.type));
    expect(categories[0]).toBe("loaders");
    const core = ["loaders", "conditioning", "sampling", "latent", "image"].map((c) => categories.indexOf(c));
    expect(core.every((at) => at >= 0)).toBe(true);
    expect([...core].sort((a, b) => a - b)).toEqual(core);
    expect(types.indexOf("LoadCheckpoint")).toBeLessThan(10);
    expect(types.indexOf("KSampler")).toBeLessThan(types.findIndex((t) => /Points|Mesh|Audio/.test(t)));
    // plugins' categories (3D, audio) come after every core one
    const firstPlugin = categories.findIndex((c) => /^(3d|audio)/i.test(c));
    expect(firstPlugin).toBeGreaterThan(Math.max(...core));
    // nothing is lost or doubled
    expect(new Set(types).size).toBe(paletteGroups(nodes, "").flatMap((g) => g.nodes).length);
    expect(categories.at(-1)).toMatch(/training/); // minutes to hours of work: last
  });
});
