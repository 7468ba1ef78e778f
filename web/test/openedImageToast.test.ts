/**
 * The toast after opening an image says "later runs draw new seeds" only when a seed is in random or increment mode:
 * an image from `nodegraph run` (no seed modes: fixed) said it, and the next Run was served from the cache with
 * the same seed (an A1111 user's pass).
 */
import { afterEach, describe, expect, it } from "vitest";
import { connectedApp, realSchemas, stopApp } from "./helpers";
import { buildPng, tEXt } from "./pngFixture";

const graphWith = (ui: object) => ({
  format_version: 2,
  nodes: { sampler: { type: "KSampler", inputs: { seed: 42 } } },
  ...ui,
});

describe("the toast after opening an image", () => {
  let opened: ReturnType<typeof connectedApp>;
  afterEach(() => stopApp(opened.app));

  async function toastAfterOpening(graph: object): Promise<string | undefined> {
    opened = connectedApp();
    const schemas = realSchemas();
    opened.socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
    const png = buildPng(tEXt("nodegraph", JSON.stringify(graph)));
    expect(await opened.app.loadFile(new File([png as Uint8Array<ArrayBuffer>], "made.png"))).toBe(true);
    return opened.app.toasts.get().at(-1)?.text;
  }

  it("says the seeds are fixed for an image whose graph has no seed modes (a CLI run's)", async () => {
    const text = await toastAfterOpening(graphWith({}));
    expect(text).toBe("Loaded made.png (Run makes this image again; its seeds are fixed, so later runs make it again too)");
    expect(text).not.toMatch(/draw new seeds/);
  });

  it("says later runs draw new seeds when a seed is in random or increment mode", async () => {
    for (const mode of ["randomize", "increment"]) {
      const text = await toastAfterOpening(graphWith({ ui: { nodes: { sampler: { seed_modes: { seed: mode } } } } }));
      expect(text).toBe("Loaded made.png (Run makes this image again; later runs draw new seeds)");
      stopApp(opened.app);
    }
  });

  it("says nothing about seeds for a graph without any", async () => {
    const text = await toastAfterOpening({ format_version: 2, nodes: { value: { type: "ShowValue", inputs: { value: 1 } } } });
    expect(text).toBe("Loaded made.png (Run makes this image again)");
  });
});
