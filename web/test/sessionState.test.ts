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

  it("shows a node's warning in the banner, and only for the run on the canvas", () => {
    const s = feed(
      server({ type: "run_started", run_id: "r1", nodes: ["prompt"], total: 1 }),
      server({ type: "node_warning", run_id: "r1", node_id: "prompt", node_type: "EncodeText", message: "unknown words: yelow" }),
      server({ type: "node_finished", run_id: "r1", node_id: "prompt", node_type: "EncodeText", seconds: 0.1 }),
      server({ type: "run_finished", run_id: "r1", seconds: 0.2 }),
    );
    expect(s.banner).toEqual({ kind: "info", text: "Warning from node prompt: unknown words: yelow" });
    const other = reduceSession(s, server({ type: "node_warning", run_id: "r0", node_id: "x", node_type: "X", message: "old" }), context);
    expect(other.banner).toEqual(s.banner);
  });

  it("marks the running node interrupted", () => {
    const s = feed(
      server({ type: "run_started", run_id: "r1", nodes: ["a"], total: 1 }),
      server({ type: "node_started", run_id: "r1", node_id: "a", node_type: "Wait" }),
      server({ type: "run_interrupted", run_id: "r1", node_id: "a" }),
    );
    expect(s.nodeStates.a).toEqual({ status: "interrupted" });
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
    expect(s.banner?.text).toContain("too big");
    s = reduceSession(s, { type: "clear_input_error", nodeId: "a", input: "value" }, context);
    expect(s.validationErrors.map((e) => e.node_id)).toEqual(["b"]);
    s = reduceSession(s, server({ type: "submitted", run_id: "r", position: 0 }), context);
    expect(s.validationErrors).toEqual([]);
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
