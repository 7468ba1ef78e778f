/**
 * Files that are not nodegraph graphs, named instead of opened as a blank canvas
 * (docs/graph-format.md "Unknown node types and graphs from other tools"), and
 * JSON syntax errors with their line and column.
 *
 *   foreignFormat(raw)        a sentence naming a ComfyUI API prompt or UI workflow, else null
 *   jsonErrorText(text, err)  the parser's message with "line L, column C" added
 */

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** What a file from another tool is, and what to do (null for anything else). */
export function foreignFormat(raw: unknown): string | null {
  if (!isObject(raw) || "format_version" in raw) return null;
  if (Array.isArray(raw.nodes) && Array.isArray(raw.links)) {
    return (
      "this is a ComfyUI workflow (UI format), not a nodegraph graph: its widget values are positional and " +
      "cannot be named without ComfyUI's node definitions — export it from ComfyUI with \"Save (API format)\" and " +
      "convert that with nodegraph.graph.import_foreign (Python)"
    );
  }
  const entries = Object.values(raw);
  if (entries.length && entries.every((v) => isObject(v) && typeof v.class_type === "string")) {
    return "this is a ComfyUI prompt (API format), not a nodegraph graph: convert it with nodegraph.graph.import_foreign (Python) first";
  }
  return null;
}

/** The 1-based line and column of character `offset` in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, offset));
  const lines = before.split("\n");
  return { line: lines.length, column: lines[lines.length - 1].length + 1 };
}

/** A JSON syntax error as one sentence with its line and column (engines word it differently). */
export function jsonErrorText(text: string, error: Error): string {
  const message = error.message;
  if (/line \d+ column \d+/.test(message)) return `not valid JSON: ${message}`;
  const at = /position (\d+)/.exec(message);
  if (at) {
    const { line, column } = lineColumn(text, Number(at[1]));
    return `not valid JSON: ${message} (line ${line}, column ${column})`;
  }
  return `not valid JSON: ${message}`;
}
