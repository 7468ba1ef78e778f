/**
 * The seed modes work as ComfyUI's "control after generate" (a ComfyUI user's pass: with "+1 / run" the 42 shown was
 * never rendered, the run used 43): a run uses the seed shown, then the next one is shown — +1, −1 or a new random
 * one — and a refused run gives its seed back.
 */
import { afterEach, describe, expect, it } from "vitest";
import { decrementedSeed, incrementedSeed } from "../src/schema/widgets";
import { fromGraphFile, nextSeedMode, randomizeSeeds, seedMode, seedsGivenBack, setInput, toGraphFile } from "../src/graph/document";
import { connectedApp, realSchemas, stopApp } from "./helpers";

const graphWith = (mode: string, seed: unknown = 42) => ({
  format_version: 2,
  nodes: { sampler: { type: "KSampler", inputs: { seed } } },
  ui: { nodes: { sampler: { seed_modes: { seed: mode } } } },
});

describe("a run uses the seed shown, then the next one is shown", () => {
  let opened: ReturnType<typeof connectedApp>;
  afterEach(() => stopApp(opened.app));

  function start(mode: string, seed: unknown = 42): void {
    opened = connectedApp();
    const schemas = realSchemas();
    opened.socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
    expect(opened.app.loadGraph(graphWith(mode, seed))).toBe(true);
  }
  const submits = () => opened.socket.messages().filter((m) => m.type === "submit");
  const seedOf = (submit: Record<string, unknown>) => (submit.graph as ReturnType<typeof graphWith>).nodes.sampler.inputs.seed;
  const shown = () => opened.app.editor.doc.nodes.sampler.inputs.seed;
  const accept = (submit: Record<string, unknown>) =>
    opened.socket.reply({ type: "submitted", run_id: `run-${String(submit.request_id)}`, position: 0, request_id: submit.request_id });

  it("+1 / run: 42 rendered, 43 shown; the next run 43, 44 shown", async () => {
    start("increment");
    let done = opened.app.run();
    expect(shown()).toBe(43);                   // shown once the submit is sent
    accept(submits()[0]);
    await done;
    done = opened.app.run();
    accept(submits()[1]);
    await done;
    expect(submits().map(seedOf)).toEqual([42, 43]);
    expect(shown()).toBe(44);
  });

  it("random: the run uses the seed shown, a new one is drawn for the next", async () => {
    start("randomize");
    const done = opened.app.run();
    accept(submits()[0]);
    await done;
    expect(seedOf(submits()[0])).toBe(42);
    expect(shown()).not.toBe(42);
    void opened.app.run();
    expect(seedOf(submits()[1])).not.toBe(42);   // the one drawn after the first run
    expect(shown()).not.toBe(seedOf(submits()[1])); // and drawn again after the second
  });

  it("−1 / run (ComfyUI's decrement) and fixed", async () => {
    start("decrement");
    void opened.app.run();
    expect([seedOf(submits()[0]), shown()]).toEqual([42, 41]);
    stopApp(opened.app);
    start("fixed");
    void opened.app.run();
    expect([seedOf(submits()[0]), shown()]).toEqual([42, 42]);
  });

  it("a refused run shows its seed again", async () => {
    start("increment");
    const done = opened.app.run();
    expect(shown()).toBe(43);
    const submit = submits()[0];
    opened.socket.reply({ type: "error", code: "invalid_graph", message: "no", request_id: submit.request_id, details: { errors: [] } });
    await done;
    expect(shown()).toBe(42);
  });
});

describe("the seed mode helpers", () => {
  it("decrement wraps from min to max, exactly beyond 2^53; increment from max to min", () => {
    expect(decrementedSeed(42, 0, 100)).toBe(42 - 1);
    expect(decrementedSeed(0, 0, 100)).toBe(100);
    expect(decrementedSeed(2n ** 64n - 1n, 0, Number("18446744073709551615"))).toBe(2n ** 64n - 2n);
    expect(incrementedSeed(100, 0, 100)).toBe(0);
  });

  it("keeps decrement (from a ComfyUI import) through load and save; the button goes from it to fixed", () => {
    const doc = fromGraphFile(graphWith("decrement"));
    expect(seedMode(doc.nodes.sampler, "seed")).toBe("decrement");
    expect((toGraphFile(doc).ui!.nodes as Record<string, { seed_modes: unknown }>).sampler.seed_modes).toEqual({ seed: "decrement" });
    expect(nextSeedMode("decrement")).toBe("fixed");
  });

  it("gives back only the seeds that still show the stepped value", () => {
    const submitted = fromGraphFile({ format_version: 2, nodes: { a: { type: "K", inputs: { seed: 1 } }, b: { type: "K", inputs: { seed: 5 } } },
      ui: { nodes: { a: { seed_modes: { seed: "increment" } }, b: { seed_modes: { seed: "increment" } } } } });
    const advanced = randomizeSeeds(submitted, () => [{ name: "seed", min: 0, max: 100 }], () => 0);
    const typed = setInput(advanced, "b", "seed", 77);               // typed while the server was deciding
    const back = seedsGivenBack(typed, submitted, advanced);
    expect([back.nodes.a.inputs.seed, back.nodes.b.inputs.seed]).toEqual([1, 77]);
  });
});
