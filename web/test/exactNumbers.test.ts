import { describe, expect, it } from "vitest";
import { fromGraphFile, randomizeSeeds, setSeedMode } from "../src/graph/document";
import {
  exactInteger,
  exactIntegerBound,
  incrementedSeed,
  numberEntry,
  parseNumber,
  refusedEntryNote,
  widgetFor,
  widgetText,
} from "../src/schema/widgets";
import { realSchemas } from "./helpers";

const { nodes } = realSchemas();
const seedWidget = widgetFor("seed", nodes.KSampler.inputs.seed) as { kind: "seed"; min: number; max: number };
const seedBox = { integer: true, min: seedWidget.min, max: seedWidget.max };
const steps = { integer: true, min: 1, max: 10000 };

describe("integers typed into number boxes", () => {
  it("reads every digit of a seed up to 2^64−1, and refuses 2^64 with the exact bound", () => {
    expect(seedWidget).toEqual({ kind: "seed", min: 0, max: 2 ** 64 });
    expect(parseNumber("18446744073709551615", seedBox)).toEqual({ ok: true, value: 18446744073709551615n });
    expect(parseNumber("9007199254740993", seedBox)).toEqual({ ok: true, value: 9007199254740993n });
    expect(parseNumber("9007199254740991", seedBox)).toEqual({ ok: true, value: 9007199254740991 }); // safe: a number
    expect(parseNumber("18446744073709551616", seedBox)).toEqual({ ok: false, reason: "must be ≤ 18446744073709551615" });
    expect(parseNumber("-1", seedBox)).toEqual({ ok: false, reason: "must be ≥ 0" });
  });

  it("reads exponents exactly and refuses what is not whole or too large", () => {
    expect(exactInteger("1.5e3")).toBe(1500n);
    expect(exactInteger("-7E+2")).toBe(-700n);
    expect(exactInteger("1e19")).toBe(10n ** 19n);
    expect(exactInteger("2.50e1")).toBe(25n);
    expect(exactInteger("2.5")).toBeNull();
    expect(exactInteger("0e999999")).toBe(0n);
    expect(parseNumber("1e308", steps)).toEqual({ ok: false, reason: "must be ≤ 10000" });
    expect(parseNumber("1e999", steps)).toEqual({ ok: false, reason: "too large to be a number" });
    expect(parseNumber("0x10", steps)).toEqual({ ok: false, reason: "not a number" });
    expect(parseNumber(" 7 ", steps)).toEqual({ ok: true, value: 7 });
    expect(exactIntegerBound(2 ** 63, "max")).toBe(2n ** 63n - 1n);
    expect(exactIntegerBound(0.5, "min")).toBe(1n);
  });

  it("never applies a prefix of what is being typed: an invalid entry applies the value from before editing", () => {
    const typed = "1e308";
    const applied = [...typed].map((_, i) => numberEntry(typed.slice(0, i + 1), steps, 20).value);
    expect(applied).toEqual([1, 20, 1000, 20, 20]); // "1", "1e", "1e3", "1e30", "1e308"
    expect(numberEntry(typed, steps, 20)).toEqual({ value: 20, reason: "must be ≤ 10000" });
    const seed = "18446744073709551616";
    expect(numberEntry(seed, seedBox, 42).value).toBe(42);
    expect(numberEntry(seed.slice(0, -1), seedBox, 42).value).toBe(1844674407370955161n);
    expect(refusedEntryNote(seed, "must be ≤ 18446744073709551615", "42")).toBe('"18446744073709551616" must be ≤ 18446744073709551615; kept 42');
    expect(refusedEntryNote("1".repeat(30), "must be ≤ 5", "5")).toBe(`"${"1".repeat(24)}…" must be ≤ 5; kept 5`);
    expect(refusedEntryNote("1e308", "must be ≤ 10000", "")).toBe('"1e308" must be ≤ 10000; kept the default');
  });

  it("increments a seed exactly beyond 2^53 and wraps at 2^64−1", () => {
    expect(incrementedSeed(9007199254740991, 0, 2 ** 64)).toBe(9007199254740992n);
    expect(incrementedSeed(18446744073709551614n, 0, 2 ** 64)).toBe(18446744073709551615n);
    expect(incrementedSeed(18446744073709551615n, 0, 2 ** 64)).toBe(0);
    expect(incrementedSeed("x", 5, 10)).toBe(5);
    const doc = setSeedMode(
      fromGraphFile({ format_version: 2, nodes: { k: { type: "KSampler", inputs: { seed: 18446744073709551614n } } } }),
      "k", "seed", "increment",
    );
    const next = randomizeSeeds(doc, () => [{ name: "seed", min: 0, max: 2 ** 64 }], () => 0);
    expect(next.nodes.k.inputs.seed).toBe(18446744073709551615n);
  });

  it("shows a value of the wrong JSON type as readable text, never [object Object]", () => {
    expect(widgetText({ x: 1 })).toBe('invalid value: {"x":1}');
    expect(widgetText([1, 2, 3])).toBe("invalid value: [1,2,3]");
    expect(widgetText(18446744073709551615n)).toBe("18446744073709551615");
    expect(widgetText(undefined)).toBe("");
    expect(widgetText("many")).toBe("many");
    expect(parseNumber(widgetText({ x: 1 }), steps).ok).toBe(false);
  });
});
