/**
 * What the editor knows from the server, as one state value and a pure reducer.
 *
 * Fields:
 *   connection       the websocket's status.
 *   clientId         this connection's id (from `welcome`).
 *   user             who this connection is on a server with users (`welcome.user`), else null.
 *   schemas          node schemas and port types (`nodes`).
 *   models           model file names per folder (`models`).
 *   queue, history   the running / queued runs (`queue`) and recent runs (`history`).
 *   myRuns           runs this editor submitted (their events come to us).
 *   activeRun        the run whose per-node states are shown on the nodes.
 *   interrupting     runs the server said it is interrupting (`interrupting`), until they leave the
 *                    queue's running line (the Queue panel says "interrupting…" meanwhile).
 *   nodeStates       per node: queued / running (value, total) / cached / done (seconds) /
 *                    error (message) / interrupted — from the run events.
 *   previews         per node: the latest step preview (an object URL).
 *   nodeFiles        per node: output files of the active run, every kind (run/media.ts), by index.
 *   nodeOutputs      per node: the recorded outputs of output nodes (`outputs`).
 *   gallery          every output file this session received, newest first, plus the files of
 *                    earlier runs in the server's history (so the gallery survives a reload).
 *   runFiles         per run: its output files (history thumbnails).
 *   templates        the server's workflow templates (`templates`), null until they come.
 *   validationErrors the `invalid_graph` errors of the last submit (shown on nodes and inputs).
 *   warnings         per node: every `node_warning` of the shown run, and for nodes served from
 *                    the cache the warnings their result had when it was computed (marked
 *                    `earlier`; run/warnings.ts). Shown on the nodes and in the warnings banner.
 *   warningMemory    result key (run/warnings.ts `warningKey`) → the warnings of the last run that
 *                    computed that result; a node that runs again starts with none. Kept across
 *                    runs and loads (keys of unknown runs, which go by node id, are dropped on load).
 *   banner           a message for the whole editor (run failed, interrupted, connection-level
 *                    protocol errors; other error frames are toasts, see state/app.ts).
 *   pluginWarnings   plugin problems (`welcome.plugin_warnings`, then `plugins.warnings`).
 *   plugins          the `plugins` reply to `list_plugins` (null until it comes).
 *   pluginNotice     the warnings signature the user dismissed the plugin notice for (run/plugins.ts).
 *   pluginsOpen      whether the Plugins panel is open.
 *   storage          the Storage panel (run/storage.ts): open, its folder filter, the listed files
 *                    (`list_files` pages, reduced there) and the usage against `max_bytes`. A
 *                    `file_deleted` drops the file from it and from the gallery.
 *   graphLoads       how many whole graphs were loaded (opened, restored, imported); each load
 *                    clears the per-node results (nodeStates, previews, nodeFiles, nodeOutputs),
 *                    whose node ids may happen to match the new graph's.
 *   runGraphs        per run this editor submitted: the `graphLoads` it was submitted under. A
 *                    run of an earlier graph never shows its progress or results on the nodes.
 *   watched          per run this editor watches but did not submit (`watch`, run/watchedRuns.ts):
 *                    its progress for the Queue panel, from its events, until it ends. Its events
 *                    never touch the canvas (nodeStates, previews, activeRun, ...).
 *
 * Side effects (requests, object URLs) happen in the app; this module only
 * turns messages into state, so it is tested by feeding messages. Records are
 * checked as they arrive (protocol/records.ts: titles and messages are text), and
 * every map keyed by a node id is prototype-free (graph/idMaps.ts).
 */
import { copyIdMap, idMap, withId } from "../graph/idMaps";
import type { ConnectionStatus } from "../protocol/client";
import { cleanRunSummary, cleanRuns, cleanTemplates, textOf } from "../protocol/records";
import type { GraphError, RunSummary, ServerMessage } from "../protocol/messages";
import { EMPTY_SCHEMAS, schemaSetFrom, type SchemaSet } from "../schema/types";
import { outputItemFrom, type OutputItem } from "./media";
import { cleanWarnings, type PluginsReport, type PluginWarning } from "./plugins";
import { initialStorageState, reduceStorage, type StorageAction, type StorageState } from "./storage";
import { isRunEvent, startWatching, watchedRunAfter, type WatchedRun } from "./watchedRuns";
import type { NodeWarning } from "./warnings";

export type { OutputItem } from "./media";

export type NodeRunStatus = "queued" | "running" | "cached" | "done" | "error" | "interrupted" | "skipped";

/** One workflow template (`templates` reply to `list_templates`, docs/protocol.md). */
export interface Template {
  id: string;
  title: string;
  description?: string;
  source?: string;
  [extra: string]: unknown;
}

export interface NodeRunState {
  status: NodeRunStatus;
  value?: number;
  total?: number;
  seconds?: number;
  message?: string;
  exceptionType?: string;
}

export interface Banner {
  kind: "error" | "info";
  text: string;
  /** A connection-level problem (invalid_token, ...): cleared by the next welcome. */
  connection?: boolean;
}

export interface SessionState {
  connection: ConnectionStatus;
  clientId: string | null;
  user: { name: string; role: string } | null;
  serverVersion: string;
  schemas: SchemaSet;
  models: Record<string, string[]>;
  /** `runningTotal` / `aheadTotal`: the server's counts of every user's running runs and of other users' queued runs
   *  ahead of this user's next one (docs/protocol.md `queue_status`; 0 from a server that sends none). */
  queue: { running: RunSummary | null; pending: RunSummary[]; runningTotal: number; aheadTotal: number };
  history: RunSummary[];
  myRuns: string[];
  activeRun: string | null;
  interrupting: string[];
  nodeStates: Record<string, NodeRunState>;
  previews: Record<string, string>;
  nodeFiles: Record<string, OutputItem[]>;
  nodeOutputs: Record<string, unknown>;
  gallery: OutputItem[];
  runFiles: Record<string, OutputItem[]>;
  templates: Template[] | null;
  validationErrors: GraphError[];
  warnings: Record<string, NodeWarning[]>;
  warningMemory: Record<string, string[]>;
  banner: Banner | null;
  pluginWarnings: PluginWarning[];
  plugins: PluginsReport | null;
  pluginNotice: string | null;
  pluginsOpen: boolean;
  storage: StorageState;
  graphLoads: number;
  runGraphs: Record<string, number>;
  watched: Record<string, WatchedRun>;
}

export const initialSessionState: SessionState = {
  connection: "disconnected",
  clientId: null,
  user: null,
  serverVersion: "",
  schemas: EMPTY_SCHEMAS,
  models: {},
  queue: { running: null, pending: [], runningTotal: 0, aheadTotal: 0 },
  history: [],
  myRuns: [],
  activeRun: null,
  interrupting: [],
  nodeStates: idMap(),
  previews: idMap(),
  nodeFiles: idMap(),
  nodeOutputs: idMap(),
  gallery: [],
  runFiles: idMap(),
  templates: null,
  validationErrors: [],
  warnings: idMap(),
  warningMemory: idMap(),
  banner: null,
  pluginWarnings: [],
  plugins: null,
  pluginNotice: null,
  pluginsOpen: false,
  storage: initialStorageState,
  graphLoads: 0,
  runGraphs: idMap(),
  watched: idMap(),
};

export type SessionAction =
  | { type: "server"; message: ServerMessage }
  | { type: "connection"; status: ConnectionStatus }
  | { type: "schemas"; schemas: SchemaSet }
  | { type: "preview"; runId: string; nodeId: string; url: string }
  | { type: "file"; file: OutputItem }
  | { type: "history_outputs"; message: Extract<ServerMessage, { type: "outputs" }> }
  | { type: "clear_input_error"; nodeId: string; input: string }
  | { type: "validation_errors"; errors: GraphError[] }
  | { type: "banner"; banner: Banner | null }
  | { type: "dismiss_plugin_notice"; signature: string }
  | { type: "plugins_open"; open: boolean }
  | { type: "storage"; action: StorageAction }
  | { type: "graph_loaded" }
  | { type: "adopt_run"; runId: string; nodeStates?: Record<string, NodeRunState> }
  | { type: "watch_run"; runId: string }
  | { type: "unwatch_run"; runId: string };

export interface ReduceContext {
  /** The URL of a file id (`/files/<id>`, with the token when there is one). */
  fileUrl: (fileId: string) => string;
  /** The warning-memory key of a node of a run (run/warnings.ts); default: by node id. */
  warningKey?: (runId: string, nodeId: string) => string;
}

const MAX_WARNING_MEMORY = 2000;

function keyOf(context: ReduceContext, runId: string, nodeId: string): string {
  return context.warningKey ? context.warningKey(runId, nodeId) : `node:${nodeId}`;
}

/** `warningMemory` with `key` set to `messages` (newest last; the oldest keys dropped past the limit). */
function remember(memory: Record<string, string[]>, key: string, messages: string[] | null): Record<string, string[]> {
  const entries = Object.entries(memory).filter(([k]) => k !== key);
  if (messages) entries.push([key, messages]);
  return idMap(entries.slice(-MAX_WARNING_MEMORY));
}

const MAX_GALLERY = 200;

/** Error codes about the connection itself: they stay in the banner (other error frames are toasts). */
export const CONNECTION_ERROR_CODES = new Set(["invalid_token", "unsupported_protocol", "hello_required"]);

/** Add an output file (any kind) to its node (when its run is shown) and to the gallery, once. */
function addFile(state: SessionState, file: OutputItem): SessionState {
  const forNode = (state.nodeFiles[file.nodeId] ?? []).filter((i) => i.fileId !== file.fileId);
  const known = state.nodeFiles[file.nodeId]?.find((i) => i.fileId === file.fileId);
  const merged = known ? { ...known, ...file } : file; // a later record may know more (mime, size)
  const nodeFiles = file.runId === state.activeRun
    ? withId(state.nodeFiles, file.nodeId, [...forNode, merged].sort((a, b) => a.index - b.index))
    : state.nodeFiles;
  const at = state.gallery.findIndex((i) => i.fileId === file.fileId);
  const gallery = at >= 0
    ? state.gallery.map((i, n) => (n === at ? { ...i, ...file } : i))
    : [file, ...state.gallery].slice(0, MAX_GALLERY);
  return addRunFile({ ...state, nodeFiles, gallery }, file);
}

function addRunFile(state: SessionState, file: OutputItem): SessionState {
  const list = (state.runFiles[file.runId] ?? []).filter((i) => i.fileId !== file.fileId);
  return { ...state, runFiles: withId(state.runFiles, file.runId, [...list, file].sort((a, b) => a.index - b.index)) };
}

/** Files of an earlier run (from the history): its thumbnails, and the end of the gallery; never shown on nodes. */
function addHistoryFiles(state: SessionState, message: Extract<ServerMessage, { type: "outputs" }>, context: ReduceContext): SessionState {
  let next = state;
  for (const [index, record] of (message.files ?? []).entries()) {
    if (record.missing) continue;      // deleted since, or its name holds a later run's file: not this run's
    const file = outputItemFrom(message.run_id, record, context.fileUrl(record.file_id), index);
    next = addRunFile(next, file);
    if (!next.gallery.some((i) => i.fileId === file.fileId) && next.gallery.length < MAX_GALLERY) {
      next = { ...next, gallery: [...next.gallery, file] };
    }
  }
  return { ...next, gallery: newestRunsFirst(next.gallery, next.history) };
}

/**
 * The gallery in the history's order (newest run first; a run's files in their order). The replies
 * for earlier runs' files come in any order (the server answers them in parallel), which put the
 * oldest run first after a reload. Files of runs the history does not list (yet) stay in front.
 */
function newestRunsFirst(gallery: OutputItem[], history: RunSummary[]): OutputItem[] {
  const rank = new Map(history.map((run, index) => [run.run_id, index]));
  return gallery
    .map((item, position) => ({ item, position, rank: rank.get(item.runId) ?? -1 }))
    .sort((a, b) => a.rank - b.rank || a.position - b.position)
    .map(({ item }) => item);
}

/** One event of a watched run: its progress line only (run/watchedRuns.ts); gone when the run ends. */
function reduceWatchedEvent(state: SessionState, message: Extract<ServerMessage, { run_id: string }>): SessionState {
  const next = watchedRunAfter(state.watched[message.run_id], message);
  if (next === null) return unwatched(state, message.run_id);
  return { ...state, watched: withId(state.watched, message.run_id, next) };
}

function unwatched(state: SessionState, runId: string): SessionState {
  if (!(runId in state.watched)) return state;
  return { ...state, watched: idMap(Object.entries(state.watched).filter(([id]) => id !== runId)) };
}

function setNode(state: SessionState, nodeId: string, next: NodeRunState): SessionState {
  return { ...state, nodeStates: withId(state.nodeStates, nodeId, next) };
}

function isActive(state: SessionState, runId: string): boolean {
  return state.activeRun === runId;
}

/** Whether a run belongs to the graph on the canvas (runs this editor did not submit count as yes). */
function ofShownGraph(state: SessionState, runId: string): boolean {
  const loads = state.runGraphs[runId];
  return loads === undefined || loads === state.graphLoads;
}

/** A validation error with text where text is shown. */
function cleanGraphError(error: GraphError): GraphError {
  const clean: GraphError = { ...error, code: textOf(error.code), message: textOf(error.message) };
  if (error.node_id !== undefined && error.node_id !== null) clean.node_id = textOf(error.node_id);
  if (error.input !== undefined && error.input !== null) clean.input = textOf(error.input);
  return clean;
}

function cleanGraphErrors(errors: unknown): GraphError[] {
  return Array.isArray(errors) ? errors.filter((e) => e !== null && typeof e === "object").map((e) => cleanGraphError(e as GraphError)) : [];
}

/** A count from the server (`running_total`, `ahead_total`, `position`): a whole number ≥ 0, else 0 (an older server
 *  sends none). */
function count(value: unknown): number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : 0;
}

/** "Waiting for another user's run (N ahead of yours)": `ahead` runs (running and queued) go before yours. */
function otherUsersWait(ahead: number): string {
  return `Waiting for another user's run (${ahead} ahead of yours)`;
}

/**
 * Why this user's queued runs do not start, for the Queue panel: runs are running (`running_total` > 0) but none this
 * user may see (`running` null: a plain user behind another user's run, which the server never names), and this user
 * has runs queued. N counts those running runs and the other users' queued runs ahead of this user's next one. Null
 * otherwise (the panel shows the running run, or nothing waits).
 */
export function queueWaitText(queue: SessionState["queue"]): string | null {
  if (queue.running !== null || queue.runningTotal === 0 || queue.pending.length === 0) return null;
  return otherUsersWait(queue.runningTotal + queue.aheadTotal);
}

/**
 * The same for a run just submitted, from its `submitted` reply (`running_total`, `position`: every queued run ahead
 * of it) and the queue this editor knows (`running`: a run of this user's is running, so the wait is not another
 * user's). Null when nothing else runs.
 */
export function submittedWaitText(reply: { running_total?: unknown; position?: unknown }, queue: SessionState["queue"]): string | null {
  const running = count(reply.running_total);
  if (running === 0 || queue.running !== null) return null;
  return otherUsersWait(running + count(reply.position));
}

/** The next state after `action`. */
export function reduceSession(state: SessionState, action: SessionAction, context: ReduceContext): SessionState {
  switch (action.type) {
    case "connection":
      return { ...state, connection: action.status };
    case "schemas":
      return { ...state, schemas: action.schemas };
    case "preview":
      if (!isActive(state, action.runId)) return state;
      return { ...state, previews: withId(state.previews, action.nodeId, action.url) };
    case "file":
      return addFile(state, action.file);
    case "history_outputs":
      return addHistoryFiles(state, action.message, context);
    case "clear_input_error":
      return {
        ...state,
        validationErrors: state.validationErrors.filter((e) => !(e.node_id === action.nodeId && e.input === action.input)),
      };
    case "validation_errors":
      return { ...state, validationErrors: cleanGraphErrors(action.errors) };
    case "banner":
      return { ...state, banner: action.banner };
    case "dismiss_plugin_notice":
      return { ...state, pluginNotice: action.signature };
    case "plugins_open":
      return { ...state, pluginsOpen: action.open };
    case "storage": {
      const storage = reduceStorage(state.storage, action.action);
      return storage === state.storage ? state : { ...state, storage };
    }
    case "graph_loaded":
      return {
        ...state,
        graphLoads: state.graphLoads + 1,
        activeRun: null,
        nodeStates: idMap(),
        previews: idMap(),
        nodeFiles: idMap(),
        nodeOutputs: idMap(),
        validationErrors: [],
        warnings: idMap(),
        warningMemory: idMap(Object.entries(state.warningMemory).filter(([key]) => !key.startsWith("node:"))),
      };
    case "watch_run":
      if (action.runId in state.watched || state.myRuns.includes(action.runId)) return state;
      return { ...state, watched: withId(state.watched, action.runId, startWatching()) };
    case "unwatch_run":
      return unwatched(state, action.runId);
    case "adopt_run":
      // The run this tab showed before a page reload (run/tabRun.ts), with the badges it had then: a
      // running one's events come to the new connection (hello.resume), an ended one's outputs follow.
      return {
        ...unwatched(state, action.runId),
        myRuns: [...state.myRuns.filter((id) => id !== action.runId), action.runId],
        runGraphs: withId(state.runGraphs, action.runId, state.graphLoads),
        activeRun: action.runId,
        nodeStates: copyIdMap(action.nodeStates ?? {}),
      };
    case "server":
      return reduceMessage(state, action.message, context);
  }
}

function reduceMessage(state: SessionState, message: ServerMessage, context: ReduceContext): SessionState {
  if (isRunEvent(message) && message.run_id in state.watched) return reduceWatchedEvent(state, message);
  switch (message.type) {
    case "welcome":
      return {
        ...state,
        clientId: message.client_id,
        user: message.user && typeof message.user.name === "string" ? { name: message.user.name, role: String(message.user.role ?? "user") } : null,
        serverVersion: message.server_version,
        pluginWarnings: cleanWarnings(message.plugin_warnings),
        // A reconnect after an invalid_token (or a restart) leaves no stale connection banner behind.
        banner: state.banner?.connection ? null : state.banner,
      };
    case "plugins":
      return {
        ...state,
        plugins: {
          loaded: Array.isArray(message.loaded) ? message.loaded : [],
          failed: Array.isArray(message.failed) ? message.failed : [],
          skipped: Array.isArray(message.skipped) ? message.skipped : [],
          conflicts: Array.isArray(message.conflicts) ? message.conflicts : [],
          warnings: cleanWarnings(message.warnings),
        },
        pluginWarnings: cleanWarnings(message.warnings),
      };
    case "output_file":
      return addFile(state, outputItemFrom(message.run_id, message, context.fileUrl(message.file_id)));
    case "nodes":
      if (!message.nodes || !message.types) return state; // our cached schemas are current
      return { ...state, schemas: schemaSetFrom(message.schema_hash, message.nodes, message.types) };
    case "models":
      return { ...state, models: { ...state.models, ...message.folders } };
    case "queue": {
      const running = cleanRunSummary(message.running);
      const interrupting = state.interrupting.filter((id) => id === running?.run_id);
      const queue = { running, pending: cleanRuns(message.pending), runningTotal: count(message.running_total), aheadTotal: count(message.ahead_total) };
      return { ...state, interrupting, queue };
    }
    case "interrupting":
      if (state.interrupting.includes(message.run_id)) return state;
      return { ...state, interrupting: [...state.interrupting, message.run_id] };
    case "history": {
      const history = cleanRuns(message.runs);
      const active = history.find((run) => run.run_id === state.activeRun);
      return settleActiveRun({ ...state, history }, active?.run_id ?? null, active?.status);
    }
    case "queue_changed": {
      const ended = message.status !== "queued" && message.status !== "running";
      return settleActiveRun(ended ? unwatched(state, message.run_id) : state, message.run_id, message.status);
    }
    case "watching":
      return message.watching === false ? unwatched(state, message.run_id) : state; // it had already ended
    case "requeued":
      // this editor's run again (the reply comes before the run's queue_changed: never watched)
      if (state.myRuns.includes(message.run_id)) return state;
      return { ...unwatched(state, message.run_id), myRuns: [...state.myRuns, message.run_id].slice(-500) };
    case "submitted":
      return {
        ...unwatched(state, message.run_id),
        myRuns: [...state.myRuns, message.run_id].slice(-500),
        runGraphs: withId(state.runGraphs, message.run_id, state.graphLoads),
        validationErrors: [],
        banner: null,
      };
    case "error":
      if (message.code === "invalid_graph") {
        const errors = cleanGraphErrors(message.details?.errors);
        return {
          ...state,
          validationErrors: errors,
          banner: { kind: "error", text: invalidGraphText(message.message, errors) },
        };
      }
      if (CONNECTION_ERROR_CODES.has(message.code)) {
        return { ...state, banner: { kind: "error", text: `${message.code}: ${message.message}`, connection: true } };
      }
      return state; // shown as a toast by the app (state/app.ts)
    case "templates":
      return { ...state, templates: cleanTemplates(message.templates) };
    case "file_deleted": {
      // gone from the disk: from the Storage panel, the gallery and the history's thumbnails (its image would
      // no longer load; the server's next history says so too)
      const fileId = textOf(message.file_id);
      const storage = reduceStorage(state.storage, { type: "deleted", fileId });
      const gallery = state.gallery.some((i) => i.fileId === fileId) ? state.gallery.filter((i) => i.fileId !== fileId) : state.gallery;
      const history = state.history.some((run) => run.thumbnail === fileId)
        ? state.history.map((run) => (run.thumbnail === fileId ? { ...run, thumbnail: null } : run)) : state.history;
      let runFiles = state.runFiles;
      for (const [runId, list] of Object.entries(state.runFiles)) {
        if (list.some((i) => i.fileId === fileId)) runFiles = withId(runFiles, runId, list.filter((i) => i.fileId !== fileId));
      }
      if (storage === state.storage && gallery === state.gallery && history === state.history && runFiles === state.runFiles) return state;
      return { ...state, storage, gallery, history, runFiles };
    }
    case "run_started": {
      if (!ofShownGraph(state, message.run_id)) return state;
      const nodeStates = idMap<NodeRunState>();
      for (const id of message.nodes ?? []) nodeStates[String(id)] = { status: "queued" };
      for (const id of message.skipped ?? []) nodeStates[String(id)] = { status: "skipped" };
      return {
        ...state,
        activeRun: message.run_id,
        nodeStates,
        previews: idMap(),
        nodeFiles: idMap(),
        nodeOutputs: idMap(),
        warnings: idMap(),
        banner: null,
      };
    }
    case "node_started": {
      if (!isActive(state, message.run_id)) return state;
      // The node computes its result again: the warnings it had before do not apply to this one.
      const key = keyOf(context, message.run_id, message.node_id);
      const next = key in state.warningMemory ? { ...state, warningMemory: remember(state.warningMemory, key, null) } : state;
      return setNode(next, message.node_id, { status: "running" });
    }
    case "node_progress":
      if (!isActive(state, message.run_id)) return state;
      return setNode(state, message.node_id, { status: "running", value: message.value, total: message.total });
    case "node_cached": {
      if (!isActive(state, message.run_id)) return state;
      const earlier = state.warningMemory[keyOf(context, message.run_id, message.node_id)];
      const next = earlier?.length
        ? { ...state, warnings: withId(state.warnings, message.node_id, earlier.map((text): NodeWarning => ({ message: text, earlier: true }))) }
        : state;
      return setNode(next, message.node_id, { status: "cached" });
    }
    case "node_finished":
      if (!isActive(state, message.run_id)) return state;
      return setNode(state, message.node_id, { status: "done", seconds: message.seconds });
    case "node_error":
      if (!isActive(state, message.run_id)) return state;
      return setNode(state, message.node_id, {
        status: "error",
        message: textOf(message.message),
        exceptionType: message.exception_type === undefined ? undefined : textOf(message.exception_type),
      });
    case "node_warning": {
      // The node ran, but its result deserves a look (e.g. prompt words the model never learnt).
      // Every warning of the run is kept (on its node and in the warnings banner), and remembered
      // for the runs that will serve this result from the cache.
      if (!isActive(state, message.run_id)) return state;
      const nodeId = textOf(message.node_id);
      const text = textOf(message.message);
      // `cached`: the engine gives a result's warnings again when it serves that result from the cache
      const earlier = message.cached === true;
      const shown = (state.warnings[nodeId] ?? []).filter((w) => !w.earlier || earlier);
      if (shown.some((w) => w.message === text)) return state;
      const key = keyOf(context, message.run_id, nodeId);
      return {
        ...state,
        warnings: withId(state.warnings, nodeId, [...shown, { message: text, earlier }]),
        warningMemory: remember(state.warningMemory, key, [...(state.warningMemory[key] ?? []).filter((m) => m !== text), text]),
      };
    }
    case "run_finished":
      if (!isActive(state, message.run_id)) return state;
      return { ...state, nodeStates: dropWaiting(state.nodeStates, null) };
    case "run_failed":
      if (!isActive(state, message.run_id)) return state;
      return {
        ...state,
        nodeStates: dropWaiting(state.nodeStates, null),
        banner: { kind: "error", text: `Run failed${message.node_id ? ` at node ${textOf(message.node_id)}` : ""}: ${textOf(message.message)}` },
      };
    case "run_interrupted":
      if (!isActive(state, message.run_id)) return state;
      return {
        ...state,
        nodeStates: dropWaiting(state.nodeStates, "interrupted"),
        banner: { kind: "info", text: "Run interrupted" },
      };
    case "outputs": {
      if (message.status !== "succeeded" && message.status !== "failed") return state;
      let next: SessionState = state;
      // The results of a run this editor submitted for the graph on the canvas; never those of the
      // history's runs (asked for their thumbnails), whose node ids may happen to match.
      const submittedHere = state.runGraphs[message.run_id] === state.graphLoads;
      if (isActive(state, message.run_id) || (state.activeRun === null && submittedHere)) {
        next = { ...next, activeRun: message.run_id, nodeOutputs: copyIdMap(message.outputs) };
      }
      for (const [index, file] of (message.files ?? []).entries()) {
        if (file.missing) continue;
        next = addFile(next, outputItemFrom(message.run_id, file, context.fileUrl(file.file_id), index));
      }
      return next;
    }
    default:
      return state;
  }
}

/**
 * The shown run ended without this editor hearing its last event (the connection dropped, or the
 * server restarted, meanwhile): the status that `queue_changed` or the history report settles its
 * badges as `run_finished` / `run_failed` / `run_interrupted` would have.
 */
function settleActiveRun(state: SessionState, runId: string | null, status: string | undefined): SessionState {
  if (runId === null || !isActive(state, runId) || status === undefined) return state;
  if (status !== "succeeded" && status !== "failed" && status !== "interrupted" && status !== "cancelled") return state;
  const waiting = Object.values(state.nodeStates).some((s) => s.status === "queued" || s.status === "running");
  if (!waiting) return state;
  return { ...state, nodeStates: dropWaiting(state.nodeStates, status === "interrupted" ? "interrupted" : null) };
}

/** After a run ends: nodes that never started lose their "queued" badge; running ones become `runningTo`. */
function dropWaiting(states: Record<string, NodeRunState>, runningTo: NodeRunStatus | null): Record<string, NodeRunState> {
  const out = idMap<NodeRunState>();
  for (const [id, s] of Object.entries(states)) {
    if (s.status === "queued") continue;
    if (s.status === "skipped") {
      out[id] = s;
      continue;
    }
    if (s.status === "running") {
      if (runningTo) out[id] = { status: runningTo };
      continue;
    }
    out[id] = s;
  }
  return out;
}

/**
 * The run state of a subgraph node from its inner nodes' events (namespaced `<outer id>/<inner id>`,
 * docs/graph-format.md "Subgraphs"): error if one failed, running (with that node's progress) if one
 * runs, done (times summed) when all finished or came from the cache, skipped when all were skipped;
 * undefined when no inner node has a state.
 */
/** The expanded id of the inner node of subgraph node `outerId` that is running now (its step preview is the
 * subgraph node's), or undefined. */
export function runningInnerId(states: Record<string, NodeRunState>, outerId: string): string | undefined {
  const prefix = `${outerId}/`;
  return Object.keys(states).find((id) => id.startsWith(prefix) && states[id].status === "running");
}

export function subgraphRunState(states: Record<string, NodeRunState>, outerId: string): NodeRunState | undefined {
  const prefix = `${outerId}/`;
  const inner = Object.entries(states).filter(([id]) => id.startsWith(prefix)).map(([, s]) => s);
  if (!inner.length) return undefined;
  const failed = inner.find((s) => s.status === "error");
  if (failed) return failed;
  const running = inner.find((s) => s.status === "running");
  if (running) return running;
  if (inner.some((s) => s.status === "interrupted")) return { status: "interrupted" };
  if (inner.some((s) => s.status === "queued")) return { status: "queued" };
  if (inner.every((s) => s.status === "skipped")) return { status: "skipped" };
  if (inner.every((s) => s.status === "cached" || s.status === "skipped")) return { status: "cached" };
  return { status: "done", seconds: inner.reduce((sum, s) => sum + (s.seconds ?? 0), 0) };
}

/**
 * The banner of an `invalid_graph` refusal, counted in words of our own (the server's message said
 * "1 error(s)"), then the first three errors.
 */
export function invalidGraphText(serverMessage: string, errors: { message: string }[]): string {
  if (!errors.length) return serverMessage;
  const count = `${errors.length} error${errors.length === 1 ? "" : "s"}`;
  return `The graph is invalid (${count}): ${errors.map((e) => e.message).slice(0, 3).join(" · ")}`;
}
