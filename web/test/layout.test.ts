import { describe, expect, it } from "vitest";
import { copyNodes, pasteClip } from "../src/graph/clipboard";
import { fromGraphFile, type Position } from "../src/graph/document";
import { alignNodes, autoLayout, distributeNodes, effectivePositions, freeSpot, overlaps, pushApart, separateAll, type Rect } from "../src/graph/layout";
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

describe("long graphs fold into bands", () => {
  /** Int → IntMath × (n − 2) → ShowValue, `lanes` such chains side by side, no positions. */
  function chains(n: number, lanes = 1) {
    const nodes: Record<string, unknown> = {};
    for (let lane = 0; lane < lanes; lane++) {
      nodes[`l${lane}n0`] = { type: "Int", inputs: { value: lane } };
      for (let i = 1; i < n; i++) {
        nodes[`l${lane}n${i}`] = { type: "IntMath", inputs: { a: { node: `l${lane}n${i - 1}`, output: i === 1 ? "value" : "result" }, b: 1 } };
      }
    }
    return fromGraphFile({ format_version: 2, nodes } as never);
  }
  const bounds = (positions: Record<string, Position>) => {
    const rects = rectsOf(positions);
    const width = Math.max(...rects.map((r) => r.x + r.width)) - Math.min(...rects.map((r) => r.x));
    const height = Math.max(...rects.map((r) => r.y + r.height)) - Math.min(...rects.map((r) => r.y));
    return { width, height };
  };

  it("lays a 300-node chain out as bands of a screen-like shape, read left to right then down, without overlaps", () => {
    const doc = chains(300);
    const positions = autoLayout(doc, size);
    const { width, height } = bounds(positions);
    expect(width / height).toBeLessThan(4);
    expect(width / height).toBeGreaterThan(0.5);
    expect(anyOverlap(rectsOf(positions))).toBe(false);
    let bands = 1;
    for (let i = 1; i < 300; i++) {
      const [x0, y0] = positions[`l0n${i - 1}`];
      const [x1, y1] = positions[`l0n${i}`];
      if (y1 === y0) expect(x1).toBeGreaterThan(x0); // the same band: to the right
      else {
        expect(y1).toBeGreaterThan(y0); // the next band: below, starting at the left again
        expect(x1).toBeLessThan(x0);
        bands++;
      }
    }
    expect(bands).toBeGreaterThan(3);
  });

  it("folds side-by-side chains as whole columns (nothing overlaps) and leaves ordinary graphs as dagre placed them", () => {
    const positions = autoLayout(chains(120, 3), size);
    expect(anyOverlap(rectsOf(positions))).toBe(false);
    const { width, height } = bounds(positions);
    expect(width / height).toBeLessThan(4);
    const short = bounds(autoLayout(chains(6), size));
    expect(short.height).toBe(160); // six in a row (2,200 wide): one band, as dagre placed it
    const doc = txt2img();
    const { width: w, height: h } = bounds(autoLayout(doc, size));
    expect(w).toBeGreaterThan(h); // still one left-to-right layout
  });

  it("separates every overlapping pair of a ComfyUI layout made for 210 px nodes (ours are 300)", () => {
    // ComfyUI's txt2img columns, 250 px apart; VAE Decode above Save Image's row, both overlapping their neighbours
    const rects: Record<string, Rect> = {
      sampler: { x: 860, y: 190, width: 300, height: 420 },
      decode: { x: 1210, y: 190, width: 300, height: 90 },
      save: { x: 1450, y: 190, width: 300, height: 300 },
      latent: { x: 470, y: 600, width: 300, height: 140 },
      prompt: { x: 410, y: 180, width: 300, height: 160 },
      negative: { x: 410, y: 320, width: 300, height: 160 },
    };
    const moved = separateAll(rects);
    const after = Object.fromEntries(Object.entries(rects).map(([id, r]) => [id, moved[id] ? { ...r, x: moved[id][0], y: moved[id][1] } : r]));
    const ids = Object.keys(after);
    for (const a of ids) for (const b of ids) if (a < b) expect(overlaps(after[a], after[b]), `${a} / ${b}`).toBe(false);
    expect(moved.sampler).toBeUndefined(); // the top-left of each overlap stays; only what it covers moves, downwards
    for (const [id, [x, y]] of Object.entries(moved)) expect([x, y >= rects[id].y]).toEqual([rects[id].x, true]);
  });
});
