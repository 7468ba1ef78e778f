/**
 * The editor application: wires the websocket client, the session state
 * (what the server said) and the editing state (the document) together, and
 * holds every action that talks to the server or to files.
 *
 * Protocol mapping (docs/protocol.md):
 *   on `welcome`       list_nodes (known_hash = the cached schema hash), queue_status,
 *                      history, list_models
 *   on `nodes`         the schemas are cached in localStorage by schema_hash
 *   Run                `submit` with the seeds shown, then seeds in random / +1 / −1 mode get their next values
 *   on `queue_changed` queue_status + history (coalesced); get_outputs for our finished runs
 *   on `run_finished` / `run_failed`   get_outputs (recorded outputs and files)
 *   `watch`            a running run this tab did not submit (named by `queue_changed` or the `queue`
 *                      reply), once per connection: its events feed the Queue panel's progress line
 *                      (run/watchedRuns.ts), never the canvas
 *   binary `preview`   an object URL shown on the running node
 *   binary `image`     the image is shown from /files/<file_id> on its node and in the gallery
 *   `output_file`      a video / audio / text / mesh / point-cloud file, shown by kind (run/media.ts)
 *   `error`            without a request_id: a toast (errorText); requests toast their own failures;
 *                      connection-level codes (invalid_token, ...) also stay in the banner
 *   Plugins panel      `list_plugins` each time it opens; `welcome.plugin_warnings` feed the badge
 *   Storage panel      `list_files` (a page of 100, "more" the next) when it opens, when its filter
 *                      changes, after each delete, on a reconnect and on a `quota_exceeded` error
 *                      while open; Delete sends `delete_file`, whose `file_deleted` drops the row
 *                      (run/storage.ts). A toast for a full storage offers "Open storage"
 *   upload             a binary upload frame; the input's value becomes the stored name
 *   ComfyUI files      `import_graph {data}` → `imported_graph {graph, errors}`: opened with the
 *                      unknown nodes as red placeholders (errors shown on them); refused
 *                      with the server's words (a UI workflow) or, offline, graph/foreign.ts's
 *   cancel, interrupt  a run that already left the queue (or finished) makes them a silent no-op
 *
 * Kept in localStorage (state/autosave.ts): the working graph edited last (what a new tab
 * opens; the first open with nothing kept opens the txt2img template), the clipboard
 * (so Ctrl+C in one tab pastes in another), the schemas by hash. Kept in the tab's
 * sessionStorage (a reload of the tab restores them): its own working graph, its connection
 * (hello.resume) and the run shown on its nodes with their badges (run/tabRun.ts).
 *
 * Renamed inputs (graph/renamedInputs.ts): every graph opened goes through `loadGraph`, which
 * renames the inputs the schemas say a newer node version renamed (and says so in a toast); schemas
 * that arrive later (newer than the cached ones) rename them in the graph shown, without an undo step.
 *
 * The token: a `?token=` in the page URL (dev server, or an old link) goes to
 * `/ws`, `hello` and `/files` URLs as before. Opened through the server,
 * `/?token=T` is answered with a cookie and a redirect to `/`, so the page has
 * no token and none is sent: the browser's cookie carries it on every request.
 */
import { clipFromText, clipToText, copyNodes, pasteClip, type Clip } from "../graph/clipboard";
import { NOTE_PREFIX, notesOf, shiftNotes } from "../graph/notes";
import {
  fromGraphFile,
  GraphFormatError,
  isLink,
  moveNodes,
  randomizeSeeds,
  seedsGivenBack,
  seedMode,
  setInput,
  toGraphFile,
  type EditorDocument,
  type Position,
} from "../graph/document";
import { JsonDepthError, parseJson, stringifyJson } from "../graph/exactJson";
import { idMap } from "../graph/idMaps";
import { freeSpot, overlaps, type Rect, type Size } from "../graph/layout";
import { renamesText, withRenamedInputs, type InputRename } from "../graph/renamedInputs";
import { subgraphSchemas } from "../graph/subgraph";
import { a1111Text, foreignFormat, foreignKind, importedTitle, jsonErrorText, refusalText } from "../graph/foreign";
import { graphTextFromMedia, mediaKind, noGraphText } from "../graph/mediaGraph";
import { graphFromExif } from "../graph/exif";
import { graphFromPng, imageKind, isPng } from "../graph/png";
import { NodegraphClient, ProtocolError, socketUrl, type JsonMessage, type SocketLike } from "../protocol/client";
import { errorText } from "../protocol/errors";
import { imageMime, type FrameHeader } from "../protocol/frames";
import type { GraphError, ServerMessage } from "../protocol/messages";
import { imageDropInput, randomSeed, widgetFor, type UploadKind } from "../schema/widgets";
import { schemaSetFrom, uniqueSchemas, type NodeSchema, type SchemaSet } from "../schema/types";
import { initialSessionState, reduceSession, submittedWaitText, type SessionAction, type SessionState } from "../run/sessionState";
import { isStorageQuota, listFilesMessage, STORAGE_PAGE, type FilesReply, type StorageFolder } from "../run/storage";
import { readTabRun, tabRunText } from "../run/tabRun";
import { resultKeys, warningKey } from "../run/warnings";
import {
  AUTOSAVE_DELAY_MS,
  AUTOSAVE_KEY,
  autosaveText,
  CLIPBOARD_KEY,
  keptText,
  pageStorage,
  tabStorage,
  readAutosave,
  STORAGE_LIMIT,
  storeText,
  TAB_AUTOSAVE_KEY,
  type StorageLike,
} from "./autosave";
import { EditorStore } from "./editorStore";
import { createStore, type Store } from "./store";
import { createUiStore } from "./ui";
import { runAnnouncement } from "../run/announce";

export interface Toast {
  id: number;
  kind: "error" | "info";
  text: string;
  /** A button on the toast (e.g. "Open storage" on a full storage's error). */
  action?: ToastAction;
  /** "graph": it speaks of the graph shown ("Loaded a.json"), so it goes when another graph is opened. */
  about?: "graph";
  /** The run it says was queued ("Queued Text to image"): it goes once that run starts or ends (`runMoved`). */
  run?: string;
}

export interface ToastAction {
  label: string;
  run: () => void;
}

/** The name a graph pasted as text goes by in messages. */
const PASTED_TEXT = "the pasted text";
const SCHEMA_CACHE_KEY = "nodegraph.schemas.v2"; // v2: nodes indexed by every name (qualified, aliases)
const TOAST_MS = 6000;
/** The least time a "Queued …" toast stays up, though its run started at once: long enough to read that Run worked. */
export const QUEUED_TOAST_MIN_MS = 1500;
/** The run events after which a run is no longer queued: its "Queued …" toast goes. */
const RUN_MOVED = new Set(["run_started", "run_finished", "run_failed", "run_interrupted"]);

function readSchemaCache(): SchemaSet | null {
  try {
    const raw = globalThis.localStorage?.getItem(SCHEMA_CACHE_KEY);
    const parsed = raw ? (JSON.parse(raw) as SchemaSet) : null;
    if (!parsed || typeof parsed.schemaHash !== "string" || !parsed.nodes || !parsed.types) return null;
    return schemaSetFrom(parsed.schemaHash, uniqueSchemas(parsed.nodes), parsed.types); // prototype-free maps again
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

/**
 * The toast after opening an image: Run makes it again (its seeds are used as they are), and later runs draw new
 * seeds only where a seed is in random or increment mode. An image from `nodegraph run` has no seed modes, so its
 * seeds are fixed: "later runs draw new seeds" promised what the next Run (served from the cache) did not do (an
 * A1111 user's pass). `seedInputs(type)`: a node type's seed inputs (none known before the schemas came).
 */
export function openedImageToast(name: string, doc: EditorDocument, seedInputs: (type: string) => { name: string }[]): string {
  let fixed = 0;
  let drawn = 0;
  for (const node of Object.values(doc.nodes)) {
    const modes = typeof node.ui.seed_modes === "object" && node.ui.seed_modes !== null ? Object.keys(node.ui.seed_modes) : [];
    const inputs = new Set([...seedInputs(node.type).map((input) => input.name), ...modes]);
    for (const input of inputs) {
      if (isLink(node.inputs[input])) continue;
      if (seedMode(node, input) === "fixed") fixed += 1;
      else drawn += 1;
    }
  }
  const seeds = drawn ? "; later runs draw new seeds" : fixed ? "; its seeds are fixed, so later runs make it again too" : "";
  const what = /\.(mp4|m4v|mov|webm|mkv|gif)$/i.test(name) ? "clip" : "image"; // a video SaveVideo wrote opens too
  return `Loaded ${name} (Run makes this ${what} again${seeds})`;
}

/** The template the first open shows when nothing was kept: the shipped txt2img graph, if the server lists it. */
export function firstOpenTemplate(templates: { id: string }[]): string | null {
  const exact = templates.find((t) => t.id === "project/txt2img.json");
  return (exact ?? templates.find((t) => t.id.endsWith("/txt2img.json")))?.id ?? null;
}

/** Run statuses after which cancel and interrupt have nothing left to do (a second click is a no-op). */
const SETTLED = new Set(["cancelled", "succeeded", "failed", "interrupted", "finishing"]);

/** Whether a refused cancel / interrupt only means the run already left the queue or finished (the
 * server's `invalid_state` error carries the run's `status`). */
export function alreadySettled(error: unknown): boolean {
  if (!(error instanceof ProtocolError) || error.code !== "invalid_state") return false;
  const status = error.details?.status;
  return typeof status === "string" && SETTLED.has(status);
}

/** A toast line for a failed request: the server's error code as words, or the exception's message. */
export function failureText(error: unknown, verb: string): string {
  if (error instanceof ProtocolError) return errorText(error.code, error.message, verb);
  return `Could not ${verb}: ${(error as Error)?.message ?? String(error)}`;
}

/** This tab's last connection and the run shown on its nodes (sessionStorage: a reload resumes both). */
const TAB_CLIENT_KEY = "nodegraph.tab.client.v1";
const TAB_RUN_KEY = "nodegraph.tab.run.v2"; // v2: run/tabRun.ts's text (v1: a run id, forgotten when it ended)

/**
 * The file name Save downloads a graph titled `title` as: its words joined by "_", with no "_" left at either end
 * ("Text to image (tiny world)" → `Text_to_image_tiny_world.json`, not `…_world_.json`); `graph.json` without a title.
 */
export function downloadName(title: unknown): string {
  const stem = typeof title === "string" ? title.trim().replace(/[^\w.-]+/g, "_").replace(/^[_.]+|[_.]+$/g, "") : "";
  return `${stem || "graph"}.json`;
}

/**
 * What a ComfyUI import's banner says of the subgraphs it expanded (`metadata.comfyui_subgraphs`: [{node, subgraph,
 * nodes}]): `, expanded subgraph "SD Text to Image" (6 nodes)`, the first three named; "" for none. The canvas shows
 * their inner nodes where the instance stood, so a reader looking for the one subgraph node learns why it is gone.
 */
export function expandedText(subgraphs: unknown): string {
  const list = (Array.isArray(subgraphs) ? subgraphs : []).filter(
    (s): s is { subgraph: string; nodes: number } => typeof s?.subgraph === "string" && typeof s?.nodes === "number");
  if (!list.length) return "";
  const named = list.slice(0, 3).map((s) => `"${s.subgraph.slice(0, 80)}" (${s.nodes} node${s.nodes === 1 ? "" : "s"})`);
  const more = list.length > 3 ? ` and ${list.length - 3} more` : "";
  return `, expanded subgraph${list.length === 1 ? "" : "s"} ${named.join(", ")}${more}`;
}

export class EditorApp {
  readonly editor = new EditorStore();
  readonly session: Store<SessionState> = createStore(initialSessionState);
  readonly toasts: Store<Toast[]> = createStore<Toast[]>([]);
  /** The last run milestone for screen readers (run/announce.ts; a new id for each, read once). */
  readonly announcement: Store<{ id: number; text: string } | null> = createStore<{ id: number; text: string } | null>(null);
  private announced = new Set<string>();
  readonly ui = createUiStore();
  readonly client: NodegraphClient;
  private readonly token: string | null;
  private clip: Clip | null = null;
  private readonly storage: StorageLike | null;
  private autosaveTimer: ReturnType<typeof setTimeout> | null = null;
  private autosavedDoc: { doc: EditorDocument; depth: number } | null = null;
  private autosaveWarned = false;
  /**
   * The first open with nothing kept: "waiting" for the templates list, "asked" for the txt2img
   * template; any load the user starts meanwhile (even a refused one) makes it "none".
   */
  private firstOpen: "none" | "waiting" | "asked" = "none";
  /** Run presses so far: a refused run gives its seeds back only if no Run came after it (`run`). */
  private runPresses = 0;
  /**
   * The banner of the last `invalid_graph` refusal and the graph file (text) it described: the banner goes when the
   * whole graph changes from that one (an edit, an undo: `clearStaleInvalidBanner`). Before, it stayed over the
   * nodes after Ctrl+Z had made the graph valid again, until closed by hand.
   */
  private invalidBanner: { banner: unknown; graph: string } | null = null;
  private nextToast = 1;
  /** Runs of ours that started or ended (the newest 50): a submit reply that comes after its run started shows its
   * "Queued …" toast only for QUEUED_TOAST_MIN_MS (a tiny graph's run can start before the reply is read). */
  private movedRuns = new Set<string>();
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private fetchedOutputs = new Set<string>();
  private outputRetries = new Map<string, number>();
  /** Runs this connection sent `watch` for (cleared by each welcome: a new connection watches anew). */
  private watchRequested = new Set<string>();
  /** The client ids this tab had (welcome's client_id and resumed): runs submitted under them are ours. */
  private ownClientIds = new Set<string>();
  /** The canvas element and a function mapping screen → graph coordinates (set by the canvas). */
  canvas: {
    element: HTMLElement | null;
    toFlow: (x: number, y: number) => Position;
    pointer: Position | null;
    /** The boxes of the nodes as shown (file positions or auto-layout, measured or estimated sizes). */
    rects: () => Record<string, Rect>;
    /** The part of the graph the canvas shows (graph units, a margin inside its edges); null before it is drawn. */
    view: () => Rect | null;
    /** Fit the whole graph into the view. */
    fit: () => void;
    /**
     * A past run opened from History (set by `openRunGraph`), or the run a reloaded tab shows again
     * (set by `start`), taken by the canvas when it fits the loaded graph: the whole graph is shown,
     * and kept in view while the run's results render.
     */
    followRun: string | null;
    /**
     * Asked when Run is pressed (set by the canvas): when the whole graph is in view (every node at least
     * mostly inside the canvas), what starts following the run once submitted — kept whole in view as its
     * results grow the nodes, until the user moves the view or edits, or another run or graph is shown;
     * null when the user was zoomed into part of the graph (their view is left alone).
     */
    followHere: () => ((runId: string) => void) | null;
    /**
     * Set by a ComfyUI import (`loadGraph`'s `separate`), taken by the canvas once every node is measured: nodes
     * placed where ComfyUI placed its narrower ones (about 210 px against our 300) that overlap are pushed apart,
     * downwards, each group keeping its nodes (graph/layout.ts `separateInFrames`), with no undo step; the view is
     * fitted after that.
     */
    separateWhenShown: boolean;
    /**
     * The port of the node a context menu was opened on (set by the canvas at the right-click): its input row or
     * output row (a keyboard-opened menu leaves the last one: it counts for its node only), null on the title or elsewhere. The node menu offers "Expose … as subgraph input / output" for it.
     */
    menuPort: { node: string; input: string } | { node: string; output: string } | null;
  } = {
    element: null,
    toFlow: (x, y) => [x, y],
    pointer: null,
    rects: () => ({}),
    view: () => null,
    fit: () => undefined,
    followRun: null,
    followHere: () => null,
    separateWhenShown: false,
    menuPort: null,
  };
  private historyFetched = new Set<string>();

  constructor(makeSocket?: () => SocketLike, location: { href: string } = globalThis.location, storage: StorageLike | null = pageStorage(),
    private readonly tab: StorageLike | null = tabStorage()) {
    this.storage = storage;
    this.token = new URL(location.href).searchParams.get("token");
    const url = socketUrl(location);
    const cached = readSchemaCache();
    if (cached) this.dispatch({ type: "schemas", schemas: cached });
    this.client = new NodegraphClient(makeSocket ?? (() => new WebSocket(url) as unknown as SocketLike), {
      onMessage: (message) => this.onMessage(message),
      onBinary: (header, payload) => this.onBinary(header, payload),
      onStatus: (status) => this.dispatch({ type: "connection", status }),
    }, this.token, this.readTab(TAB_CLIENT_KEY));
  }

  /** Restore the working graph kept in localStorage, keep it from now on, and connect. */
  start(): void {
    const shown = readTabRun(this.readTab(TAB_RUN_KEY)); // read first: opening a graph forgets it
    if (this.restoreAutosave() && shown) {
      // the run shown before a reload of this tab (maybe still going) on the graph it ran
      this.dispatch({ type: "adopt_run", runId: shown.runId, nodeStates: shown.nodeStates });
      this.keepShownRun();
      // shown whole, as History → Open shows a run: its results come back after the first fit, make nodes
      // taller and push other nodes down (a fit of the graph without them left every node of a batch of 6 off-screen)
      this.canvas.followRun = shown.runId;
    }
    this.editor.store.subscribe(() => this.scheduleAutosave());
    this.editor.store.subscribe(() => this.clearStaleInvalidBanner());
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("pagehide", () => this.keepForReload());
      globalThis.addEventListener("visibilitychange", () => {
        if (globalThis.document?.visibilityState === "hidden") this.keepForReload();
      });
    }
    this.client.connect();
  }

  dispatch(action: SessionAction): void {
    this.session.set((state) => reduceSession(state, action, this.reduceContext));
  }

  private readonly reduceContext = {
    fileUrl: (id: string) => this.fileUrl(id),
    warningKey: (runId: string, nodeId: string) => warningKey(this.runResultKeys.get(runId), nodeId),
  };
  /** Result keys (run/warnings.ts) of the submits waiting for their `submitted` reply, in order. */
  private submitKeys: Record<string, string>[] = [];
  /** Result keys of the runs this editor submitted (the newest 200). */
  private runResultKeys = new Map<string, Record<string, string>>();

  /** The URL of a server file by id (relative to the page, with the token when the page has one). */
  fileUrl(fileId: string): string {
    const path = `files/${fileId.split("/").map(encodeURIComponent).join("/")}`;
    return this.token ? `${path}?token=${encodeURIComponent(this.token)}` : path;
  }

  toast(text: string, kind: Toast["kind"] = "info", action?: ToastAction, about?: Toast["about"]): void {
    const id = this.nextToast++;
    const toast: Toast = { id, kind, text, ...(action ? { action } : {}), ...(about ? { about } : {}) };
    this.toasts.set((list) => [...list.slice(-4), toast]);
    setTimeout(() => this.dismissToast(id), kind === "error" ? TOAST_MS * 1.5 : TOAST_MS);
  }

  /**
   * A toast about the graph shown (what was opened, what its loading renamed): it goes as soon as another
   * graph opens — "Loaded unknown.json" stayed on screen for its six seconds while the ComfyUI file opened
   * after it (said in the banner, no toast) was shown, naming the wrong file.
   */
  graphToast(text: string): void {
    this.toast(text, "info", undefined, "graph");
  }

  /**
   * "Queued …" for run `runId`: about the graph shown (it goes when another opens, as `graphToast`), and only while
   * the run waits — it goes when the run starts or ends (`runMoved`), though not before QUEUED_TOAST_MIN_MS: it stayed
   * on screen after a 2-second run had succeeded, reading as if the run were still waiting.
   */
  private queuedToast(text: string, runId: string): void {
    this.graphToast(text);
    const toast = this.toasts.get().at(-1);
    if (!toast) return;
    const shown = { ...toast, run: runId };
    this.toasts.set((list) => list.map((t) => (t.id === toast.id ? shown : t)));
    this.queuedShownAt.set(toast.id, Date.now());
    if (this.movedRuns.has(runId)) this.runMoved(runId);
  }

  /** When each "Queued …" toast was shown (by toast id), for QUEUED_TOAST_MIN_MS. */
  private queuedShownAt = new Map<number, number>();

  /** Run `runId` started or ended: its "Queued …" toast goes (after QUEUED_TOAST_MIN_MS on screen). */
  private runMoved(runId: string): void {
    this.movedRuns.add(runId);
    if (this.movedRuns.size > 50) this.movedRuns.delete(this.movedRuns.values().next().value!);
    for (const toast of this.toasts.get().filter((t) => t.run === runId)) {
      const left = (this.queuedShownAt.get(toast.id) ?? 0) + QUEUED_TOAST_MIN_MS - Date.now();
      if (left > 0) setTimeout(() => this.dismissToast(toast.id), left);
      else this.dismissToast(toast.id);
    }
  }

  dismissToast(id: number): void {
    this.queuedShownAt.delete(id);
    this.toasts.set((list) => list.filter((t) => t.id !== id));
  }

  /** The toast of a failed request (`verb`: what was tried); a full storage's offers "Open storage". */
  private failureToast(error: unknown, verb: string): void {
    this.toast(failureText(error, verb), "error", this.storageActionFor(error));
  }

  /** "Open storage" for a `quota_exceeded` error about stored bytes (run/storage.ts), else nothing. */
  private storageActionFor(error: unknown): ToastAction | undefined {
    if (!(error instanceof ProtocolError) || !isStorageQuota(error.code, error.details)) return undefined;
    return { label: "Open storage", run: () => this.showStorage(true) };
  }

  // --- server messages --------------------------------------------------------

  private onMessage(message: JsonMessage): void {
    const typed = message as unknown as ServerMessage;
    if (typed.type === "submitted" && this.submitKeys.length) {
      // Before its run's events, which may come in the same batch frame as this reply.
      this.runResultKeys.set(typed.run_id, this.submitKeys.shift()!);
      if (this.runResultKeys.size > 200) this.runResultKeys.delete(this.runResultKeys.keys().next().value!);
    }
    const previews = this.session.get().previews;
    const shownBefore = this.session.get().activeRun;
    this.dispatch({ type: "server", message: typed });
    const said = runAnnouncement(message as { type: string }, this.session.get().activeRun ?? shownBefore);
    if (said !== null && !this.announced.has(`${typed.type} ${message.run_id}`)) {
      this.announced.add(`${typed.type} ${message.run_id}`);
      if (this.announced.size > 400) this.announced.delete(this.announced.values().next().value!);
      this.announcement.set({ id: this.nextToast++, text: said });
    }
    if (this.session.get().previews !== previews) {
      for (const url of Object.values(previews)) URL.revokeObjectURL(url); // a new run cleared them
    }
    if (RUN_MOVED.has(typed.type) && typeof message.run_id === "string") this.runMoved(message.run_id);
    switch (typed.type) {
      case "welcome": {
        this.writeTab(TAB_CLIENT_KEY, typed.client_id); // a reload of this tab resumes this connection
        this.ownClientIds.add(typed.client_id);
        if (typeof message.resumed === "string") this.ownClientIds.add(message.resumed);
        this.watchRequested.clear();
        const known = this.session.get().schemas.schemaHash;
        this.client.send(known ? { type: "list_nodes", known_hash: known } : { type: "list_nodes" });
        this.client.send({ type: "queue_status" });
        this.client.send({ type: "history", limit: 50 });
        this.client.send({ type: "list_models" });
        this.client.send({ type: "list_templates" });
        if (this.session.get().pluginsOpen) this.client.send({ type: "list_plugins" }); // reconnected with the panel open
        if (this.session.get().storage.open) this.refreshStorage();
        break;
      }
      case "nodes":
        if (typed.nodes) {
          writeSchemaCache(this.session.get().schemas);
          this.renameForNewSchemas();
        }
        break;
      case "error":
        // Replies to our requests are toasted by their caller (with what was tried); the rest here.
        if (typed.code !== "invalid_graph" && (message.request_id === undefined || message.request_id === null)) {
          this.toast(errorText(typed.code, typed.message), "error",
            this.storageActionFor(new ProtocolError(typed.code, typed.message, typed.details)));
        }
        // the storage is full (a reply to any request): the open Storage panel shows what fills it now
        if (isStorageQuota(typed.code, typed.details) && this.session.get().storage.open) this.refreshStorage();
        break;
      case "submitted":
        this.writeTab(TAB_RUN_KEY, tabRunText(typed.run_id, idMap())); // a reload before run_started shows it too
        break;
      case "run_started":
      case "run_interrupted":
        if (this.session.get().activeRun === typed.run_id) this.keepShownRun();
        break;
      case "queue":
        for (const run of [typed.running, ...(Array.isArray(typed.running_all) ? typed.running_all : [])]) {
          if (run && typeof run.run_id === "string") this.watchRun(run.run_id, run.client_id);
        }
        break;
      case "queue_changed":
        if (typed.status === "running") this.watchRun(typed.run_id);
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
        if (this.session.get().activeRun === typed.run_id) this.keepShownRun();
        break;
      case "history": {
        // the run this tab was showing ended while the page reloaded (or the connection was down)
        const active = this.session.get().activeRun;
        const ended = this.session.get().history.find((run) => run.run_id === active);
        if (active && ended && (ended.status === "succeeded" || ended.status === "failed")) this.fetchOutputs(active);
        this.fetchHistoryOutputs();
        break;
      }
      case "templates":
        this.openFirstTemplate();
        break;
      case "outputs":
        // Asked before the server recorded the result: ask again (a few times).
        if (typed.status === "running" || typed.status === "queued") this.retryOutputs(typed.run_id);
        break;
    }
  }

  /** Follow the progress of a running run another tab (or client) submitted: `watch` it, once. */
  private watchRun(runId: string, submitter?: string): void {
    if (this.watchRequested.has(runId) || this.session.get().myRuns.includes(runId)) return;
    if (submitter !== undefined && this.ownClientIds.has(submitter)) return;
    this.watchRequested.add(runId);
    this.dispatch({ type: "watch_run", runId });
    // The reply (`watching`) reaches the session too; a refused watch (another user's run) just ends it.
    void this.client
      .request({ type: "watch", run_id: runId })
      .catch(() => this.dispatch({ type: "unwatch_run", runId }));
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
    return doc.subgraphs ? idMap([...Object.entries(nodes), ...Object.entries(subgraphSchemas(doc, nodes))]) : nodes;
  }

  /** The graph file of the whole graph (open subgraphs written back): what Run submits and Save writes. */
  graphFile(): ReturnType<typeof toGraphFile> {
    return toGraphFile(this.editor.rootDoc());
  }

  /**
   * Submit the whole graph with the seeds shown, then show the next ones (seeds in random, +1 or −1 mode), as
   * ComfyUI's "control after generate": the 42 on screen is the seed rendered, 43 the next run's (drawn before the
   * submit, 42 was shown and 43 rendered: a ComfyUI user's pass). So an opened image (or a past run's graph) is made
   * again by the first Run. A refused submit gives its seeds back unless another graph was opened or another Run
   * pressed meanwhile (ComfyUI steps a seed only for a queued prompt); validation errors land on the nodes.
   * `front`: before the queued runs (Ctrl+Shift+Enter; the server allows it to admins on a server with users).
   */
  async run(options: { front?: boolean } = {}): Promise<void> {
    const follow = this.canvas.followHere(); // decided by the view as it is when Run is pressed
    const schemas = this.session.get().schemas;
    const press = ++this.runPresses;
    const loads = this.editor.state.loadCount;
    const graph = this.graphFile();
    const submitted = this.editor.levels();
    // the next seeds are shown at once: a second Run pressed before the server answers uses them. Every level of the
    // whole graph steps (the top level while a subgraph is open, and each subgraph definition once: before, seeds
    // inside a subgraph never stepped and those outside did not while one was open).
    this.editor.replaceEverywhere((doc) => randomizeSeeds(doc, (type) => seedInputsOf(schemas.nodes[type]), randomSeed));
    const advanced = this.editor.levels();
    const title = typeof graph.metadata?.title === "string" && graph.metadata.title.trim() ? graph.metadata.title.trim() : "the graph";
    const keys = resultKeys(graph);
    this.submitKeys.push(keys);
    try {
      const message: JsonMessage = options.front ? { type: "submit", graph, front: true } : { type: "submit", graph };
      const reply = await this.client.request<JsonMessage & { run_id: string; position: number }>(message);
      follow?.(reply.run_id);
      // about the graph shown: it goes when another graph opens ("Queued Err test" stayed over the next one)
      const wait = submittedWaitText(reply, this.session.get().queue); // behind another user's run: say so
      this.queuedToast(wait ? `Queued ${title}. ${wait}` : `Queued ${title}${reply.position > 0 ? ` (${reply.position} ahead of it)` : ""}`, reply.run_id);
    } catch (error) {
      this.submitKeys = this.submitKeys.filter((k) => k !== keys); // refused: no `submitted` will come
      // Refused (a missing input file, say): the seeds it used are shown again for the fixed-up Run (which then makes
      // an opened image again) — unless another graph was opened or another Run pressed meanwhile.
      if (press === this.runPresses && loads === this.editor.state.loadCount) {
        this.editor.replaceEverywhere((doc, level) => seedsGivenBack(doc, submitted[level] ?? doc, advanced[level] ?? doc));
      }
      if (error instanceof ProtocolError && error.code === "invalid_graph") {
        const banner = this.session.get().banner;
        this.invalidBanner = banner ? { banner, graph: stringifyJson(graph) } : null;
        const count = (error.details?.errors as unknown[] | undefined)?.length ?? 0;
        this.toast(`The graph is invalid (${count} error${count === 1 ? "" : "s"}): see the marked nodes`, "error");
      } else {
        this.failureToast(error, "submit");
      }
    }
  }

  /**
   * The invalid-graph banner, once the whole graph is no longer the one it described (an edit, Ctrl+Z): gone, as its
   * errors may be (the marks on the nodes stay until their inputs are edited or the next Run). Opening or leaving a
   * subgraph changes no graph: the banner stays.
   */
  private clearStaleInvalidBanner(): void {
    const shown = this.invalidBanner;
    if (!shown) return;
    if (this.session.get().banner !== shown.banner) {
      this.invalidBanner = null; // replaced or closed meanwhile
      return;
    }
    if (stringifyJson(toGraphFile(this.editor.rootDoc())) === shown.graph) return;
    this.invalidBanner = null;
    this.dispatch({ type: "banner", banner: null });
  }

  /** Cancel a queued run; one that already left the queue (a double click) is a silent no-op. */
  async cancel(runId: string): Promise<void> {
    await this.simpleRequest({ type: "cancel", run_id: runId }, "cancel", alreadySettled);
  }

  /** Interrupt the running run; one that already finished is a silent no-op. */
  async interrupt(runId: string): Promise<void> {
    await this.simpleRequest({ type: "interrupt", run_id: runId }, "interrupt", alreadySettled);
  }

  /** Requeue an ended run; its `requeued` reply makes it this editor's run (run/sessionState.ts). */
  async requeue(runId: string): Promise<void> {
    await this.simpleRequest({ type: "requeue", run_id: runId }, "requeue");
  }

  private async simpleRequest(message: JsonMessage, verb: string, harmless: (error: unknown) => boolean = () => false): Promise<boolean> {
    try {
      await this.client.request(message);
      this.scheduleQueueRefresh();
      return true;
    } catch (error) {
      if (harmless(error)) this.scheduleQueueRefresh();
      else this.failureToast(error, verb);
      return false;
    }
  }

  /** Open a workflow template by id (`get_template {template_id}` → `template {graph}`). */
  async openTemplate(id: string): Promise<void> {
    const title = this.session.get().templates?.find((t) => t.id === id)?.title ?? id;
    try {
      const reply = await this.client.request<JsonMessage & { graph: unknown }>({ type: "get_template", template_id: id });
      if (this.loadGraph(reply.graph, title)) this.graphToast(`Opened the template ${title}`);
    } catch (error) {
      this.toast(failureText(error, `open the template ${id}`), "error");
    }
  }

  /** Whether the user has not touched the editor yet: nothing loaded, nothing added. */
  private untouched(): boolean {
    const state = this.editor.state;
    return state.loadCount === 0 && state.history.past.length === 0 && Object.keys(state.doc.nodes).length === 0;
  }

  /** The first open with nothing kept: the shipped txt2img template (if listed), quietly, unless the user was quicker. */
  private openFirstTemplate(): void {
    if (this.firstOpen !== "waiting" || !this.untouched()) return;
    const id = firstOpenTemplate(this.session.get().templates ?? []);
    this.firstOpen = id ? "asked" : "none";
    if (!id) return;
    void this.client
      .request<JsonMessage & { graph: unknown }>({ type: "get_template", template_id: id })
      .then((reply) => {
        if (this.firstOpen !== "asked" || !this.untouched()) return;
        this.firstOpen = "none";
        this.loadGraph(reply.graph, id, { undoable: false });
      })
      .catch(() => undefined); // the canvas simply stays empty
  }

  /** Edit subgraph definition `name` on the canvas (opened from node `instance`: its inner nodes show that node's
   * run states); a definition the editor cannot read is refused with the reason. */
  openSubgraph(name: string, instance: string | null = null): void {
    try {
      this.editor.openSubgraph(name, instance);
    } catch (error) {
      this.showLoadError(`subgraph ${name}`, (error as Error).message);
    }
  }

  /** Open the graph a past run ran (`get_run` → `run {graph}`), seeds as they were, with its results on the nodes. */
  async openRunGraph(runId: string): Promise<void> {
    try {
      const reply = await this.client.request<JsonMessage & { graph?: unknown; run?: { graph?: unknown } }>({ type: "get_run", run_id: runId });
      const graph = reply.graph ?? reply.run?.graph;
      if (graph === undefined) throw new Error("the server's reply has no graph");
      if (this.loadGraph(graph, "the run's graph")) {
        this.graphToast("Opened the graph of that run");
        // ... with that run's results on its nodes, as ComfyUI shows a queue item's outputs
        const status = this.session.get().history.find((run) => run.run_id === runId)?.status;
        if (status === "succeeded" || status === "failed") {
          this.dispatch({ type: "adopt_run", runId });
          this.keepShownRun();
          this.canvas.followRun = runId; // its results make nodes taller and push others down
          this.client.send({ type: "get_outputs", run_id: runId });
        }
      }
    } catch (error) {
      this.toast(failureText(error, "open that run's graph"), "error");
    }
  }

  /** Open or close the Plugins panel; opening asks the server for the current plugin report. */
  showPlugins(open: boolean): void {
    this.dispatch({ type: "plugins_open", open });
    if (open) this.client.send({ type: "list_plugins" });
  }

  // --- storage ----------------------------------------------------------------

  /** Open or close the Storage panel; opening lists the files again (run/storage.ts). */
  showStorage(open: boolean): void {
    this.dispatch({ type: "storage", action: { type: "open", open } });
    if (open) this.refreshStorage();
  }

  /** Show all files, the uploads or the outputs (a new list from the first page). */
  setStorageFolder(folder: StorageFolder): void {
    this.dispatch({ type: "storage", action: { type: "folder", folder } });
    this.refreshStorage();
  }

  /** List the files again from the newest, as many as are shown now (at least a page; at most 1,000). */
  refreshStorage(): void {
    const shown = this.session.get().storage.files.length;
    this.listFiles(0, Math.min(1000, Math.max(STORAGE_PAGE, shown)));
  }

  /** The next page of files, after those shown. */
  moreStorage(): void {
    this.listFiles(this.session.get().storage.files.length, STORAGE_PAGE);
  }

  private listFiles(offset: number, limit: number): void {
    this.dispatch({ type: "storage", action: { type: "request", offset } });
    const { seq, folder } = this.session.get().storage;
    void this.client
      .request<JsonMessage & FilesReply>(listFilesMessage(folder, offset, limit))
      .then((reply) => this.dispatch({ type: "storage", action: { type: "files", seq, reply } }))
      .catch((error) => this.dispatch({ type: "storage", action: { type: "failed", seq, message: failureText(error, "list your files") } }));
  }

  /**
   * Delete one of the user's files (`delete_file`; the panel asked for confirmation first): its
   * `file_deleted` drops the row (run/sessionState.ts), then the list and usage are read again. A
   * refusal is shown on the row.
   */
  async deleteFile(fileId: string): Promise<boolean> {
    this.dispatch({ type: "storage", action: { type: "deleting", fileId } });
    try {
      await this.client.request({ type: "delete_file", file_id: fileId });
    } catch (error) {
      this.dispatch({ type: "storage", action: { type: "delete_failed", fileId, message: failureText(error, "delete it") } });
      return false;
    }
    this.dispatch({ type: "storage", action: { type: "deleted", fileId } }); // also when the reply came in a batch
    if (this.session.get().storage.open) this.refreshStorage();
    return true;
  }

  refreshModels(folder?: string): void {
    this.client.send(folder ? { type: "list_models", folder } : { type: "list_models" });
  }

  /** Upload a file of an upload kind; resolves with the name to put in the input (null when refused). */
  async upload(file: File, kind: UploadKind): Promise<string | null> {
    try {
      const reply = await this.client.upload(file.name, new Uint8Array(await file.arrayBuffer()), kind);
      this.toast(`Uploaded ${reply.name}`);
      return reply.name;
    } catch (error) {
      this.failureToast(error, `upload ${file.name}`);
      return null;
    }
  }

  // --- files ------------------------------------------------------------------

  /**
   * Load a graph from a .json file or from a PNG, JPEG or WebP saved by SaveImage (or a PNG by ComfyUI). A file that
   * is not JSON, nested too deeply, or not a graph leaves the canvas as it was and says why in
   * the error banner (with line and column for JSON syntax errors); a ComfyUI file is imported.
   */
  async loadFile(file: File): Promise<boolean> {
    this.firstOpen = "none";
    let raw: unknown;
    let fromImage = false;
    let bytesRead: Uint8Array | null = null;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      bytesRead = bytes;
      const media = mediaKind(bytes); // a clip SaveVideo wrote (MP4, WebM, GIF) carries its graph (graph/mediaGraph.ts)
      fromImage = isPng(bytes) || imageKind(bytes) !== null || media !== null;
      const image = isPng(bytes) || media ? null : imageKind(bytes);
      if (media) {
        const text = graphTextFromMedia(bytes);
        if (text === null) throw new GraphFormatError(noGraphText(media)); // which node saves one with its graph
        try {
          raw = parseJson(text);
        } catch (error) {
          throw new GraphFormatError(`the graph in this ${media} file's comment is not JSON: ${(error as Error).message}`);
        }
      } else if (image === "JPEG" || image === "WebP") raw = graphFromExif(bytes, image);
      else if (image) {
        throw new GraphFormatError(`this is a ${image} image, not a graph: open a .json graph, or a PNG, JPEG or WebP ` +
          "that SaveImage wrote (or a PNG from ComfyUI), which carries the graph that made it");
      } else if (isPng(bytes)) raw = await graphFromPng(bytes);
      else {
        const text = new TextDecoder().decode(bytes);
        try {
          raw = a1111Text(text) ?? parseJson(text); // A1111's .txt beside an image: a text-to-image graph
        } catch (error) {
          if (error instanceof JsonDepthError) throw error;
          throw new GraphFormatError(jsonErrorText(text, error as Error));
        }
      }
    } catch (error) {
      // an image without a graph is most often a photo meant as an input: say where it goes
      // (a clip's own message already says where it goes: LoadVideo)
      const hint = fromImage && mediaKind(bytesRead ?? new Uint8Array()) === null
        ? ". To use it as an input image, drop it on a LoadImage node (or use an image input's Upload button)" : "";
      this.showLoadError(file.name, (error as Error).message + hint);
      return false;
    }
    if (foreignKind(raw)) return this.importForeign(raw, file.name);
    if (!this.loadGraph(raw, file.name)) return false;
    const schemas = this.session.get().schemas;
    this.graphToast(fromImage ? openedImageToast(file.name, this.editor.rootDoc(), (type) => seedInputsOf(schemas.nodes[type]))
      : `Loaded ${file.name}`);
    return true;
  }

  /**
   * A file dropped on the canvas (`nodeId`: the node it was dropped on, if any). An image (PNG, JPEG, WebP, GIF, TIFF,
   * BMP) dropped on a node with an image upload input (LoadImage) is uploaded and becomes that input — one undo step,
   * as ComfyUI's LoadImage takes a dropped image, even one that carries a graph (a result fed back in to inpaint it).
   * Anything else is opened as a graph (`loadFile`). Resolves with whether the graph or the input changed.
   */
  async dropFile(file: File, nodeId: string | null = null): Promise<boolean> {
    const node = nodeId === null ? undefined : this.editor.doc.nodes[nodeId];
    const target = node ? imageDropInput(this.schemasFor()[node.type]?.inputs ?? {}, node.inputs) : null;
    if (!target || nodeId === null) return this.loadFile(file);
    const head = new Uint8Array(await file.slice(0, 16).arrayBuffer());
    if (!isPng(head) && imageKind(head) === null) return this.loadFile(file);
    const stored = await this.upload(file, target.kind);
    if (stored === null) return false; // refused: the toast says why
    if (!(nodeId in this.editor.doc.nodes)) return false; // the node went while the file was uploading
    this.editor.edit((doc) => setInput(doc, nodeId, target.input, stored));
    this.dispatch({ type: "clear_input_error", nodeId, input: target.input });
    return true;
  }

  /**
   * The image viewer's *Use as input*: the image shown (an output or a live preview at `url`) uploaded as `name` and set
   * as the image input of the graph's LoadImage — the selected one when the graph has several — as a dropped image
   * is (`dropFile`): the InvokeAI canvas loop (generate, mask the result, inpaint, repeat) without a download and a
   * re-upload at every step. Refused with a toast that says what to do when no node, or no single one, fits.
   */
  async useImageAsInput(url: string, name: string): Promise<boolean> {
    const nodes = this.editor.doc.nodes;
    const schemas = this.schemasFor();
    const fits = Object.keys(nodes).filter((id) => imageDropInput(schemas[nodes[id].type]?.inputs ?? {}, nodes[id].inputs));
    const selected = fits.filter((id) => this.editor.state.selectedNodes[id]);
    const nodeId = selected.length === 1 ? selected[0] : fits.length === 1 ? fits[0] : null;
    if (nodeId === null) {
      this.toast(fits.length
        ? `The graph has ${fits.length} nodes that take an image (${fits.join(", ")}): select the one to fill, then Use as input again`
        : "The graph has no node that takes an uploaded image: add a LoadImage node, then Use as input again", "error");
      return false;
    }
    let file: File;
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      const blob = await response.blob();
      file = new File([blob], name, { type: blob.type });
    } catch (error) {
      this.toast(`Could not read ${name} to use it as an input: ${(error as Error).message}`, "error");
      return false;
    }
    return this.dropFile(file, nodeId);
  }

  /**
   * Open a ComfyUI file through the server (`import_graph` → `imported_graph {graph, errors}`):
   * node types nodegraph lacks become red placeholders that keep their data, and the validation
   * errors are shown on the nodes. Without a connection the banner says what to do.
   */
  async importForeign(raw: unknown, name: string): Promise<boolean> {
    if (this.session.get().connection !== "connected") {
      this.showLoadError(name, foreignFormat(raw) ?? "this file is not a nodegraph graph");
      return false;
    }
    let reply: JsonMessage & { graph?: unknown; errors?: unknown };
    try {
      reply = await this.client.request<JsonMessage & { graph?: unknown; errors?: unknown }>({ type: "import_graph", data: raw });
    } catch (error) {
      const message = error instanceof ProtocolError && error.code !== "disconnected" ? error.message : foreignFormat(raw) ?? String(error);
      this.showLoadError(name, message);
      return false;
    }
    if (!this.loadGraph(importedTitle(reply.graph, name, name === PASTED_TEXT), name, { separate: true })) return false;
    const errors = (Array.isArray(reply.errors) ? reply.errors : []) as GraphError[];
    const unknown = errors.filter((e) => e?.code === "unknown_node_type").length;
    if (errors.length) this.dispatch({ type: "validation_errors", errors });
    const placeholders = unknown ? `: ${unknown} node${unknown === 1 ? " is a type" : "s are types"} nodegraph does not have (red placeholders that keep their data)` : "";
    const graph = reply.graph as { metadata?: { a1111_untranslated?: unknown; a1111_translated?: unknown; comfyui_subgraphs?: unknown }; ui?: { notes?: unknown } } | undefined;
    // ComfyUI's Note / MarkdownNote nodes, kept as notes on the canvas (ui.notes): said, as the nodes are
    const notes = Array.isArray(graph?.ui?.notes) ? graph.ui.notes.length : 0;
    const kept = notes ? ` (${notes} note${notes === 1 ? "" : "s"} kept)` : "";
    const expanded = expandedText(graph?.metadata?.comfyui_subgraphs);
    const left = Array.isArray(graph?.metadata?.a1111_untranslated) ? graph.metadata.a1111_untranslated.map(String) : null;
    const made = Array.isArray(graph?.metadata?.a1111_translated) ? graph.metadata.a1111_translated.map(String) : null;
    const text = foreignKind(raw) === "a1111-parameters"
      ? `Made a text-to-image graph of ${name}'s AUTOMATIC1111 parameters${made?.length ? ` (also: ${made.join("; ").slice(0, 300)})` : ""}${left?.length ? ` (not translated: ${left.join("; ").slice(0, 300)})` : ""}`
      : `Imported ${name} from ComfyUI${kept}${expanded}${placeholders}`;
    this.dispatch({ type: "banner", banner: { kind: "info", text } }); // said once, in the banner (a toast said it again)
    return true;
  }

  /** Why a graph could not be opened: once, in the banner (no toast besides), until the next load succeeds. */
  private showLoadError(name: string, message: string): void {
    const text = refusalText(name, message, name === PASTED_TEXT);
    this.dispatch({ type: "banner", banner: { kind: "error", text } });
  }

  /**
   * Open a graph (parsed JSON); a file that is not a nodegraph graph is refused with the reason
   * and the canvas keeps what it showed. The results shown on nodes belong to the previous graph:
   * they are cleared. `undoable: false` for graphs the user did not ask for (a restore, the first open);
   * `separate: true` for a ComfyUI import: its overlapping nodes are pushed apart once shown (`canvas.separateWhenShown`).
   */
  loadGraph(raw: unknown, name = "the graph", options: { undoable?: boolean; separate?: boolean } = {}): boolean {
    this.firstOpen = "none";
    let doc: EditorDocument;
    let renames: InputRename[] = [];
    try {
      const foreign = foreignFormat(raw);
      if (foreign) throw new GraphFormatError(foreign);
      doc = fromGraphFile(raw);
      ({ doc, renames } = withRenamedInputs(doc, this.session.get().schemas.nodes));
    } catch (error) {
      if (!(error instanceof GraphFormatError)) console.error("nodegraph: could not read a graph:", error);
      const message = error instanceof GraphFormatError ? error.message : `the editor could not read it (${(error as Error)?.message ?? String(error)})`;
      this.showLoadError(name, message);
      return false;
    }
    for (const url of Object.values(this.session.get().previews)) URL.revokeObjectURL(url);
    this.writeTab(TAB_RUN_KEY, null); // the shown run's node ids do not belong to this graph
    this.canvas.followRun = null;
    this.canvas.separateWhenShown = options.separate ?? false; // set before the canvas sees the new graph
    this.editor.load(doc, options.undoable ?? true);
    this.dispatch({ type: "graph_loaded" });
    this.dispatch({ type: "banner", banner: null });
    this.announcement.set(null); // "Run failed…" of the graph before was still in the status region
    this.toasts.set((list) => (list.some((t) => t.about === "graph") ? list.filter((t) => t.about !== "graph") : list));
    const notice = renamesText(renames);
    if (notice) this.graphToast(notice);
    return true;
  }

  /**
   * Schemas that came after the graph was opened (the cached ones were older: a plugin updated since):
   * the inputs they rename are renamed in the graph shown, without an undo step, and a toast says so.
   */
  private renameForNewSchemas(): void {
    const schemas = this.session.get().schemas.nodes;
    const root = this.editor.rootDoc();
    const { doc, renames } = withRenamedInputs(root, schemas);
    if (doc === root) return;
    this.editor.replaceEverywhere((d) => withRenamedInputs(d, schemas).doc);
    const notice = renamesText(renames);
    if (notice) this.toast(notice);
  }

  // --- kept in localStorage -------------------------------------------------------

  /**
   * Open the graph kept from the last session (true when one was opened); with nothing kept, the
   * first-open template follows the templates list.
   */
  private restoreAutosave(): boolean {
    const text = keptText(this.readTab(TAB_AUTOSAVE_KEY), this.readStorage(AUTOSAVE_KEY));
    if (text !== null && this.tab) storeText(this.tab, TAB_AUTOSAVE_KEY, text); // this tab's from now on
    const kept = readAutosave(text);
    if (kept === null) {
      this.firstOpen = "waiting";
    } else if ("tooLarge" in kept) {
      const mb = (kept.tooLarge / 1e6).toFixed(1);
      this.dispatch({ type: "banner", banner: { kind: "info", text: `The graph open before was too large (${mb} M characters) to keep across reloads: open its saved file` } });
    } else {
      this.loadGraph(kept.graph, "the graph kept from the last session", { undoable: false });
    }
    this.autosavedDoc = { doc: this.editor.doc, depth: this.editor.state.path.length };
    return this.editor.state.loadCount > 0;
  }

  /** The page is hidden or closed (maybe a reload): keep the graph, and the run shown on it with its badges. */
  keepForReload(): void {
    this.flushAutosave();
    this.keepShownRun();
  }

  /** Keep the run shown on the nodes, with its badges, for a reload of this tab (run/tabRun.ts). */
  private keepShownRun(): void {
    const { activeRun, nodeStates } = this.session.get();
    if (activeRun) this.writeTab(TAB_RUN_KEY, tabRunText(activeRun, nodeStates));
  }

  private readTab(key: string): string | null {
    try {
      return this.tab?.getItem(key) ?? null;
    } catch {
      return null;
    }
  }

  private writeTab(key: string, value: string | null): void {
    try {
      if (value === null) this.tab?.removeItem(key);
      else this.tab?.setItem(key, value);
    } catch {
      // no tab storage: a reload simply does not resume
    }
  }

  private readStorage(key: string): string | null {
    try {
      return this.storage?.getItem(key) ?? null;
    } catch {
      return null;
    }
  }

  /** After a change of the document: write it in AUTOSAVE_DELAY_MS (changes meanwhile restart the wait). */
  private scheduleAutosave(): void {
    if (!this.storage && !this.tab) return;
    const state = this.editor.state;
    const saved = this.autosavedDoc;
    if (saved && saved.doc === state.doc && saved.depth === state.path.length) return;
    if (this.autosaveTimer) clearTimeout(this.autosaveTimer);
    this.autosaveTimer = setTimeout(() => this.flushAutosave(), AUTOSAVE_DELAY_MS);
  }

  /** Write the whole graph now (too large: a note instead; a full storage: one console line). */
  flushAutosave(): void {
    if (this.autosaveTimer) clearTimeout(this.autosaveTimer);
    this.autosaveTimer = null;
    if (!this.storage && !this.tab) return;
    const state = this.editor.state;
    const saved = this.autosavedDoc;
    if (saved && saved.doc === state.doc && saved.depth === state.path.length) return;
    this.autosavedDoc = { doc: state.doc, depth: state.path.length };
    let text: string;
    try {
      text = autosaveText(this.graphFile());
    } catch (error) {
      text = JSON.stringify({ autosave: 1, too_large: 0 });
      console.warn("nodegraph: the graph could not be kept for the next session:", error);
    }
    const stored = [this.storage, this.tab].map((storage) => !storage || this.keepAutosave(storage, text));
    if (stored.every(Boolean)) return;
    if (!this.autosaveWarned) console.warn("nodegraph: the browser's storage is full: the graph is not kept across reloads");
    this.autosaveWarned = true;
  }

  /** Write the autosave text to one storage (localStorage: for a new tab; sessionStorage: for this tab's reload);
   * false when it was full (a too-large note is written instead). */
  private keepAutosave(storage: StorageLike, text: string): boolean {
    const key = storage === this.tab ? TAB_AUTOSAVE_KEY : AUTOSAVE_KEY;
    if (storeText(storage, key, text)) return true;
    storeText(storage, key, JSON.stringify({ autosave: 1, too_large: text.length }));
    return false;
  }

  /** The graph file text that Save writes (the whole graph, open subgraphs included). */
  graphText(doc: EditorDocument = this.editor.rootDoc()): string {
    return stringifyJson(toGraphFile(doc), 2) + "\n";
  }

  save(): void {
    const title = this.editor.rootDoc().metadata?.title;
    const name = downloadName(title);
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
    const shown = idMap<Position>();
    for (const id of Object.keys(doc.nodes)) if (rects[id] && !doc.nodes[id].position) shown[id] = [rects[id].x, rects[id].y];
    return moveNodes(doc, shown);
  }

  /**
   * An edit that places, moves, aligns or resizes nodes, or draws a group or a reroute around them:
   * it starts from the layout the user sees (`materialize`), so in a graph without positions the
   * nodes it does not touch stay where they are shown (else dagre would lay them out again around
   * the placed ones). `key` coalesces like `editor.edit`'s; `drag` makes it part of a drag step.
   */
  layoutEdit(change: (doc: EditorDocument) => EditorDocument, options: { key?: string; drag?: boolean } = {}): void {
    if (options.drag) this.editor.dragEdit((doc) => change(this.materialize(doc)));
    else this.editor.edit((doc) => change(this.materialize(doc)), options.key ?? null);
  }

  /** Copy the selected nodes (and notes) with the positions they are shown at (auto-layout included). */
  copySelection(): boolean {
    const rects = this.canvas.rects();
    const clip = copyNodes(this.editor.doc, Object.keys(this.editor.state.selectedNodes), (id) => {
      const r = rects[id];
      return r ? [r.x, r.y] : undefined;
    });
    if (!clip) return false;
    this.clip = clip;
    this.clipSizes = idMap(Object.keys(clip.nodes).map((id): [string, Size] => [id, rects[id] ?? { width: 300, height: 150 }]));
    this.keepClip(clip);
    this.clipToSystem(clip);
    return true;
  }

  private clipSizes: Record<string, Size> = idMap();

  /**
   * Put the clip's text on the system clipboard too (best effort: the browser may refuse), so
   * that the newest copy wins when Ctrl+V finds a graph's JSON copied elsewhere before.
   */
  private clipToSystem(clip: Clip): void {
    const clipboard = (globalThis.navigator as Navigator | undefined)?.clipboard;
    if (!clipboard?.writeText) return;
    try {
      clipboard.writeText(clipToText(clip, this.clipSizes)).catch(() => undefined);
    } catch {
      // no clipboard access: the localStorage clip still pastes
    }
  }

  /** Share the clip with the other tabs (localStorage); too large for it: this tab only. */
  private keepClip(clip: Clip): void {
    if (!this.storage) return;
    let text: string;
    try {
      text = clipToText(clip, this.clipSizes);
    } catch {
      return;
    }
    if (text.length > STORAGE_LIMIT || !storeText(this.storage, CLIPBOARD_KEY, text)) {
      try {
        this.storage.removeItem(CLIPBOARD_KEY); // an older clip must not be pasted instead
      } catch {
        // storage disabled: nothing to remove
      }
    }
  }

  /** The clip to paste: the newest copy of any tab (localStorage), else this tab's. */
  private currentClip(): Clip | null {
    const shared = clipFromText(this.readStorage(CLIPBOARD_KEY));
    if (!shared) return this.clip;
    this.clipSizes = shared.sizes;
    return shared.clip;
  }

  /**
   * Ctrl+V (a `paste` event outside text fields) with what the system clipboard holds:
   *   - nodes copied in an editor (the clip text Ctrl+C also puts there): pasted;
   *   - a PNG or .json file, or JSON text (a nodegraph graph, a ComfyUI API prompt or UI
   *     workflow), or A1111's generation parameters as text: opened as if the file was dropped on the canvas (one undo step; a ComfyUI
   *     prompt is imported, a UI workflow refused with the reason, broken JSON shows its error);
   *   - anything else: the nodes copied in an editor (localStorage), or, with none, a toast
   *     saying what Ctrl+V pastes.
   */
  async pasteFromClipboard(text: string, files: File[] = [], keepExternalLinks = false): Promise<void> {
    const trimmed = text.trim();
    const shared = clipFromText(trimmed);
    if (shared) {
      this.clip = shared.clip;
      this.clipSizes = shared.sizes;
      this.paste(keepExternalLinks, shared.clip);
      return;
    }
    const file = files.find((f) => /^image\/(png|jpeg|webp)$|json/.test(f.type) || /\.(png|jpe?g|webp|json|txt)$/i.test(f.name));
    if (file) {
      await this.loadFile(file);
      return;
    }
    if (trimmed.startsWith("{") || a1111Text(trimmed)) { // JSON, or A1111's "PNG Info" text copied from its UI
      await this.loadFile(new File([trimmed], PASTED_TEXT, { type: "application/json" }));
      return;
    }
    if (this.currentClip()) {
      this.paste(keepExternalLinks);
      return;
    }
    if (trimmed || files.length) {
      this.toast("Nothing to paste: the clipboard holds no nodes and no graph. Ctrl+V pastes nodes copied with Ctrl+C, or opens a graph's JSON text (nodegraph or ComfyUI) or a saved image (PNG, JPEG, WebP); Load opens files too", "error");
    }
  }

  /**
   * Paste the copied nodes (and notes) at the pointer (or shifted from the originals), keeping their
   * arrangement, then moved clear of every node already on the canvas (no pile, no overlap). Nodes
   * copied from a graph that writes renamed inputs by their old names take the new ones (graph/renamedInputs.ts).
   * Returns the new nodes' ids (selected with the new notes), none when nothing was copied.
   */
  paste(keepExternalLinks = false, from: Clip | null = null): string[] {
    const clip = from ?? this.currentClip();
    if (!clip) return [];
    const clipNotes = clip.notes ?? [];
    const originals = [...Object.values(clip.nodes).map((n) => n.position ?? [0, 0]), ...clipNotes.map((n) => [n.bounds[0], n.bounds[1]])];
    const minX = Math.min(...originals.map((p) => p[0]));
    const minY = Math.min(...originals.map((p) => p[1]));
    const pointer = this.canvas.pointer;
    const offset: Position = pointer ? [pointer[0] - minX, pointer[1] - minY] : [40, 40];
    const rects = Object.values(this.canvas.rects());
    let ids: string[] = [];
    let noteIds: string[] = [];
    this.editor.edit((doc) => {
      const pasted = pasteClip(this.materialize(doc), clip, offset, { keepExternalLinks });
      ids = pasted.ids;
      noteIds = pasted.notes;
      // One shift for the whole clip (its arrangement is kept): the nearest spot where its box is free.
      // (only the width and height: without localStorage the sizes are this tab's copied boxes, whose x / y, the
      // originals', put the pasted nodes' boxes apart from where they were pasted, and from the pasted notes)
      const sizes = Object.keys(clip.nodes).map((id) => {
        const { width, height } = this.clipSizes[id] ?? { width: 300, height: 150 };
        return { width, height };
      });
      const noteBoxes = notesOf(pasted.doc).filter((n) => noteIds.includes(n.id))
        .map((n) => ({ x: n.bounds[0], y: n.bounds[1], width: n.bounds[2], height: n.bounds[3] }));
      const boxes = [...ids.map((id, i) => ({ x: pasted.doc.nodes[id].position![0], y: pasted.doc.nodes[id].position![1], ...sizes[i] })), ...noteBoxes];
      const bx = Math.min(...boxes.map((b) => b.x));
      const by = Math.min(...boxes.map((b) => b.y));
      const bw = Math.max(...boxes.map((b) => b.x + b.width)) - bx;
      const bh = Math.max(...boxes.map((b) => b.y + b.height)) - by;
      // ...inside the view, as a node added by search or a dropped wire (a pasted node near the canvas's edge was
      // 6 % visible: a re-test), one node even overlapping; several with no free spot there (a whole graph
      // pasted beside itself) go clear of the others, out of view, rather than in a heap on top of them
      const size = { width: bw, height: bh };
      const inView = freeSpot([bx, by], size, rects, undefined, this.canvas.view());
      const covers = rects.some((r) => overlaps({ x: inView[0], y: inView[1], ...size }, r));
      const spot = covers && boxes.length > 1 ? freeSpot([bx, by], size, rects) : inView;
      const [dx, dy] = [spot[0] - bx, spot[1] - by];
      const placed = moveNodes(pasted.doc, idMap(ids.map((id, i): [string, Position] => [id, [boxes[i].x + dx, boxes[i].y + dy]])));
      return withRenamedInputs(shiftNotes(placed, noteIds, dx, dy), this.session.get().schemas.nodes).doc; // nodes copied from a graph of an older version
    });
    this.editor.select(idMap([...ids, ...noteIds.map((id) => NOTE_PREFIX + id)].map((id) => [id, true as const])));
    return ids;
  }
}
