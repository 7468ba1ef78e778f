/**
 * ComfyUI habits of the editor (a ComfyUI user's pass): node colours kept and set, minimised nodes, and ComfyUI's
 * keys (`.` fits the view, Alt+C minimises, Ctrl+O opens, Ctrl+Alt+Enter interrupts), listed in the help panel.
 */
import { describe, expect, it } from "vitest";
import { fromGraphFile, toGraphFile } from "../src/graph/document";
import { hexColor, isMinimised, NODE_COLORS, nodeColors, setNodeColor, textColorOn, toggleMinimised } from "../src/graph/nodeLook";
import { habitShortcut, SHORTCUTS } from "../src/editor/shortcuts";

const FILE = {
  format_version: 2,
  nodes: { a: { type: "EncodeText", inputs: { text: "x" } }, b: { type: "EncodeText", inputs: { text: "y" } } },
  ui: { nodes: { a: { position: [0, 0], color: "#322", bgcolor: "#533" }, b: { color: "red; background: url(x)" } } },
};
const uiOf = (doc: ReturnType<typeof fromGraphFile>) => toGraphFile(doc).ui!.nodes as Record<string, Record<string, unknown>>;

describe("node colours", () => {
  it("reads ComfyUI's hex colours from ui.nodes.<id>, never other text", () => {
    const doc = fromGraphFile(FILE);
    expect(nodeColors(doc.nodes.a)).toEqual({ color: "#322", bgcolor: "#533" });
    expect(nodeColors(doc.nodes.b)).toEqual({ color: null, bgcolor: null });
    expect([hexColor("#a1b2c3ff"), hexColor("#12"), hexColor(7)]).toEqual(["#a1b2c3ff", null, null]);
  });

  it("sets a colour of ComfyUI's menu on the selected nodes, or none, saved with the graph", () => {
    const green = NODE_COLORS.find((c) => c.name === "green")!;
    let doc = setNodeColor(fromGraphFile(FILE), ["a", "b"], green);
    expect([uiOf(doc).a.bgcolor, uiOf(doc).b.bgcolor, uiOf(doc).a.position]).toEqual(["#353", "#353", [0, 0]]);
    doc = setNodeColor(doc, ["a"], null);
    expect("color" in uiOf(doc).a || "bgcolor" in uiOf(doc).a).toBe(false);
  });

  it("picks the text colour that reads on the node's colour", () => {
    expect(textColorOn("#533")).toBe("#ffffff");
    expect(textColorOn("#f0f0a0")).toBe("#111111");
  });
});

describe("minimised nodes", () => {
  it("minimises the selection, expands it when all are minimised, and saves the flag as ui collapsed", () => {
    let doc = fromGraphFile(FILE);
    doc = toggleMinimised(doc, ["a"]);
    expect(uiOf(doc).a.collapsed).toBe(true);
    doc = toggleMinimised(doc, ["a", "b"]);                // not all minimised: both now
    expect([isMinimised(doc.nodes.a), isMinimised(doc.nodes.b)]).toEqual([true, true]);
    doc = toggleMinimised(doc, ["a", "b", "gone"]);
    expect([isMinimised(doc.nodes.a), isMinimised(doc.nodes.b), "collapsed" in uiOf(doc).a]).toEqual([false, false, false]);
    expect(isMinimised(fromGraphFile({ ...FILE, ui: { nodes: { a: { collapsed: true } } } }).nodes.a)).toBe(true);
  });
});

describe("ComfyUI's keys", () => {
  const press = (key: string, mods: Partial<{ ctrlKey: boolean; shiftKey: boolean; altKey: boolean; metaKey: boolean; code: string }> = {}) =>
    ({ key, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods });

  it("fits with '.', minimises with Alt+C (also 'ç' on a Mac) on the canvas only", () => {
    expect(habitShortcut(press("."), false, true)).toBe("fit");
    expect(habitShortcut(press("."), true, false)).toBeNull();         // typing a full stop into a prompt
    expect(habitShortcut(press("."), false, false)).toBeNull();        // on a button
    expect(habitShortcut(press("c", { altKey: true }), false, true)).toBe("minimise");
    expect(habitShortcut(press("ç", { altKey: true, code: "KeyC" }), false, true)).toBe("minimise");
    expect(habitShortcut(press("c", { ctrlKey: true }), false, true)).toBeNull(); // copy
  });

  it("opens with Ctrl+O and interrupts with Ctrl+Alt+Enter, from a text field too; Ctrl+Enter stays run", () => {
    expect(habitShortcut(press("o", { ctrlKey: true }), true, false)).toBe("open");
    expect(habitShortcut(press("Enter", { ctrlKey: true, altKey: true }), true, false)).toBe("interrupt");
    expect(habitShortcut(press("Enter", { metaKey: true, altKey: true }), false, true)).toBe("interrupt");
    expect(habitShortcut(press("Enter", { ctrlKey: true }), false, true)).toBeNull();
  });

  it("lists them in the help panel", () => {
    const keys = SHORTCUTS.map((s) => s.keys).join(" | ");
    for (const key of ["Alt+C", ". (full stop)", "Ctrl+O", "Ctrl+Alt+Enter", "Colour…"]) expect(keys).toContain(key);
  });
});
