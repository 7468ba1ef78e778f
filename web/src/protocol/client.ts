/**
 * The websocket client: one connection to `/ws` that says `hello` first,
 * reconnects when it drops, and matches replies to requests by `request_id`.
 *
 * - Messages sent before the server's `welcome` wait in an outbox and go out,
 *   in order, right after it; after a drop they wait for the next welcome.
 * - `request(msg)` resolves with the reply carrying the same `request_id`, or
 *   rejects with a `ProtocolError` for an `error` reply or when the
 *   connection drops first.
 * - Every text message (replies included) also goes to `onMessage`; binary
 *   frames (previews, output images) are decoded and go to `onBinary`.
 * - Reconnection backs off from 0.5 s to 5 s; `close()` stops it. The next `hello` names the
 *   last connection's `client_id` (`resume`), so the runs submitted before the drop go on
 *   reporting their progress, previews and results to this editor.
 * - An upload larger than the server's frame limit (`welcome.max_message_bytes`) is refused
 *   here with a `too_large` ProtocolError that says the limit (the server would close the
 *   connection).
 * - `hello` asks for batch frames (`batch: true`, docs/protocol.md "Batch frames"): a
 *   `{type: "batch", messages: [...]}` frame is unpacked and its messages handled one by
 *   one, in order, exactly as if they had come as separate frames. It also asks for compact
 *   node events (`compact_events: true`): a `node_events` message inside a batch
 *   (`{event, run_id, fields, rows}`) is expanded into one `{type: event, run_id, ...}`
 *   message per row (`expandNodeEvents`), so the rest of the editor never sees it.
 * - Integers beyond 2^53 are exact where they matter (graph/exactJson.ts): messages are
 *   written with `stringifyJson` (a graph's BigInt seeds as plain JSON numbers), and the
 *   messages that carry a graph or seeds (EXACT_MESSAGES: `run`, `template`,
 *   `imported_graph`, `history`) are read with `parseJson`, their big integers as BigInts.
 *
 * The socket is made by a factory, so tests drive the client with a fake one.
 */
import { parseJson, stringifyJson } from "../graph/exactJson";
import { decodeFrame, encodeFrame, PROTOCOL_VERSION, type FrameHeader } from "./frames";
import type { UploadKind } from "../schema/widgets";

export type ConnectionStatus = "connecting" | "connected" | "disconnected";

/** The subset of the browser WebSocket the client uses. */
export interface SocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  send(data: string | ArrayBufferLike | Uint8Array): void;
  close(): void;
}

export type JsonMessage = Record<string, unknown> & { type: string };

export class ProtocolError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export interface ClientHandlers {
  onMessage?: (message: JsonMessage) => void;
  onBinary?: (header: FrameHeader, payload: Uint8Array) => void;
  onStatus?: (status: ConnectionStatus) => void;
}

const OPEN = 1;
const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 5000;

interface Pending {
  resolve: (reply: JsonMessage) => void;
  reject: (error: Error) => void;
}

export class NodegraphClient {
  private socket: SocketLike | null = null;
  private greeted = false;
  private closed = false;
  private outbox: { frame: string | Uint8Array; requestId?: string }[] = [];
  private pending = new Map<string, Pending>();
  private nextId = 1;
  private backoff = MIN_BACKOFF_MS;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** This connection's id (from `welcome`); the next connection resumes it. */
  private clientId: string | null = null;
  private maxMessageBytes: number | null = null;
  status: ConnectionStatus = "disconnected";

  constructor(
    private readonly makeSocket: () => SocketLike,
    private readonly handlers: ClientHandlers = {},
    private readonly token: string | null = null,
    resumeFrom: string | null = null, // the client_id of this tab's connection before a page reload
  ) {
    this.clientId = resumeFrom;
  }

  /** Open the connection (and keep reopening it until `close`). */
  connect(): void {
    this.closed = false;
    this.open();
  }

  /** Stop reconnecting and close the socket; pending requests are rejected. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    this.dropped();
  }

  /** Send a message without waiting for a reply (queued until the connection is greeted). */
  send(message: JsonMessage): void {
    this.enqueue({ frame: stringifyJson(message) });
  }

  /** Send a message and wait for its reply (matched by request_id). */
  request<T extends JsonMessage = JsonMessage>(message: JsonMessage): Promise<T> {
    const requestId = `r${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(requestId, { resolve: resolve as (m: JsonMessage) => void, reject });
      this.enqueue({ frame: stringifyJson({ ...message, request_id: requestId }), requestId });
    });
  }

  /** Upload a file as a binary frame; resolves with the `uploaded` reply. `subfolder`: a folder inside the input folder
   *  to store it in ("dataset/10_zorb", created: a training dataset's folders); `caption`: a .txt / .caption beside
   *  an image of a dataset (docs/protocol.md `upload`). */
  upload(name: string, data: Uint8Array, kind: UploadKind | "caption" = "image", subfolder = ""): Promise<JsonMessage & { file_id: string; name: string }> {
    const requestId = `r${this.nextId++}`;
    const header = { type: "upload", name: uploadName(name), kind, ...(subfolder ? { subfolder } : {}), request_id: requestId };
    const frame = encodeFrame(header, data);
    if (this.maxMessageBytes && frame.byteLength > this.maxMessageBytes) {
      const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
      return Promise.reject(new ProtocolError("too_large",
        `${name} is ${mib(data.byteLength)}; this server takes uploads up to ${mib(this.maxMessageBytes)} ` +
        "(its --max-message-bytes): make the file smaller, or copy it into the server's input folder"));
    }
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve: resolve as (m: JsonMessage) => void, reject });
      this.enqueue({ frame, requestId });
    });
  }

  private enqueue(item: { frame: string | Uint8Array; requestId?: string }): void {
    if (this.greeted && this.socket?.readyState === OPEN) this.socket.send(item.frame);
    else this.outbox.push(item);
  }

  private setStatus(status: ConnectionStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.handlers.onStatus?.(status);
  }

  private open(): void {
    if (this.closed || this.socket) return;
    this.setStatus("connecting");
    let socket: SocketLike;
    try {
      socket = this.makeSocket();
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      const hello: Record<string, unknown> = { type: "hello", protocol_version: PROTOCOL_VERSION, batch: true, compact_events: true };
      if (this.token) hello.token = this.token;
      if (this.clientId) hello.resume = this.clientId;
      socket.send(JSON.stringify(hello));
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onerror = () => undefined; // onclose follows and handles it
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.dropped();
      this.scheduleReconnect();
    };
  }

  private dropped(): void {
    this.greeted = false;
    for (const [, waiting] of this.pending) waiting.reject(new ProtocolError("disconnected", "the connection to the server dropped"));
    this.pending.clear();
    this.outbox = this.outbox.filter((item) => item.requestId === undefined); // their promises were rejected
    this.setStatus("disconnected");
  }

  private scheduleReconnect(): void {
    if (this.closed || this.timer) return;
    const delay = this.backoff;
    this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.open();
    }, delay);
  }

  private receive(data: unknown): void {
    if (typeof data !== "string") {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data)
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
      if (!bytes) return;
      try {
        const { header, payload } = decodeFrame(bytes);
        this.handlers.onBinary?.(header, payload);
      } catch (error) {
        console.warn("nodegraph: ignoring a malformed binary frame:", error);
      }
      return;
    }
    let message: JsonMessage;
    try {
      message = parseServerText(data);
    } catch {
      console.warn("nodegraph: ignoring a text frame that is not JSON");
      return;
    }
    if (message.type === "batch" && Array.isArray(message.messages)) {
      for (const inner of message.messages) {
        if (inner === null || typeof inner !== "object" || typeof (inner as JsonMessage).type !== "string") continue;
        this.handleExpanded(inner as JsonMessage);
      }
      return;
    }
    this.handleExpanded(message);
  }

  /** A message, or each message a `node_events` stands for (the server sends those only in batches). */
  private handleExpanded(message: JsonMessage): void {
    if (message.type === "node_events") {
      for (const event of expandNodeEvents(message)) this.handle(event);
    } else {
      this.handle(message);
    }
  }

  private handle(message: JsonMessage): void {
    if (message.type === "welcome") {
      this.greeted = true;
      if (typeof message.client_id === "string") this.clientId = message.client_id;
      this.maxMessageBytes = typeof message.max_message_bytes === "number" ? message.max_message_bytes : null;
      this.backoff = MIN_BACKOFF_MS;
      this.setStatus("connected");
      const queued = this.outbox;
      this.outbox = [];
      this.handlers.onMessage?.(message); // the app's start-up requests go first...
      for (const item of queued) this.enqueue(item); // ...then what waited
      return;
    }
    const requestId = message.request_id;
    if (requestId !== undefined && this.pending.has(String(requestId))) {
      const waiting = this.pending.get(String(requestId))!;
      this.pending.delete(String(requestId));
      if (message.type === "error") {
        waiting.reject(new ProtocolError(String(message.code), String(message.message), message.details as Record<string, unknown>));
      } else {
        waiting.resolve(message);
      }
    }
    this.handlers.onMessage?.(message);
  }
}

/**
 * A `node_events` message (docs/protocol.md "Compact node events") as the messages it stands for:
 * `{type: event, run_id, [fields[i]]: row[i]}` per row, in order. Malformed input yields nothing.
 */
export function expandNodeEvents(message: JsonMessage): JsonMessage[] {
  const { event, run_id: runId, fields, rows } = message as { event?: unknown; run_id?: unknown; fields?: unknown; rows?: unknown };
  if (typeof event !== "string" || !Array.isArray(fields) || !Array.isArray(rows)) return [];
  const out: JsonMessage[] = [];
  for (const row of rows) {
    if (!Array.isArray(row)) continue;
    const expanded: JsonMessage = { type: event, run_id: runId };
    fields.forEach((field, i) => {
      if (typeof field === "string") expanded[field] = row[i];
    });
    out.push(expanded);
  }
  return out;
}

/** The websocket URL of the server that served the page (`/ws`, with the page's `?token=`). */
export function socketUrl(location: { href: string }): string {
  const page = new URL(location.href);
  const url = new URL("ws", page);
  url.protocol = page.protocol === "https:" ? "wss:" : "ws:";
  const token = page.searchParams.get("token");
  url.search = token ? `?token=${encodeURIComponent(token)}` : "";
  url.hash = "";
  return url.toString();
}

/** Messages read with exact integers: they carry a graph (its seeds) or the seeds of runs. */
export const EXACT_MESSAGES = new Set(["run", "template", "imported_graph", "history"]);

const LONG_DIGITS = /\d{16}/;

function isExactMessage(value: unknown): boolean {
  return value !== null && typeof value === "object" && EXACT_MESSAGES.has(String((value as JsonMessage).type));
}

/**
 * A text frame as a message: JSON.parse, except that an EXACT_MESSAGES message (alone, or
 * inside a batch) with an integer beyond 2^53 is read again with exact integers.
 */
export function parseServerText(text: string): JsonMessage {
  const message = JSON.parse(text) as JsonMessage;
  if (!LONG_DIGITS.test(text)) return message;
  const batch = message.type === "batch" && Array.isArray(message.messages) ? (message.messages as unknown[]) : null;
  if (batch ? !batch.some(isExactMessage) : !isExactMessage(message)) return message;
  const exact = parseJson(text, { maxDepth: Infinity }) as JsonMessage;
  if (!batch) return exact;
  const exactBatch = exact.messages as unknown[];
  return { ...message, messages: batch.map((inner, i) => (isExactMessage(inner) ? exactBatch[i] : inner)) };
}

const MAX_UPLOAD_NAME = 255; // the server's limit on an upload's name (characters)

/** A browser file name the server accepts: long names keep their extension and lose the middle. */
export function uploadName(name: string): string {
  const chars = Array.from(name);
  if (chars.length <= MAX_UPLOAD_NAME) return name;
  const dot = name.lastIndexOf(".");
  const extension = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : "";
  return Array.from(name.slice(0, name.length - extension.length)).slice(0, MAX_UPLOAD_NAME - Array.from(extension).length).join("") + extension;
}
