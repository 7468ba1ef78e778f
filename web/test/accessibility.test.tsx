/** Accessibility and keyboard fixes: accessible names, the canvas's key guard, keyboard wiring, announcements. */
import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, describe, expect, it } from "vitest";
import { fromGraphFile } from "../src/graph/document";
import { choiceLabel, connectChoices } from "../src/editor/connectChoices";
import { nodeLabel, onCanvas, wireLabel } from "../src/editor/GraphCanvas";
import { InputWidget } from "../src/editor/InputWidget";
import { HistoryPanel, Toasts } from "../src/editor/Panels";
import { SHORTCUTS } from "../src/editor/shortcuts";
import { runAnnouncement } from "../src/run/announce";
import { historyRow } from "../src/run/history";
import { filterTemplates } from "../src/run/templates";
import { widgetFor } from "../src/schema/widgets";
import type { EditorApp } from "../src/state/app";
import { AppContext } from "../src/state/context";
import { connectedApp, realSchemas, stopApp } from "./helpers";

const schemas = realSchemas();

function render(app: EditorApp, element: React.ReactElement): string {
  return renderToStaticMarkup(<AppContext.Provider value={app}>{element}</AppContext.Provider>);
}

/** A stand-in for a DOM element: its tag and the selectors `closest` finds among its ancestors. */
function element(tag: string, ancestors: string[], doc: { body: unknown; documentElement: unknown } = { body: null, documentElement: null }) {
  return {
    tagName: tag,
    ownerDocument: doc,
    closest: (selector: string) => (selector.split(",").some((s) => ancestors.includes(s.trim())) ? {} : null),
  };
}

describe("accessible names", () => {
  let app: EditorApp | null = null;
  afterEach(() => {
    if (app) stopApp(app);
    app = null;
  });

  it("names every widget by its input, with the range hint as a description", () => {
    app = connectedApp().app;
    const ks = schemas.nodes.KSampler.inputs;
    const widget = (name: string) =>
      render(app!, <InputWidget nodeId="sampler" name={name} spec={ks[name]} widget={widgetFor(name, ks[name])} value={undefined} />);
    const steps = widget("steps");
    expect(steps).toMatch(/aria-label="steps"/);
    const described = /aria-describedby="([^"]+)"/.exec(steps)![1];
    expect(steps).toContain(`id="${described}"`);
    expect(steps).toMatch(/↑\/↓ to step/); // the hint is there, as the description
    expect(widget("cfg")).toMatch(/aria-label="cfg"/);
    const seed = widget("seed");
    expect(seed).toMatch(/aria-label="seed"/);
    expect(seed).toMatch(/aria-label="seed mode: (fixed|random|\+1 \/ run)"/);
    expect(seed).toMatch(/aria-label="new random seed"/);
    const sampler = widget("sampler");
    expect(sampler).toMatch(/aria-label="sampler(: [^"]+)?"/);
    const prompt = render(app, <InputWidget nodeId="text" name="text" spec={schemas.nodes.EncodeText.inputs.text} widget={widgetFor("text", schemas.nodes.EncodeText.inputs.text)} value="a cat" />);
    expect(prompt).toMatch(/aria-label="text"/);
  });

  it("names nodes by title and id, wires by their ports", () => {
    expect(nodeLabel("sampler", { type: "KSampler" }, schemas.nodes.KSampler)).toBe("KSampler (sampler)");
    expect(nodeLabel("sampler", { type: "KSampler", title: "Main pass" }, schemas.nodes.KSampler)).toBe("Main pass (sampler)");
    expect(wireLabel({ source: "checkpoint", output: "model", target: "sampler", input: "model" })).toBe("checkpoint.model → sampler.model");
  });

  it("puts toasts in a polite live region, errors as alerts; history rows name their run, never its id", () => {
    app = connectedApp().app;
    app.toast("Queued it");
    app.toast("Could not submit", "error");
    const toasts = render(app, <Toasts />);
    expect(toasts).toMatch(/class="ng-toasts" aria-live="polite"/);
    expect(toasts).toMatch(/role="alert"[^>]*>Could not submit/);
    const run = { run_id: "ab12cd34ef", title: "Text to image", status: "failed", finished_at: 1_700_000_000, error: { message: "boom" } };
    expect(historyRow(run as never, []).tooltip).not.toContain("ab12cd34ef");
    app.session.set((s) => ({ ...s, history: [run as never] }));
    const history = render(app, <HistoryPanel />);
    expect(history).toMatch(/aria-label="Open run [^"]*Text to image"/);
    expect(history).toMatch(/aria-label="Requeue run [^"]*Text to image"/);
    expect(history).not.toMatch(/title="[^"]*ab12cd34ef/);
  });
});

describe("keyboard", () => {
  it("lets Delete act only on the canvas, a node, a wire or the page, never on a button, link, menu or dialog", () => {
    const doc = { body: {}, documentElement: {} };
    const body = { tagName: "BODY", ownerDocument: doc, closest: () => null };
    doc.body = body;
    expect(onCanvas(body as never)).toBe(true);
    expect(onCanvas(null)).toBe(true);
    expect(onCanvas(element("DIV", [".ng-canvas"], doc) as never)).toBe(true);                  // a node, a wire
    expect(onCanvas(element("BUTTON", ["button"], doc) as never)).toBe(false);                  // a toolbar button
    expect(onCanvas(element("BUTTON", [".ng-canvas", "button"], doc) as never)).toBe(false);    // a button on a node
    expect(onCanvas(element("A", ["a"], doc) as never)).toBe(false);
    expect(onCanvas(element("DIV", ["[role=dialog]"], doc) as never)).toBe(false);
    expect(onCanvas(element("BUTTON", ["[role=menuitem]", "button"], doc) as never)).toBe(false);
  });

  it("lists the links a node can make, typed, both ways, for the keyboard's Connect", () => {
    const doc = fromGraphFile({
      format_version: 2,
      nodes: {
        checkpoint: { type: "LoadCheckpoint", inputs: {} },
        sampler: { type: "KSampler", inputs: {} },
        latent: { type: "EmptyLatent", inputs: {} },
        width: { type: "Int", inputs: { value: 512 } },
      },
    });
    const out = connectChoices(doc, schemas.nodes, schemas.types, "checkpoint").map(choiceLabel);
    expect(out).toContain("checkpoint.model → sampler.model (MODEL)");
    expect(out).toContain("checkpoint.vae → latent.vae (VAE)");
    expect(out.some((l) => l.includes("→ sampler.steps"))).toBe(false); // a MODEL does not feed an INT
    const into = connectChoices(doc, schemas.nodes, schemas.types, "sampler").map(choiceLabel);
    expect(into).toContain("latent.latent → sampler.latent (LATENT)");
    expect(into).toContain("width.value → sampler.steps (INT)");
    expect(into).toContain("width.value → sampler.cfg (INT)"); // FLOAT accepts INT
    expect(into.some((l) => l.startsWith("sampler.latent → latent."))).toBe(false);
    // an existing link is not offered again, a replaced one is named
    const linked = fromGraphFile({
      format_version: 2,
      nodes: {
        a: { type: "Int", inputs: { value: 1 } },
        b: { type: "Int", inputs: { value: 2 } },
        sampler: { type: "KSampler", inputs: { steps: { node: "a", output: "value" } } },
      },
    });
    const choices = connectChoices(linked, schemas.nodes, schemas.types, "b").map(choiceLabel);
    expect(choices).toContain("b.value → sampler.steps (INT), replaces a.value");
    expect(connectChoices(linked, schemas.nodes, schemas.types, "a").map(choiceLabel)).not.toContain("a.value → sampler.steps (INT)");
    expect(SHORTCUTS.some((s) => s.keys.includes("Shift+F10") && /Connect an output/.test(s.keys + s.action))).toBe(true);
  });

  it("announces a run's milestones for the run shown, not its steps", () => {
    expect(runAnnouncement({ type: "run_started", run_id: "r" }, "r")).toBe("Run started");
    expect(runAnnouncement({ type: "run_finished", run_id: "r" }, "r")).toBe("Run finished");
    // a failure is the error banner's alert, not said twice (test/a11ySmall.test.tsx)
    expect(runAnnouncement({ type: "run_failed", run_id: "r", node_id: "sampler", message: "out of memory" }, "r")).toBeNull();
    expect(runAnnouncement({ type: "run_interrupted", run_id: "r" }, "r")).toBe("Run interrupted");
    expect(runAnnouncement({ type: "node_progress", run_id: "r" }, "r")).toBeNull();
    expect(runAnnouncement({ type: "run_finished", run_id: "other" }, "r")).toBeNull();
  });

  it("ranks the template whose file name is the query first", () => {
    const list = [
      { id: "project/txt2img_turbo.json", source: "project", title: "txt2img in 4 steps" },
      { id: "project/txt2img.json", source: "project", title: "Text to image (tiny world)" },
    ] as never[];
    expect(filterTemplates(list, "txt2img").map((t: { id: string }) => t.id)[0]).toBe("project/txt2img.json");
  });
});
