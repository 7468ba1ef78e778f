import { describe, expect, it } from "vitest";
import { shortcutInField } from "../src/editor/shortcuts";

const press = (key: string, mods: Partial<{ ctrlKey: boolean; shiftKey: boolean; altKey: boolean; metaKey: boolean }> = {}) =>
  ({ key, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods });

describe("shortcutInField", () => {
  it("runs and saves from any text field", () => {
    expect(shortcutInField(press("Enter", { ctrlKey: true }))).toBe("run");
    expect(shortcutInField(press("Enter", { ctrlKey: true, shiftKey: true }))).toBe("run-front");
    expect(shortcutInField(press("s", { metaKey: true }))).toBe("save");
    expect(shortcutInField(press("Enter"))).toBeNull();
  });

  it("undoes with the graph only in fields that write each keystroke into it", () => {
    expect(shortcutInField(press("z", { ctrlKey: true }), true)).toBe("undo");
    expect(shortcutInField(press("Z", { ctrlKey: true, shiftKey: true }), true)).toBe("redo");
    expect(shortcutInField(press("y", { ctrlKey: true }), true)).toBe("redo");
    expect(shortcutInField(press("z", { ctrlKey: true }))).toBeNull();       // e.g. a node title: the browser's undo
    expect(shortcutInField(press("z"), true)).toBeNull();                     // typing a "z"
    expect(shortcutInField(press("z", { ctrlKey: true, altKey: true }), true)).toBeNull();
  });
});
