import { describe, expect, it } from "vitest";
import { clampScale, fitScale, VIEWER_MAX_SCALE, VIEWER_MIN_SCALE } from "../src/state/ui";

describe("image viewer scale (screen pixels per image pixel; 1 = 100%)", () => {
  it("fits the whole image in the stage, enlarging small ones and shrinking large ones", () => {
    expect(fitScale([160, 48], [960, 600])).toBe(6);          // width-bound: 160 × 6 = 960
    expect(fitScale([64, 64], [960, 600])).toBe(600 / 64);    // height-bound
    expect(fitScale([2048, 1024], [1024, 1024])).toBe(0.5);
  });

  it("is 1 (actual pixels) while a size is unknown, and stays within the limits", () => {
    expect(fitScale([0, 0], [960, 600])).toBe(1);
    expect(fitScale([64, 64], [0, 0])).toBe(1);
    expect(fitScale([1, 1], [10_000, 10_000])).toBe(VIEWER_MAX_SCALE);
    expect(clampScale(0.001)).toBe(VIEWER_MIN_SCALE);
    expect(clampScale(1)).toBe(1);
  });
});
