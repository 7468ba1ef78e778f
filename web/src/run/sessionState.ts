/**
 * What the editor knows from the server, as one state value and a pure reducer.
 *
 * Fields:
 *   connection       the websocket's status.
 *   clientId         this connection's id (from `welcome`).
 *   schemas          node schemas and port types (`nodes`).
 *   models           model file names per folder (`models`).
 *   queue, history   the running / queued runs (`queue`) and recent runs (`history`).
 *   myRuns           runs this editor submitted (their events come to us).
 *   activeRun        the run whose per-node states are shown on the nodes.
 *   nodeStates       per node: queued / running (value, total) / cached / done (seconds) /
 *                    error (message) / interrupted — from the run events.
 *   previews         per node: the latest step preview (an object URL).
 *   nodeImages       per node: output images of the active run.
 *   nodeOutputs      per node: the recorded outputs of output nodes (`outputs`).
 *   gallery          every output image this session received, newest first.
 *   validationErrors the `invalid_graph` errors of the last submit (shown on nodes and inputs).
 *   banner           a message for the whole editor (run failed, interrupted, protocol errors).
 *
 * Side effects (requests, object URLs) happen in the app; this module only
 * turns messages into state, so it is tested by feeding messages.
 */
import type { ConnectionStatus } from "../protocol/client";
import type { GraphError, RunSummary, ServerMessage } from "../protocol/messages";
import { EMPTY_SCHEMAS, schemaSetFrom, type SchemaSet } from "../schema/types";

export type NodeRunStatus = "queued" | "running" | "cached" | "done" | "error" | "interrupted";

export interface NodeRunState {
  status: NodeRunStatus;
  value?: number;
  total?: number;
  seconds?: number;
  message?: string;
  exceptionType?: string;
}

export interface OutputImage {
  runId: string;
  nodeId: string;
  fileId: string;
  url: string;
  index: number;
}

export interface Banner {
  kind: "error" | "info";
  text: string;
}

export interface SessionState {
  connection: ConnectionStatus;
  clientId: string | null;
  serverVersion: string;
  schemas: SchemaSet;
  models: Record<string, string[]>;
  queue: { running: RunSummary | null; pending: RunSummary[] };
  history: RunSummary[];
  myRuns: string[];
  activeRun: string | null;
  nodeStates: Record<string, NodeRunState>;
  previews: Record<string, string>;
  nodeImages: Record<string, OutputImage[]>;
  nodeOutputs: Record<string, unknown>;
  gallery: OutputImage[];
  validationErrors: GraphError[];
  banner: Banner | null;
}

export const initialSessionState: SessionState = {
  connection: "disconnected",
  clientId: null,
  serverVersion: "",
  schemas: EMPTY_SCHEMAS,
  models: {},
  queue: { running: null, pending: [] },
  history: [],
  myRuns: [],
  activeRun: null,
  nodeStates: {},
  previews: {},
  nodeImages: {},
  nodeOutputs: {},
  gallery: [],
  validationErrors: [],
  banner: null,
};

export type SessionAction =
  | { type: "server"; message: ServerMessage }
  | { type: "connection"; status: ConnectionStatus }
  | { type: "schemas"; schemas: SchemaSet }
  | { type: "preview"; runId: string; nodeId: string; url: string }
  | { type: "image"; image: OutputImage }
  | { type: "clear_input_error"; nodeId: string; input: string }
  | { type: "validation_errors"; errors: GraphError[] }
  | { type: "banner"; banner: Banner | null };

export interface ReduceContext {
  /** The URL of a file id (`/files/<id>`, with the token when there is one). */
  fileUrl: (fileId: string) => string;
}

const MAX_GALLERY = 200;

function addImage(state: SessionState, image: OutputImage): SessionState {
  const forNode = (state.nodeImages[image.nodeId] ?? []).filter((i) => i.fileId !== image.fileId);
  const nodeImages = image.runId === state.activeRun
    ? { ...state.nodeImages, [image.nodeId]: [...forNode, image].sort((a, b) => a.index - b.index) }
    : state.nodeImages;
  const existing = state.gallery.find((i) => i.fileId === image.fileId);
  const gallery = existing ? state.gallery : [image, ...state.gallery].slice(0, MAX_GALLERY);
  return { ...state, nodeImages, gallery };
}

function setNode(state: SessionState, nodeId: string, next: NodeRunState): SessionState {
  return { ...state, nodeStates: { ...state.nodeStates, [nodeId]: next } };
}

function isActive(state: SessionState, runId: string): boolean {
  return state.activeRun === runId;
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
      return { ...state, previews: { ...state.previews, [action.nodeId]: action.url } };
    case "image":
      return addImage(state, action.image);
    case "clear_input_error":
      return {
        ...state,
        validationErrors: state.validationErrors.filter((e) => !(e.node_id === action.nodeId && e.input === action.input)),
      };
    case "validation_errors":
      return { ...state, validationErrors: action.errors };
    case "banner":
      return { ...state, banner: action.banner };
    case "server":
      return reduceMessage(state, action.message, context);
  }
}

function reduceMessage(state: SessionState, message: ServerMessage, context: ReduceContext): SessionState {
  switch (message.type) {
    case "welcome":
      return { ...state, clientId: message.client_id, serverVersion: message.server_version };
    case "nodes":
      if (!message.nodes || !message.types) return state; // our cached schemas are current
      return { ...state, schemas: schemaSetFrom(message.schema_hash, message.nodes, message.types) };
    case "models":
      return { ...state, models: { ...state.models, ...message.folders } };
    case "queue":
      return { ...state, queue: { running: message.running, pending: message.pending } };
    case "history":
      return { ...state, history: message.runs };
    case "submitted":
      return {
        ...state,
        myRuns: [...state.myRuns, message.run_id].slice(-500),
        validationErrors: [],
        banner: null,
      };
    case "error":
      if (message.code === "invalid_graph") {
        const errors = message.details?.errors ?? [];
        return {
          ...state,
          validationErrors: errors,
          banner: { kind: "error", text: `${message.message}: ${errors.map((e) => e.message).slice(0, 3).join(" · ")}` },
        };
      }
      return { ...state, banner: { kind: "error", text: `${message.code}: ${message.message}` } };
    case "run_started": {
      const nodeStates: Record<string, NodeRunState> = {};
      for (const id of message.nodes ?? []) nodeStates[id] = { status: "queued" };
      return {
        ...state,
        activeRun: message.run_id,
        nodeStates,
        previews: {},
        nodeImages: {},
        nodeOutputs: {},
        banner: null,
      };
    }
    case "node_started":
      if (!isActive(state, message.run_id)) return state;
      return setNode(state, message.node_id, { status: "running" });
    case "node_progress":
      if (!isActive(state, message.run_id)) return state;
      return setNode(state, message.node_id, { status: "running", value: message.value, total: message.total });
    case "node_cached":
      if (!isActive(state, message.run_id)) return state;
      return setNode(state, message.node_id, { status: "cached" });
    case "node_finished":
      if (!isActive(state, message.run_id)) return state;
      return setNode(state, message.node_id, { status: "done", seconds: message.seconds });
    case "node_error":
      if (!isActive(state, message.run_id)) return state;
      return setNode(state, message.node_id, {
        status: "error",
        message: message.message,
        exceptionType: message.exception_type,
      });
    case "run_finished":
      if (!isActive(state, message.run_id)) return state;
      return { ...state, nodeStates: dropWaiting(state.nodeStates, null) };
    case "run_failed":
      if (!isActive(state, message.run_id)) return state;
      return {
        ...state,
        nodeStates: dropWaiting(state.nodeStates, null),
        banner: { kind: "error", text: `Run failed${message.node_id ? ` at node ${message.node_id}` : ""}: ${message.message}` },
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
      if (isActive(state, message.run_id) || state.activeRun === null) {
        next = { ...next, activeRun: message.run_id, nodeOutputs: { ...message.outputs } };
      }
      for (const [index, file] of (message.files ?? []).entries()) {
        if (file.kind !== "image") continue;
        next = addImage(next, { runId: message.run_id, nodeId: file.node_id, fileId: file.file_id, url: context.fileUrl(file.file_id), index });
      }
      return next;
    }
    default:
      return state;
  }
}

/** After a run ends: nodes that never started lose their "queued" badge; running ones become `runningTo`. */
function dropWaiting(states: Record<string, NodeRunState>, runningTo: NodeRunStatus | null): Record<string, NodeRunState> {
  const out: Record<string, NodeRunState> = {};
  for (const [id, s] of Object.entries(states)) {
    if (s.status === "queued") continue;
    if (s.status === "running") {
      if (runningTo) out[id] = { status: runningTo };
      continue;
    }
    out[id] = s;
  }
  return out;
}
