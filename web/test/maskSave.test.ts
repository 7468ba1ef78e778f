/** A mask PNG larger than the server takes in one upload: the dialog says so with the real fixes (editor/MaskEditor.tsx). */
import { describe, expect, it } from "vitest";
import { maskTooLargeText, suggestedMessageLimit } from "../src/editor/MaskEditor";

describe("a mask too large to upload", () => {
  it("suggests a --max-message-bytes that fits it, in 16 MiB steps", () => {
    const MiB = 2 ** 20;
    expect(suggestedMessageLimit(10 * MiB)).toBe(16 * MiB);
    expect(suggestedMessageLimit(16 * MiB)).toBe(32 * MiB);   // the frame's header needs room too
    expect(suggestedMessageLimit(22.3 * MiB)).toBe(32 * MiB);
  });

  it("names the size and both fixes, and says the painting stays", () => {
    const text = maskTooLargeText("phone_mask.png", 22.3 * 2 ** 20);
    expect(text).toMatch(/phone_mask\.png is 22\.3 MiB/);
    expect(text).toMatch(/--max-message-bytes 33554432 \(32 MiB\)/);
    expect(text).toMatch(/copy it into the server's input folder/);
    expect(text).toMatch(/painting stays/);
    expect(text).not.toMatch(/make the file smaller/);
  });
});
