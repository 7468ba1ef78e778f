import { describe, expect, it } from "vitest";
import { copyNodes, pasteClip } from "../src/graph/clipboard";
import { fromGraphFile, type Position } from "../src/graph/document";
import { alignNodes, autoLayout, distributeNodes, effectivePositions, freeSpot, overlaps, pushApart, type Rect } from "../src/graph/layout";
import { readFileSync } from "node:fs";
import { REPO_ROOT } from "./helpers";

const size = () => ({ width: 300, height: 160 });
const txt2img = () => fromGraphFile(JSON.parse(readFileSync(`${REPO_ROOT}graphs/txt2img.json`, "utf8")));

function rectsOf(positions: Record<string, Position>): Rect[] {
  return Object.values(positions).map(([x, y]) => ({ x, y, ...size() }));
}

function anyOverlap(rects: Rect[]): boolean {
  return rects.some((a, i) => rects.some((b, j) => i < j && overlaps(a, b)));
}

describe("auto-layout and placement", () => {
  it("lays a graph without positions out left to right by link depth, with no overlaps", () => {
    const doc = txt2img();
    const positions = autoLayout(doc, size);
    expect(Object.keys(positions).sort()).toEqual(Object.keys(doc.nodes).sort());
    expect(anyOverlap(rectsOf(positions))).toBe(false);
    const x = (id: string) => positions[id][0];
    expect(x("checkpoint")).toBeLessThan(x("prompt"));
    expect(x("prompt")).toBeLessThan(x("sampler"));
    expect(x("sampler")).toBeLessThan(x("decode"));
    expect(x("decode")).toBeLessThan(x("save"));
  });

  it("places unpositioned nodes to the right of positioned ones", () => {
    const doc = txt2img();
    doc.nodes.save = { ...doc.nodes.save, position: [0, 0] };
    const shown = effectivePositions(doc, size);
    expect(shown.save).toEqual([0, 0]);
    for (const id of Object.keys(doc.nodes)) if (id !== "save") expect(shown[id][0]).toBeGreaterThanOrEqual(300);
  });

  it("finds the nearest free spot for a new node", () => {
    const others = [{ x: 0, y: 0, width: 300, height: 160 }];
    expect(freeSpot([500, 0], size(), others)).toEqual([500, 0]);
    const spot = freeSpot([10, 10], size(), others);
    expect(overlaps({ x: spot[0], y: spot[1], ...size() }, others[0], 24)).toBe(false);
  });

  it("pastes a copied graph without positions in its shown arrangement, not piled on one spot", () => {
    const doc = txt2img();
    const shown = autoLayout(doc, size);
    const clip = copyNodes(doc, Object.keys(doc.nodes), (id) => shown[id])!;
    const pasted = pasteClip(doc, clip, [2000, 0]);
    const positions = pasted.ids.map((id) => pasted.doc.nodes[id].position!);
    expect(new Set(positions.map((p) => p.join(","))).size).toBe(pasted.ids.length);
    expect(anyOverlap(positions.map(([x, y]) => ({ x, y, ...size() })))).toBe(false);
  });

  it("pushes the nodes a grown node now covers downwards, in a cascade", () => {
    const rects: Record<string, Rect> = {
      a: { x: 0, y: 0, width: 300, height: 500 }, // grew from 150 to 500
      b: { x: 0, y: 200, width: 300, height: 150 },
      c: { x: 0, y: 380, width: 300, height: 150 },
      side: { x: 700, y: 200, width: 300, height: 150 },
    };
    const moved = pushApart(rects, ["a"]);
    expect(Object.keys(moved).sort()).toEqual(["b", "c"]);
    expect(moved.b[1]).toBeGreaterThanOrEqual(500);
    expect(moved.c[1]).toBeGreaterThanOrEqual(moved.b[1] + 150);
  });

  it("aligns and distributes a selection", () => {
    const rects: Record<string, Rect> = {
      a: { x: 0, y: 10, width: 100, height: 50 },
      b: { x: 300, y: 40, width: 100, height: 80 },
      c: { x: 120, y: 200, width: 100, height: 50 },
    };
    expect(alignNodes(rects, "top")).toEqual({ a: [0, 10], b: [300, 10], c: [120, 10] });
    expect(alignNodes(rects, "left")).toEqual({ a: [0, 10], b: [0, 40], c: [0, 200] });
    const spread = distributeNodes(rects, "x");
    expect(spread).toEqual({ a: [0, 10], c: [150, 200], b: [300, 40] });
  });
});
