/** What each tab keeps across its own reloads: its working graph and the run shown on its nodes. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { idMap } from "../src/graph/idMaps";
import { readTabRun, tabRunText } from "../src/run/tabRun";
import { keptText, type StorageLike } from "../src/state/autosave";
import { EditorApp } from "../src/state/app";
import { FakeSocket, welcome } from "./helpers";

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

const graph = (...ids: string[]) => ({
  format_version: 2,
  nodes: Object.fromEntries(ids.map((id) => [id, { type: "Int", inputs: { value: 1 } }])),
});

/** A tab of one browser: its own sessionStorage, the browser's shared localStorage. */
function openTab(shared: StorageLike, tab: StorageLike) {
  const socket = new FakeSocket();
  const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, shared, tab);
  app.start();
  socket.open();
  socket.reply(welcome());
  const answer = (type: string, reply: Record<string, unknown>) => {
    const request = socket.messages().filter((m) => m.type === type).at(-1)!;
    socket.reply({ ...reply, request_id: request.request_id });
  };
  return { app, socket, answer, nodes: () => Object.keys(app.editor.doc.nodes) };
}

describe("each tab's working graph", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("restores its own graph on a reload, while a new tab opens the graph edited last", () => {
    const shared = new MemoryStorage();
    const [tabA, tabB] = [new MemoryStorage(), new MemoryStorage()];
    const one = openTab(shared, tabA);
    one.app.loadGraph(graph("a"));
    vi.advanceTimersByTime(1000);
    const two = openTab(shared, tabB);
    expect(two.nodes()).toEqual(["a"]); // a new tab: the graph edited last
    two.app.loadGraph(graph("b"));
    vi.advanceTimersByTime(1000);
    one.app.client.close(); // F5 in tab one
    const reloaded = openTab(shared, tabA);
    expect(reloaded.nodes()).toEqual(["a"]);
    const fresh = openTab(shared, new MemoryStorage());
    expect(fresh.nodes()).toEqual(["b"]);
    vi.advanceTimersByTime(1000);
    two.app.loadGraph(graph("c"));
    vi.advanceTimersByTime(1000);
    const freshAgain = openTab(shared, new MemoryStorage());
    expect(freshAgain.nodes()).toEqual(["c"]);
    for (const tab of [two, reloaded, fresh, freshAgain]) tab.app.client.close();
  });

  it("keeps a new tab on the graph it opened even when another tab edits later", () => {
    const shared = new MemoryStorage();
    shared.setItem("nodegraph.autosave.v1", JSON.stringify({ autosave: 1, graph: graph("first") }));
    const tab = new MemoryStorage();
    const opened = openTab(shared, tab); // opened "first" from localStorage, edited nothing
    shared.setItem("nodegraph.autosave.v1", JSON.stringify({ autosave: 1, graph: graph("other") }));
    opened.app.client.close();
    expect(openTab(shared, tab).nodes()).toEqual(["first"]);
    expect(keptText(null, "shared")).toBe("shared");
    expect(keptText("{broken", "shared")).toBe("shared");
  });
});

/** A tab that opened graph a → b and ran it: r1 submitted, started, node a finished. */
function tabWithRunningRun(shared: MemoryStorage, tab: MemoryStorage): ReturnType<typeof openTab> {
  const opened = openTab(shared, tab);
  opened.app.loadGraph(graph("a", "b"));
  opened.socket.reply({ type: "submitted", run_id: "r1", position: 0 });
  opened.socket.reply({ type: "run_started", run_id: "r1", nodes: ["a", "b"], total: 2 });
  opened.socket.reply({ type: "node_finished", run_id: "r1", node_id: "a", seconds: 0.5 });
  return opened;
}

describe("the run shown on a tab's nodes, after a reload", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("shows the results of a run that ended before the reload", () => {
    const shared = new MemoryStorage();
    const tab = new MemoryStorage();
    const before = tabWithRunningRun(shared, tab);
    before.socket.reply({ type: "node_cached", run_id: "r1", node_id: "b" });
    before.socket.reply({ type: "run_finished", run_id: "r1" });
    before.socket.reply({ type: "queue_changed", run_id: "r1", status: "succeeded", pending: 0 });
    before.app.keepForReload(); // pagehide
    before.app.client.close();

    const after = openTab(shared, tab);
    expect(after.app.session.get().activeRun).toBe("r1");
    const badges = { a: { status: "done", seconds: 0.5 }, b: { status: "cached" } };
    expect(after.app.session.get().nodeStates).toEqual(badges);
    after.answer("history", { type: "history", total: 1, offset: 0, runs: [{ run_id: "r1", status: "succeeded" }] });
    expect(after.socket.messages().at(-1)).toMatchObject({ type: "get_outputs", run_id: "r1" });
    after.socket.reply({ type: "outputs", run_id: "r1", status: "succeeded", outputs: { b: { value: 2 } },
      files: [{ file_id: "output/x.wav", node_id: "b", kind: "audio" }], error: null });
    expect(after.app.session.get().nodeOutputs.b).toEqual({ value: 2 });
    expect(after.app.session.get().nodeFiles.b.map((f) => f.fileId)).toEqual(["output/x.wav"]);
    after.app.client.close();
  });

  it("settles the badges of a run that ended during the reload; another graph opened forgets the run", () => {
    const shared = new MemoryStorage();
    const tab = new MemoryStorage();
    const before = tabWithRunningRun(shared, tab);
    before.socket.reply({ type: "node_started", run_id: "r1", node_id: "b" });
    before.app.keepForReload();
    before.app.client.close();

    const after = openTab(shared, tab);
    after.answer("history", { type: "history", total: 1, offset: 0, runs: [{ run_id: "r1", status: "succeeded" }] });
    expect(after.app.session.get().nodeStates).toEqual({ a: { status: "done", seconds: 0.5 } });
    expect(after.socket.messages().at(-1)).toMatchObject({ type: "get_outputs", run_id: "r1" });
    after.app.loadGraph(graph("c"));
    vi.advanceTimersByTime(1000);
    after.app.keepForReload();
    after.app.client.close();
    const again = openTab(shared, tab);
    expect(again.nodes()).toEqual(["c"]);
    expect(again.app.session.get().activeRun).toBeNull();
    again.app.client.close();
  });

  it("shows the run whole after the reload, as History → Open does; a reload without a run shown fits as usual", () => {
    const shared = new MemoryStorage();
    const tab = new MemoryStorage();
    const before = tabWithRunningRun(shared, tab);
    before.socket.reply({ type: "run_finished", run_id: "r1" });
    before.app.keepForReload();
    before.app.client.close();
    const after = openTab(shared, tab);
    // the canvas fits the whole graph and refits it while the run's results come back (GraphCanvas fitFollowed)
    expect(after.app.canvas.followRun).toBe("r1");
    expect(after.app.editor.state.loadCount).toBe(1);
    after.app.loadGraph(graph("c"));
    expect(after.app.canvas.followRun).toBeNull();
    vi.advanceTimersByTime(1000);
    after.app.keepForReload();
    after.app.client.close();
    const again = openTab(shared, tab);
    expect(again.nodes()).toEqual(["c"]);
    expect(again.app.canvas.followRun).toBeNull(); // a readable zoom (GraphCanvas fitReadable)
    again.app.client.close();
  });

  it("reads back only well-formed badges", () => {
    const text = tabRunText("r", idMap([["a", { status: "done", seconds: 1 }]]));
    expect(readTabRun(text)).toEqual({ runId: "r", nodeStates: { a: { status: "done", seconds: 1 } } });
    const states = { a: { status: "weird" }, b: { status: "error", message: 3 } };
    const odd = JSON.stringify({ tab_run: 1, run_id: "r", node_states: states });
    expect(readTabRun(odd)).toEqual({ runId: "r", nodeStates: { b: { status: "error" } } });
    expect(readTabRun("r1")).toBeNull();
    expect(readTabRun(null)).toBeNull();
  });
});
