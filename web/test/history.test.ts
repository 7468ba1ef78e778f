import { describe, expect, it } from "vitest";
import { COALESCE_MS, emptyHistory, record, redo, undo } from "../src/graph/history";

describe("undo stack", () => {
  it("undoes and redoes in order", () => {
    let h = emptyHistory<string>();
    h = record(h, "a", null, 0); // a -> b
    h = record(h, "b", null, 10); // b -> c
    let step = undo(h, "c")!;
    expect(step.value).toBe("b");
    step = undo(step.history, step.value)!;
    expect(step.value).toBe("a");
    expect(undo(step.history, step.value)).toBeNull();
    const again = redo(step.history, step.value)!;
    expect(again.value).toBe("b");
    expect(redo(again.history, again.value)!.value).toBe("c");
  });

  it("coalesces edits with the same key within the window", () => {
    let h = emptyHistory<string>();
    h = record(h, "v0", "input:n:x", 0);
    h = record(h, "v1", "input:n:x", 300);
    h = record(h, "v2", "input:n:x", 600);
    expect(h.past).toEqual(["v0"]);
    h = record(h, "v3", "input:n:x", 600 + COALESCE_MS + 1);
    expect(h.past).toEqual(["v0", "v3"]);
    h = record(h, "v4", "input:n:y", 600 + COALESCE_MS + 2);
    expect(h.past).toEqual(["v0", "v3", "v4"]);
  });

  it("drops the redo stack on a new edit", () => {
    let h = emptyHistory<string>();
    h = record(h, "a", null, 0);
    const step = undo(h, "b")!;
    expect(step.history.future).toEqual(["b"]);
    const after = record(step.history, "a", null, 5);
    expect(after.future).toEqual([]);
  });
});
