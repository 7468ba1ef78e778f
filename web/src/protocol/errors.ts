/**
 * The server's error codes (docs/protocol.md "Errors") as words a person reads.
 *
 * Every `error {code, message}` frame is shown: the server's `message` already
 * names what was wrong and the fix; the editor puts a short title in front of
 * it, so `quota_exceeded` reads "Quota exceeded: you have 3 runs queued, ...".
 * A code this table does not know still shows, under its own name.
 *
 *   errorTitle(code)              the title for a code
 *   errorText(code, message, verb?)  one line for a toast ("Could not submit — Quota exceeded: ...")
 *   withoutRunIds(message)        the server's text with run ids (32 hex digits) as words: toasts
 *                                 name what happened, never an id the user has never seen
 */

const TITLES: Record<string, string> = {
  invalid_json: "Invalid JSON",
  invalid_message: "Invalid message",
  unknown_message_type: "Unknown message type",
  hello_required: "Not connected yet",
  unsupported_protocol: "Incompatible server",
  invalid_token: "Invalid token",
  invalid_graph: "Invalid graph",
  value_too_large: "Too large",
  not_found: "Not found",
  invalid_state: "Not possible now",
  invalid_frame: "Invalid frame",
  invalid_upload: "Upload refused",
  unknown_model_folder: "Unknown model folder",
  quota_exceeded: "Quota exceeded",
  forbidden: "Not allowed",
  internal_error: "Server error",
  disconnected: "Disconnected",
};

/** A short title for an error code (the code itself, made readable, when it is not in the table). */
export function errorTitle(code: string): string {
  const known = TITLES[code];
  if (known) return known;
  const words = code.replace(/_/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : "Error";
}

/** A server message with every run id replaced by words ("no run 'ab12…'" → "the run no longer exists"). */
export function withoutRunIds(message: string): string {
  return message
    .replace(/\bno run '?\b[0-9a-f]{32}\b'?/g, "the run no longer exists")
    .replace(/\brun '?\b[0-9a-f]{32}\b'?/g, "this run")
    .replace(/'?\b[0-9a-f]{32}\b'?/g, "this run");
}

/** One readable line for an error frame; `verb` ("submit") says what the user tried. */
export function errorText(code: string, message: string, verb?: string): string {
  const detail = message && message !== "undefined" ? `: ${withoutRunIds(message)}` : "";
  const tail = code === "internal_error" ? " (the server log has the details)" : "";
  return `${verb ? `Could not ${verb} — ` : ""}${errorTitle(code)}${detail}${tail}`;
}
