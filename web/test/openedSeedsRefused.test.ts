/**
 * An opened image's seeds are used up only by a run the server accepts: when the first Run is refused (the image's
 * input file or model is missing at first), the fixed-up Run still makes that image (a re-test found new seeds drawn).
 */
import { afterEach, describe, expect, it } from "vitest";
import { connectedApp, realSchemas, stopApp } from "./helpers";
import { buildPng, tEXt } from "./pngFixture";

const SAVED = {
  format_version: 2,
  nodes: { sampler: { type: "KSampler", inputs: { seed: 1234 } } },
  ui: { nodes: { sampler: { seed_modes: { seed: "randomize" } } } },
};

describe("a refused Run keeps the opened seeds", () => {
  let opened: ReturnType<typeof connectedApp>;
  afterEach(() => stopApp(opened.app));

  const submits = () => opened.socket.messages().filter((m) => m.type === "submit");
  const seedOf = (submit: Record<string, unknown>) => (submit.graph as typeof SAVED).nodes.sampler.inputs.seed;
  const refuse = (submit: Record<string, unknown>, code = "invalid_graph") =>
    opened.socket.reply({ type: "error", code, message: "no file 'present.png' in the input folder", request_id: submit.request_id, details: { errors: [] } });
  const accept = (submit: Record<string, unknown>) =>
    opened.socket.reply({ type: "submitted", run_id: `run-${String(submit.request_id)}`, position: 0, request_id: submit.request_id });

  function start(): void {
    opened = connectedApp();
    const schemas = realSchemas();
    opened.socket.reply({ type: "nodes", schema_hash: schemas.schemaHash, nodes: Object.values(schemas.nodes), types: schemas.types });
  }

  it("after opening an image: refused runs (invalid graph or any other refusal) keep them; the accepted one uses them up", async () => {
    start();
    expect(await opened.app.loadFile(new File([buildPng(tEXt("nodegraph", JSON.stringify(SAVED))) as Uint8Array<ArrayBuffer>], "made.png"))).toBe(true);
    let done = opened.app.run();
    refuse(submits()[0]);
    await done;
    done = opened.app.run();
    refuse(submits()[1], "busy");
    await done;
    done = opened.app.run();
    accept(submits()[2]);
    await done;
    done = opened.app.run();
    accept(submits()[3]);
    await done;
    expect(submits().map(seedOf).slice(0, 3)).toEqual([1234, 1234, 1234]);
    expect(seedOf(submits()[3])).not.toBe(1234); // used up by the accepted run: random mode again
  });

  it("after opening a past run's graph from history", async () => {
    start();
    const opening = opened.app.openRunGraph("old");
    const getRun = opened.socket.messages().at(-1)!;
    expect(getRun.type).toBe("get_run");
    opened.socket.reply({ type: "run", run_id: "old", graph: SAVED, request_id: getRun.request_id });
    await opening;
    let done = opened.app.run();
    refuse(submits()[0]);
    await done;
    done = opened.app.run();
    accept(submits()[1]);
    await done;
    expect(submits().map(seedOf)).toEqual([1234, 1234]);
  });

  it("not when another graph was opened, or another Run drew seeds, while the server was deciding", async () => {
    start();
    const png = buildPng(tEXt("nodegraph", JSON.stringify(SAVED))) as Uint8Array<ArrayBuffer>;
    await opened.app.loadFile(new File([png], "made.png"));
    let done = opened.app.run();
    opened.app.loadGraph(SAVED); // another graph: the refused run's seeds are not given back to it
    const shown = opened.app.editor.doc.nodes.sampler.inputs.seed;
    refuse(submits()[0]);
    await done;
    expect(opened.app.editor.doc.nodes.sampler.inputs.seed).toBe(shown);
    done = opened.app.run();
    accept(submits()[1]);
    await done;
    expect(seedOf(submits()[1])).toBe(1234); // the seed it shows, as ComfyUI runs a loaded workflow
    expect(opened.app.editor.doc.nodes.sampler.inputs.seed).not.toBe(1234);

    await opened.app.loadFile(new File([png], "made.png"));
    const first = opened.app.run();
    const second = opened.app.run(); // pressed again before the answer: new seeds
    refuse(submits()[2]);
    accept(submits()[3]);
    await Promise.all([first, second]);
    const third = opened.app.run();
    accept(submits()[4]);
    await third;
    expect(seedOf(submits()[2])).toBe(1234);
    expect(seedOf(submits()[3])).not.toBe(1234);
    expect(seedOf(submits()[4])).not.toBe(seedOf(submits()[3]));
  });
});
