import { describe, expect, it } from "vitest";
import { fromGraphFile } from "../src/graph/document";
import { idMap } from "../src/graph/idMaps";
import { besideTheirNode, overlaps, pushGrown, type Rect } from "../src/graph/layout";
import { expandedText } from "../src/state/app";

/** A ComfyUI import's layout (graph/layout.ts `pushGrown` "all" with notes, `besideTheirNode`). */

describe("an import's notes are pushed apart like nodes", () => {
  const doc = fromGraphFile({
    format_version: 1,
    nodes: { "4": { type: "LoadCheckpoint", inputs: {} }, "5": { type: "EmptyLatent", inputs: {} } },
    ui: { nodes: { "4": { position: [0, 0] }, "5": { position: [0, 600] } }, notes: [{ id: "n", text: "read me", bounds: [10, 100, 300, 120] }] },
  });
  const rects: Record<string, Rect> = idMap([["4", { x: 0, y: 0, width: 300, height: 260 }], ["5", { x: 0, y: 600, width: 300, height: 200 }]]);
  const note = idMap<Rect>([["n", { x: 10, y: 100, width: 300, height: 120 }]]);

  it("moves a note hidden under a taller node below it, clear of every node", () => {
    const moved = pushGrown(doc, idMap(), rects, "all", idMap(), note);
    expect(moved.notes.n).toBeDefined();
    const shown = { ...note.n, x: moved.notes.n[0], y: moved.notes.n[1] };
    const nodes = Object.entries(rects).map(([id, r]) => ({ ...r, ...(moved.file[id] ? { x: moved.file[id][0], y: moved.file[id][1] } : {}) }));
    for (const r of nodes) expect(overlaps(shown, r)).toBe(false);
  });

  it("keeps a note inside its group frame (the frame grows)", () => {
    const frames = idMap<Rect>([["g", { x: -30, y: -60, width: 380, height: 320 }]]);
    const moved = pushGrown(doc, idMap(), rects, "all", frames, note);
    const frame = moved.frames.g;
    const [x, y] = moved.notes.n;
    expect(x >= frame.x && y >= frame.y && x + 300 <= frame.x + frame.width && y + 120 <= frame.y + frame.height).toBe(true);
  });

  it("moves no note past a push of grown nodes (only an import's push-apart moves notes)", () => {
    expect(pushGrown(doc, idMap(), rects, ["4"], idMap(), note).notes).toEqual({});
  });
});

describe("nodes an import made for another start on it", () => {
  it("places a split sampler's helpers on their Sample, one pixel apart, and leaves other nodes alone", () => {
    const doc = fromGraphFile({
      format_version: 1,
      nodes: {
        "10": { type: "Sample", inputs: {} }, "10.schedule": { type: "Schedule", inputs: {} }, "10.noise": { type: "RandomNoise", inputs: {} },
        "other": { type: "Schedule", inputs: {} }, "7.x": { type: "Schedule", inputs: {} },
      },
      ui: { nodes: { "10": { position: [500, 40] } } },
    });
    expect(besideTheirNode(doc)).toEqual({ "10.schedule": [500, 41], "10.noise": [500, 42] });
  });
});

describe("the import banner names expanded subgraphs", () => {
  it("says which subgraph became how many nodes", () => {
    expect(expandedText([{ node: "83", subgraph: "SD Text to Image", nodes: 6 }])).toBe(', expanded subgraph "SD Text to Image" (6 nodes)');
    expect(expandedText(undefined)).toBe("");
    expect(expandedText([{ subgraph: "a", nodes: 1 }, { subgraph: "b", nodes: 2 }, { subgraph: "c", nodes: 3 }, { subgraph: "d", nodes: 4 }]))
      .toBe(', expanded subgraphs "a" (1 node), "b" (2 nodes), "c" (3 nodes) and 1 more');
  });
});
