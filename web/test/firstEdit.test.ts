/**
 * The first placing edit on a graph without positions (every shipped graph, every SaveImage
 * PNG) keeps the layout the user sees: align, distribute, group, reroute, resize, collapse and
 * paste move only what they act on. Groups follow their nodes through auto-layout, and a new
 * group's title is never hidden under a node.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseJson } from "../src/graph/exactJson";
import { nodeSize, setNodeSize } from "../src/graph/document";
import { groupMembers, groupsOf, layoutWithGroups, reroutesOf } from "../src/graph/groups";
import { effectivePositions, estimateSize, overlaps, type Rect } from "../src/graph/layout";
import { idMap } from "../src/graph/idMaps";
import { menuItems } from "../src/editor/Overlays";
import { selectionActions } from "../src/editor/GraphCanvas";
import { EditorApp } from "../src/state/app";
import { FakeSocket, realSchemas, REPO_ROOT } from "./helpers";

/** An editor with the real schemas and graphs/txt2img.json loaded, and a canvas that shows what effectivePositions says. */
function editorWithTxt2img() {
  const app = new EditorApp(() => new FakeSocket(), { href: "http://127.0.0.1:8188/" }, null);
  app.dispatch({ type: "schemas", schemas: realSchemas() });
  app.loadGraph(parseJson(readFileSync(`${REPO_ROOT}graphs/txt2img.json`, "utf8")));
  const shown = (): Record<string, Rect> => {
    const doc = app.editor.doc;
    const schemas = app.schemasFor(doc);
    const sizeOf = (id: string) => {
      const user = doc.nodes[id] ? nodeSize(doc.nodes[id]) : null;
      return user ? { width: user[0], height: user[1] } : estimateSize(schemas[doc.nodes[id]?.type]);
    };
    const positions = effectivePositions(doc, sizeOf);
    return idMap(Object.entries(positions).map(([id, [x, y]]): [string, Rect] => [id, { x, y, ...sizeOf(id) }]));
  };
  app.canvas.rects = shown;
  return { app, shown };
}

const select = (app: EditorApp, ids: string[]) => app.editor.select(idMap(ids.map((id) => [id, true as const])));

function runMenu(app: EditorApp, target: Parameters<typeof menuItems>[1], key: string) {
  const item = menuItems(app, target, [600, 400], [0, 0]).find((i) => i.key === key);
  if (!item) throw new Error(`no menu item ${key}`);
  item.run();
}

/** The boxes of the nodes not in `except`, before and after `edit`. */
function othersStay(edit: (app: EditorApp) => void, except: string[]) {
  const { app, shown } = editorWithTxt2img();
  expect(Object.values(app.editor.doc.nodes).every((n) => !n.position)).toBe(true);
  const before = shown();
  edit(app);
  const after = shown();
  for (const id of Object.keys(before)) {
    if (except.includes(id) || !(id in after)) continue;
    expect([id, after[id].x, after[id].y]).toEqual([id, before[id].x, before[id].y]);
  }
  return { app, before, after };
}

describe("the first placing edit on a graph without positions", () => {
  it("align top / left moves only the selected nodes", () => {
    for (const key of ["align-top", "align-left", "align-center-x"]) {
      const { before, after } = othersStay((app) => {
        select(app, ["decode", "save"]);
        runMenu(app, { kind: "node", id: "decode" }, key);
      }, ["decode", "save"]);
      if (key === "align-top") expect(after.decode.y).toBe(after.save.y);
      if (key === "align-left") expect(after.decode.x).toBe(Math.min(before.decode.x, before.save.x));
    }
  });

  it("distribute moves only the selected nodes", () => {
    for (const key of ["distribute-x", "distribute-y"]) {
      othersStay((app) => {
        select(app, ["sampler", "decode", "save"]);
        runMenu(app, { kind: "node", id: "save" }, key);
      }, ["sampler", "decode", "save"]);
    }
  });

  it("a reroute, a resize, a reset size and a free group move nothing", () => {
    othersStay((app) => runMenu(app, { kind: "wire", target: "save", input: "images" }, "add-reroute"), []);
    othersStay((app) => app.layoutEdit((doc) => setNodeSize(doc, "sampler", [420, 500]), { drag: true }), ["sampler"]);
    othersStay((app) => runMenu(app, { kind: "canvas" }, "add-group"), []);
  });

  it("collapse into a subgraph leaves the other nodes where they were", () => {
    const { app } = othersStay((app) => {
      select(app, ["prompt", "negative"]);
      selectionActions.collapse(app, ["prompt", "negative"]);
    }, ["prompt", "negative"]);
    expect(app.editor.doc.nodes.prompt).toBeUndefined();
  });

  it("paste (duplicate) leaves the other nodes where they were", () => {
    othersStay((app) => {
      select(app, ["save"]);
      runMenu(app, { kind: "node", id: "save" }, "duplicate");
    }, []);
  });
});

describe("groups", () => {
  it("Ctrl+G: the new frame (title included) covers no other node, and only covered nodes move", () => {
    const { app, before, after } = othersStay((app) => {
      select(app, ["prompt", "negative"]);
      selectionActions.group(app, ["prompt", "negative"]);
    }, ["checkpoint", "latent", "sampler", "decode", "save"]);
    const [group] = groupsOf(app.editor.doc);
    const frame = { x: group.bounds[0], y: group.bounds[1], width: group.bounds[2], height: group.bounds[3] };
    for (const id of ["checkpoint", "latent", "sampler", "decode", "save"]) {
      expect([id, overlaps(after[id], frame)]).toEqual([id, false]);
      if (!overlaps(before[id], frame)) expect(after[id]).toEqual(before[id]);
    }
    expect(groupMembers(group, after).sort()).toEqual(["negative", "prompt"]);
  });

  it("auto-layout moves a group with its nodes and keeps them inside it, clear of the rest", () => {
    const { app, shown } = editorWithTxt2img();
    select(app, ["prompt", "negative"]);
    selectionActions.group(app, ["prompt", "negative"]);
    runMenu(app, { kind: "wire", target: "decode", input: "latent" }, "add-reroute");
    // Scatter the other nodes, then auto-layout.
    app.editor.edit((doc) => ({
      ...doc,
      nodes: idMap(Object.entries(doc.nodes).map(([id, n], i) => [id, ["prompt", "negative"].includes(id) ? n : { ...n, position: [3000 + ((i * 997) % 3000), (i * 613) % 2000] }])),
    }));
    const groupBefore = groupsOf(app.editor.doc)[0];
    const membersBefore = groupMembers(groupBefore, shown());
    const rerouteBefore = reroutesOf(app.editor.doc)[0].position;
    const decodeBefore = shown().decode;
    app.editor.edit((doc) => layoutWithGroups(doc, shown()));
    const rects = shown();
    const [group] = groupsOf(app.editor.doc);
    expect(groupMembers(group, rects).sort()).toEqual(membersBefore.sort());
    const frame = { x: group.bounds[0], y: group.bounds[1], width: group.bounds[2], height: group.bounds[3] };
    for (const [id, r] of Object.entries(rects)) if (!membersBefore.includes(id)) expect([id, overlaps(r, frame)]).toEqual([id, false]);
    const [dx, dy] = [rects.decode.x - decodeBefore.x, rects.decode.y - decodeBefore.y];
    expect(reroutesOf(app.editor.doc)[0].position).toEqual([rerouteBefore[0] + dx, rerouteBefore[1] + dy]);
    // Left to right still holds.
    expect(rects.checkpoint.x).toBeLessThan(rects.prompt.x);
    expect(rects.sampler.x).toBeLessThan(rects.decode.x);
  });
});
