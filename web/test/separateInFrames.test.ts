/**
 * The push-apart of a ComfyUI import keeps its groups (graph/layout.ts `separateInFrames`): a node inside a frame
 * before stays inside it (the frame grows, and moves with its nodes), a node outside stays outside.
 * The boxes are those of files/cf_custom_ui.json of the ComfyUI user's report (nodes 300 wide, as measured),
 * with the positive prompt grown to overlap the negative one, as a longer prompt makes it.
 */
import { describe, expect, it } from "vitest";
import { overlaps, pushGrown, separateAll, separateInFrames, type Frame, type Rect } from "../src/graph/layout";
import { fromGraphFile } from "../src/graph/document";

const rects: Record<string, Rect> = {
  "3": { x: 863, y: 186, width: 300, height: 307 },
  "4": { x: 26, y: 474, width: 300, height: 157 },
  "5": { x: 473, y: 609, width: 300, height: 168 },
  "6": { x: 415, y: 186, width: 300, height: 330 },
  "7": { x: 413, y: 389, width: 300, height: 158 },
  "8": { x: 1209, y: 188, width: 300, height: 120 },
  "9": { x: 1451, y: 189, width: 300, height: 128 },
};
const frames: Record<string, Frame> = {
  prompts: { x: 400, y: 100, width: 360, height: 500 },
  sampling: { x: 850, y: 100, width: 850, height: 400 },
};

/** The ids of the boxes whose centre lies inside `frame` (groups.ts `groupMembers`). */
function members(frame: Frame, boxes: Record<string, Rect>): string[] {
  return Object.keys(boxes).filter((id) => {
    const [cx, cy] = [boxes[id].x + boxes[id].width / 2, boxes[id].y + boxes[id].height / 2];
    return cx >= frame.x && cx <= frame.x + frame.width && cy >= frame.y && cy <= frame.y + frame.height;
  }).sort();
}

function after(result: { positions: Record<string, [number, number]> }): Record<string, Rect> {
  return Object.fromEntries(Object.entries(rects).map(([id, r]) => [id, result.positions[id] ? { ...r, x: result.positions[id][0], y: result.positions[id][1] } : r]));
}

describe("separateInFrames", () => {
  it("keeps every group's nodes inside its frame, and the others outside, with no overlap left", () => {
    expect(members(frames.prompts, rects)).toEqual(["6", "7"]);
    expect(members(frames.prompts, after({ positions: separateAll(rects) }))).toEqual(["6"]); // the negative prompt left the frame
    const result = separateInFrames(rects, frames);
    const boxes = after(result);
    const ids = Object.keys(boxes);
    for (const a of ids) for (const b of ids) if (a < b) expect(overlaps(boxes[a], boxes[b]), `${a} / ${b}`).toBe(false);
    const prompts = result.frames.prompts;
    expect(prompts).toBeDefined(); // the negative prompt was pushed down past the frame's bottom: the frame grew
    expect(members(prompts, boxes)).toEqual(["6", "7"]);
    expect(boxes["7"].y + boxes["7"].height).toBeLessThanOrEqual(prompts.y + prompts.height);
    expect(members(result.frames.sampling ?? frames.sampling, boxes)).toEqual(["3", "8", "9"]);
    // the empty latent below the frame is pushed below the grown frame, not taken into it
    expect(boxes["5"].y).toBeGreaterThanOrEqual(prompts.y + prompts.height);
    expect([prompts.x, prompts.y, prompts.width]).toEqual([400, 100, 360]); // grown downwards only: nothing stuck out on the right
  });

  it("moves a whole group, frame and nodes, when a node above it covers it", () => {
    const tall = { ...rects, "4": { x: 100, y: 60, width: 320, height: 200 } }; // its right edge over the Prompts frame, its centre outside
    const result = separateInFrames(tall, { prompts: frames.prompts });
    const moved = result.frames.prompts;
    expect(moved.y).toBeGreaterThanOrEqual(60 + 200);
    const dy = moved.y - frames.prompts.y;
    expect(result.positions["6"]).toEqual([415, 186 + dy]);
    const boxes = Object.fromEntries(Object.entries(tall).map(([id, r]) => [id, result.positions[id] ? { ...r, x: result.positions[id][0], y: result.positions[id][1] } : r]));
    expect(members(moved, boxes)).toEqual(["6", "7"]);
  });

  it("moves a frame inside another with the outer one, and grows a frame whose node sticks out on the right", () => {
    const inner: Frame = { x: 405, y: 350, width: 320, height: 240 };
    const result = separateInFrames({ a: { x: 100, y: 60, width: 320, height: 200 }, n: { x: 420, y: 400, width: 300, height: 100 } },
      { outer: { x: 400, y: 100, width: 280, height: 500 }, inner });
    const dy = result.frames.outer.y - 100;
    expect(dy).toBeGreaterThan(0);
    expect(result.frames.inner.y).toBe(inner.y + dy);
    expect(result.frames.outer.width).toBe(420 + 300 + 30 - 400); // node n's right edge + the padding
    expect(result.positions.n).toEqual([420, 400 + dy]);
  });

  it("is separateAll when there are no groups, and pushGrown hands back the frames it changed", () => {
    expect(separateInFrames(rects, {}).positions).toEqual(separateAll(rects));
    const doc = fromGraphFile({
      format_version: 2,
      nodes: Object.fromEntries(Object.keys(rects).map((id) => [id, { type: "Int", inputs: {} }])),
      ui: { nodes: Object.fromEntries(Object.entries(rects).map(([id, r]) => [id, { position: [r.x, r.y] }])) },
    });
    const moved = pushGrown(doc, {}, rects, "all", frames);
    expect(moved.frames).toEqual(separateInFrames(rects, frames).frames);
    expect(moved.file).toEqual(separateInFrames(rects, frames).positions);
    expect(pushGrown(doc, {}, rects, "all").frames).toEqual({});
  });
});
