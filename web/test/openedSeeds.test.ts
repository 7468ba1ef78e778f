/**
 * Opening an image (or a past run) and pressing Run makes that image again: its seeds are used as they are for that
 * first run, as ComfyUI's "control after generate" does; later runs draw new ones (a reproducibility audit found
 * that a random-mode seed saved in the PNG was redrawn before the first submit).
 */
import { afterEach, describe, expect, it } from "vitest";
import { connectedApp, realSchemas, stopApp } from "./helpers";
import { buildPng, tEXt } from "./pngFixture";

const SAVED = {
  format_version: 2,
  nodes: { sampler: { type: "KSampler", inputs: { seed: 1234 } } },
  ui: { nodes: { sampler: { seed_modes: { seed: "randomize" } } } },
};

describe("the seeds of an opened image", () => {
  let opened: ReturnType<typeof connectedApp>;
  afterEach(() => stopApp(opened.app));

  const submittedSeeds = () =>
    opened.socket.messages().filter((m) => m.type === "submit").map((m) => (m.graph as typeof SAVED).nodes.sampler.inputs.seed);

  it("are used as they are for the first run only", async () => {
    opened = connectedApp();
    const schemas = realSchemas();
    opened.socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
    const png = buildPng(tEXt("nodegraph", JSON.stringify(SAVED)));
    expect(await opened.app.loadFile(new File([png as Uint8Array<ArrayBuffer>], "made.png"))).toBe(true);
    expect(opened.app.toasts.get().at(-1)?.text).toMatch(/Run makes this image again/);
    void opened.app.run();
    void opened.app.run();
    const [first, second] = submittedSeeds();
    expect(first).toBe(1234);
    expect(second).not.toBe(1234); // random mode again from the second run
    opened.app.loadGraph(SAVED); // a graph file too: its first run uses the seed shown (ComfyUI's "control after generate")
    void opened.app.run();
    void opened.app.run();
    expect(submittedSeeds()[2]).toBe(1234);
    expect(submittedSeeds()[3]).not.toBe(1234);
  });
});
