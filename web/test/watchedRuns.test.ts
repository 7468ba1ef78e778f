import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ServerMessage } from "../src/protocol/messages";
import { initialSessionState, reduceSession, type SessionAction, type SessionState } from "../src/run/sessionState";
import { watchedProgressText } from "../src/run/watchedRuns";
import { EditorApp } from "../src/state/app";
import { FakeSocket, welcome } from "./helpers";

const context = { fileUrl: (id: string) => `files/${id}` };
const server = (message: ServerMessage): SessionAction => ({ type: "server", message });

function feed(state: SessionState, ...actions: SessionAction[]): SessionState {
  return actions.reduce<SessionState>((s, action) => reduceSession(s, action, context), state);
}

describe("a watched run (submitted by another tab)", () => {
  it("counts its nodes and shows the running node's steps, without touching the canvas", () => {
    const shown = feed(
      initialSessionState,
      server({ type: "submitted", run_id: "mine", position: 0 }),
      server({ type: "run_started", run_id: "mine", nodes: ["a"], total: 1 }),
      server({ type: "node_finished", run_id: "mine", node_id: "a", node_type: "Int", seconds: 1 }),
    );
    let s = feed(
      shown,
      { type: "watch_run", runId: "other" },
      server({ type: "run_started", run_id: "other", nodes: ["a", "sampler", "m"], total: 3, skipped: ["m"] }),
      server({ type: "node_cached", run_id: "other", node_id: "a", node_type: "Int" }),
      server({ type: "node_started", run_id: "other", node_id: "sampler", node_type: "KSampler" }),
      server({ type: "node_progress", run_id: "other", node_id: "sampler", value: 12, total: 20 }),
      server({ type: "node_warning", run_id: "other", node_id: "sampler", node_type: "KSampler", message: "hm" }),
    );
    expect(s.watched.other).toEqual({ nodesDone: 1, nodesTotal: 2, node: "sampler", value: 12, total: 20 });
    expect(watchedProgressText(s.watched.other)).toBe("1/2 nodes · sampler 12/20");
    expect(s.activeRun).toBe("mine");
    expect(s.nodeStates).toEqual(shown.nodeStates);
    expect(s.warnings).toEqual(shown.warnings);
    s = feed(s, server({ type: "run_finished", run_id: "other", seconds: 2 }));
    expect(s.watched.other).toBeUndefined();
    expect(s.nodeStates).toEqual(shown.nodeStates);
    expect(s.banner).toBeNull();
  });

  it("shows the running node alone when the watch began after run_started", () => {
    const s = feed(
      initialSessionState,
      { type: "watch_run", runId: "other" },
      server({ type: "node_progress", run_id: "other", node_id: "sampler", value: 3, total: 20 }),
    );
    expect(watchedProgressText(s.watched.other)).toBe("sampler 3/20");
    expect(s.activeRun).toBeNull();
    expect(s.nodeStates).toEqual({});
  });

  it("is forgotten when the run had already ended, ends (queue_changed), or is this editor's own", () => {
    const watch: SessionAction = { type: "watch_run", runId: "r" };
    const ended = server({ type: "watching", run_id: "r", status: "succeeded", watching: false });
    expect(feed(initialSessionState, watch, ended).watched).toEqual({});
    const failed = server({ type: "queue_changed", run_id: "r", status: "failed", pending: 0 });
    expect(feed(initialSessionState, watch, failed).watched).toEqual({});
    const requeued = feed(initialSessionState, watch, server({ type: "requeued", run_id: "r", position: 0 }));
    expect(requeued.watched).toEqual({});
    expect(requeued.myRuns).toEqual(["r"]);
    const mine = feed(initialSessionState, server({ type: "submitted", run_id: "r", position: 0 }), watch);
    expect(mine.watched).toEqual({});
  });
});

describe("the editor watches runs it did not submit", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function openEditor() {
    const socket = new FakeSocket();
    const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, null, null);
    app.start();
    socket.open();
    socket.reply(welcome({ client_id: "c2", resumed: "c1" }));
    const watches = () => socket.messages().filter((m) => m.type === "watch").map((m) => m.run_id);
    return { app, socket, watches };
  }

  it("sends watch once for another client's running run (queue_changed or the queue reply)", () => {
    const { app, socket, watches } = openEditor();
    socket.reply({ type: "queue_changed", run_id: "other", status: "running", pending: 0 });
    socket.reply({ type: "queue_changed", run_id: "other", status: "running", pending: 0 });
    socket.reply({ type: "queue", running: { run_id: "other", status: "running", client_id: "c9" }, pending: [] });
    expect(watches()).toEqual(["other"]);
    expect(app.session.get().watched.other).toBeDefined();
    socket.reply({ type: "queue", running: { run_id: "late", status: "running", client_id: "c9" }, pending: [] });
    expect(watches()).toEqual(["other", "late"]);
  });

  it("never watches its own runs (submitted here, or under the connection it resumed)", () => {
    const { app, socket, watches } = openEditor();
    socket.reply({ type: "submitted", run_id: "mine", position: 1 });
    socket.reply({ type: "queue_changed", run_id: "mine", status: "running", pending: 0 });
    socket.reply({ type: "queue", running: { run_id: "before", status: "running", client_id: "c1" }, pending: [] });
    socket.reply({ type: "queue_changed", run_id: "done", status: "succeeded", pending: 0 });
    expect(watches()).toEqual([]);
    socket.reply({ type: "run_started", run_id: "mine", nodes: ["a"], total: 1 });
    expect(app.session.get().activeRun).toBe("mine");
  });
});
