/**
 * JSON text ↔ values without losing integers, and without deep recursion.
 *
 * Graph files hold seeds up to 2^64−1 (the engine's range); a JavaScript number keeps
 * integers exactly only up to 2^53−1 (Number.MAX_SAFE_INTEGER), so plain `JSON.parse`
 * silently rounds 18446744073709551615 to 18446744073709552000 — and 9007199254740993 to
 * …992, a valid seed that gives a different image. This module keeps every digit:
 *
 *   parseJsonOrNull(text)   parseJson, or null for empty, malformed or too deep text (stored values)
 *   parseJson(text)         JSON.parse, except that an integer literal beyond the safe range
 *                           becomes a BigInt holding every digit, and text nested deeper than
 *                           MAX_JSON_DEPTH levels is refused (JsonDepthError) before parsing
 *   stringifyJson(value, indent?)   JSON.stringify, writing BigInts back as plain JSON numbers
 *   scanJson(text)          one pass over the text: its nesting depth and the spans of its
 *                           unsafe integer literals (strings skipped)
 *   isUnsafeIntegerLiteral  the rule: `-?digits` whose value is not a safe integer
 *   jsonPreview(value)      a value as one line of JSON for display (cut; never throws)
 *
 * How the digits are kept. Where `JSON.parse` hands the reviver the literal's source text
 * (`context.source`: Chrome 114+, Firefox 135+, Safari 18.4+), the reviver turns unsafe
 * integers into BigInts. Elsewhere each unsafe literal is first rewritten in the text as a
 * string that starts with a per-call random marker, and the reviver turns those back.
 * Writing uses `JSON.rawJSON` where the browser has it, else the same marker trick on the
 * output. Text with no run of 16 digits takes the plain `JSON.parse` path.
 *
 * Values parsed here may hold BigInts: copy them with `structuredClone` and write them with
 * `stringifyJson` (plain `JSON.stringify` throws on a BigInt).
 */

/** Deeper than this, JSON is refused: no graph needs it, and recursive code (React, JSON.stringify) would overflow. */
export const MAX_JSON_DEPTH = 1000;

export class JsonDepthError extends Error {
  constructor(readonly limit: number) {
    super(`the JSON is nested too deeply to be a graph (more than ${limit} levels)`);
  }
}

/** What one pass over JSON text found. */
export interface JsonScan {
  depth: number;
  /** [start, end) of each integer literal that a number cannot hold exactly. */
  unsafeIntegers: [number, number][];
}

const INTEGER_LITERAL = /^-?\d+$/;
const MAY_HOLD_UNSAFE_INTEGER = /\d{16}/;

/** True for a JSON integer literal (`-?digits`) beyond ±Number.MAX_SAFE_INTEGER. */
export function isUnsafeIntegerLiteral(literal: string): boolean {
  return INTEGER_LITERAL.test(literal) && !Number.isSafeInteger(Number(literal));
}

function isNumberChar(code: number): boolean {
  // 0-9 - + . e E
  return (code >= 48 && code <= 57) || code === 45 || code === 43 || code === 46 || code === 101 || code === 69;
}

/**
 * The nesting depth and unsafe integer literals of JSON text, in one iterative pass
 * (strings are skipped with indexOf). Stops with JsonDepthError past `maxDepth`.
 * Malformed text gives some answer; JSON.parse then reports the syntax error.
 */
export function scanJson(text: string, maxDepth = MAX_JSON_DEPTH): JsonScan {
  let depth = 0;
  let deepest = 0;
  const unsafeIntegers: [number, number][] = [];
  const findUnsafe = MAY_HOLD_UNSAFE_INTEGER.test(text);
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code === 34) {
      // a string: jump to the closing quote (one not preceded by an odd number of backslashes)
      let end = text.indexOf('"', i + 1);
      while (end > 0) {
        let slashes = 0;
        for (let j = end - 1; text.charCodeAt(j) === 92; j--) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      i = end < 0 ? text.length : end + 1;
    } else if (code === 91 || code === 123) {
      depth++;
      if (depth > maxDepth) throw new JsonDepthError(maxDepth);
      if (depth > deepest) deepest = depth;
      i++;
    } else if (code === 93 || code === 125) {
      depth--;
      i++;
    } else if (code === 45 || (code >= 48 && code <= 57)) {
      let end = i + 1;
      while (end < text.length && isNumberChar(text.charCodeAt(end))) end++;
      if (findUnsafe && end - i >= 16 && isUnsafeIntegerLiteral(text.slice(i, end))) unsafeIntegers.push([i, end]);
      i = end;
    } else {
      i++;
    }
  }
  return { depth: deepest, unsafeIntegers };
}

let sourceTextSupport: boolean | null = null;

/** Whether this engine's JSON.parse passes `context.source` to a reviver. */
export function hasSourceText(): boolean {
  if (sourceTextSupport === null) {
    sourceTextSupport = false;
    JSON.parse("1", function (this: unknown, _key: string, value: unknown, context?: { source?: unknown }) {
      sourceTextSupport = typeof context?.source === "string";
      return value;
    } as (key: string, value: unknown) => unknown);
  }
  return sourceTextSupport;
}

function randomMarker(): string {
  return `\u0000exact-int:${Math.random().toString(36).slice(2)}${Date.now().toString(36)}:`;
}

/**
 * Parse JSON text like JSON.parse, keeping integers beyond the safe range as exact BigInts.
 * Throws JsonDepthError for text nested deeper than `maxDepth`, SyntaxError for bad JSON.
 * `useSourceText: false` forces the marker path (for tests on engines that have both).
 */
export function parseJson(text: string, options: { maxDepth?: number; useSourceText?: boolean } = {}): unknown {
  const { unsafeIntegers } = scanJson(text, options.maxDepth ?? MAX_JSON_DEPTH);
  if (!unsafeIntegers.length) return JSON.parse(text);
  if (options.useSourceText ?? hasSourceText()) {
    return JSON.parse(text, function (this: unknown, _key: string, value: unknown, context?: { source?: string }) {
      return typeof value === "number" && context?.source !== undefined && isUnsafeIntegerLiteral(context.source) ? BigInt(context.source) : value;
    } as (key: string, value: unknown) => unknown);
  }
  const marker = randomMarker();
  const escaped = JSON.stringify(marker).slice(1, -1);
  const parts: string[] = [];
  let at = 0;
  for (const [start, end] of unsafeIntegers) {
    parts.push(text.slice(at, start), `"${escaped}${text.slice(start, end)}"`);
    at = end;
  }
  parts.push(text.slice(at));
  return JSON.parse(parts.join(""), (_key, value: unknown) =>
    typeof value === "string" && value.startsWith(marker) ? BigInt(value.slice(marker.length)) : value,
  );
}

type RawJson = (text: string) => unknown;

/** JSON.stringify that writes BigInts as plain JSON numbers (every digit kept). */
export function stringifyJson(value: unknown, indent?: number): string {
  const rawJSON = (JSON as unknown as { rawJSON?: RawJson }).rawJSON;
  if (rawJSON) {
    return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? rawJSON(v.toString()) : v), indent);
  }
  const marker = randomMarker();
  let sawBigInt = false;
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== "bigint") return v;
    sawBigInt = true;
    return marker + v.toString();
  }, indent);
  if (!sawBigInt) return text;
  const escaped = JSON.stringify(marker).slice(1, -1).replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
  return text.replace(new RegExp(`"${escaped}(-?\\d+)"`, "g"), "$1");
}

/** A value as one line of JSON for display (BigInts exact), cut after `limit` characters; never throws. */
export function jsonPreview(value: unknown, limit = 200): string {
  let text: string | undefined;
  try {
    text = stringifyJson(value);
  } catch {
    text = undefined; // a cycle, or nested too deeply for JSON.stringify
  }
  text ??= String(value);
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}

/** `parseJson(text)`, or null when there is no text or it is not JSON this editor reads (stored values). */
export function parseJsonOrNull(text: string | null | undefined): unknown {
  if (!text) return null;
  try {
    return parseJson(text);
  } catch {
    return null;
  }
}
