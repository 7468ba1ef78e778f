import { describe, expect, it } from "vitest";
import { copyNodes, pasteClip } from "../src/graph/clipboard";
import { docEdges, fromGraphFile, layoutPositions, moveNodes, removeNodes, setInput, setTitle, toGraphFile } from "../src/graph/document";
import { parseJson, stringifyJson } from "../src/graph/exactJson";
import { effectivePositions } from "../src/graph/layout";
import { closeSubgraph, collapseToSubgraph, openSubgraph, subgraphSchemas } from "../src/graph/subgraph";
import { initialSessionState, reduceSession } from "../src/run/sessionState";
import { EditorApp } from "../src/state/app";
import { EditorStore } from "../src/state/editorStore";
import { realSchemas } from "./helpers";

const schemas = realSchemas();
const context = { fileUrl: (id: string) => `files/${id}` };
/** Names an ordinary object inherits, or treats specially. */
const TRICKY = ["constructor", "toString", "hasOwnProperty", "__proto__", "valueOf", "isPrototypeOf"];

/** A graph file (text: JSON.parse keeps "__proto__" as an ordinary key) whose Int node is called `id`. */
function graphText(id: string, positions = true): string {
  const ui = positions ? `, "ui": {"nodes": {${JSON.stringify(id)}: {"position": [0, 0]}, "show": {"position": [400, 0]}}}` : "";
  return `{"format_version": 2, "nodes": {${JSON.stringify(id)}: {"type": "Int", "inputs": {"value": 1}}, ` +
    `"show": {"type": "ShowValue", "inputs": {"value": {"node": ${JSON.stringify(id)}, "output": "value"}}}}${ui}}`;
}

describe("node ids and names that an ordinary object inherits", () => {
  for (const id of TRICKY) {
    it(`a node called ${id} loads, is linked, edits and round-trips`, () => {
      const text = graphText(id);
      const doc = fromGraphFile(parseJson(text));
      expect(Object.keys(doc.nodes)).toEqual([id, "show"]);
      expect(doc.nodes[id].type).toBe("Int");
      expect(docEdges(doc).map((e) => e.source)).toEqual([id]);
      expect(stringifyJson(toGraphFile(doc))).toBe(JSON.stringify(JSON.parse(text))); // saved exactly as loaded

      const edited = moveNodes(setTitle(setInput(doc, id, "value", 7), id, "seven"), { [id]: [10, 20] });
      expect(edited.nodes[id]).toMatchObject({ type: "Int", title: "seven", inputs: { value: 7 }, position: [10, 20] });
      expect(removeNodes(edited, [id]).nodes.show.inputs.value).toBeUndefined(); // the link went with it
      expect(Object.keys(removeNodes(edited, [id]).nodes)).toEqual(["show"]);

      const pasted = pasteClip(doc, copyNodes(doc, [id, "show"])!, [50, 50]);
      expect(pasted.doc.nodes[pasted.ids[1]].inputs.value).toEqual({ node: pasted.ids[0], output: "value" });
    });

    it(`a node called ${id} is laid out, collapsed into a subgraph and shown in run states`, () => {
      const doc = fromGraphFile(parseJson(graphText(id, false)));
      const shown = effectivePositions(doc, () => ({ width: 300, height: 100 }));
      expect(Object.keys(shown).sort()).toEqual([id, "show"].sort());
      expect(shown[id][0]).toBeLessThan(shown.show[0]); // dagre ran on it: the source is left of its reader
      expect(Object.keys(layoutPositions(doc)).sort()).toEqual([id, "show"].sort());

      const positions = { [id]: [0, 0] as [number, number], show: [400, 0] as [number, number] };
      const collapsed = collapseToSubgraph(doc, [id], positions)!;
      expect(subgraphSchemas(collapsed.doc, schemas.nodes)[`subgraph:${collapsed.name}`].outputs.map((o) => o.port)).toEqual(["INT"]);
      const inner = openSubgraph(collapsed.doc, collapsed.name);
      expect(Object.keys(inner.nodes)).toEqual([id]);
      expect(closeSubgraph(collapsed.doc, collapsed.name, inner).subgraphs?.[collapsed.name]).toBeTruthy();

      let state = reduceSession(initialSessionState, { type: "server", message: { type: "run_started", run_id: "r", nodes: [id, "show"], total: 2 } }, context);
      state = reduceSession(state, { type: "server", message: { type: "node_finished", run_id: "r", node_id: id, node_type: "Int", seconds: 0.1 } }, context);
      expect(state.nodeStates[id]).toEqual({ status: "done", seconds: 0.1 });
      const other = TRICKY.find((name) => name !== id)!;
      expect(state.nodeStates[other]).toBeUndefined();
      expect(state.previews[other]).toBeUndefined();

      const store = new EditorStore(doc);
      store.select({ [id]: true });
      expect(Object.keys(store.state.selectedNodes)).toEqual([id]);
      expect(store.state.selectedNodes[other]).toBeUndefined();
    });
  }

  it("reads node types and input names the server does not know as unknown, never as inherited members", () => {
    for (const name of TRICKY) {
      expect(schemas.nodes[name]).toBeUndefined();
      expect(schemas.nodes.Int.inputs[name]).toBeUndefined();
    }
    const doc = fromGraphFile(parseJson('{"format_version": 2, "nodes": {"a": {"type": "constructor", "inputs": {"toString": 1, "__proto__": {"x": 1}}}}}'));
    expect(Object.keys(doc.nodes.a.inputs)).toEqual(["toString", "__proto__"]);
    expect(stringifyJson(toGraphFile(doc))).toContain('"__proto__":{"x":1}');
  });
});

describe("what the engine refuses too", () => {
  it("refuses an empty node id and a title that is not text, naming the node and the field", () => {
    expect(() => fromGraphFile(parseJson(graphText("")))).toThrow(/node id must be a non-empty string/);
    expect(() => fromGraphFile({ format_version: 2, nodes: { a: { type: "Int", title: { x: 1 } } } })).toThrow(
      'node "a": "title" must be a string, found an object',
    );
    expect(() => fromGraphFile({ format_version: 2, nodes: { a: { type: "Int", title: [1] } } })).toThrow(/found a list/);
    expect(fromGraphFile({ format_version: 2, nodes: { a: { type: "Int", title: "A" } } }).nodes.a.title).toBe("A");
  });

  it("keeps the graph on the canvas when a load is refused, and says why in the banner", () => {
    const app = new EditorApp(() => { throw new Error("no socket in this test"); }, { href: "http://127.0.0.1:8188/" }, null);
    expect(app.loadGraph({ format_version: 2, nodes: { a: { type: "Int", inputs: { value: 1 } } } })).toBe(true);
    const before = app.editor.doc;
    expect(app.loadGraph({ format_version: 2, nodes: { b: { type: "Int", title: { x: 1 } } } }, "bad.json")).toBe(false);
    expect(app.editor.doc).toBe(before);
    expect(app.session.get().banner?.text).toBe('Cannot open bad.json: node "b": "title" must be a string, found an object (write it as text or leave it out)');
    expect(app.loadGraph(parseJson(graphText("")), "empty.json")).toBe(false);
    expect(app.editor.doc).toBe(before);
  });
});
