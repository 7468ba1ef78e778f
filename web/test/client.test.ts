import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NodegraphClient, ProtocolError, socketUrl, uploadName, type SocketLike } from "../src/protocol/client";
import { decodeFrame, encodeFrame } from "../src/protocol/frames";

class FakeSocket implements SocketLike {
  binaryType = "blob";
  readyState = 0;
  sent: (string | Uint8Array)[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  send(data: string | ArrayBufferLike | Uint8Array) {
    this.sent.push(data as string | Uint8Array);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  serverSends(message: object) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  drop() {
    this.readyState = 3;
    this.onclose?.({});
  }
  texts() {
    return this.sent.filter((s): s is string => typeof s === "string").map((s) => JSON.parse(s));
  }
}

const welcome = { type: "welcome", protocol_version: 1, server_version: "0", client_id: "c1", schema_hash: "h" };

describe("NodegraphClient", () => {
  let sockets: FakeSocket[];
  let client: NodegraphClient;
  let received: { type: string }[];
  let binary: { header: object; payload: Uint8Array }[];

  beforeEach(() => {
    vi.useFakeTimers();
    sockets = [];
    received = [];
    binary = [];
    client = new NodegraphClient(
      () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
      { onMessage: (m) => received.push(m), onBinary: (header, payload) => binary.push({ header, payload }) },
      "tok",
    );
  });
  afterEach(() => {
    client.close();
    vi.useRealTimers();
  });

  it("sends hello first and holds other messages until welcome", () => {
    client.connect();
    client.send({ type: "queue_status" });
    sockets[0].open();
    expect(sockets[0].texts()).toEqual([{ type: "hello", protocol_version: 1, batch: true, compact_events: true, token: "tok" }]);
    sockets[0].serverSends(welcome);
    expect(sockets[0].texts().map((m) => m.type)).toEqual(["hello", "queue_status"]);
    expect(client.status).toBe("connected");
    expect(received[0].type).toBe("welcome");
  });

  it("unpacks batch frames into their messages, in order, replies included", async () => {
    client.connect();
    sockets[0].open();
    sockets[0].serverSends(welcome);
    const pong = client.request({ type: "ping" });
    const id = sockets[0].texts()[1].request_id;
    sockets[0].serverSends({ type: "batch", messages: [
      { type: "node_started", run_id: "r", node_id: "a" },
      { type: "pong", request_id: id },
      "not a message",
      { type: "node_finished", run_id: "r", node_id: "a", seconds: 0.1 },
    ] });
    expect((await pong).type).toBe("pong");
    expect(received.map((m) => m.type)).toEqual(["welcome", "node_started", "pong", "node_finished"]);
  });

  it("expands node_events rows inside a batch into ordinary messages, in order", () => {
    client.connect();
    sockets[0].open();
    sockets[0].serverSends(welcome);
    sockets[0].serverSends({ type: "batch", messages: [
      { type: "run_started", run_id: "r" },
      { type: "node_events", event: "node_finished", run_id: "r", fields: ["node_id", "node_type", "seconds"],
        rows: [["a", "Int", 0.1], "not a row", ["b", "IntMath", 0.2]] },
      { type: "node_events", event: "node_cached", run_id: "r", fields: "not a list", rows: [["c"]] },
      { type: "run_finished", run_id: "r" },
    ] });
    expect(received.slice(1)).toEqual([
      { type: "run_started", run_id: "r" },
      { type: "node_finished", run_id: "r", node_id: "a", node_type: "Int", seconds: 0.1 },
      { type: "node_finished", run_id: "r", node_id: "b", node_type: "IntMath", seconds: 0.2 },
      { type: "run_finished", run_id: "r" },
    ]);
    sockets[0].serverSends({ type: "node_events", event: "node_cached", run_id: "r", fields: ["node_id"], rows: [["d"], ["e"]] });
    expect(received.slice(-2)).toEqual([
      { type: "node_cached", run_id: "r", node_id: "d" },
      { type: "node_cached", run_id: "r", node_id: "e" },
    ]);
  });

  it("matches replies to requests and rejects error replies", async () => {
    client.connect();
    sockets[0].open();
    sockets[0].serverSends(welcome);
    const ok = client.request({ type: "ping" });
    const bad = client.request({ type: "cancel", run_id: "x" });
    const [ping, cancel] = sockets[0].texts().slice(1);
    sockets[0].serverSends({ type: "error", code: "not_found", message: "no run 'x'", request_id: cancel.request_id });
    sockets[0].serverSends({ type: "pong", request_id: ping.request_id });
    await expect(ok).resolves.toMatchObject({ type: "pong" });
    await expect(bad).rejects.toMatchObject({ code: "not_found" });
    await expect(bad).rejects.toBeInstanceOf(ProtocolError);
  });

  it("uploads as a binary frame with a request id", async () => {
    client.connect();
    sockets[0].open();
    sockets[0].serverSends(welcome);
    const done = client.upload("cat.png", new Uint8Array([1, 2, 3]));
    const frame = sockets[0].sent.find((s) => typeof s !== "string") as Uint8Array;
    const { header, payload } = decodeFrame(frame);
    expect(header).toMatchObject({ type: "upload", name: "cat.png", kind: "image" });
    expect([...payload]).toEqual([1, 2, 3]);
    sockets[0].serverSends({ type: "uploaded", file_id: "input/cat.png", name: "cat.png", kind: "image", request_id: header.request_id });
    await expect(done).resolves.toMatchObject({ name: "cat.png" });
  });

  it("decodes binary frames from the server", () => {
    client.connect();
    sockets[0].open();
    sockets[0].serverSends(welcome);
    const frame = encodeFrame({ type: "preview", run_id: "r", node_id: "n", format: "jpeg", step: 1 }, new Uint8Array([9]));
    sockets[0].onmessage?.({ data: frame.buffer });
    expect(binary[0].header).toMatchObject({ type: "preview", node_id: "n" });
    expect([...binary[0].payload]).toEqual([9]);
  });

  it("reconnects with backoff after a drop, rejecting pending requests, and greets again", async () => {
    client.connect();
    sockets[0].open();
    sockets[0].serverSends(welcome);
    const pending = client.request({ type: "queue_status" });
    sockets[0].drop();
    await expect(pending).rejects.toMatchObject({ code: "disconnected" });
    expect(client.status).toBe("disconnected");
    client.send({ type: "history" }); // waits for the next welcome
    vi.advanceTimersByTime(499);
    expect(sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(2);
    sockets[1].open();
    sockets[1].serverSends({ ...welcome, client_id: "c2" });
    expect(sockets[1].texts().map((m) => m.type)).toEqual(["hello", "history"]);
    sockets[1].drop();
    vi.advanceTimersByTime(500);
    expect(sockets).toHaveLength(3); // backoff was reset by the welcome
  });

  it("resumes the last connection after a drop, so its runs keep reporting here", () => {
    client.connect();
    sockets[0].open();
    expect(sockets[0].texts()[0].resume).toBeUndefined(); // a first connection resumes nothing
    sockets[0].serverSends(welcome);
    sockets[0].drop();
    vi.advanceTimersByTime(500);
    sockets[1].open();
    expect(sockets[1].texts()[0]).toMatchObject({ type: "hello", resume: "c1" });
    sockets[1].serverSends({ ...welcome, client_id: "c2", resumed: "c1" });
    sockets[1].drop();
    vi.advanceTimersByTime(500);
    sockets[2].open();
    expect(sockets[2].texts()[0]).toMatchObject({ type: "hello", resume: "c2" });
  });

  it("refuses an upload over the server's frame limit before sending it, saying the limit", async () => {
    client.connect();
    sockets[0].open();
    sockets[0].serverSends({ ...welcome, max_message_bytes: 1024 });
    const refused = client.upload("photo.png", new Uint8Array(2000));
    await expect(refused).rejects.toMatchObject({ code: "too_large" });
    await expect(refused).rejects.toThrow(/up to 0\.0 MiB|--max-message-bytes/);
    expect(sockets[0].sent.filter((f) => typeof f !== "string")).toHaveLength(0);
    void client.upload("small.png", new Uint8Array(100)).catch(() => undefined);
    expect(sockets[0].sent.filter((f) => typeof f !== "string")).toHaveLength(1);
  });

  it("shortens an upload name over the server's 255 characters, keeping its extension", () => {
    const long = `${"a".repeat(300)}.png`;
    expect(Array.from(uploadName(long))).toHaveLength(255);
    expect(uploadName(long).endsWith(".png")).toBe(true);
    expect(uploadName("ünïcødé 😀.png")).toBe("ünïcødé 😀.png");
  });

  it("derives the websocket URL from the page, keeping the token", () => {
    expect(socketUrl({ href: "http://127.0.0.1:8188/?token=a%2Bb#x" })).toBe("ws://127.0.0.1:8188/ws?token=a%2Bb");
    expect(socketUrl({ href: "https://example.org/" })).toBe("wss://example.org/ws");
  });
});
