import { describe, expect, it } from "vitest";
import { fromGraphFile, toGraphFile } from "../src/graph/document";
import { jsonPreview, JsonDepthError, MAX_JSON_DEPTH, parseJson, scanJson, stringifyJson } from "../src/graph/exactJson";
import { parseServerText } from "../src/protocol/client";

const SEED = "18446744073709551615"; // 2^64 − 1: the largest seed the engine takes
const graphText = `{"format_version": 2, "nodes": {"k": {"type": "KSampler", "inputs": {"seed": ${SEED}, "cfg": 7.5, "note": "id 12345678901234567890"}}}}`;

function deep(levels: number): string {
  return `{"format_version": 2, "nodes": {"a": {"type": "Int", "inputs": {"value": ${"[".repeat(levels)}${"]".repeat(levels)}}}}}`;
}

describe("exact JSON", () => {
  it("keeps integers beyond 2^53 as exact BigInts and leaves strings and safe numbers alone", () => {
    const graph = parseJson(graphText) as { nodes: { k: { inputs: Record<string, unknown> } } };
    expect(graph.nodes.k.inputs.seed).toBe(2n ** 64n - 1n);
    expect(graph.nodes.k.inputs.cfg).toBe(7.5);
    expect(graph.nodes.k.inputs.note).toBe("id 12345678901234567890");
    expect(parseJson("[9007199254740993, -9007199254740993, 9007199254740991, 1e400, 1.5]")).toEqual([
      9007199254740993n, -9007199254740993n, 9007199254740991, Infinity, 1.5,
    ]);
    expect(parseJson('["\\"12345678901234567890", 12345678901234567890]')).toEqual(['"12345678901234567890', 12345678901234567890n]);
  });

  it("writes BigInts back as plain JSON numbers: a graph round-trips digit for digit", () => {
    const text = stringifyJson(parseJson(graphText));
    expect(text).toContain(`"seed":${SEED}`);
    expect(JSON.parse(text).nodes.k.inputs.note).toBe("id 12345678901234567890");
    expect(stringifyJson({ a: [1n, -(2n ** 70n)], b: "x" }, 1)).toBe('{\n "a": [\n  1,\n  -1180591620717411303424\n ],\n "b": "x"\n}');
    // through the editor's document: load, save
    const saved = stringifyJson(toGraphFile(fromGraphFile(parseJson(graphText))));
    expect(saved).toContain(`"seed":${SEED}`);
  });

  it("refuses JSON nested deeper than the limit before parsing (no stack overflow), like the server", () => {
    expect(() => parseJson(deep(100_000))).toThrow(JsonDepthError);
    expect(() => parseJson(deep(100_000))).toThrow(/nested too deeply/);
    expect(scanJson(deep(MAX_JSON_DEPTH - 10)).depth).toBe(MAX_JSON_DEPTH - 6);
    expect(scanJson('["[[[[", {"a": "]]]"}]').depth).toBe(2); // brackets inside strings do not count
  });

  it("reads the server's graph-carrying messages exactly (alone or in a batch), others as plain JSON", () => {
    const run = parseServerText(`{"type": "run", "run_id": "r", "graph": ${graphText}, "seed": ${SEED}}`);
    expect((run.graph as { nodes: { k: { inputs: { seed: unknown } } } }).nodes.k.inputs.seed).toBe(2n ** 64n - 1n);
    const batch = parseServerText(`{"type": "batch", "messages": [{"type": "outputs", "value": ${SEED}}, {"type": "template", "graph": ${graphText}}]}`);
    const [outputs, template] = batch.messages as Record<string, unknown>[];
    expect(typeof outputs.value).toBe("number"); // not a graph: a plain number, as before
    expect((template.graph as { nodes: { k: { inputs: { seed: unknown } } } }).nodes.k.inputs.seed).toBe(2n ** 64n - 1n);
    expect(parseServerText('{"type": "pong"}')).toEqual({ type: "pong" });
  });

  it("shows any value as one line of JSON, cut, without throwing", () => {
    expect(jsonPreview({ x: 1 })).toBe('{"x":1}');
    expect(jsonPreview(2n ** 64n)).toBe("18446744073709551616");
    expect(jsonPreview("x".repeat(300))).toHaveLength(201);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(jsonPreview(cycle)).toBe("[object Object]");
  });
});
