/**
 * Inputs a newer node version renamed (`renamed_inputs` in the schema, docs/plugins.md "Versioning"):
 * an old graph opened in the editor showed the new input at its default (the saved value sat under the
 * old name) and Save wrote the old name back. Now every way a graph enters the editor renames them as the
 * engine does (nodegraph/graph.py `with_renamed_inputs`); graph/renamedInputs.ts.
 *
 * The schema fixture: `Pixelate` (plugin `pix`), whose 2.0 renamed `pixel_size` → `block_size` and
 * `noise_seed` → `seed`, built from the real Int and KSampler input schemas.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { copyNodes } from "../src/graph/clipboard";
import { fromGraphFile, toGraphFile, type GraphFile } from "../src/graph/document";
import { idMap } from "../src/graph/idMaps";
import { renamedInputMap, renamesOf, renamesText, withRenamedInputs } from "../src/graph/renamedInputs";
import { schemaSetFrom, uniqueSchemas, type NodeSchema, type SchemaSet } from "../src/schema/types";
import { AUTOSAVE_KEY, type StorageLike } from "../src/state/autosave";
import { EditorApp } from "../src/state/app";
import { FakeSocket, realSchemas, welcome } from "./helpers";

const RENAMES = { pixel_size: "block_size", noise_seed: "seed" };

/** The real schemas plus Pixelate; `renamed: false` gives the 1.x-era schema cache (no `renamed_inputs`). */
function schemasWithPixelate(renamed = true): SchemaSet {
  const real = realSchemas();
  const int = real.nodes.Int;
  const pixelate: NodeSchema = {
    ...int,
    type: "Pixelate",
    version: "2.0.0",
    category: "image",
    display_name: "Pixelate",
    qualified_type: "pix.Pixelate",
    plugin: "pix",
    aliases: ["pix.Pixelate"],
    inputs: idMap([["block_size", { ...int.inputs.value, default: 4 }], ["seed", real.nodes.KSampler.inputs.seed]]),
    ...(renamed ? { renamed_inputs: RENAMES } : {}),
  };
  return schemaSetFrom(renamed ? "with-pixelate-2" : "with-pixelate-1", [...uniqueSchemas(real.nodes), pixelate], real.types);
}

/** A graph saved before the rename: a literal, a link and a seed (with its control) under the old names. */
const OLD_GRAPH = () => ({
  format_version: 2,
  metadata: { title: "Old pixels" },
  nodes: {
    size: { type: "Int", inputs: { value: 8 } },
    p: { type: "Pixelate", inputs: { pixel_size: { node: "size", output: "value" }, noise_seed: 1234 } },
    q: { type: "pix.Pixelate", inputs: { pixel_size: 16 } },
    show: { type: "ShowValue", inputs: { value: { node: "p", output: "value" } } },
  },
  ui: {
    nodes: { p: { position: [400, 0], seed_modes: { noise_seed: "increment" } } },
    reroutes: [{ id: "reroute_1", position: [200, 50], to: { node: "p", input: "pixel_size" } }],
  },
});

describe("renamedInputMap: the engine's rule", () => {
  it("moves a literal or a link to the new name, in place; leaves both when the new name is set too", () => {
    const link = { node: "a", output: "value" };
    expect(renamedInputMap({ first: 1, pixel_size: link, last: 2 }, RENAMES)).toEqual({
      inputs: { first: 1, block_size: link, last: 2 }, renamed: [["pixel_size", "block_size"]], clashes: [],
    });
    const both = renamedInputMap({ pixel_size: 8, block_size: 3 }, RENAMES)!;
    expect(Object.entries(both.inputs)).toEqual([["pixel_size", 8], ["block_size", 3]]);   // what validation then names
    expect(both.clashes).toEqual([["pixel_size", "block_size"]]);
    expect(renamedInputMap({ block_size: 3 }, RENAMES)).toBeNull();
  });

  it("reads only the schema's own keys: inputs called constructor or __proto__ are ordinary names", () => {
    const inputs = idMap<unknown>([["constructor", 1], ["__proto__", 2]]);
    expect(renamedInputMap(inputs, { ...RENAMES })).toBeNull();
    const renamed = renamedInputMap(inputs, idMap([["__proto__", "toString"]]))!;
    expect(Object.entries(renamed.inputs)).toEqual([["constructor", 1], ["toString", 2]]);
    expect(renamesOf(idMap([["X", { renamed_inputs: { a: "b", bad: 3 } } as unknown as NodeSchema]]), "X")).toEqual(idMap([["a", "b"]]));
    expect(renamesOf(idMap(), "constructor")).toBeNull();
  });
});

describe("withRenamedInputs: a document", () => {
  it("renames every node of a renaming type (by any of its names), its seed control and the reroutes of its link", () => {
    const { doc, renames } = withRenamedInputs(fromGraphFile(OLD_GRAPH()), schemasWithPixelate().nodes);
    const saved = toGraphFile(doc) as GraphFile & { ui: { nodes: Record<string, Record<string, unknown>>; reroutes: unknown[] } };
    expect(saved.nodes.p.inputs).toEqual({ block_size: { node: "size", output: "value" }, seed: 1234 });
    expect(saved.nodes.q).toEqual({ type: "pix.Pixelate", inputs: { block_size: 16 } });   // the type as written
    expect(saved.ui.nodes.p).toEqual({ position: [400, 0], seed_modes: { seed: "increment" } });
    expect(saved.ui.reroutes).toEqual([{ id: "reroute_1", position: [200, 50], to: { node: "p", input: "block_size" } }]);
    expect(renames.map((r) => `${r.node}.${r.from}→${r.to}${r.clash ? " (clash)" : ""}`)).toEqual([
      "p.pixel_size→block_size", "p.noise_seed→seed", "q.pixel_size→block_size"]);
  });

  it("is the same document when nothing applies (no renaming type, or the schemas do not say so)", () => {
    const plain = fromGraphFile({ format_version: 2, nodes: { a: { type: "Int", inputs: { value: 1 } } } });
    expect(withRenamedInputs(plain, schemasWithPixelate().nodes).doc).toBe(plain);
    const old = fromGraphFile(OLD_GRAPH());
    expect(withRenamedInputs(old, schemasWithPixelate(false).nodes)).toEqual({ doc: old, renames: [] });
  });

  it("renames the inner nodes of subgraph definitions too (the engine leaves them, and fails them)", () => {
    const doc = fromGraphFile({
      format_version: 2,
      nodes: { g: { type: "subgraph:inner" } },
      subgraphs: {
        inner: {
          nodes: { p: { type: "Pixelate", inputs: { pixel_size: 8, noise_seed: 5, seed: 6 } } },
          outputs: { value: { node: "p", output: "value" } },
          ui: { nodes: { p: { position: [0, 0], seed_modes: { noise_seed: "fixed", seed: "randomize" } } } },
        },
      },
    });
    const { doc: renamed, renames } = withRenamedInputs(doc, schemasWithPixelate().nodes);
    const inner = (toGraphFile(renamed).subgraphs as Record<string, { nodes: Record<string, { inputs: unknown }>; ui: unknown }>).inner;
    expect(inner.nodes.p.inputs).toEqual({ block_size: 8, noise_seed: 5, seed: 6 });
    expect(inner.ui).toEqual({ nodes: { p: { position: [0, 0], seed_modes: { noise_seed: "fixed", seed: "randomize" } } } });
    expect(renames).toEqual([
      { node: "inner/p", type: "Pixelate", from: "pixel_size", to: "block_size", clash: false },
      { node: "inner/p", type: "Pixelate", from: "noise_seed", to: "seed", clash: true },
    ]);
  });

  it("says what was renamed and which old names were left, in one line", () => {
    const { renames } = withRenamedInputs(fromGraphFile({ format_version: 2, nodes: {
      p: { type: "Pixelate", inputs: { pixel_size: 8, block_size: 3, noise_seed: 1 } } } }), schemasWithPixelate().nodes);
    expect(renamesText(renames)).toBe(
      "Inputs renamed by a newer version of their node, now under their new names (Save writes them so): p.noise_seed → seed. " +
      "Old input names kept where the node also sets the new one (remove one of the two): p.pixel_size → block_size");
    expect(renamesText([])).toBeNull();
  });
});

class MemoryStorage implements StorageLike {
  items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
  removeItem(key: string) {
    this.items.delete(key);
  }
}

/** An editor connected to a fake server that knows Pixelate 2.0 (`schemas`), a Pixelate-less one with `null`. */
function openEditor(options: { schemas?: SchemaSet | null; storage?: StorageLike | null } = {}) {
  const socket = new FakeSocket();
  const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, options.storage ?? null);
  const schemas = options.schemas === undefined ? schemasWithPixelate() : options.schemas;
  if (schemas) app.dispatch({ type: "schemas", schemas });
  app.start();
  socket.open();
  socket.reply(welcome());
  app.canvas.rects = () => ({});
  const answer = (type: string, reply: Record<string, unknown>) => {
    const request = socket.messages().filter((m) => m.type === type).at(-1);
    if (!request) throw new Error(`no ${type} request was sent`);
    socket.reply({ ...reply, request_id: request.request_id });
  };
  const toasts = () => app.toasts.get().map((t) => t.text);
  return { app, socket, answer, toasts };
}

const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

/** What the editor now holds of the old graph: the new names, as the widgets read them and Save writes them. */
function expectRenamed(app: EditorApp) {
  const saved = JSON.parse(app.graphText());
  expect(saved.nodes.p.inputs).toEqual({ block_size: { node: "size", output: "value" }, seed: 1234 });
  expect(saved.nodes.q.inputs).toEqual({ block_size: 16 });
  expect(saved.ui.nodes.p.seed_modes).toEqual({ seed: "increment" });
}

describe("every way a graph enters the editor renames the inputs", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("a file (Load, a drop): renamed, with a toast; one undo step back to the graph before", async () => {
    const { app, toasts } = openEditor();
    const before = app.graphText();
    expect(await app.loadFile(new File([JSON.stringify(OLD_GRAPH())], "old.json"))).toBe(true);
    expectRenamed(app);
    expect(toasts()[0]).toMatch(/^Inputs renamed by a newer version of their node.*: p\.pixel_size → block_size, p\.noise_seed → seed, q\.pixel_size → block_size$/);
    app.editor.undo();
    expect(app.graphText()).toBe(before);
    app.editor.redo();
    expectRenamed(app);
    app.client.close();
  });

  it("graph text pasted with Ctrl+V, a template, History → Open and window.nodegraph.load", async () => {
    const { app, socket, answer } = openEditor();
    await app.pasteFromClipboard(JSON.stringify(OLD_GRAPH()));
    expectRenamed(app);

    app.loadGraph({ format_version: 2, nodes: {} });
    socket.reply({ type: "templates", templates: [{ id: "pix/old.json", title: "Old pixels" }] });
    const template = app.openTemplate("pix/old.json");
    answer("get_template", { type: "template", template_id: "pix/old.json", graph: OLD_GRAPH() });
    await template;
    expectRenamed(app);

    app.loadGraph({ format_version: 2, nodes: {} });
    socket.reply({ type: "history", total: 1, offset: 0, runs: [{ run_id: "old", status: "succeeded" }] });
    const run = app.openRunGraph("old");
    answer("get_run", { type: "run", run_id: "old", graph: OLD_GRAPH() });
    await run;
    expectRenamed(app);

    app.loadGraph({ format_version: 2, nodes: {} });
    app.loadGraph(OLD_GRAPH());
    expectRenamed(app);
    app.client.close();
  });

  it("a ComfyUI file imported by the server", async () => {
    const { app, answer } = openEditor();
    const importing = app.loadFile(new File([JSON.stringify({ "3": { class_type: "KSampler", inputs: {} } })], "comfy.json"));
    await settle();
    answer("import_graph", { type: "imported_graph", graph: OLD_GRAPH(), errors: [] });
    expect(await importing).toBe(true);
    expectRenamed(app);
    app.client.close();
  });

  it("the graph kept across a reload, with the cached schemas or with newer ones that come after it", () => {
    const storage = new MemoryStorage();
    storage.setItem(AUTOSAVE_KEY, JSON.stringify({ autosave: 1, graph: OLD_GRAPH() }));
    const cached = openEditor({ storage });   // the schemas cached from an earlier visit know the rename
    expectRenamed(cached.app);
    expect(cached.app.editor.state.history.past).toHaveLength(0);
    cached.app.client.close();

    storage.setItem(AUTOSAVE_KEY, JSON.stringify({ autosave: 1, graph: OLD_GRAPH() }));
    const stale = openEditor({ storage, schemas: schemasWithPixelate(false) });   // cached before the plugin's 2.0
    expect(JSON.parse(stale.app.graphText()).nodes.p.inputs.pixel_size).toEqual({ node: "size", output: "value" });
    const fresh = schemasWithPixelate();
    stale.socket.reply({ type: "nodes", schema_hash: fresh.schemaHash, nodes: uniqueSchemas(fresh.nodes), types: fresh.types });
    expectRenamed(stale.app);
    expect(stale.app.editor.state.history.past).toHaveLength(0);   // no undo step back to the old names
    expect(stale.toasts()).toHaveLength(1);
    vi.advanceTimersByTime(1000);
    expect(JSON.parse(storage.getItem(AUTOSAVE_KEY)!).graph.nodes.p.inputs).toHaveProperty("block_size");
    stale.app.client.close();
  });

  it("newer schemas while a subgraph is open rename its inner nodes and the graph around it", () => {
    const { app, socket } = openEditor({ schemas: schemasWithPixelate(false) });
    app.loadGraph({
      format_version: 2,
      nodes: { p: { type: "Pixelate", inputs: { pixel_size: 2 } }, g: { type: "subgraph:inner" } },
      subgraphs: { inner: { nodes: { p: { type: "Pixelate", inputs: { pixel_size: 8 } } }, outputs: { value: { node: "p", output: "value" } } } },
    });
    app.openSubgraph("inner", "g");
    const fresh = schemasWithPixelate();
    socket.reply({ type: "nodes", schema_hash: fresh.schemaHash, nodes: uniqueSchemas(fresh.nodes), types: fresh.types });
    expect({ ...app.editor.doc.nodes.p.inputs }).toEqual({ block_size: 8 });
    app.editor.closeSubgraph();
    const saved = JSON.parse(app.graphText());
    expect(saved.nodes.p.inputs).toEqual({ block_size: 2 });
    expect(saved.subgraphs.inner.nodes.p.inputs).toEqual({ block_size: 8 });
    expect(app.toasts.get().map((t) => t.text)).toEqual([
      "Inputs renamed by a newer version of their node, now under their new names (Save writes them so): p.pixel_size → block_size, inner/p.pixel_size → block_size"]);
    app.client.close();
  });

  it("nodes copied from an old graph in another tab are pasted under the new names", () => {
    const { app } = openEditor();
    app.loadGraph({ format_version: 2, nodes: {} });
    const copied = copyNodes(fromGraphFile(OLD_GRAPH()), ["q"], () => [0, 0])!;   // Ctrl+C in a tab of an older editor
    app.paste(false, copied);
    expect(Object.values(app.editor.doc.nodes).map((n) => ({ ...n.inputs }))).toEqual([{ block_size: 16 }]);
    app.client.close();
  });
});
