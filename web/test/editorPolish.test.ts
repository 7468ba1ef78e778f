/**
 * A ComfyUI power user's visual findings, as pure functions: the download name has no trailing "_", a gallery video
 * loads at its first frame, a group frame grows with a node inside it that grew, and an unknown node's placeholder
 * says its problem once (the server's words when it sent them). The layout side is tests/web/test_editor_polish_e2e.py.
 */
import { describe, expect, it } from "vitest";
import { fromGraphFile } from "../src/graph/document";
import { groupsOf, growFramesToHold, headerMembers } from "../src/graph/groups";
import { posterFrameUrl } from "../src/run/media";
import { downloadName } from "../src/state/app";
import { placeholderMessage } from "../src/editor/SchemaNode";

describe("the download name", () => {
  it("joins the title's words with _ and leaves none at the ends", () => {
    expect(downloadName("Text to image (tiny world)")).toBe("Text_to_image_tiny_world.json");
    expect(downloadName("  (draft) ")).toBe("draft.json");
    expect(downloadName("...")).toBe("graph.json");
    expect(downloadName(undefined)).toBe("graph.json");
    expect(downloadName("v1.2-final")).toBe("v1.2-final.json");
  });
});

describe("a gallery video tile", () => {
  it("loads its file at the first frame, as a poster", () => {
    expect(posterFrameUrl("/files/output/r/clip.mp4")).toBe("/files/output/r/clip.mp4#t=0.001");
    expect(posterFrameUrl("/files/a.mp4#t=2")).toBe("/files/a.mp4#t=2");
  });
});

describe("a group frame", () => {
  const doc = fromGraphFile({
    format_version: 2,
    nodes: { a: { type: "EncodeText", inputs: {} }, b: { type: "EncodeText", inputs: {} } },
    ui: { groups: [{ id: "g", title: "Group", color: "#3f789e", bounds: [0, 0, 300, 200] }] },
  });
  const group = groupsOf(doc)[0];

  it("keeps a node whose top is inside it as a member when it grows past its bottom", () => {
    const grown = { a: { x: 30, y: 60, width: 240, height: 500 }, b: { x: 600, y: 0, width: 200, height: 100 } };
    expect(headerMembers(group, grown)).toEqual(["a"]);
  });

  it("grows (never shrinks) to hold its members with its padding", () => {
    const rects = { a: { x: 30, y: 60, width: 240, height: 500 } };
    expect(groupsOf(growFramesToHold(doc, { g: ["a"] }, rects))[0].bounds).toEqual([0, 0, 300, 590]);
    const small = { a: { x: 30, y: 60, width: 100, height: 50 } };
    expect(growFramesToHold(doc, { g: ["a"] }, small)).toBe(doc);
  });
});

describe("an unknown node's placeholder", () => {
  const server = { code: "unknown_node_type", message: "no node type 'FaceDetailerPipe' is registered. Install the plugin that provides it, or replace the node.", node_id: "5" };
  const other = { code: "missing_input", message: "input 'x' is required", node_id: "5" };

  it("says the server's words once, keeping the node's other errors", () => {
    const shown = placeholderMessage("FaceDetailerPipe", null, [server, other]);
    expect(shown.text).toBe("No node type 'FaceDetailerPipe' is registered. Install the plugin that provides it, or replace the node.");
    expect(shown.others).toEqual([other]);
  });

  it("says its own words before any check", () => {
    expect(placeholderMessage("FaceDetailerPipe", null, []).text).toBe("Unknown node type FaceDetailerPipe: it is not registered on this server");
  });
});
