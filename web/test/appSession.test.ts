import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { clipFromText, clipToText, CLIP_VERSION } from "../src/graph/clipboard";
import { parseJson } from "../src/graph/exactJson";
import { shortcutInField } from "../src/editor/shortcuts";
import { withoutRunIds } from "../src/protocol/errors";
import { AUTOSAVE_KEY, CLIPBOARD_KEY, readAutosave, type StorageLike } from "../src/state/autosave";
import { EditorApp, firstOpenTemplate } from "../src/state/app";
import { FakeSocket, welcome } from "./helpers";

/** localStorage in memory; `quota` characters at most (setItem throws past it, like a full browser storage). */
class FakeStorage implements StorageLike {
  items = new Map<string, string>();
  constructor(private quota = Infinity) {}
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    if (value.length > this.quota) throw new DOMException("quota exceeded", "QuotaExceededError");
    this.items.set(key, value);
  }
  removeItem(key: string) {
    this.items.delete(key);
  }
}

const SEEDED = `{"format_version": 2, "metadata": {"title": "Seeded"}, "nodes": {"k": {"type": "Int", "inputs": {"value": 18446744073709551615}}}}`;
const GRAPH = { format_version: 2, nodes: { a: { type: "Int", inputs: { value: 1 } }, b: { type: "Int", inputs: { value: 2 } } } };

/** An editor connected to a fake server, with its own (or a shared) storage. */
function openEditor(storage: StorageLike | null) {
  const socket = new FakeSocket();
  const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, storage);
  app.start();
  socket.open();
  socket.reply(welcome());
  /** Answer the last request of `type` with `reply` (its request_id added). */
  const answer = (type: string, reply: Record<string, unknown>) => {
    const request = socket.messages().filter((m) => m.type === type).at(-1);
    if (!request) throw new Error(`no ${type} request was sent`);
    socket.reply({ ...reply, request_id: request.request_id });
  };
  return { app, socket, answer };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe("a reload of the tab during a run", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("resumes the connection and shows the run it submitted on the restored graph", () => {
    const storage = new FakeStorage();
    const tab = new FakeStorage();
    const open = () => {
      const socket = new FakeSocket();
      const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, storage, tab);
      app.start();
      socket.open();
      return { app, socket };
    };
    const before = open();
    expect(before.socket.messages()[0].resume).toBeUndefined();
    before.socket.reply(welcome({ client_id: "c1" }));
    before.app.loadGraph(GRAPH);
    vi.advanceTimersByTime(1000); // autosaved
    before.socket.reply({ type: "submitted", run_id: "r1", position: 0 });
    before.socket.reply({ type: "run_started", run_id: "r1", nodes: ["a", "b"], total: 2 });
    before.app.client.close(); // F5

    const after = open();
    expect(after.socket.messages()[0]).toMatchObject({ type: "hello", resume: "c1" });
    after.socket.reply(welcome({ client_id: "c2", resumed: "c1" }));
    expect(after.app.session.get().activeRun).toBe("r1");
    after.socket.reply({ type: "node_progress", run_id: "r1", node_id: "b", value: 3, total: 10 });
    expect(after.app.session.get().nodeStates.b).toEqual({ status: "running", value: 3, total: 10 });
    after.socket.reply({ type: "queue_changed", run_id: "r1", status: "succeeded", pending: 0 });
    expect(after.socket.messages().at(-1)).toMatchObject({ type: "get_outputs", run_id: "r1" });
    after.socket.reply({ type: "outputs", run_id: "r1", status: "succeeded", outputs: { b: { value: 2 } }, files: [], error: null });
    expect(after.app.session.get().nodeOutputs.b).toEqual({ value: 2 });
    after.app.client.close();

    const later = open(); // the run ended: a further reload shows its results again
    later.socket.reply(welcome({ client_id: "c3" }));
    expect(later.app.session.get().activeRun).toBe("r1");
    later.app.client.close();
  });
});

describe("opening a past run", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("loads its graph with its results on the nodes", async () => {
    const { app, socket, answer } = openEditor(null);
    socket.reply({ type: "history", total: 1, offset: 0, runs: [{ run_id: "old", status: "succeeded" }] });
    const opening = app.openRunGraph("old");
    answer("get_run", { type: "run", run_id: "old", graph: GRAPH });
    await opening;
    expect(app.session.get().activeRun).toBe("old");
    expect(socket.messages().at(-1)).toMatchObject({ type: "get_outputs", run_id: "old" });
    socket.reply({ type: "outputs", run_id: "old", status: "succeeded", outputs: { b: { value: 2 } }, files: [], error: null });
    expect(app.session.get().nodeOutputs.b).toEqual({ value: 2 });
    app.client.close();
  });

  it("asks the canvas to show it whole while its results render; another graph loaded ends that", async () => {
    const { app, socket, answer } = openEditor(null);
    socket.reply({ type: "history", total: 2, offset: 0, runs: [{ run_id: "old", status: "succeeded" }, { run_id: "gone", status: "cancelled" }] });
    const opening = app.openRunGraph("old");
    answer("get_run", { type: "run", run_id: "old", graph: GRAPH });
    await opening;
    expect(app.canvas.followRun).toBe("old");
    app.loadGraph(GRAPH, "another graph");
    expect(app.canvas.followRun).toBeNull();
    const cancelled = app.openRunGraph("gone"); // no results to wait for: the usual fit of a loaded graph
    answer("get_run", { type: "run", run_id: "gone", graph: GRAPH });
    await cancelled;
    expect(app.canvas.followRun).toBeNull();
    app.client.close();
  });
});

describe("the editor's state kept in localStorage", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("keeps the working graph (exact integers) and restores it on the next open, without an undo step", () => {
    const storage = new FakeStorage();
    const first = openEditor(storage);
    first.app.loadGraph(parseJson(SEEDED));
    vi.advanceTimersByTime(400);
    expect(storage.getItem(AUTOSAVE_KEY)).toBeNull(); // written half a second after the last change
    vi.advanceTimersByTime(200);
    expect(storage.getItem(AUTOSAVE_KEY)).toContain('"value":18446744073709551615');
    expect(readAutosave(storage.getItem(AUTOSAVE_KEY))).toMatchObject({ graph: { nodes: { k: { inputs: { value: 18446744073709551615n } } } } });

    const second = openEditor(storage);
    expect(second.app.editor.doc.nodes.k.inputs.value).toBe(18446744073709551615n);
    expect(second.app.editor.state.history.past).toHaveLength(0);
    second.socket.reply({ type: "templates", templates: [{ id: "project/txt2img.json", title: "T" }] });
    expect(second.socket.messages().some((m) => m.type === "get_template")).toBe(false); // a kept graph: no first-open template
    first.app.client.close();
    second.app.client.close();
  });

  it("opens the shipped txt2img template on the very first open, unless the user was quicker", async () => {
    expect(firstOpenTemplate([{ id: "project/arithmetic.json" }, { id: "project/txt2img.json" }])).toBe("project/txt2img.json");
    expect(firstOpenTemplate([{ id: "plugin/txt2img.json" }])).toBe("plugin/txt2img.json");
    expect(firstOpenTemplate([{ id: "project/arithmetic.json" }])).toBeNull();

    const { app, socket, answer } = openEditor(new FakeStorage());
    socket.reply({ type: "templates", templates: [{ id: "project/arithmetic.json", title: "A" }, { id: "project/txt2img.json", title: "T" }] });
    expect(socket.messages().at(-1)).toMatchObject({ type: "get_template", template_id: "project/txt2img.json" });
    answer("get_template", { type: "template", template_id: "project/txt2img.json", graph: GRAPH });
    await settle();
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["a", "b"]);
    expect(app.editor.state.history.past).toHaveLength(0);
    app.client.close();

    const quick = openEditor(new FakeStorage());
    quick.socket.reply({ type: "templates", templates: [{ id: "project/txt2img.json", title: "T" }] });
    quick.app.loadGraph({ format_version: 2, nodes: { mine: { type: "Int" } } });
    quick.answer("get_template", { type: "template", template_id: "project/txt2img.json", graph: GRAPH });
    await settle();
    expect(Object.keys(quick.app.editor.doc.nodes)).toEqual(["mine"]);
    quick.app.client.close();

    const refused = openEditor(new FakeStorage()); // a file the user opened, even a refused one, wins too
    refused.socket.reply({ type: "templates", templates: [{ id: "project/txt2img.json", title: "T" }] });
    expect(await refused.app.loadFile(new File(["{broken"], "b.json"))).toBe(false);
    refused.answer("get_template", { type: "template", template_id: "project/txt2img.json", graph: GRAPH });
    await settle();
    expect(Object.keys(refused.app.editor.doc.nodes)).toEqual([]);
    expect(refused.app.session.get().banner?.text).toMatch(/^Cannot open b\.json: not valid JSON/);
    refused.app.client.close();
  });

  it("does not keep a graph over the size limit (a note instead), and a full storage is no error", () => {
    const storage = new FakeStorage();
    const { app } = openEditor(storage);
    app.loadGraph({ format_version: 2, nodes: { p: { type: "String", inputs: { value: "x".repeat(4_100_000) } } } });
    app.flushAutosave();
    expect(readAutosave(storage.getItem(AUTOSAVE_KEY))).toEqual({ tooLarge: expect.any(Number) });
    app.client.close();
    const next = openEditor(storage);
    expect(Object.keys(next.app.editor.doc.nodes)).toEqual([]);
    expect(next.app.session.get().banner?.text).toMatch(/too large .* to keep across reloads/);
    next.app.client.close();

    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const full = openEditor(new FakeStorage(100));
    full.app.loadGraph(GRAPH);
    full.app.flushAutosave();
    full.app.loadGraph({ ...GRAPH, metadata: { title: "again" } });
    full.app.flushAutosave();
    expect(warn).toHaveBeenCalledTimes(1);
    expect(full.app.toasts.get().filter((t) => t.kind === "error")).toEqual([]);
    warn.mockRestore();
    full.app.client.close();
  });

  it("shares the clipboard between tabs (with a version tag; anything else is ignored)", () => {
    const storage = new FakeStorage();
    const one = openEditor(storage);
    const two = openEditor(storage);
    one.app.loadGraph(JSON.parse(SEEDED.replace("18446744073709551615", "5")));
    one.app.editor.select({ k: true });
    expect(one.app.copySelection()).toBe(true);
    expect(JSON.parse(storage.getItem(CLIPBOARD_KEY)!).clip).toBe(CLIP_VERSION);
    two.app.paste();
    expect(Object.values(two.app.editor.doc.nodes).map((n) => n.inputs.value)).toEqual([5]);

    storage.setItem(CLIPBOARD_KEY, '{"clip": "nodegraph-clip-0", "nodes": {"x": {"type": "Int", "inputs": {}, "ui": {}}}}');
    expect(clipFromText(storage.getItem(CLIPBOARD_KEY))).toBeNull();
    expect(clipFromText("{broken")).toBeNull();
    expect(clipFromText('{"clip": "nodegraph-clip-1", "nodes": {"x": {"type": 3, "inputs": {}, "ui": {}}}}')).toBeNull();
    const clip = clipFromText(clipToText({ nodes: { x: { type: "Int", inputs: { v: 2n ** 60n }, hasInputsKey: true, ui: {}, hasUiEntry: true } } }, {}));
    expect(clip?.clip.nodes.x.inputs.v).toBe(2n ** 60n);
    one.app.client.close();
    two.app.client.close();
  });
});

describe("runs and files", () => {
  let editor: ReturnType<typeof openEditor>;
  beforeEach(() => {
    vi.useFakeTimers();
    editor = openEditor(null);
  });
  afterEach(() => {
    editor.app.client.close();
    vi.useRealTimers();
  });

  it("makes a second cancel (or interrupt) of a run that already left the queue a silent no-op; no toast names a run id", async () => {
    const { app, answer } = editor;
    const id = "4d2c242af46d4988b4cd68ada8a31a99";
    const done = app.cancel(id);
    answer("cancel", { type: "error", code: "invalid_state", message: `cannot cancel run '${id}': it is cancelled`, details: { status: "cancelled" } });
    await done;
    const stopped = app.interrupt(id);
    answer("interrupt", { type: "error", code: "invalid_state", message: "the run is finishing", details: { status: "finishing" } });
    await stopped;
    expect(app.toasts.get()).toEqual([]);
    const started = app.cancel(id);
    answer("cancel", { type: "error", code: "invalid_state", message: `cannot cancel run '${id}': it is running (use interrupt for a running run)`, details: { status: "running" } });
    await started;
    expect(app.toasts.get().map((t) => t.text)).toEqual(["Could not cancel — Not possible now: cannot cancel this run: it is running (use interrupt for a running run)"]);
    expect(withoutRunIds(`no run '${id}'`)).toBe("the run no longer exists");
  });

  it("imports a ComfyUI API prompt through the server: unknown nodes stay as placeholders with their errors", async () => {
    const { app, socket, answer } = editor;
    const prompt = { "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "a.safetensors" } } };
    const loading = app.loadFile(new File([JSON.stringify(prompt)], "comfy_api.json"));
    await settle();
    expect(socket.messages().at(-1)).toMatchObject({ type: "import_graph", data: prompt });
    const graph = { format_version: 2, metadata: { imported_from: "comfyui-api" }, nodes: { "4": { type: "CheckpointLoaderSimple", inputs: { ckpt_name: "a.safetensors" } } } };
    const errors = [{ code: "unknown_node_type", message: "unknown node type 'CheckpointLoaderSimple'", node_id: "4" }];
    answer("import_graph", { type: "imported_graph", graph, errors });
    expect(await loading).toBe(true);
    expect(app.editor.doc.nodes["4"].inputs.ckpt_name).toBe("a.safetensors");
    expect(app.editor.doc.metadata?.title).toBe("comfy_api"); // titled after its file (it had no title)
    expect(app.session.get().validationErrors).toHaveLength(1);
    expect(app.session.get().banner).toEqual({ kind: "info", text: "Imported comfy_api.json from ComfyUI: 1 node is a type nodegraph does not have (red placeholders that keep their data)" });
    expect(app.toasts.get().map((t) => t.text).filter((t) => t.includes("comfy_api"))).toEqual([]); // said once: the banner

    const workflow = app.loadFile(new File([JSON.stringify({ nodes: [], links: [] })], "w.json"));
    await settle();
    answer("import_graph", { type: "error", code: "invalid_graph", message: "the file cannot be imported: this is a ComfyUI UI-format workflow, not a nodegraph graph; ..." });
    expect(await workflow).toBe(false);
    expect(app.session.get().banner?.text).toBe("Cannot open w.json: this is a ComfyUI UI-format workflow, not a nodegraph graph; ...");
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["4"]); // the canvas kept its graph
  });

  it("says what to do with a ComfyUI file when the server is not connected, and refuses deep JSON, keeping the canvas", async () => {
    const { app } = editor;
    app.loadGraph(GRAPH);
    app.client.close();
    expect(await app.loadFile(new File(['{"3": {"class_type": "KSampler", "inputs": {}}}'], "c.json"))).toBe(false);
    expect(app.session.get().banner?.text).toMatch(/^Cannot open c\.json: this is a ComfyUI API-format prompt.*open the file again once it is/);
    const deep = `{"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": ${"[".repeat(100_000)}${"]".repeat(100_000)}}}}}`;
    expect(await app.loadFile(new File([deep], "deep.json"))).toBe(false);
    expect(app.session.get().banner?.text).toBe("Cannot open deep.json: the JSON is nested too deeply to be a graph (more than 1000 levels)");
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["a", "b"]);
  });

  it("opens the graph a JPEG or WebP from SaveImage carries, and says why a camera's JPEG has none", async () => {
    const { app } = editor;
    const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`fixtures/${name}`, import.meta.url)));
    for (const name of ["saved.jpg", "saved.webp"]) {
      app.loadGraph(GRAPH);
      expect(await app.loadFile(new File([fixture(name)], name))).toBe(true);
      expect(Object.keys(app.editor.doc.nodes)).toEqual(["k"]);
    }
    expect(await app.loadFile(new File([fixture("camera.jpg")], "camera.jpg"))).toBe(false);
    expect(app.session.get().banner?.text).toMatch(/^Cannot open camera\.jpg: this JPEG carries no graph/);
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["k"]);
  });

  it("clears the results shown on nodes when another graph is loaded, and shows no later events of the earlier graph's run", () => {
    const { app, socket } = editor;
    app.loadGraph(GRAPH);
    socket.reply({ type: "submitted", run_id: "r1", position: 0, request_id: "x" });
    socket.reply({ type: "run_started", run_id: "r1", nodes: ["a"], total: 1 });
    socket.reply({ type: "outputs", run_id: "r1", status: "succeeded", outputs: { a: { value: 1 } }, files: [{ file_id: "output/x.png", node_id: "a", kind: "image" }], error: null });
    expect(app.session.get().nodeFiles.a).toHaveLength(1);
    app.loadGraph({ format_version: 2, nodes: { a: { type: "Int" } } }); // same id, another graph
    expect(app.session.get().nodeFiles.a).toBeUndefined();
    expect(app.session.get().nodeOutputs.a).toBeUndefined();
    socket.reply({ type: "submitted", run_id: "r0", position: 1, request_id: "y" }); // (a run of this graph)
    socket.reply({ type: "outputs", run_id: "r1", status: "succeeded", outputs: { a: { value: 1 } }, files: [], error: null });
    expect(app.session.get().nodeOutputs.a).toBeUndefined(); // r1 ran the earlier graph
    expect(app.session.get().gallery).toHaveLength(1); // the gallery keeps every output
  });

  it("shows the outputs of the history's runs (asked for their thumbnails) in the gallery, never on the nodes", () => {
    const { app, socket } = editor;
    app.loadGraph(GRAPH);
    socket.reply({ type: "outputs", run_id: "h1", status: "succeeded", outputs: { a: { value: 9 } }, files: [{ file_id: "output/h.png", node_id: "a", kind: "image" }], error: null });
    expect(app.session.get().nodeOutputs.a).toBeUndefined();
    expect(app.session.get().nodeFiles.a).toBeUndefined();
    expect(app.session.get().gallery.map((f) => f.fileId)).toEqual(["output/h.png"]);
  });

  it("runs with Ctrl+Enter and saves with Ctrl+S from inside a text field; other keys stay the field's", () => {
    const key = (k: string, mods: Partial<{ ctrlKey: boolean; metaKey: boolean; shiftKey: boolean; altKey: boolean }> = {}) =>
      shortcutInField({ key: k, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods });
    expect(key("Enter", { ctrlKey: true })).toBe("run");
    expect(key("Enter", { metaKey: true, shiftKey: true })).toBe("run-front");
    expect(key("s", { ctrlKey: true })).toBe("save");
    expect(key("S", { metaKey: true })).toBe("save");
    expect(key("z", { ctrlKey: true })).toBeNull();
    expect(key("a", { ctrlKey: true })).toBeNull();
    expect(key("Enter")).toBeNull();
    expect(key("s")).toBeNull();
  });

  it("sends front: true for Ctrl+Shift+Enter, and BigInt seeds as plain JSON numbers", async () => {
    const { app, socket } = editor;
    app.loadGraph({ format_version: 2, nodes: { k: { type: "Int", inputs: { value: 18446744073709551615n } } } });
    void app.run({ front: true });
    const sent = socket.sent.at(-1)!;
    expect(sent).toContain('"value":18446744073709551615');
    expect(JSON.parse(sent)).toMatchObject({ type: "submit", front: true });
  });
});
