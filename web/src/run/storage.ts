/**
 * The Storage panel's state: the user's stored files (`list_files` → `files`, docs/protocol.md) and
 * what their storage holds against its limit, as one value and a pure reducer, plus the words and
 * numbers the panel shows. On a server with users the history keeps each user's newest runs only;
 * older runs' files stay in their folders and count against `max_bytes`: this is where they are seen
 * and deleted (`delete_file` → `file_deleted`).
 *
 *   cleanStoredFiles(raw)      the `files` entries with the right types (malformed ones dropped)
 *   cleanUsage(raw)            `usage` as numbers (null: no limit applies), or null
 *   reduceStorage(state, a)    the next panel state (open, filter, a page, a delete, a failure)
 *   formatBytes(n)             "512 B", "1.5 KiB", "12.3 MiB", "1.02 GiB"
 *   formatMiB(n)               "12.3 MiB" (the usage line's unit)
 *   usageText(usage, files, total)  "X MiB of Y MiB used (uploads A, outputs B, runs C)", or, without
 *                              a limit, the total of the files listed
 *   usageFraction(usage)       how full the storage is (0..1), or null without a limit
 *   fileName(fileId)           the name shown for a file id ("output/run/a.png" → "run/a.png")
 *   isStorageQuota(code, details)  whether an error is a full storage (`details.limit` "max_bytes"; its
 *                              toast offers "Open storage")
 *   thumbnailUrl(url)          the server's small JPEG of an image (`?size=128`)
 *
 * A page that comes for an older request (the filter changed, or the list was refreshed, since) is
 * dropped: `seq` counts the requests and each reply carries the one it answers.
 */
import { textOf } from "../protocol/records";

/** Which files the panel lists: both folders, the uploads (`input`) or the outputs (`output`). */
export type StorageFolder = "all" | "input" | "output";

export const STORAGE_FOLDERS: { value: StorageFolder; label: string }[] = [
  { value: "all", label: "All" },
  { value: "input", label: "Uploads" },
  { value: "output", label: "Outputs" },
];

/** How many files one `list_files` asks for ("more" asks for the next as many). */
export const STORAGE_PAGE = 100;

export interface StoredFile {
  fileId: string;
  bytes: number;
  /** Seconds since the epoch (the file's modification time). */
  modified: number;
  mime: string;
}

/** What counts against the user's `max_bytes`, in bytes (null: a folder past the server's count). */
export interface StorageUsage {
  uploads: number | null;
  outputs: number | null;
  runs: number | null;
  maxBytes: number;
}

export interface StorageState {
  open: boolean;
  folder: StorageFolder;
  files: StoredFile[];
  /** How many files the server found (for the filter), or null before the first page. */
  total: number | null;
  /** False when the folders hold more files than the server lists. */
  complete: boolean;
  usage: StorageUsage | null;
  /** The newest `list_files` request; pages for older ones are dropped. */
  seq: number;
  loading: boolean;
  /** Why the last listing failed, or null. */
  error: string | null;
  /** Files whose `delete_file` is on its way. */
  deleting: string[];
  /** Per file id: why its delete failed. */
  deleteErrors: Record<string, string>;
}

export const initialStorageState: StorageState = {
  open: false,
  folder: "all",
  files: [],
  total: null,
  complete: true,
  usage: null,
  seq: 0,
  loading: false,
  error: null,
  deleting: [],
  deleteErrors: {},
};

/** The `files` reply to `list_files`, as the server sends it. */
export interface FilesReply {
  files?: unknown;
  total?: unknown;
  complete?: unknown;
  offset?: unknown;
  usage?: unknown;
}

export type StorageAction =
  | { type: "open"; open: boolean }
  | { type: "folder"; folder: StorageFolder }
  /** A `list_files` goes out (offset 0: the list starts again); `seq` becomes the newest request. */
  | { type: "request"; offset: number }
  | { type: "files"; seq: number; reply: FilesReply }
  | { type: "failed"; seq: number; message: string }
  | { type: "deleting"; fileId: string }
  | { type: "deleted"; fileId: string }
  | { type: "delete_failed"; fileId: string; message: string };

function finite(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The entries of a `files` reply with a string file id; sizes and times as numbers, the mime as text. */
export function cleanStoredFiles(raw: unknown): StoredFile[] {
  if (!Array.isArray(raw)) return [];
  const out: StoredFile[] = [];
  for (const entry of raw) {
    if (!isObject(entry) || typeof entry.file_id !== "string" || !entry.file_id) continue;
    out.push({
      fileId: entry.file_id,
      bytes: Math.max(0, finite(entry.bytes) ?? 0),
      modified: finite(entry.modified) ?? 0,
      mime: textOf(entry.mime),
    });
  }
  return out;
}

/** The `usage` of a `files` reply: null when no limit applies (no users, an admin) or it is malformed. */
export function cleanUsage(raw: unknown): StorageUsage | null {
  if (!isObject(raw)) return null;
  const maxBytes = finite(raw.max_bytes);
  if (maxBytes === null) return null;
  return { uploads: finite(raw.uploads), outputs: finite(raw.outputs), runs: finite(raw.runs), maxBytes };
}

function withoutKey(map: Record<string, string>, key: string): Record<string, string> {
  if (!(key in map)) return map;
  const next: Record<string, string> = {};
  for (const [k, v] of Object.entries(map)) if (k !== key) next[k] = v;
  return next;
}

/** The next panel state after `action`. */
export function reduceStorage(state: StorageState, action: StorageAction): StorageState {
  switch (action.type) {
    case "open":
      return action.open === state.open ? state : { ...state, open: action.open };
    case "folder":
      if (action.folder === state.folder) return state;
      return { ...state, folder: action.folder, files: [], total: null, complete: true, error: null };
    case "request":
      return { ...state, seq: state.seq + 1, loading: true, error: null };
    case "files": {
      if (action.seq !== state.seq) return state; // the answer to an older request
      const page = cleanStoredFiles(action.reply.files);
      const offset = finite(action.reply.offset) ?? 0;
      // offset 0: the list as it is now; later pages add the files not shown yet (a file can move
      // across a page boundary when newer ones were written meanwhile)
      const kept = offset === 0 ? [] : state.files;
      const known = new Set(kept.map((f) => f.fileId));
      const files = [...kept, ...page.filter((f) => !known.has(f.fileId))];
      const total = finite(action.reply.total);
      return {
        ...state,
        files,
        total: total === null ? files.length : Math.max(total, files.length),
        complete: action.reply.complete !== false,
        usage: cleanUsage(action.reply.usage),
        loading: false,
        error: null,
        // a file listed again was not deleted: its old failure no longer applies
        deleteErrors: offset === 0 ? {} : state.deleteErrors,
      };
    }
    case "failed":
      if (action.seq !== state.seq) return state;
      return { ...state, loading: false, error: action.message };
    case "deleting":
      return {
        ...state,
        deleting: state.deleting.includes(action.fileId) ? state.deleting : [...state.deleting, action.fileId],
        deleteErrors: withoutKey(state.deleteErrors, action.fileId),
      };
    case "deleted": {
      const files = state.files.filter((f) => f.fileId !== action.fileId);
      const gone = files.length !== state.files.length;
      const deleting = state.deleting.filter((id) => id !== action.fileId);
      if (!gone && deleting.length === state.deleting.length) return state;
      return {
        ...state,
        files,
        total: state.total !== null && gone ? Math.max(files.length, state.total - 1) : state.total,
        deleting,
        deleteErrors: withoutKey(state.deleteErrors, action.fileId),
      };
    }
    case "delete_failed":
      return {
        ...state,
        deleting: state.deleting.filter((id) => id !== action.fileId),
        deleteErrors: { ...state.deleteErrors, [action.fileId]: action.message },
      };
  }
}

/** A size in bytes as a person reads it (binary units: KiB, MiB, GiB, TiB). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "? B";
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)} ${units[unit]}`;
}

/** A size in MiB (the usage line's unit): "0 MiB", "<0.01 MiB", "0.25 MiB", "12.3 MiB", "2048 MiB". */
export function formatMiB(bytes: number | null): string {
  if (bytes === null || !Number.isFinite(bytes)) return "? MiB";
  const value = Math.max(0, bytes) / 2 ** 20;
  if (value === 0) return "0 MiB";
  if (value < 0.01) return "<0.01 MiB";
  return `${value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(1) : value.toFixed(2)} MiB`;
}

/** The bytes counted against the limit (null when the server could not count a folder). */
export function usedBytes(usage: StorageUsage): number | null {
  if (usage.uploads === null || usage.outputs === null || usage.runs === null) return null;
  return usage.uploads + usage.outputs + usage.runs;
}

/** How full the storage is, 0..1 (past the limit: 1), or null without a limit or a count. */
export function usageFraction(usage: StorageUsage | null): number | null {
  if (usage === null) return null;
  const used = usedBytes(usage);
  if (used === null) return null;
  if (usage.maxBytes <= 0) return 1;
  return Math.min(1, Math.max(0, used / usage.maxBytes));
}

/**
 * The usage line: with a limit "X MiB of Y MiB used (uploads A, outputs B, runs C)"; a folder the
 * server could not count reads "more than …". Without a limit: the total of the files listed, and
 * how many more there are.
 */
export function usageText(usage: StorageUsage | null, files: StoredFile[], total: number | null): string {
  if (usage !== null) {
    const used = usedBytes(usage);
    const part = (bytes: number | null) => (bytes === null ? "too many files to count" : formatMiB(bytes));
    return `${used === null ? "More than the server counts" : formatMiB(used)} of ${formatMiB(usage.maxBytes)} used ` +
      `(uploads ${part(usage.uploads)}, outputs ${part(usage.outputs)}, runs ${part(usage.runs)})`;
  }
  const listed = files.reduce((sum, f) => sum + f.bytes, 0);
  const count = `${files.length} file${files.length === 1 ? "" : "s"}`;
  const more = total !== null && total > files.length ? ` (of ${total})` : "";
  return `${formatMiB(listed)} in the ${count} listed${more}`;
}

/** The name shown for a file id: without its folder ("output/run/a.png" → "run/a.png"). */
export function fileName(fileId: string): string {
  const slash = fileId.indexOf("/");
  return slash > 0 && (fileId.startsWith("input/") || fileId.startsWith("output/")) ? fileId.slice(slash + 1) : fileId;
}

/** "Upload" or "Output", from the file id's folder. */
export function fileFolderLabel(fileId: string): string {
  return fileId.startsWith("input/") ? "Upload" : fileId.startsWith("output/") ? "Output" : "File";
}

/** The date and time a file was written, in the page's locale ("" for an unknown time). */
export function fileDate(modified: number, locale?: string): string {
  if (!modified) return "";
  const date = new Date(modified * 1000);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
}

/** Whether a file has a thumbnail: images the server can make a small JPEG of. */
export function hasThumbnail(file: StoredFile): boolean {
  return /^image\/(png|jpeg|webp|gif|bmp|tiff)$/.test(file.mime);
}

/** The server's 128 px JPEG of an image file (docs/protocol.md `/files/<id>?size=128`). */
export function thumbnailUrl(url: string): string {
  return `${url}${url.includes("?") ? "&" : "?"}size=128`;
}

/**
 * Whether a `quota_exceeded` error is about stored bytes (its toast offers "Open storage"), not the
 * number of queued runs or of watchers: the server says which in `details.limit`.
 */
export function isStorageQuota(code: string, details: unknown): boolean {
  return code === "quota_exceeded" && typeof details === "object" && details !== null
    && (details as { limit?: unknown }).limit === "max_bytes";
}

/** The `list_files` message for a folder filter, offset and page size (the server takes at most 1,000). */
export function listFilesMessage(folder: StorageFolder, offset: number, limit = STORAGE_PAGE): { type: "list_files"; [key: string]: unknown } {
  const message: { type: "list_files"; [key: string]: unknown } = { type: "list_files", offset, limit: Math.max(1, Math.min(1000, Math.floor(limit))) };
  if (folder !== "all") message.folder = folder;
  return message;
}
