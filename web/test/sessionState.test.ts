import { describe, expect, it } from "vitest";
import type { ServerMessage } from "../src/protocol/messages";
import { initialSessionState, reduceSession, type SessionAction, type SessionState } from "../src/run/sessionState";

const context = { fileUrl: (id: string) => `files/${id}` };

function feed(...actions: SessionAction[]): SessionState {
  return actions.reduce<SessionState>((state, action) => reduceSession(state, action, context), initialSessionState);
}

const server = (message: ServerMessage): SessionAction => ({ type: "server", message });

describe("session state", () => {
  it("tracks per-node run states through a run", () => {
    let s = feed(
      server({ type: "submitted", run_id: "r1", position: 0 }),
      server({ type: "run_started", run_id: "r1", nodes: ["a", "b", "c", "skipped"], total: 4 }),
      server({ type: "node_cached", run_id: "r1", node_id: "a", node_type: "Int" }),
      server({ type: "node_started", run_id: "r1", node_id: "b", node_type: "Wait" }),
      server({ type: "node_progress", run_id: "r1", node_id: "b", value: 3, total: 10 }),
    );
    expect(s.myRuns).toEqual(["r1"]);
    expect(s.nodeStates).toEqual({
      a: { status: "cached" },
      b: { status: "running", value: 3, total: 10 },
      c: { status: "queued" },
      skipped: { status: "queued" },
    });
    s = reduceSession(s, server({ type: "node_finished", run_id: "r1", node_id: "b", node_type: "Wait", seconds: 1.5 }), context);
    s = reduceSession(s, server({ type: "node_error", run_id: "r1", node_id: "c", node_type: "X", exception_type: "ValueError", message: "bad" }), context);
    s = reduceSession(s, server({ type: "run_failed", run_id: "r1", node_id: "c", message: "bad" }), context);
    expect(s.nodeStates.b).toEqual({ status: "done", seconds: 1.5 });
    expect(s.nodeStates.c).toEqual({ status: "error", message: "bad", exceptionType: "ValueError" });
    expect(s.nodeStates.skipped).toBeUndefined();
    expect(s.banner?.kind).toBe("error");
  });

  it("keeps every warning of the run on its node (none replaces another), and only for the run on the canvas", () => {
    const s = feed(
      server({ type: "run_started", run_id: "r1", nodes: ["prompt", "sampler"], total: 2 }),
      server({ type: "node_started", run_id: "r1", node_id: "prompt", node_type: "EncodeText" }),
      server({ type: "node_warning", run_id: "r1", node_id: "prompt", node_type: "EncodeText", message: "unknown words: yelow" }),
      server({ type: "node_finished", run_id: "r1", node_id: "prompt", node_type: "EncodeText", seconds: 0.1 }),
      server({ type: "node_started", run_id: "r1", node_id: "sampler", node_type: "KSampler" }),
      server({ type: "node_warning", run_id: "r1", node_id: "sampler", node_type: "KSampler", message: "24 px is outside 32-128" }),
      server({ type: "node_warning", run_id: "r1", node_id: "sampler", node_type: "KSampler", message: "24 px is outside 32-128" }),
      server({ type: "node_finished", run_id: "r1", node_id: "sampler", node_type: "KSampler", seconds: 0.1 }),
      server({ type: "run_finished", run_id: "r1", seconds: 0.2 }),
    );
    expect(s.warnings).toEqual({
      prompt: [{ message: "unknown words: yelow", earlier: false }],
      sampler: [{ message: "24 px is outside 32-128", earlier: false }],
    });
    expect(s.banner).toBeNull(); // the warnings banner lists them (editor/Panels.tsx RunWarnings)
    const other = reduceSession(s, server({ type: "node_warning", run_id: "r0", node_id: "x", node_type: "X", message: "old" }), context);
    expect(other.warnings).toEqual(s.warnings);
    const next = reduceSession(s, server({ type: "run_started", run_id: "r2", nodes: ["prompt"], total: 1 }), context);
    expect(next.warnings).toEqual({});
  });

  it("shows a cached result's warnings again, marked as from an earlier run; a result computed again starts clean", () => {
    // Result keys as app.ts derives them from the submitted graph (run/warnings.ts): r1 and r2 ran
    // the same graph, r3 changed the sampler's inputs, r4 went back to r1's sampler inputs.
    const keys: Record<string, Record<string, string>> = {
      r1: { prompt: "P", sampler: "S1" },
      r2: { prompt: "P", sampler: "S1" },
      r3: { prompt: "P", sampler: "S2" },
      r4: { prompt: "P", sampler: "S1" },
    };
    const keyed = { ...context, warningKey: (run: string, node: string) => `r:${keys[run][node]}` };
    const step = (state: SessionState, ...messages: ServerMessage[]) => messages.reduce((st, m) => reduceSession(st, server(m), keyed), state);
    const ran = (run: string, node: string, warning?: string): ServerMessage[] => [
      { type: "node_started", run_id: run, node_id: node, node_type: "T" },
      ...(warning ? [{ type: "node_warning", run_id: run, node_id: node, node_type: "T", message: warning } as ServerMessage] : []),
      { type: "node_finished", run_id: run, node_id: node, node_type: "T", seconds: 0.1 },
    ];
    const cached = (run: string, node: string): ServerMessage => ({ type: "node_cached", run_id: run, node_id: node, node_type: "T" });
    const started = (run: string): ServerMessage => ({ type: "run_started", run_id: run, nodes: ["prompt", "sampler"], total: 2 });

    let s = step(initialSessionState, started("r1"), ...ran("r1", "prompt", "unknown words: purpel"), ...ran("r1", "sampler", "24 px"));
    s = step(s, started("r2"), cached("r2", "prompt"), cached("r2", "sampler"));
    expect(s.warnings).toEqual({
      prompt: [{ message: "unknown words: purpel", earlier: true }],
      sampler: [{ message: "24 px", earlier: true }],
    });
    expect(s.nodeStates.sampler).toEqual({ status: "cached" });
    s = step(s, started("r3"), cached("r3", "prompt"), ...ran("r3", "sampler")); // a new size: no warning
    expect(s.warnings).toEqual({ prompt: [{ message: "unknown words: purpel", earlier: true }] });
    s = step(s, started("r4"), cached("r4", "prompt"), cached("r4", "sampler")); // r1's result again, from the cache
    expect(s.warnings.sampler).toEqual([{ message: "24 px", earlier: true }]);
    s = step(s, started("r4"), ...ran("r4", "prompt")); // the prompt ran again and is fine now
    s = step(s, started("r4"), cached("r4", "prompt"));
    expect(s.warnings).toEqual({});
  });

  it("marks the running node interrupted", () => {
    const s = feed(
      server({ type: "run_started", run_id: "r1", nodes: ["a"], total: 1 }),
      server({ type: "node_started", run_id: "r1", node_id: "a", node_type: "Wait" }),
      server({ type: "run_interrupted", run_id: "r1", node_id: "a" }),
    );
    expect(s.nodeStates.a).toEqual({ status: "interrupted" });
  });

  it("settles the shown run's badges from queue_changed or the history when its last event was missed", () => {
    const running = [
      server({ type: "run_started", run_id: "r1", nodes: ["a", "b"], total: 2 }),
      server({ type: "node_started", run_id: "r1", node_id: "a", node_type: "Wait" }),
    ];
    // the connection dropped before run_finished; the broadcast after the reconnect says how it ended
    let s = feed(...running, server({ type: "queue_changed", run_id: "r1", status: "succeeded", pending: 0 }));
    expect(s.nodeStates).toEqual({});
    s = feed(...running, server({ type: "queue_changed", run_id: "other", status: "failed", pending: 0 }));
    expect(s.nodeStates.a).toEqual({ status: "running" }); // another run's end changes nothing
    // the server restarted meanwhile: its history says the run was interrupted
    s = feed(...running, server({ type: "history", total: 1, offset: 0, runs: [{ run_id: "r1", status: "interrupted" }] }));
    expect(s.nodeStates).toEqual({ a: { status: "interrupted" } });
    s = feed(...running, server({ type: "history", total: 1, offset: 0, runs: [{ run_id: "r1", status: "running" }] }));
    expect(s.nodeStates.a).toEqual({ status: "running" });
  });

  it("stores validation errors from invalid_graph and clears them per input", () => {
    let s = feed(
      server({
        type: "error",
        code: "invalid_graph",
        message: "the graph is invalid (2 error(s)); nothing was queued",
        details: {
          errors: [
            { code: "out_of_range", message: "too big", node_id: "a", input: "value" },
            { code: "missing_input", message: "needs value", node_id: "b", input: "value" },
          ],
        },
      }),
    );
    expect(s.validationErrors).toHaveLength(2);
    expect(s.banner?.text).toBe("The graph is invalid (2 errors): too big · needs value");
    const one = feed(server({ type: "error", code: "invalid_graph", message: "the graph is invalid (1 error(s)); nothing was queued",
      details: { errors: [{ code: "missing_input", message: "needs value", node_id: "b", input: "value" }] } }));
    expect(one.banner?.text).toBe("The graph is invalid (1 error): needs value");   // not "1 error(s)"
    s = reduceSession(s, { type: "clear_input_error", nodeId: "a", input: "value" }, context);
    expect(s.validationErrors.map((e) => e.node_id)).toEqual(["b"]);
    s = reduceSession(s, server({ type: "submitted", run_id: "r", position: 0 }), context);
    expect(s.validationErrors).toEqual([]);
  });

  it("orders earlier runs' files in the gallery newest run first, whatever order their replies come in", () => {
    const history = server({ type: "history", total: 3, offset: 0, runs: [
      { run_id: "new", status: "succeeded" }, { run_id: "mid", status: "succeeded" }, { run_id: "old", status: "succeeded" }] });
    const files = (runId: string, ...names: string[]): SessionAction => ({ type: "history_outputs", message: {
      type: "outputs", run_id: runId, status: "succeeded", outputs: {}, error: null,
      files: names.map((name) => ({ file_id: `output/${name}`, node_id: "save", kind: "image", mime: "image/png" })) } });
    const s = feed(history, files("old", "o.png"), files("new", "n1.png", "n2.png"), files("mid", "m.png"));
    expect(s.gallery.map((i) => i.fileId)).toEqual(["output/n1.png", "output/n2.png", "output/m.png", "output/o.png"]);
  });

  it("leaves out files the server marks missing (deleted, or their name reused by a later run)", () => {
    const history = server({ type: "history", total: 1, offset: 0, runs: [{ run_id: "old", status: "succeeded" }] });
    const s = feed(history, { type: "history_outputs", message: {
      type: "outputs", run_id: "old", status: "succeeded", outputs: {}, error: null,
      files: [{ file_id: "output/a.png", node_id: "save", kind: "image", missing: true },
              { file_id: "output/b.png", node_id: "save", kind: "image" }] } });
    expect(s.gallery.map((i) => i.fileId)).toEqual(["output/b.png"]);
    expect((s.runFiles.old ?? []).map((i) => i.fileId)).toEqual(["output/b.png"]);
  });

  it("forgets a deleted file everywhere: gallery, the run's files and the history's thumbnail", () => {
    const history = server({ type: "history", total: 1, offset: 0, runs: [{ run_id: "old", status: "succeeded", thumbnail: "output/a.png" }] });
    let s = feed(history, { type: "history_outputs", message: {
      type: "outputs", run_id: "old", status: "succeeded", outputs: {}, error: null,
      files: [{ file_id: "output/a.png", node_id: "save", kind: "image" }, { file_id: "output/b.png", node_id: "save", kind: "image" }] } });
    s = reduceSession(s, server({ type: "file_deleted", file_id: "output/a.png" }), context);
    expect(s.gallery.map((i) => i.fileId)).toEqual(["output/b.png"]);
    expect(s.runFiles.old.map((i) => i.fileId)).toEqual(["output/b.png"]);
    expect(s.history[0].thumbnail).toBeNull();
  });

  it("collects outputs and images once each, on the node and in the gallery", () => {
    let s = feed(server({ type: "run_started", run_id: "r1", nodes: ["save"], total: 1 }));
    s = reduceSession(s, { type: "file", file: { runId: "r1", nodeId: "save", fileId: "output/a.png", url: "files/output/a.png", index: 0, kind: "image" } }, context);
    s = reduceSession(s, server({
      type: "outputs", run_id: "r1", status: "succeeded", error: null,
      outputs: { show: { value: 3, text: "3" } },
      files: [{ file_id: "output/a.png", node_id: "save", kind: "image" }, { file_id: "output/b.png", node_id: "save", kind: "image" }],
    }), context);
    expect(s.nodeOutputs.show).toEqual({ value: 3, text: "3" });
    expect(s.nodeFiles.save.map((i) => i.fileId)).toEqual(["output/a.png", "output/b.png"]);
    expect(s.gallery.map((i) => i.fileId)).toEqual(["output/b.png", "output/a.png"]);
    expect(s.gallery[0].url).toBe("files/output/b.png");
  });

  it("ignores previews of runs that are not shown and resets at each run start", () => {
    let s = feed(server({ type: "run_started", run_id: "r1", nodes: ["k"], total: 1 }));
    s = reduceSession(s, { type: "preview", runId: "other", nodeId: "k", url: "blob:1" }, context);
    expect(s.previews).toEqual({});
    s = reduceSession(s, { type: "preview", runId: "r1", nodeId: "k", url: "blob:2" }, context);
    expect(s.previews).toEqual({ k: "blob:2" });
    s = reduceSession(s, server({ type: "run_started", run_id: "r2", nodes: ["k"], total: 1 }), context);
    expect(s.previews).toEqual({});
    expect(s.activeRun).toBe("r2");
  });

  it("keeps cached schemas when the server says they are current", () => {
    let s = feed(server({ type: "nodes", schema_hash: "h1", nodes: [{ type: "Int", category: "p", display_name: "Int", description: "", output_node: false, inputs: {}, outputs: [] }], types: {} }));
    expect(Object.keys(s.schemas.nodes)).toEqual(["Int"]);
    s = reduceSession(s, server({ type: "nodes", schema_hash: "h1" }), context);
    expect(Object.keys(s.schemas.nodes)).toEqual(["Int"]);
  });
});

describe("warnings the engine gives again from the cache", () => {
  it("marks a node_warning with cached: true as from an earlier run", () => {
    const s = feed(
      server({ type: "submitted", run_id: "r1", position: 0 }),
      server({ type: "run_started", run_id: "r1", nodes: ["prompt", "save"], total: 2 }),
      server({ type: "node_cached", run_id: "r1", node_id: "save", node_type: "SaveImage" }),
      server({ type: "node_warning", run_id: "r1", node_id: "prompt", node_type: "EncodeText",
               message: "unknown word 'purpel'", cached: true }),
    );
    expect(s.warnings["prompt"]).toEqual([{ message: "unknown word 'purpel'", earlier: true }]);
  });
});

describe("a run being interrupted", () => {
  it("is marked from the server's `interrupting` reply until it leaves the queue's running line", () => {
    const running = { run_id: "r1", status: "running" as const };
    let s = feed(server({ type: "queue", running, pending: [] }), server({ type: "interrupting", run_id: "r1" }));
    expect(s.interrupting).toEqual(["r1"]);
    s = reduceSession(s, server({ type: "queue", running, pending: [] }), context);
    expect(s.interrupting).toEqual(["r1"]); // still running: still interrupting
    s = reduceSession(s, server({ type: "queue", running: null, pending: [] }), context);
    expect(s.interrupting).toEqual([]);
  });
});
