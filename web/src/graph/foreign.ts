/**
 * Files that are not nodegraph graphs (docs/graph-format.md "Unknown node types and graphs
 * from other tools"), and JSON syntax errors with their line and column.
 *
 *   foreignKind(raw)          "comfyui-api" (a ComfyUI API-format prompt), "comfyui-workflow"
 *                             (a ComfyUI UI-format workflow), "a1111-parameters" (an A1111 image's
 *                             {parameters: text}, graph/png.ts) or null — the server's rule
 *                             (nodegraph/graph.py `foreign_format`)
 *   foreignFormat(raw)        what such a file is and what to do, for when the server cannot
 *                             convert it (not connected); the words are the server's
 *   a1111Text(text)           A1111's parameters as a text file (the .txt it saves beside an image, or PNG
 *                             Info pasted) as {parameters: text}, or null — the server's rule (nodegraph/a1111.py
 *                             `looks_like_parameters`)
 *   jsonErrorText(text, err)  the parser's message with "line L, column C" added
 *   importedTitle(graph, name, pasted)  the graph with a title from the file name when it has none
 *   refusalText(name, message, pasted)  "Cannot open <name>: <why>", worded for a file or pasted text
 *
 * A connected editor sends both kinds to the server (`import_graph`, state/app.ts): either comes
 * back as a graph whose unknown nodes are red placeholders that keep their data (a UI workflow's
 * widget values are named for the classes the server knows: nodegraph/comfyui.py WIDGET_NAMES).
 */

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export type ForeignKind = "comfyui-api" | "comfyui-workflow" | "a1111-parameters";

/** Which other tool's file this is (null for anything else, nodegraph graphs included). */
export function foreignKind(raw: unknown): ForeignKind | null {
  if (!isObject(raw) || "format_version" in raw) return null;
  const keys = Object.keys(raw);
  if (keys.length === 1 && keys[0] === "parameters" && typeof raw.parameters === "string") return "a1111-parameters";
  if (Array.isArray(raw.nodes) && Array.isArray(raw.links)) return "comfyui-workflow";
  const entries = Object.values(raw);
  if (entries.length && entries.every((v) => isObject(v) && "class_type" in v)) return "comfyui-api";
  return null;
}

const A1111_MAX_CHARS = 100_000; // nodegraph/a1111.py MAX_PARAMETERS_CHARS

/** A1111's parameters as text — not JSON, its last line the settings line ("Steps: 20, Sampler: …") — as the
 *  {parameters} object an A1111 PNG gives (graph/png.ts), or null for any other text. */
export function a1111Text(text: string): { parameters: string } | null {
  const body = text.replace(/^\uFEFF/, "").trim();
  if (!body || body[0] === "{" || body[0] === "[" || body.length > A1111_MAX_CHARS) return null;
  const last = body.slice(body.lastIndexOf("\n") + 1).trim();
  return /^Steps: *\d/.test(last) ? { parameters: body } : null;
}

/** What a file from another tool is and what to do when the server cannot convert it (null for anything else). */
export function foreignFormat(raw: unknown): string | null {
  switch (foreignKind(raw)) {
    case "comfyui-workflow":
      return (
        "this is a ComfyUI UI-format workflow, not a nodegraph graph; the editor converts it with the server's " +
        "import_graph, and the server is not connected — open the file again once it is"
      );
    case "comfyui-api":
      return (
        "this is a ComfyUI API-format prompt, not a nodegraph graph; the editor converts it with the server's " +
        "import_graph, and the server is not connected — open the file again once it is (or convert it with " +
        "Session.import_comfyui in Python)"
      );
    case "a1111-parameters":
      return (
        "this image carries AUTOMATIC1111's generation parameters (\"PNG Info\"), not a nodegraph graph; the editor " +
        "makes a text-to-image graph of them with the server's import_graph, and the server is not connected — open " +
        "the file again once it is"
      );
    default:
      return null;
  }
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

/**
 * The one message for a graph that could not be opened: `name` (a file, or the pasted text) and why.
 * The server's "the file cannot be imported: " is left out ("Cannot open" says it), and for pasted
 * text "open the file again" reads "paste it again".
 */
export function refusalText(name: string, message: string, pasted: boolean): string {
  let why = message.replace(/^the file cannot be imported:\s*/i, "");
  if (pasted) why = why.replace(/\bopen the file again\b/g, "paste it again").replace(/\bthe file\b/g, "the text");
  return `Cannot open ${name}: ${why}`;
}

/**
 * An imported graph (`imported_graph.graph`) titled after its file (`comfy_portrait.json` →
 * "comfy_portrait"; pasted text → "pasted ComfyUI prompt") when it has no title of its own.
 */
export function importedTitle(graph: unknown, name: string, pasted: boolean): unknown {
  if (!isObject(graph)) return graph;
  const metadata = isObject(graph.metadata) ? graph.metadata : {};
  if (typeof metadata.title === "string" && metadata.title.trim()) return graph;
  const title = pasted ? "pasted ComfyUI prompt" : name.replace(/\.(json|png)$/i, "").trim() || name;
  return { ...graph, metadata: { ...metadata, title } };
}
