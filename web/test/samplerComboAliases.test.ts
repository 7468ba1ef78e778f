/**
 * The sampler combobox finds A1111's names: "DPM++ 2M Karras" gave "no match" although `validate` knows it means
 * dpmpp_2m (an A1111 user's pass); other lists and ordinary filtering stay as they were.
 */
import { describe, expect, it } from "vitest";
import { filterChoices } from "../src/schema/widgets";
import { realSchemas } from "./helpers";

const samplers = realSchemas().nodes.KSampler.inputs.sampler.choices!;

describe("the sampler filter", () => {
  it("shows the sampler an A1111 name means, the exact one first", () => {
    expect(filterChoices(samplers, "DPM++ 2M Karras")[0]).toBe("dpmpp_2m");
    expect(filterChoices(samplers, "DPM++ 2M")[0]).toBe("dpmpp_2m");
    expect(filterChoices(samplers, "DPM++ SDE Karras")[0]).toBe("dpmpp_sde");
    expect(filterChoices(samplers, "DPM++ 2M SDE Exponential")).toEqual(["dpmpp_2m_sde"]);
    expect(filterChoices(samplers, "Euler a")).toEqual(["euler_ancestral"]);
    expect(filterChoices(samplers, "k_euler_a")).toEqual(["euler_ancestral"]);
    expect(filterChoices(samplers, "k_dpmpp_2m_ka")[0]).toBe("dpmpp_2m");
  });

  it("still says no match for a sampler nodegraph lacks, and filters other lists as before", () => {
    expect(filterChoices(samplers, "DPM2 a")).toEqual([]);
    expect(filterChoices(samplers, "Karras")).toEqual([]);
    expect(filterChoices(["anime.safetensors", "tiny_anime.ckpt"], "anime")).toEqual(["anime.safetensors", "tiny_anime.ckpt"]);
    expect(filterChoices(["a.safetensors"], "zzz")).toEqual([]);
  });
});
