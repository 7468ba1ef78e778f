/** Shared test helpers: the real node schemas captured from `nodegraph nodes --json`. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { vi } from "vitest";
import { schemaSetFrom, type NodeSchema, type PortType, type SchemaSet } from "../src/schema/types";
import { EditorApp } from "../src/state/app";
import type { StorageLike } from "../src/state/autosave";

const here = fileURLToPath(new URL(".", import.meta.url));

export function realSchemas(): SchemaSet {
  const raw = JSON.parse(readFileSync(`${here}fixtures/nodes.json`, "utf8")) as {
    schema_hash: string;
    nodes: NodeSchema[];
    types: Record<string, PortType>;
  };
  return schemaSetFrom(raw.schema_hash, raw.nodes, raw.types);
}

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A stand-in for the browser WebSocket: records what the client sends, replies on demand. */
export class FakeSocket {
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
  /** Open the socket (the client then says hello). */
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  reply(message: object) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  messages(): Record<string, unknown>[] {
    return this.sent.map((s) => JSON.parse(s));
  }
}

/** A welcome message as the server sends it (extra fields override). */
export function welcome(extra: Record<string, unknown> = {}) {
  return { type: "welcome", protocol_version: 1, server_version: "0", client_id: "me", schema_hash: "h", user: null, plugin_warnings: [], ...extra };
}

/**
 * An EditorApp on a FakeSocket, started, connected and welcomed, with fake timers on (pair with
 * `stopApp` in afterEach). `storage` null: no localStorage (autosave and schema cache off).
 */
export function connectedApp(storage: StorageLike | null = null): { app: EditorApp; socket: FakeSocket } {
  vi.useFakeTimers();
  const socket = new FakeSocket();
  const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, storage);
  app.start();
  socket.open();
  socket.reply(welcome());
  return { app, socket };
}

export function stopApp(app: EditorApp): void {
  app.client.close();
  vi.useRealTimers();
}
