import { afterEach, describe, expect, it, vi } from "vitest";
import type { EditorApp } from "../src/state/app";
import { followStep, shownShare, wholeInView, type FollowedRun } from "../src/editor/viewFit";
import { connectedApp, realSchemas, stopApp } from "./helpers";

const box = (x: number, y: number, width = 100, height = 100) => ({ x, y, width, height });
const view = (x = 0, y = 0, zoom = 1) => ({ x, y, zoom });

describe("shownShare / wholeInView", () => {
  it("measures the share of a node's box inside the canvas, in screen pixels", () => {
    expect(shownShare(box(0, 0), view(), 500, 400)).toBe(1);
    expect(shownShare(box(450, 0), view(), 500, 400)).toBe(0.5);
    expect(shownShare(box(450, 350), view(), 500, 400)).toBe(0.25);
    expect(shownShare(box(600, 0), view(), 500, 400)).toBe(0);
    expect(shownShare(box(-100, 0), view(), 500, 400)).toBe(0);
    // the view's pan and zoom apply: at zoom 2 panned left by 800, flow x 400..500 is screen 0..200
    expect(shownShare(box(400, 0), view(-800, 0, 2), 500, 400)).toBe(1);
    expect(shownShare(box(0, 0), view(-800, 0, 2), 500, 400)).toBe(0);
  });

  it("holds when every node is at least mostly in view (the txt2img open at 1024×700 is not)", () => {
    const graph = { a: box(0, 0), b: box(430, 0) }; // b: 70 % inside a 500 px canvas
    expect(wholeInView(graph, view(), 500, 400)).toBe(true);
    expect(wholeInView({ ...graph, c: box(460, 0) }, view(), 500, 400)).toBe(false); // c: 40 %
    expect(wholeInView(graph, view(), 500, 400, 0.995)).toBe(false); // not wholly
    // measured in Chromium: the six-image txt2img opened at zoom 0.75, sampler, decode and save right of 564 px
    const opened = { checkpoint: box(0, 62, 300, 157), sampler: box(760, 25, 300, 307), save: box(1520, 23, 300, 128) };
    expect(wholeInView(opened, view(24, 140.5, 0.75), 564, 662)).toBe(false);
    expect(wholeInView(opened, view(25, 259, 0.2824), 564, 662)).toBe(true); // after fit-view
    expect(wholeInView({}, view(), 500, 400)).toBe(false);
    expect(wholeInView(graph, view(), 0, 0)).toBe(false);
  });
});

describe("followStep", () => {
  const state = { history: {}, loadCount: 1, dragBase: null };
  const now = (over: Partial<Parameters<typeof followStep>[1]> = {}) => ({
    state, viewport: view(), activeRun: "r2", rects: { a: box(0, 0), b: box(300, 0) }, width: 500, height: 400, ...over,
  });
  const opened = (): FollowedRun => ({ runId: "r2", state, viewport: view() });
  const startedHere = (before: string | null = "r1"): FollowedRun => ({ ...opened(), here: { before, started: false } });

  it("refits a run opened from History at every change, until the user or another run takes over", () => {
    expect(followStep(opened(), now())).toBe("fit");
    expect(followStep(opened(), now({ viewport: view(10, 0) }))).toBe("stop"); // panned
    expect(followStep(opened(), now({ viewport: view(0, 0, 1.1) }))).toBe("stop"); // zoomed
    expect(followStep(opened(), now({ state: { ...state, history: {} } }))).toBe("stop"); // edited
    expect(followStep(opened(), now({ state: { ...state, loadCount: 2 } }))).toBe("stop"); // another graph
    expect(followStep(opened(), now({ state: { ...state, dragBase: {} } }))).toBe("stop"); // dragging
    expect(followStep(opened(), now({ activeRun: "r3" }))).toBe("stop"); // another run
    expect(followStep(opened(), now({ activeRun: "r1" }))).toBe("stop");
  });

  it("keeps a run started here in view only when the graph leaves it, and waits for it behind the run shown", () => {
    const followed = startedHere();
    expect(followStep(followed, now({ activeRun: "r1" }))).toBe("keep"); // queued: the earlier run still shown, all in view
    expect(followStep(followed, now({ activeRun: "r1", rects: { a: box(0, 0, 100, 600) } }))).toBe("fit");
    expect(followed.here?.started).toBe(false);
    expect(followStep(followed, now())).toBe("keep");
    expect(followed.here?.started).toBe(true);
    expect(followStep(followed, now({ rects: { a: box(0, 0), b: box(450, 0) } }))).toBe("fit"); // b half out
    expect(followStep(followed, now({ activeRun: "r1" }))).toBe("stop"); // once started, the earlier run is another run
    expect(followStep(startedHere(null), now({ activeRun: null }))).toBe("keep"); // nothing was shown before
    expect(followStep(startedHere(), now({ activeRun: "r3" }))).toBe("stop");
    expect(followStep(startedHere(), now({ viewport: view(0, 3), rects: { a: box(0, 0, 100, 600) } }))).toBe("stop");
  });
});

describe("Run follows the run it submits only when the canvas says so", () => {
  const schemas = realSchemas();
  let shown: EditorApp | null = null;
  afterEach(() => {
    if (shown) stopApp(shown);
    shown = null;
  });

  function ready() {
    const { app, socket } = connectedApp();
    shown = app;
    socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
    app.loadGraph({ format_version: 2, nodes: { show: { type: "ShowValue", inputs: { value: 1 } } } });
    return { app, socket };
  }

  it("asks when Run is pressed and starts following the submitted run", async () => {
    const { app, socket } = ready();
    const started = vi.fn();
    const followHere = vi.fn(() => started);
    app.canvas.followHere = followHere;
    const done = app.run();
    expect(followHere).toHaveBeenCalledTimes(1);
    expect(started).not.toHaveBeenCalled();
    const submit = socket.messages().at(-1)!;
    socket.reply({ type: "submitted", run_id: "r9", position: 0, request_id: submit.request_id });
    await done;
    expect(started).toHaveBeenCalledWith("r9");
  });

  it("follows nothing when the graph was not whole in view, or the submit was refused", async () => {
    const { app, socket } = ready();
    app.canvas.followHere = () => null;
    let done = app.run();
    socket.reply({ type: "submitted", run_id: "r9", position: 0, request_id: socket.messages().at(-1)!.request_id });
    await expect(done).resolves.toBeUndefined();
    const started = vi.fn();
    app.canvas.followHere = () => started;
    done = app.run();
    socket.reply({
      type: "error", code: "invalid_graph", message: "invalid", request_id: socket.messages().at(-1)!.request_id,
      details: { errors: [] },
    });
    await done;
    expect(started).not.toHaveBeenCalled();
  });
});
