/**
 * The editor application: wires the websocket client, the session state
 * (what the server said) and the editing state (the document) together, and
 * holds every action that talks to the server or to files.
 *
 * Protocol mapping (docs/protocol.md):
 *   on `welcome`       list_nodes (known_hash = the cached schema hash), queue_status,
 *                      history, list_models
 *   on `nodes`         the schemas are cached in localStorage by schema_hash
 *   Run                seeds in "randomize" mode get new values, then `submit`
 *   on `queue_changed` queue_status + history (coalesced); get_outputs for our finished runs
 *   on `run_finished` / `run_failed`   get_outputs (recorded outputs and files)
 *   binary `preview`   an object URL shown on the running node
 *   binary `image`     the image is shown from /files/<file_id> on its node and in the gallery
 *   `output_file`      a video / audio / text / mesh / point-cloud file, shown by kind (run/media.ts)
 *   `error`            without a request_id: a toast (errorText); requests toast their own failures;
 *                      connection-level codes (invalid_token, ...) also stay in the banner
 *   Plugins panel      `list_plugins` each time it opens; `welcome.plugin_warnings` feed the badge
 *   upload             a binary upload frame; the input's value becomes the stored name
 *
 * The token: a `?token=` in the page URL (dev server, or an old link) goes to
 * `/ws`, `hello` and `/files` URLs as before. Opened through the server,
 * `/?token=T` is answered with a cookie and a redirect to `/`, so the page has
 * no token and none is sent: the browser's cookie carries it on every request.
 */
import { copyNodes, pasteClip, type Clip } from "../graph/clipboard";
import {
  fromGraphFile,
  GraphFormatError,
  moveNodes,
  randomizeSeeds,
  toGraphFile,
  type EditorDocument,
  type Position,
} from "../graph/document";
import { placeAll, type Rect, type Size } from "../graph/layout";
import { subgraphSchemas } from "../graph/subgraph";
import { foreignFormat, jsonErrorText } from "../graph/foreign";
import { graphFromPng, isPng } from "../graph/png";
import { NodegraphClient, ProtocolError, socketUrl, type JsonMessage, type SocketLike } from "../protocol/client";
import { errorText } from "../protocol/errors";
import { imageMime, type FrameHeader } from "../protocol/frames";
import type { ServerMessage } from "../protocol/messages";
import { randomSeed, widgetFor } from "../schema/widgets";
import type { NodeSchema, SchemaSet } from "../schema/types";
import { initialSessionState, reduceSession, type SessionAction, type SessionState } from "../run/sessionState";
import { EditorStore } from "./editorStore";
import { createStore, type Store } from "./store";
import { createUiStore } from "./ui";

export interface Toast {
  id: number;
  kind: "error" | "info";
  text: string;
}

const SCHEMA_CACHE_KEY = "nodegraph.schemas.v2"; // v2: nodes indexed by every name (qualified, aliases)
const TOAST_MS = 6000;

function readSchemaCache(): SchemaSet | null {
  try {
    const raw = globalThis.localStorage?.getItem(SCHEMA_CACHE_KEY);
    const parsed = raw ? (JSON.parse(raw) as SchemaSet) : null;
    return parsed && typeof parsed.schemaHash === "string" && parsed.nodes && parsed.types ? parsed : null;
  } catch {
    return null;
  }
}

function writeSchemaCache(schemas: SchemaSet): void {
  try {
    globalThis.localStorage?.setItem(SCHEMA_CACHE_KEY, JSON.stringify(schemas));
  } catch {
    // storage full or disabled: the schemas are simply fetched again next time
  }
}

/** The seed inputs of a node type with their bounds (for randomisation before a submit). */
export function seedInputsOf(schema: NodeSchema | undefined): { name: string; min: number; max: number }[] {
  if (!schema) return [];
  const out: { name: string; min: number; max: number }[] = [];
  for (const [name, spec] of Object.entries(schema.inputs)) {
    const widget = widgetFor(name, spec);
    if (widget.kind === "seed") out.push({ name, min: widget.min, max: widget.max });
  }
  return out;
}

/** A toast line for a failed request: the server's error code as words, or the exception's message. */
export function failureText(error: unknown, verb: string): string {
  if (error instanceof ProtocolError) return errorText(error.code, error.message, verb);
  return `Could not ${verb}: ${(error as Error)?.message ?? String(error)}`;
}

export class EditorApp {
  readonly editor = new EditorStore();
  readonly session: Store<SessionState> = createStore(initialSessionState);
  readonly toasts: Store<Toast[]> = createStore<Toast[]>([]);
  readonly ui = createUiStore();
  readonly client: NodegraphClient;
  private readonly token: string | null;
  private clip: Clip | null = null;
  private nextToast = 1;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private fetchedOutputs = new Set<string>();
  private outputRetries = new Map<string, number>();
  /** The canvas element and a function mapping screen → graph coordinates (set by the canvas). */
  canvas: {
    element: HTMLElement | null;
    toFlow: (x: number, y: number) => Position;
    pointer: Position | null;
    /** The boxes of the nodes as shown (file positions or auto-layout, measured or estimated sizes). */
    rects: () => Record<string, Rect>;
    /** Fit the whole graph into the view. */
    fit: () => void;
  } = {
    element: null,
    toFlow: (x, y) => [x, y],
    pointer: null,
    rects: () => ({}),
    fit: () => undefined,
  };
  private historyFetched = new Set<string>();

  constructor(makeSocket?: () => SocketLike, location: { href: string } = globalThis.location) {
    this.token = new URL(location.href).searchParams.get("token");
    const url = socketUrl(location);
    const cached = readSchemaCache();
    if (cached) this.dispatch({ type: "schemas", schemas: cached });
    this.client = new NodegraphClient(makeSocket ?? (() => new WebSocket(url) as unknown as SocketLike), {
      onMessage: (message) => this.onMessage(message),
      onBinary: (header, payload) => this.onBinary(header, payload),
      onStatus: (status) => this.dispatch({ type: "connection", status }),
    }, this.token);
  }

  start(): void {
    this.client.connect();
  }

  dispatch(action: SessionAction): void {
    this.session.set((state) => reduceSession(state, action, { fileUrl: (id) => this.fileUrl(id) }));
  }

  /** The URL of a server file by id (relative to the page, with the token when the page has one). */
  fileUrl(fileId: string): string {
    const path = `files/${fileId.split("/").map(encodeURIComponent).join("/")}`;
    return this.token ? `${path}?token=${encodeURIComponent(this.token)}` : path;
  }

  toast(text: string, kind: Toast["kind"] = "info"): void {
    const id = this.nextToast++;
    this.toasts.set((list) => [...list.slice(-4), { id, kind, text }]);
    setTimeout(() => this.dismissToast(id), kind === "error" ? TOAST_MS * 1.5 : TOAST_MS);
  }

  dismissToast(id: number): void {
    this.toasts.set((list) => list.filter((t) => t.id !== id));
  }

  // --- server messages --------------------------------------------------------

  private onMessage(message: JsonMessage): void {
    const typed = message as unknown as ServerMessage;
    const previews = this.session.get().previews;
    this.dispatch({ type: "server", message: typed });
    if (this.session.get().previews !== previews) {
      for (const url of Object.values(previews)) URL.revokeObjectURL(url); // a new run cleared them
    }
    switch (typed.type) {
      case "welcome": {
        const known = this.session.get().schemas.schemaHash;
        this.client.send(known ? { type: "list_nodes", known_hash: known } : { type: "list_nodes" });
        this.client.send({ type: "queue_status" });
        this.client.send({ type: "history", limit: 50 });
        this.client.send({ type: "list_models" });
        this.client.send({ type: "list_templates" });
        if (this.session.get().pluginsOpen) this.client.send({ type: "list_plugins" }); // reconnected with the panel open
        break;
      }
      case "nodes":
        if (typed.nodes) writeSchemaCache(this.session.get().schemas);
        break;
      case "error":
        // Replies to our requests are toasted by their caller (with what was tried); the rest here.
        if (typed.code !== "invalid_graph" && (message.request_id === undefined || message.request_id === null)) {
          this.toast(errorText(typed.code, typed.message), "error");
        }
        break;
      case "queue_changed":
        this.scheduleQueueRefresh();
        // The broadcast can overtake the server's own bookkeeping of a finished run: look again shortly.
        if (typed.status !== "queued" && typed.status !== "running") setTimeout(() => this.scheduleQueueRefresh(), 1000);
        if ((typed.status === "succeeded" || typed.status === "failed") && this.session.get().myRuns.includes(typed.run_id)) {
          this.fetchOutputs(typed.run_id);
        }
        break;
      case "run_finished":
      case "run_failed":
        this.fetchOutputs(typed.run_id);
        break;
      case "history":
        this.fetchHistoryOutputs();
        break;
      case "outputs":
        // Asked before the server recorded the result: ask again (a few times).
        if (typed.status === "running" || typed.status === "queued") this.retryOutputs(typed.run_id);
        break;
    }
  }

  private fetchOutputs(runId: string): void {
    if (this.fetchedOutputs.has(runId)) return;
    this.fetchedOutputs.add(runId);
    this.client.send({ type: "get_outputs", run_id: runId });
  }

  /** Outputs of finished runs in the history (thumbnails, and a gallery that survives a reload). */
  private fetchHistoryOutputs(): void {
    for (const run of this.session.get().history.slice(0, 24)) {
      if (run.status !== "succeeded" || this.historyFetched.has(run.run_id) || this.fetchedOutputs.has(run.run_id)) continue;
      this.historyFetched.add(run.run_id);
      void this.client
        .request<JsonMessage>({ type: "get_outputs", run_id: run.run_id })
        .then((reply) => this.dispatch({ type: "history_outputs", message: reply as unknown as Extract<ServerMessage, { type: "outputs" }> }))
        .catch(() => this.historyFetched.delete(run.run_id));
    }
  }

  private retryOutputs(runId: string): void {
    const tries = (this.outputRetries.get(runId) ?? 0) + 1;
    this.outputRetries.set(runId, tries);
    if (tries > 20) return;
    setTimeout(() => this.client.send({ type: "get_outputs", run_id: runId }), 250);
  }

  private scheduleQueueRefresh(): void {
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      this.client.send({ type: "queue_status" });
      this.client.send({ type: "history", limit: 50 });
    }, 100);
  }

  private onBinary(header: FrameHeader, payload: Uint8Array): void {
    const runId = String(header.run_id ?? "");
    const nodeId = String(header.node_id ?? "");
    if (header.type === "preview") {
      const old = this.session.get().previews[nodeId];
      const url = URL.createObjectURL(new Blob([payload as BlobPart], { type: imageMime(header.format) }));
      this.dispatch({ type: "preview", runId, nodeId, url });
      if (this.session.get().previews[nodeId] !== url) URL.revokeObjectURL(url); // not the active run
      else if (old) URL.revokeObjectURL(old);
    } else if (header.type === "image" && typeof header.file_id === "string") {
      this.dispatch({
        type: "file",
        file: {
          runId,
          nodeId,
          fileId: header.file_id,
          url: this.fileUrl(header.file_id),
          index: Number(header.index ?? 0),
          kind: "image",
          mime: imageMime(header.format),
        },
      });
    }
  }

  // --- runs -------------------------------------------------------------------

  /** Server schemas plus the schemas of the subgraphs defined in `doc` (graph/subgraph.ts). */
  schemasFor(doc: EditorDocument = this.editor.doc): Record<string, NodeSchema> {
    const nodes = this.session.get().schemas.nodes;
    return doc.subgraphs ? { ...nodes, ...subgraphSchemas(doc, nodes) } : nodes;
  }

  /** The graph file of the whole graph (open subgraphs written back): what Run submits and Save writes. */
  graphFile(): ReturnType<typeof toGraphFile> {
    return toGraphFile(this.editor.rootDoc());
  }

  /** Randomise (or increment) seeds, then submit the whole graph; validation errors land on the nodes. */
  async run(): Promise<void> {
    const schemas = this.session.get().schemas;
    this.editor.replaceSilently((doc) => randomizeSeeds(doc, (type) => seedInputsOf(schemas.nodes[type]), randomSeed));
    const graph = this.graphFile();
    const title = typeof graph.metadata?.title === "string" && graph.metadata.title.trim() ? graph.metadata.title.trim() : "the graph";
    try {
      const reply = await this.client.request<JsonMessage & { run_id: string; position: number }>({ type: "submit", graph });
      this.toast(`Queued ${title}${reply.position > 0 ? ` (${reply.position} ahead of it)` : ""}`);
    } catch (error) {
      if (error instanceof ProtocolError && error.code === "invalid_graph") {
        const count = (error.details?.errors as unknown[] | undefined)?.length ?? 0;
        this.toast(`The graph is invalid (${count} error${count === 1 ? "" : "s"}): see the marked nodes`, "error");
      } else {
        this.toast(failureText(error, "submit"), "error");
      }
    }
  }

  async cancel(runId: string): Promise<void> {
    await this.simpleRequest({ type: "cancel", run_id: runId }, "cancel");
  }

  async interrupt(runId: string): Promise<void> {
    await this.simpleRequest({ type: "interrupt", run_id: runId }, "interrupt");
  }

  async requeue(runId: string): Promise<void> {
    const ok = await this.simpleRequest({ type: "requeue", run_id: runId }, "requeue");
    if (ok) this.session.set((s) => ({ ...s, myRuns: [...s.myRuns, runId] }));
  }

  private async simpleRequest(message: JsonMessage, verb: string): Promise<boolean> {
    try {
      await this.client.request(message);
      this.scheduleQueueRefresh();
      return true;
    } catch (error) {
      this.toast(failureText(error, verb), "error");
      return false;
    }
  }

  /** Open a workflow template by id (`get_template {template_id}` → `template {graph}`). */
  async openTemplate(id: string): Promise<void> {
    const title = this.session.get().templates?.find((t) => t.id === id)?.title ?? id;
    try {
      const reply = await this.client.request<JsonMessage & { graph: unknown }>({ type: "get_template", template_id: id });
      if (this.loadGraph(reply.graph, title)) this.toast(`Opened the template ${title}`);
    } catch (error) {
      this.toast(failureText(error, `open the template ${id}`), "error");
    }
  }

  /** Open the graph a past run ran (`get_run` → `run {graph}`), seeds as they were. */
  async openRunGraph(runId: string): Promise<void> {
    try {
      const reply = await this.client.request<JsonMessage & { graph?: unknown; run?: { graph?: unknown } }>({ type: "get_run", run_id: runId });
      const graph = reply.graph ?? reply.run?.graph;
      if (graph === undefined) throw new Error("the server's reply has no graph");
      if (this.loadGraph(graph, "the run's graph")) this.toast("Opened the graph of that run");
    } catch (error) {
      this.toast(failureText(error, "open that run's graph"), "error");
    }
  }

  /** Open or close the Plugins panel; opening asks the server for the current plugin report. */
  showPlugins(open: boolean): void {
    this.dispatch({ type: "plugins_open", open });
    if (open) this.client.send({ type: "list_plugins" });
  }

  refreshModels(folder?: string): void {
    this.client.send(folder ? { type: "list_models", folder } : { type: "list_models" });
  }

  /** Upload an image file; resolves with the name to put in the input (null when refused). */
  async upload(file: File, kind: "image" | "mask"): Promise<string | null> {
    try {
      const reply = await this.client.upload(file.name, new Uint8Array(await file.arrayBuffer()), kind);
      this.toast(`Uploaded ${reply.name}`);
      return reply.name;
    } catch (error) {
      this.toast(failureText(error, `upload ${file.name}`), "error");
      return null;
    }
  }

  // --- files ------------------------------------------------------------------

  /**
   * Load a graph from a .json file or from a PNG saved by SaveImage. A file that is not
   * JSON, not a graph, or a graph from another tool leaves the canvas as it was and says
   * why in the error banner (with line and column for JSON syntax errors).
   */
  async loadFile(file: File): Promise<boolean> {
    let raw: unknown;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      if (isPng(bytes)) raw = await graphFromPng(bytes);
      else {
        const text = new TextDecoder().decode(bytes);
        try {
          raw = JSON.parse(text);
        } catch (error) {
          throw new GraphFormatError(jsonErrorText(text, error as Error));
        }
      }
    } catch (error) {
      this.showLoadError(file.name, (error as Error).message);
      return false;
    }
    if (!this.loadGraph(raw, file.name)) return false;
    this.toast(`Loaded ${file.name}`);
    return true;
  }

  private showLoadError(name: string, message: string): void {
    const text = `Cannot open ${name}: ${message}`;
    this.dispatch({ type: "banner", banner: { kind: "error", text } });
    this.toast(text, "error");
  }

  /** Open a graph (parsed JSON); a file that is not a nodegraph graph is refused with the reason. */
  loadGraph(raw: unknown, name = "the graph"): boolean {
    let doc: EditorDocument;
    try {
      const foreign = foreignFormat(raw);
      if (foreign) throw new GraphFormatError(foreign);
      doc = fromGraphFile(raw);
    } catch (error) {
      if (!(error instanceof GraphFormatError)) throw error;
      this.showLoadError(name, error.message);
      return false;
    }
    this.editor.load(doc);
    this.dispatch({ type: "validation_errors", errors: [] });
    this.dispatch({ type: "banner", banner: null });
    return true;
  }

  /** The graph file text that Save writes (the whole graph, open subgraphs included). */
  graphText(doc: EditorDocument = this.editor.rootDoc()): string {
    return JSON.stringify(toGraphFile(doc), null, 2) + "\n";
  }

  save(): void {
    const title = this.editor.rootDoc().metadata?.title;
    const name = `${typeof title === "string" && title.trim() ? title.trim().replace(/[^\w.-]+/g, "_") : "graph"}.json`;
    const url = URL.createObjectURL(new Blob([this.graphText()], { type: "application/json" }));
    const anchor = document.createElement("a");
    anchor.href = url;
    anchor.download = name;
    document.body.appendChild(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  // --- clipboard ----------------------------------------------------------------

  /**
   * The document with every node at the position it is shown at. The first edit that
   * places or moves a node in a graph without positions writes the auto-layout the user
   * sees, so adding one node never rearranges the others.
   */
  materialize(doc: EditorDocument): EditorDocument {
    if (Object.values(doc.nodes).every((n) => n.position)) return doc;
    const rects = this.canvas.rects();
    const shown: Record<string, Position> = {};
    for (const id of Object.keys(doc.nodes)) if (rects[id] && !doc.nodes[id].position) shown[id] = [rects[id].x, rects[id].y];
    return moveNodes(doc, shown);
  }

  /** Copy the selected nodes with the positions they are shown at (auto-layout included). */
  copySelection(): boolean {
    const rects = this.canvas.rects();
    const clip = copyNodes(this.editor.doc, Object.keys(this.editor.state.selectedNodes), (id) => {
      const r = rects[id];
      return r ? [r.x, r.y] : undefined;
    });
    if (!clip) return false;
    this.clip = clip;
    this.clipSizes = Object.fromEntries(Object.keys(clip.nodes).map((id) => [id, rects[id] ?? { width: 300, height: 150 }]));
    return true;
  }

  private clipSizes: Record<string, Size> = {};

  /**
   * Paste the copied nodes at the pointer (or shifted from the originals), keeping their
   * arrangement, then moved clear of every node already on the canvas (no pile, no overlap).
   */
  paste(keepExternalLinks = false): void {
    const clip = this.clip;
    if (!clip) return;
    const originals = Object.values(clip.nodes).map((n) => n.position ?? [0, 0]);
    const minX = Math.min(...originals.map((p) => p[0]));
    const minY = Math.min(...originals.map((p) => p[1]));
    const pointer = this.canvas.pointer;
    const offset: Position = pointer ? [pointer[0] - minX, pointer[1] - minY] : [40, 40];
    const rects = Object.values(this.canvas.rects());
    let ids: string[] = [];
    this.editor.edit((doc) => {
      const pasted = pasteClip(this.materialize(doc), clip, offset, { keepExternalLinks });
      ids = pasted.ids;
      // One shift for the whole clip (its arrangement is kept): the nearest spot where its box is free.
      const sizes = Object.values(clip.nodes).map((_, i) => this.clipSizes[Object.keys(clip.nodes)[i]] ?? { width: 300, height: 150 });
      const boxes = ids.map((id, i) => ({ x: pasted.doc.nodes[id].position![0], y: pasted.doc.nodes[id].position![1], ...sizes[i] }));
      const bx = Math.min(...boxes.map((b) => b.x));
      const by = Math.min(...boxes.map((b) => b.y));
      const bw = Math.max(...boxes.map((b) => b.x + b.width)) - bx;
      const bh = Math.max(...boxes.map((b) => b.y + b.height)) - by;
      const spot = placeAll({ clip: [bx, by] }, () => ({ width: bw, height: bh }), rects).clip;
      const [dx, dy] = [spot[0] - bx, spot[1] - by];
      return moveNodes(pasted.doc, Object.fromEntries(boxes.map((b, i) => [ids[i], [b.x + dx, b.y + dy] as Position])));
    });
    this.editor.select(Object.fromEntries(ids.map((id) => [id, true as const])));
  }
}
