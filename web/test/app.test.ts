import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { SocketLike } from "../src/protocol/client";
import { EditorApp } from "../src/state/app";
import { realSchemas } from "./helpers";

class FakeSocket implements SocketLike {
  binaryType = "blob";
  readyState = 0;
  sent: string[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  send(data: string | ArrayBufferLike | Uint8Array) {
    if (typeof data === "string") this.sent.push(data);
  }
  close() {}
  reply(message: object) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  messages() {
    return this.sent.map((s) => JSON.parse(s));
  }
}

const schemas = realSchemas();

describe("EditorApp with a fake server", () => {
  let socket: FakeSocket;
  let app: EditorApp;

  beforeEach(() => {
    vi.useFakeTimers();
    socket = new FakeSocket();
    app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/?token=t" });
    app.start();
    socket.readyState = 1;
    socket.onopen?.({});
    socket.reply({ type: "welcome", protocol_version: 1, server_version: "0", client_id: "me", schema_hash: "h" });
  });
  afterEach(() => {
    app.client.close();
    vi.useRealTimers();
  });

  it("asks for schemas, queue, history and models after the welcome, and builds token-aware file URLs", () => {
    expect(socket.messages().map((m) => m.type)).toEqual(["hello", "list_nodes", "queue_status", "history", "list_models", "list_templates"]);
    expect(socket.messages()[0].token).toBe("t");
    expect(app.fileUrl("output/run 1/a.png")).toBe("files/output/run%201/a.png?token=t");
  });

  it("submits the edited graph and shows validation errors on the nodes", async () => {
    socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
    app.loadGraph({ format_version: 1, nodes: { show: { type: "ShowValue" } } });
    const done = app.run();
    const submit = socket.messages().at(-1);
    expect(submit.type).toBe("submit");
    expect(submit.graph).toEqual({ format_version: 2, nodes: { show: { type: "ShowValue" } } });
    socket.reply({
      type: "error", code: "invalid_graph", message: "the graph is invalid (1 error(s)); nothing was queued", request_id: submit.request_id,
      details: { errors: [{ code: "missing_input", message: "ShowValue needs input 'value'", node_id: "show", input: "value" }] },
    });
    await done;
    expect(app.session.get().validationErrors).toHaveLength(1);
    expect(app.toasts.get().at(-1)?.text).toMatch(/invalid \(1 error\)/);
  });

  it("fetches outputs after a run and asks again while the server has not recorded them", () => {
    socket.reply({ type: "submitted", run_id: "r1", position: 0, request_id: "x" });
    socket.reply({ type: "run_started", run_id: "r1", nodes: ["show"], total: 1 });
    socket.reply({ type: "run_finished", run_id: "r1", seconds: 0.1 });
    expect(socket.messages().at(-1)).toEqual({ type: "get_outputs", run_id: "r1" });
    socket.reply({ type: "outputs", run_id: "r1", status: "running", outputs: {}, files: [], error: null });
    vi.advanceTimersByTime(300);
    expect(socket.messages().at(-1)).toEqual({ type: "get_outputs", run_id: "r1" });
    socket.reply({ type: "outputs", run_id: "r1", status: "succeeded", outputs: { show: { value: 1, text: "1" } }, files: [], error: null });
    expect(app.session.get().nodeOutputs.show).toEqual({ value: 1, text: "1" });
  });

  it("refreshes the queue (coalesced) on queue_changed broadcasts", () => {
    const before = socket.sent.length;
    socket.reply({ type: "queue_changed", run_id: "r", status: "queued", pending: 1 });
    socket.reply({ type: "queue_changed", run_id: "s", status: "queued", pending: 2 });
    vi.advanceTimersByTime(150);
    expect(socket.messages().slice(before).map((m) => m.type)).toEqual(["queue_status", "history"]);
  });

  it("pastes copied nodes with fresh ids as one undo step", () => {
    app.loadGraph({ format_version: 1, nodes: { a: { type: "Int", inputs: { value: 1 } } } });
    app.editor.select({ a: true });
    expect(app.copySelection()).toBe(true);
    app.paste();
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["a", "int"]);
    expect(app.editor.state.selectedNodes).toEqual({ int: true });
    app.editor.undo();
    expect(Object.keys(app.editor.doc.nodes)).toEqual(["a"]);
  });
});
