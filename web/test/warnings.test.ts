import { describe, expect, it } from "vitest";
import { resultKeys, warningKey, warningList } from "../src/run/warnings";
import type { GraphFile } from "../src/graph/document";

const graph = (prompt: string, seed: bigint | number = 1): GraphFile => ({
  format_version: 2,
  nodes: {
    prompt: { type: "EncodeText", inputs: { text: prompt } },
    other: { type: "EncodeText", inputs: { text: "a cat" } },
    sampler: { type: "KSampler", inputs: { positive: { node: "prompt", output: "conditioning" }, seed } },
    sub: { type: "subgraph:s", inputs: { x: { node: "sampler", output: "latent" } } },
  },
  subgraphs: { s: { nodes: { inner: { type: "Int" } } } },
});

describe("node warnings: result keys", () => {
  it("names a node's result by its type, literals and what it links to (like the engine's cache key)", () => {
    const a = resultKeys(graph("a purpel giraffe"));
    const b = resultKeys(graph("a purple giraffe"));
    expect(resultKeys(graph("a purpel giraffe"))).toEqual(a); // deterministic
    expect(a.other).toBe(b.other);
    expect(a.prompt).not.toBe(b.prompt);
    expect(a.sampler).not.toBe(b.sampler); // upstream changed
    expect(a.sub).not.toBe(b.sub);
    const big = resultKeys(graph("a purpel giraffe", 18446744073709551615n)); // exact seeds (BigInt)
    expect(big.prompt).toBe(a.prompt);
    expect(big.sampler).not.toBe(a.sampler);
  });

  it("keys nodes inside a subgraph by their outer node, and unknown runs by node id", () => {
    const keys = resultKeys(graph("x"));
    expect(warningKey(keys, "sub/inner")).toBe(`r:${keys.sub}/inner`);
    expect(warningKey(keys, "prompt")).toBe(`r:${keys.prompt}`);
    expect(warningKey(undefined, "prompt")).toBe("node:prompt");
    expect(warningList({ a: [{ message: "1", earlier: false }], b: [{ message: "2", earlier: true }] })).toEqual([
      { nodeId: "a", warning: { message: "1", earlier: false } },
      { nodeId: "b", warning: { message: "2", earlier: true } },
    ]);
  });
});

describe("node warnings in the app", () => {
  it("shows a cached result's warnings only when it is the same result (submitted graph keys), and lists every warning in the banner", async () => {
    const { EditorApp } = await import("../src/state/app");
    const { FakeSocket, welcome } = await import("./helpers");
    const { renderToStaticMarkup } = await import("react-dom/server");
    const { createElement } = await import("react");
    const { AppContext } = await import("../src/state/context");
    const { RunWarnings } = await import("../src/editor/Panels");
    const { setInput } = await import("../src/graph/document");
    const socket = new FakeSocket();
    const app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" }, null);
    app.start();
    socket.open();
    socket.reply(welcome());
    app.loadGraph({ format_version: 2, nodes: { prompt: { type: "EncodeText", title: "My prompt", inputs: { text: "purpel" } }, n: { type: "Int", inputs: { value: 1 } } } });
    const runOnce = async (runId: string, events: object[]) => {
      const done = app.run();
      const request = socket.messages().filter((m) => m.type === "submit").at(-1)!;
      // The reply and the run's first events in one batch frame, as the server may send them.
      socket.reply({
        type: "batch",
        messages: [
          { type: "submitted", run_id: runId, position: 0, request_id: request.request_id },
          { type: "run_started", run_id: runId, nodes: ["prompt", "n"], total: 2 },
          ...events.map((e) => ({ run_id: runId, node_type: "T", ...e })),
        ],
      });
      await done;
    };
    await runOnce("r1", [
      { type: "node_started", node_id: "prompt" },
      { type: "node_warning", node_id: "prompt", message: "never learnt the word(s) 'purpel'" },
      { type: "node_finished", node_id: "prompt", seconds: 0.1 },
      { type: "node_started", node_id: "n" },
      { type: "node_warning", node_id: "n", message: "second warning" },
      { type: "node_finished", node_id: "n", seconds: 0.1 },
    ]);
    expect(Object.keys(app.session.get().warnings)).toEqual(["prompt", "n"]);
    const html = renderToStaticMarkup(createElement(AppContext.Provider, { value: app }, createElement(RunWarnings)));
    expect(html).toContain('data-count="2"');
    expect(html).toContain("<b>My prompt</b>: never learnt the word(s) &#x27;purpel&#x27;");
    expect(html).toContain("second warning");

    await runOnce("r2", [{ type: "node_cached", node_id: "prompt" }, { type: "node_cached", node_id: "n" }]);
    expect(app.session.get().warnings.prompt).toEqual([{ message: "never learnt the word(s) 'purpel'", earlier: true }]);
    const cachedHtml = renderToStaticMarkup(createElement(AppContext.Provider, { value: app }, createElement(RunWarnings)));
    expect(cachedHtml).toContain("from an earlier run: the result came from the cache");

    app.editor.edit((doc) => setInput(doc, "prompt", "text", "purple")); // another result: the old warning does not apply
    await runOnce("r3", [{ type: "node_cached", node_id: "prompt" }]);
    expect(app.session.get().warnings.prompt).toBeUndefined();
    app.client.close();
  });
});
