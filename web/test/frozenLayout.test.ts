/**
 * A node never moves on its own (docs/editor.md, "Layout"): once the auto-layout of a graph without
 * positions has been shown and measured, the canvas keeps those positions (EditorState.shownPositions);
 * nodes that grow (a run's images) push only the nodes they now cover, downwards, and nothing of it is
 * written into the file. Before, each size change re-ran dagre on the new sizes: a batch of 6 on txt2img
 * moved all 7 nodes out of a 1024×700 view.
 *
 * `canvasOf` does what editor/GraphCanvas.tsx does with the pure parts: shows effectivePositions with the
 * frozen positions, freezes the unfrozen nodes once measured, reports a node that grows (EditorStore `grew`,
 * which pushes with pushGrown) and gives the store its node sizes (`shownSize`: undo / redo push again).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { collapseToSubgraph } from "../src/graph/subgraph";
import { fromGraphFile, moveNodes, setInput, type Position } from "../src/graph/document";
import { parseJson } from "../src/graph/exactJson";
import { idMap } from "../src/graph/idMaps";
import { effectivePositions, estimateSize, overlaps, pushGrown, unfrozenNodes, type Rect, type Size } from "../src/graph/layout";
import { selectionActions } from "../src/editor/GraphCanvas";
import { EditorApp } from "../src/state/app";
import { EditorStore } from "../src/state/editorStore";
import { FakeSocket, realSchemas, REPO_ROOT } from "./helpers";

const TXT2IMG = () => parseJson(readFileSync(`${REPO_ROOT}graphs/txt2img.json`, "utf8"));

/** An editor with the real schemas, and a canvas whose nodes have the sizes in `measured` (else the schema's estimate). */
function canvasOf(app: EditorApp) {
  const measured = idMap<Size>();
  const sizeOf = (id: string): Size => measured[id] ?? estimateSize(app.schemasFor()[app.editor.doc.nodes[id]?.type]);
  const rects = (): Record<string, Rect> => {
    const { doc, shownPositions } = app.editor.state;
    const positions = effectivePositions(doc, sizeOf, shownPositions);
    return idMap(Object.entries(positions).map(([id, [x, y]]): [string, Rect] => [id, { x, y, ...sizeOf(id) }]));
  };
  app.canvas.rects = rects;
  app.canvas.fit = () => undefined;
  /** The nodes were drawn and measured: the auto-layout's positions are kept from now on. */
  const freeze = () => {
    const shown = rects();
    const unfrozen = unfrozenNodes(app.editor.doc, app.editor.state.shownPositions);
    app.editor.keepShown(idMap(unfrozen.map((id): [string, Position] => [id, [shown[id].x, shown[id].y]])));
  };
  /** Node `id` became `height` tall (a run's images arrived): it pushes what it now covers. */
  const grow = (id: string, height: number) => {
    measured[id] = { width: sizeOf(id).width, height };
    app.editor.grew(rects(), [id]);
  };
  app.editor.shownSize = (_doc, id) => sizeOf(id);
  return { measured, sizeOf, rects, freeze, grow };
}

function openTxt2img() {
  const app = new EditorApp(() => new FakeSocket(), { href: "http://127.0.0.1:8188/" }, null);
  app.dispatch({ type: "schemas", schemas: realSchemas() });
  app.loadGraph(TXT2IMG());
  return { app, ...canvasOf(app) };
}

const corners = (rects: Record<string, Rect>) => idMap(Object.entries(rects).map(([id, r]): [string, Position] => [id, [r.x, r.y]]));
const anyOverlap = (rects: Rect[]) => rects.some((a, i) => rects.some((b, j) => i < j && overlaps(a, b)));
/** The nodes of txt2img's middle column (the sampler's inputs besides the checkpoint), top to bottom. */
const middleColumn = (rects: Record<string, Rect>) => ["latent", "prompt", "negative"].sort((a, b) => rects[a].y - rects[b].y);

describe("the auto-layout, once shown, stays put", () => {
  it("keeps every node of txt2img where it was shown when a run's results make the sampler and SaveImage taller", () => {
    const { app, measured, sizeOf, rects, freeze, grow } = openTxt2img();
    const text = app.graphText();
    const doc = app.editor.doc;
    const undoSteps = app.editor.state.history.past.length;
    freeze();
    const before = rects();
    grow("sampler", 450);  // the step preview
    grow("save", 1400);    // a batch of 6
    // What the canvas did before: dagre again on the new sizes, and the nodes on the left moved.
    const relaidOut = effectivePositions(app.editor.doc, sizeOf);
    expect(relaidOut.checkpoint).not.toEqual(corners(before).checkpoint);
    // Now: nothing moved, nothing overlaps, and the document, its undo steps and the saved file are as loaded.
    expect(corners(rects())).toEqual(corners(before));
    expect(anyOverlap(Object.values(rects()))).toBe(false);
    expect(app.editor.doc).toBe(doc);
    expect(app.editor.state.history.past.length).toBe(undoSteps);
    expect(app.graphText()).toBe(text);
    expect(measured.save.height).toBe(1400);
  });

  it("a grown node pushes down only the frozen nodes it now covers, and writes nothing into the file", () => {
    const { app, rects, freeze, grow } = openTxt2img();
    const text = app.graphText();
    freeze();
    const before = rects();
    const [top, ...below] = middleColumn(before);
    grow(top, 600);
    const after = rects();
    for (const id of Object.keys(before)) {
      if (below.includes(id)) {
        expect([id, after[id].x]).toEqual([id, before[id].x]);
        expect(after[id].y).toBeGreaterThanOrEqual(after[top].y + 600);
      } else expect([id, after[id].x, after[id].y]).toEqual([id, before[id].x, before[id].y]);
    }
    expect(anyOverlap(Object.values(after))).toBe(false);
    expect(Object.values(app.editor.doc.nodes).some((n) => n.position)).toBe(false);
    expect(app.graphText()).toBe(text);
  });

  it("the first edit that moves a node writes the layout as shown (frozen and pushed), not a new auto-layout", () => {
    const { app, rects, freeze, grow } = openTxt2img();
    freeze();
    grow(middleColumn(rects())[0], 600);
    grow("save", 1400);
    const shown = rects();
    app.layoutEdit((doc) => moveNodes(doc, { checkpoint: [-400, 0] }));
    for (const [id, node] of Object.entries(app.editor.doc.nodes)) {
      expect([id, node.position]).toEqual([id, id === "checkpoint" ? [-400, 0] : [shown[id].x, shown[id].y]]);
    }
  });

  it("deleting, linking and undoing leave the other nodes in place; Auto-layout and its undo too", () => {
    const { app, rects, freeze, grow } = openTxt2img();
    freeze();
    grow("save", 1400);
    const shown = corners(rects());
    app.editor.edit((doc) => ({ ...doc, nodes: idMap(Object.entries(doc.nodes).filter(([id]) => id !== "negative")) }));
    const { negative: _, ...rest } = shown;
    expect(corners(rects())).toEqual(idMap(Object.entries(rest)));
    app.editor.undo();
    expect(corners(rects())).toEqual(shown);
    selectionActions.autoLayout(app); // Alt+L: written into the file, as asked
    expect(Object.values(app.editor.doc.nodes).every((n) => n.position)).toBe(true);
    app.editor.undo();
    expect(Object.values(app.editor.doc.nodes).some((n) => n.position)).toBe(false);
    expect(corners(rects())).toEqual(shown);
  });

  it("a node the file places wins over a frozen position; nodes neither places are laid out right of the placed ones", () => {
    const doc = fromGraphFile(TXT2IMG());
    doc.nodes.save = { ...doc.nodes.save, position: [0, 0] };
    const frozen = idMap<Position>([["save", [5000, 5000]], ["checkpoint", [-900, 40]]]);
    const size = () => ({ width: 300, height: 160 });
    const shown = effectivePositions(doc, size, frozen);
    expect(shown.save).toEqual([0, 0]);
    expect(shown.checkpoint).toEqual([-900, 40]);
    expect(unfrozenNodes(doc, frozen).sort()).toEqual(["decode", "latent", "negative", "prompt", "sampler"]);
    for (const id of unfrozenNodes(doc, frozen)) expect(shown[id][0]).toBeGreaterThanOrEqual(300 + 80);
  });

  it("pushGrown moves positioned nodes in the file, frozen ones in the shown positions, and leaves unplaced ones to the layout", () => {
    const doc = fromGraphFile({
      format_version: 2,
      nodes: { big: { type: "Int" }, filed: { type: "Int" }, frozen: { type: "Int" }, loose: { type: "Int" }, aside: { type: "Int" } },
      ui: { nodes: { big: { position: [0, 0] }, filed: { position: [0, 200] }, aside: { position: [900, 100] } } },
    });
    const frozen = idMap<Position>([["frozen", [0, 400]]]);
    const box = (x: number, y: number, height = 150): Rect => ({ x, y, width: 300, height });
    const rects = idMap<Rect>([["big", box(0, 0, 700)], ["filed", box(0, 200)], ["frozen", box(0, 400)], ["loose", box(0, 300)], ["aside", box(900, 100)]]);
    const moved = pushGrown(doc, frozen, rects, ["big"]);
    expect(Object.keys(moved.file)).toEqual(["filed"]);
    expect(Object.keys(moved.frozen)).toEqual(["frozen"]);
    expect(moved.file.filed[1]).toBeGreaterThanOrEqual(700);
    expect(moved.frozen.frozen[1]).toBeGreaterThanOrEqual(moved.file.filed[1] + 150); // cascaded under the pushed one
  });
});

describe("the shown positions in the editor state", () => {
  it("are no undo step and no change of the document; a loaded graph starts with none", () => {
    const store = new EditorStore(fromGraphFile(TXT2IMG()));
    const doc = store.doc;
    store.keepShown({ checkpoint: [1, 2] });
    expect(store.doc).toBe(doc);
    expect(store.state.history.past).toEqual([]);
    expect(store.state.shownPositions.checkpoint).toEqual([1, 2]);
    store.load(fromGraphFile(TXT2IMG()));
    expect(Object.keys(store.state.shownPositions)).toEqual([]);
  });

  it("undo and redo across a load give each graph back its own; within a graph they are kept", () => {
    const store = new EditorStore(fromGraphFile(TXT2IMG()));
    store.keepShown({ checkpoint: [1, 1] });
    store.edit((doc) => ({ ...doc, metadata: { title: "edited" } }));
    store.keepShown({ checkpoint: [1, 2] });  // pushed after the edit
    store.load(fromGraphFile(TXT2IMG()));   // another graph with the same node ids
    store.keepShown({ checkpoint: [9, 9] });
    store.undo();                            // back across the load
    expect(store.state.shownPositions.checkpoint).toEqual([1, 2]);
    store.undo();                            // the edit, in the first graph: the nodes stay where they are
    expect(store.state.shownPositions.checkpoint).toEqual([1, 2]);
    store.redo();
    store.redo();                            // forward across the load
    expect(store.state.shownPositions.checkpoint).toEqual([9, 9]);
  });

  it("a subgraph opens with its own and closing it gives the enclosing graph's back", () => {
    const chain = fromGraphFile({
      format_version: 2,
      nodes: {
        a: { type: "Int", inputs: { value: 6 } },
        mul: { type: "IntMath", inputs: { a: { node: "a", output: "value" }, b: { node: "a", output: "value" }, op: "multiply" } },
        show: { type: "ShowValue", inputs: { value: { node: "mul", output: "result" } } },
      },
    });
    const { doc, name } = collapseToSubgraph(chain, ["mul"], { a: [0, 0], mul: [300, 0], show: [600, 0] })!;
    const store = new EditorStore(doc);
    store.keepShown({ a: [10, 20] });
    store.openSubgraph(name);
    expect(Object.keys(store.state.shownPositions)).toEqual([]);
    store.keepShown({ mul: [5, 5] });
    store.closeSubgraph();
    expect({ ...store.state.shownPositions }).toEqual({ a: [10, 20] });
  });
});

/** txt2img with positions in the file, the decode node under the sampler (tests/web/test_editor_layout_stays_e2e.py's). */
const PLACED = { checkpoint: [0, 60], latent: [380, 0], negative: [380, 200], prompt: [380, 370], sampler: [760, 0], decode: [760, 420], save: [1140, 0] };

function openPlacedTxt2img() {
  const graph = TXT2IMG() as { ui?: unknown };
  graph.ui = { nodes: idMap(Object.entries(PLACED).map(([id, position]) => [id, { position }])) };
  const app = new EditorApp(() => new FakeSocket(), { href: "http://127.0.0.1:8188/" }, null);
  app.dispatch({ type: "schemas", schemas: realSchemas() });
  app.loadGraph(graph);
  return { app, ...canvasOf(app) };
}

const setWidth = (app: EditorApp, width: number) => app.editor.edit((doc) => setInput(doc, "latent", "width", width), "latent.width");

describe("undo and redo after a grown node pushed others (pushes are no undo step)", () => {
  it("undoing an edit made before a Run leaves the decode node pushed under the grown sampler", () => {
    const { app, rects, grow } = openPlacedTxt2img();
    const steps = app.editor.state.history.past.length;
    setWidth(app, 256);                         // an edit, then Run:
    grow("sampler", 600);                       // its step preview and image: the decode node is pushed down
    const pushedTo = rects().decode.y;
    expect(pushedTo).toBeGreaterThanOrEqual(600);
    app.editor.undo();                          // the edit; before, the decode node went back to y 420, under the image
    expect(app.editor.doc.nodes.latent.inputs.width).not.toBe(256);
    expect(rects().decode.y).toBe(pushedTo);
    expect(overlaps(rects().decode, rects().sampler)).toBe(false);
    app.editor.redo();
    expect(app.editor.doc.nodes.latent.inputs.width).toBe(256);
    expect(rects().decode.y).toBe(pushedTo);
    expect(overlaps(rects().decode, rects().sampler)).toBe(false);
    expect(app.editor.state.history.past.length).toBe(steps + 1);   // one undo step: the edit (the pushes are none)
  });

  it("undoing the first placing edit (positions written) leaves the frozen nodes pushed too", () => {
    const { app, rects, freeze, grow } = openTxt2img();
    freeze();
    app.layoutEdit((doc) => moveNodes(doc, { checkpoint: [-400, 0] }));   // every position into the file
    const [top, next] = middleColumn(rects());
    grow(top, 600);                                                       // pushes `next` in the file
    const pushedTo = rects()[next].y;
    app.editor.undo();                  // no positions in the file again: the frozen ones, from before the push
    expect(Object.values(app.editor.doc.nodes).some((n) => n.position)).toBe(false);
    expect(rects()[next].y).toBe(pushedTo);
    expect(anyOverlap(Object.values(rects()))).toBe(false);
  });

  it("a node that never grew does not push on undo: nodes the user put over one another stay so", () => {
    const { app, rects, grow } = openPlacedTxt2img();
    grow("save", 900);
    app.editor.edit((doc) => moveNodes(doc, { negative: [380, 100] }));   // over the latent node, by hand
    setWidth(app, 256);
    app.editor.undo();
    expect(rects().negative.y).toBe(100);
    expect(overlaps(rects().negative, rects().latent)).toBe(true);
  });

  it("undo across a load after a push gives each graph its own shown positions", () => {
    const { app, rects, freeze, grow } = openTxt2img();     // no positions: a frozen layout
    freeze();
    const shown = corners(rects());
    const graph = TXT2IMG() as { ui?: unknown };
    graph.ui = { nodes: idMap(Object.entries(PLACED).map(([id, position]) => [id, { position }])) };
    app.loadGraph(graph);                                   // same node ids, positions in the file
    grow("sampler", 600);                                   // the push replaces the loaded document
    app.editor.undo();                                      // back across the load
    expect(Object.values(app.editor.doc.nodes).some((n) => n.position)).toBe(false);
    expect(corners(rects())).toEqual(shown);
    app.editor.redo();
    expect(rects().decode.y).toBeGreaterThanOrEqual(600);
  });
});

describe("a load while a subgraph is open", () => {
  const WITH_SUBGRAPH = {
    format_version: 2,
    nodes: {
      k: { type: "Int", inputs: { value: 6 } },
      g: { type: "subgraph:inner", inputs: { x: { node: "k", output: "value" } } },
      show: { type: "ShowValue", inputs: { value: { node: "g", output: "result" } } },
    },
    subgraphs: {
      inner: {
        inputs: { x: {} },
        outputs: { result: { node: "mul", output: "result" } },
        nodes: { mul: { type: "IntMath", inputs: { a: { node: "$inputs", output: "x" }, b: 7, op: "multiply" } } },
      },
    },
    ui: { nodes: { k: { position: [0, 0] }, g: { position: [400, 0] }, show: { position: [800, 0] } } },
  };
  const ARITHMETIC = () => parseJson(readFileSync(`${REPO_ROOT}graphs/arithmetic.json`, "utf8"));

  it("is undone to the whole graph at the top level, the subgraph's edits kept (one step of their own)", () => {
    const app = new EditorApp(() => new FakeSocket(), { href: "http://127.0.0.1:8188/" }, null);
    app.dispatch({ type: "schemas", schemas: realSchemas() });
    app.loadGraph(WITH_SUBGRAPH);
    const whole = app.graphText();
    app.openSubgraph("inner", "g");
    app.editor.edit((doc) => setInput(doc, "mul", "b", 8));
    app.loadGraph(ARITHMETIC());
    expect(app.editor.state.path).toEqual([]);
    app.editor.undo();               // before: the inner document (node "mul" alone) as if it were the graph
    expect(app.editor.state.path).toEqual([]);
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["k", "g", "show"]);
    const subgraph = (app.graphFile().subgraphs as Record<string, { nodes: Record<string, { inputs: Record<string, unknown> }> }>).inner;
    expect(subgraph.nodes.mul.inputs.b).toBe(8);
    app.editor.undo();               // the edit inside the subgraph
    expect(app.graphText()).toBe(whole);
    app.editor.redo();
    app.editor.redo();
    expect(Object.keys(app.editor.doc.nodes)).toContain("pixels");
    expect(app.editor.state.history.future).toEqual([]);
  });

  it("keeps the top level's shown positions for the undo, not the subgraph's", () => {
    const store = new EditorStore(fromGraphFile(WITH_SUBGRAPH));
    store.load(fromGraphFile(WITH_SUBGRAPH), false);
    store.keepShown({ k: [1, 2] });
    store.openSubgraph("inner", "g");
    store.keepShown({ mul: [5, 5] });
    store.load(fromGraphFile(ARITHMETIC()));
    store.undo();
    expect({ ...store.state.shownPositions }).toEqual({ k: [1, 2] });
  });
});
