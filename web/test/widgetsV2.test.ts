import { describe, expect, it } from "vitest";
import { foreignFormat, foreignKind, jsonErrorText, lineColumn } from "../src/graph/foreign";
import { formatDuration, historyRow, runSeed } from "../src/run/history";
import { filterChoices, sliderRange, widgetFor } from "../src/schema/widgets";
import { realSchemas } from "./helpers";

const schemas = realSchemas();

describe("widget values", () => {
  it("gives bounded number inputs a slider (cfg, denoise) and unbounded or huge ones none (steps, seed)", () => {
    const ks = schemas.nodes.KSampler.inputs;
    const cfg = widgetFor("cfg", ks.cfg);
    expect(cfg.kind === "number" && sliderRange(cfg)).toEqual({ min: 0, max: 100, step: 0.1 });
    const denoise = widgetFor("denoise", ks.denoise);
    expect(denoise.kind === "number" && sliderRange(denoise)).toEqual({ min: 0, max: 1, step: 0.01 });
    const steps = widgetFor("steps", ks.steps);
    expect(steps.kind === "number" && sliderRange(steps)).toBeNull();
    expect(sliderRange({ integer: true, min: 0 })).toBeNull();
  });

  it("filters a long choice list by every word, prefixes first", () => {
    const samplers = schemas.nodes.KSampler.inputs.sampler.choices!;
    expect(filterChoices(samplers, "dpm")[0]).toBe("dpmpp_2m");
    expect(filterChoices(samplers, "sde")).toEqual(["dpmpp_2m_sde", "dpmpp_sde"]);
    expect(filterChoices(samplers, "2m sde")).toEqual(["dpmpp_2m_sde"]);
    expect(filterChoices(samplers, "")).toEqual(samplers);
    expect(filterChoices(["anime.safetensors", "tiny_anime.ckpt"], "anime")).toEqual(["anime.safetensors", "tiny_anime.ckpt"]);
  });
});

describe("files that are not graphs", () => {
  it("names ComfyUI workflows and API prompts instead of opening a blank canvas", () => {
    expect(foreignFormat({ nodes: [], links: [], version: 0.4 })).toContain("ComfyUI UI-format workflow");
    expect(foreignFormat({ nodes: [], links: [], version: 0.4 })).toContain("the server is not connected");
    expect(foreignFormat({ "3": { class_type: "KSampler", inputs: {} } })).toContain("ComfyUI API-format prompt");
    expect(foreignKind({ "3": { class_type: "KSampler", inputs: {} } })).toBe("comfyui-api");
    expect(foreignKind({ nodes: [], links: [] })).toBe("comfyui-workflow");
    expect(foreignKind({ format_version: 2, nodes: {} })).toBeNull();
    expect(foreignFormat({ format_version: 2, nodes: {} })).toBeNull();
  });

  it("adds the line and column to a JSON syntax error", () => {
    const text = '{\n  "nodes": {,\n}';
    let error: Error | null = null;
    try {
      JSON.parse(text);
    } catch (e) {
      error = e as Error;
    }
    expect(jsonErrorText(text, error!)).toMatch(/line 2, column 13|line 2 column 13/);
    expect(lineColumn("ab\ncd", 4)).toEqual({ line: 2, column: 2 });
  });
});

describe("history rows", () => {
  it("shows time, duration, seed and the server's thumbnail, never the raw run id as a title", () => {
    const now = new Date(2026, 11, 2, 22, 0, 0);
    const started = new Date(2026, 11, 2, 21, 57, 0).getTime() / 1000;
    const run = { run_id: "6f1c0e", status: "succeeded" as const, started_at: started, finished_at: started + 12.34, seeds: { "sampler.seed": 1003 }, thumbnail: "output/t_00001.png", title: null };
    const row = historyRow(run, undefined, now, (id) => `files/${id}`);
    expect(row.title).toBe("untitled graph");
    expect(row.time).toBe("21:57:12");
    expect(row.duration).toBe("12.3 s");
    expect(row.seed).toBe(1003);
    expect(row.thumbnail?.url).toBe("files/output/t_00001.png");
    expect(runSeed({ run_id: "x", status: "failed", seed: 5 })).toBe(5);
    expect(formatDuration(125)).toBe("2 min 5 s");
    expect(historyRow({ ...run, finished_at: started - 86400 }, undefined, now).time).toMatch(/^1 Dec \d\d:\d\d$/);
  });
});
