/**
 * Types of the server's messages (docs/protocol.md), as far as the editor reads them.
 * Unknown fields are tolerated; unknown message types are ignored.
 */
import type { FileRecord } from "../run/media";
import type { LoadedPlugin, PluginWarning } from "../run/plugins";
import type { Template } from "../run/sessionState";
import type { NodeSchema, PortType } from "../schema/types";

export type RunStatus = "queued" | "running" | "succeeded" | "failed" | "interrupted" | "cancelled";

export interface RunSummary {
  run_id: string;
  status: RunStatus;
  client_id?: string;
  submitted_at?: number | string | null;
  started_at?: number | string | null;
  finished_at?: number | string | null;
  error?: unknown;
  title?: string | null;
  /**
   * Added by newer servers (docs/protocol.md "history"): seeds used, thumbnail file, duration.
   * A seed beyond 2^53 is kept as its exact decimal digits (protocol/records.ts).
   */
  seed?: number | string | null;
  seeds?: Record<string, number | string | null> | (number | string | null)[] | null;
  thumbnail?: string | null;
  duration?: number | null;
  /** The run's owner on a server with users (an admin sees every user's runs). */
  user?: string | null;
  [extra: string]: unknown;
}

/** One validation error of docs/graph-format.md. */
export interface GraphError {
  code: string;
  message: string;
  node_id?: string | null;
  input?: string | null;
  details?: Record<string, unknown>;
}

/** One entry of `outputs.files` (and the body of an `output_file` message): docs/protocol.md. */
export type OutputFile = FileRecord;

export type ServerMessage =
  | {
      type: "welcome";
      protocol_version: number;
      server_version: string;
      client_id: string;
      /** The earlier connection whose runs' events now come here (`hello.resume`), or null. */
      resumed?: string | null;
      /** The largest frame the server takes; larger uploads are refused here first. */
      max_message_bytes?: number | null;
      schema_hash: string;
      user?: { name: string; role: string } | null;
      plugin_warnings?: PluginWarning[];
    }
  | {
      type: "plugins";
      loaded?: LoadedPlugin[];
      failed?: Record<string, unknown>[];
      skipped?: { name: string; reason: string }[];
      conflicts?: Record<string, unknown>[];
      clashes?: Record<string, unknown>[];
      warnings?: PluginWarning[];
    }
  | ({ type: "output_file"; run_id: string } & OutputFile)
  | { type: "nodes"; schema_hash: string; nodes?: NodeSchema[]; types?: Record<string, PortType> }
  | { type: "submitted"; run_id: string; position: number; running_total?: number; ahead_total?: number }
  | {
      type: "queue";
      running: RunSummary | null;
      pending: RunSummary[];
      running_all?: RunSummary[];
      /** every user's running runs, and other users' queued runs ahead of your next one (counts only, never whose) */
      running_total?: number;
      ahead_total?: number;
    }
  | { type: "watching"; run_id: string; status: RunStatus; watching: boolean }
  | { type: "queue_changed"; run_id: string; status: RunStatus; pending: number }
  | { type: "cancelled"; run_id: string }
  | { type: "interrupting"; run_id: string }
  | { type: "requeued"; run_id: string; position: number }
  | { type: "history"; runs: RunSummary[]; total: number; offset: number }
  | { type: "outputs"; run_id: string; status: RunStatus; outputs: Record<string, unknown>; files: OutputFile[]; error: unknown }
  | { type: "models"; folders: Record<string, string[]> }
  | { type: "uploaded"; file_id: string; name: string; kind: string }
  /** The reply to `list_files`: a page of the user's files, newest first, and what their storage holds
   * (`usage` null: no limit applies). Read through run/storage.ts. */
  | {
      type: "files";
      files: { file_id: string; bytes: number; modified: number; mime: string }[];
      total: number;
      complete: boolean;
      offset: number;
      usage: { uploads: number | null; outputs: number | null; runs: number | null; max_bytes: number } | null;
    }
  | { type: "file_deleted"; file_id: string }
  | { type: "pong" }
  | { type: "error"; code: string; message: string; details?: { errors?: GraphError[]; [k: string]: unknown } }
  | { type: "run_started"; run_id: string; nodes: string[]; total: number; skipped?: string[] }
  | { type: "templates"; templates: Template[] }
  | { type: "node_started"; run_id: string; node_id: string; node_type: string }
  | { type: "node_cached"; run_id: string; node_id: string; node_type: string }
  | { type: "node_progress"; run_id: string; node_id: string; value: number; total: number; has_preview?: boolean }
  | { type: "node_finished"; run_id: string; node_id: string; node_type: string; seconds: number; peak_memory_bytes?: number | null }
  | { type: "node_error"; run_id: string; node_id: string; node_type: string; exception_type: string; message: string; traceback?: string }
  | { type: "node_warning"; run_id: string; node_id: string; node_type: string; message: string; cached?: boolean }
  | { type: "run_finished"; run_id: string; seconds: number; executed?: string[]; cached?: string[] }
  | { type: "run_failed"; run_id: string; node_id?: string | null; message: string }
  | { type: "run_interrupted"; run_id: string; node_id?: string | null };

export type WithRequestId<T> = T & { request_id?: string | number };
