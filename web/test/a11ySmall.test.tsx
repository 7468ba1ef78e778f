/**
 * An accessibility and small-screen tester's findings (keyboard + screen reader, 320×240, 200 % zoom): the panels
 * folded in a narrow window, popovers inside the window, validation errors that reach a screen reader, run
 * announcements said once, node status colours from the theme (≥ 4.5:1 in both), landmarks and headings, the
 * tab's title with the run's progress, and subgraph port names in any script. The e2e side (focus, layout,
 * computed colours) is tests/web/test_editor_a11y_small_e2e.py.
 */
import { readFileSync } from "node:fs";
import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, describe, expect, it } from "vitest";
import { fromGraphFile } from "../src/graph/document";
import { collapseToSubgraph, portNameFromTitle, type SubgraphDefinition } from "../src/graph/subgraph";
import { fieldAria, InputWidget } from "../src/editor/InputWidget";
import { Palette } from "../src/editor/Palette";
import { Banner, HistoryPanel, Toasts } from "../src/editor/Panels";
import { popoverPlace } from "../src/editor/popover";
import { pageTitle, runProgress } from "../src/run/pageTitle";
import { widgetFor } from "../src/schema/widgets";
import type { EditorApp } from "../src/state/app";
import { AppContext } from "../src/state/context";
import { panelsFolded } from "../src/state/ui";
import { connectedApp, realSchemas, REPO_ROOT, stopApp } from "./helpers";

const schemas = realSchemas();

function render(app: EditorApp, element: React.ReactElement): string {
  return renderToStaticMarkup(<AppContext.Provider value={app}>{element}</AppContext.Provider>);
}

let app: EditorApp | null = null;
afterEach(() => {
  if (app) stopApp(app);
  app = null;
});

describe("a narrow window", () => {
  it("folds the palette and the side panels by default below 600 px; the user's choice wins", () => {
    expect(panelsFolded(null, 320)).toBe(true);    // 150 + 170 px of panels left the canvas 0 px wide
    expect(panelsFolded(null, 640)).toBe(false);   // 200 % of 1280: a 310 px canvas beside them
    expect(panelsFolded(false, 320)).toBe(false);
    expect(panelsFolded(true, 1600)).toBe(true);
  });

  it("keeps a popover inside the window: moved left, and never wider than the window", () => {
    // the templates menu (380 px) from its button at x 456 of a 640 px window scrolled the page sideways
    const atZoom = popoverPlace({ left: 456, bottom: 60 }, 380, { width: 640 });
    expect(atZoom.left + atZoom.width).toBeLessThanOrEqual(632);
    expect(atZoom).toEqual({ left: 252, top: 64, width: 380 });
    expect(popoverPlace({ left: 130, bottom: 90 }, 380, { width: 320 })).toEqual({ left: 8, top: 94, width: 304 });
    expect(popoverPlace({ left: 300, bottom: 40 }, 380, { width: 1600 }).left).toBe(300); // room: under its button
  });
});

describe("validation errors reach a screen reader", () => {
  it("marks a widget invalid and described by the errors shown under it", () => {
    expect(fieldAria(undefined)).toEqual({ "aria-invalid": false });
    expect(fieldAria("e1 e2", false, "hint")).toEqual({ "aria-invalid": true, "aria-describedby": "hint e1 e2" });
    app = connectedApp().app;
    const spec = schemas.nodes.RenderTinyWorld.inputs.size;
    const size = (errorId?: string) =>
      render(app!, <InputWidget nodeId="bad" name="size" spec={spec} widget={widgetFor("size", spec)} value={20} errorId={errorId} />);
    const field = (html: string) => /<input[^>]*data-testid="widget-bad-size"[^>]*>/.exec(html)![0];
    expect(field(size())).toContain('aria-invalid="false"');
    const marked = field(size("err-0"));
    expect(marked).toContain('aria-invalid="true"');
    expect(/aria-describedby="([^"]+)"/.exec(marked)![1].split(" ")).toContain("err-0"); // with the range hint
    const text = schemas.nodes.EncodeText.inputs.text;
    const prompt = render(app, <InputWidget nodeId="t" name="text" spec={text} widget={widgetFor("text", text)} value="" errorId="err-1" />);
    expect(prompt).toMatch(/aria-invalid="true"[^>]*aria-describedby="err-1"/);
  });
});

describe("announcements said once", () => {
  it("keeps error toasts out of the polite region and the close glyph out of the banner's alert", () => {
    app = connectedApp().app;
    app.toast("Queued it");
    app.toast("The graph is invalid (1 error): see the marked nodes", "error");
    const toasts = render(app, <Toasts />);
    const polite = /<div class="ng-toasts" aria-live="polite"[^>]*>(.*)<\/div><\/div>$/.exec(toasts)![1];
    expect(polite).toContain("Queued it");
    expect(polite).not.toContain("invalid");       // an alert inside a polite region was read by both
    expect(toasts).toMatch(/role="alert"[^>]*>The graph is invalid/);
    app.dispatch({ type: "banner", banner: { kind: "error", text: "Run failed at node div: ZeroDivisionError" } });
    const banner = render(app, <Banner />);
    expect(banner).toMatch(/role="alert">Run failed at node div: ZeroDivisionError<\/span>/);
    expect(banner).toMatch(/aria-label="Close the message"[^>]*><span aria-hidden="true">×<\/span>/);
  });

  it("does not say a failed run in the status region too, and forgets what it said when another graph opens", async () => {
    const connected = connectedApp();
    app = connected.app;
    const { socket } = connected;
    app.loadGraph({ format_version: 2, metadata: { title: "Err test" }, nodes: { a: { type: "Int", inputs: { value: 1 } } } });
    const done = app.run();
    socket.reply({ type: "submitted", run_id: "r1", position: 0, request_id: socket.messages().at(-1)!.request_id });
    await done;
    socket.reply({ type: "run_started", run_id: "r1", nodes: ["a"], total: 1 });
    expect(app.announcement.get()?.text).toBe("Run started");
    socket.reply({ type: "run_failed", run_id: "r1", node_id: "a", message: "a long traceback line" });
    expect(app.session.get().banner?.text).toContain("a long traceback line");   // the alert says it
    expect(app.announcement.get()?.text).toBe("Run started");                  // the status region does not
    expect(app.toasts.get().map((t) => t.text)).toContain("Queued Err test");
    app.loadGraph({ format_version: 2, metadata: { title: "Other" }, nodes: { b: { type: "Int", inputs: { value: 2 } } } });
    expect(app.announcement.get()).toBeNull();
    expect(app.toasts.get().map((t) => t.text)).not.toContain("Queued Err test"); // it named the graph before
  });
});

/** The colour variables of one theme block of styles.css (`:root {` or `:root[data-theme="light"] {`). */
function themeColours(css: string, selector: string): Record<string, string> {
  const start = css.indexOf(`${selector} {`);
  const block = css.slice(start, css.indexOf("}", start));
  return Object.fromEntries([...block.matchAll(/(--[\w-]+):\s*(#[0-9a-f]{6})\b/gi)].map((m) => [m[1], m[2]]));
}

/** WCAG 2 contrast ratio of two #rrggbb colours. */
function contrast(a: string, b: string): number {
  const luminance = (hex: string) => {
    const [r, g, bl] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

describe("contrast from the theme", () => {
  const css = readFileSync(`${REPO_ROOT}web/src/styles.css`, "utf8");
  const dark = themeColours(css, ":root");
  const light = { ...dark, ...themeColours(css, ':root[data-theme="light"]') };

  it("gives every node status word ≥ 4.5:1 on the node's header in both themes, from theme variables", () => {
    for (const rule of css.match(/[^}\n]*\.ng-node-status \{[^}]*\}/g)!) expect(rule).not.toMatch(/color:\s*#/); // no hard-coded colour
    expect(css).toMatch(/\.ng-status-cached \.ng-node-status \{ color: var\(--status-cached\); \}/);
    for (const theme of [dark, light]) {
      for (const status of ["--status-text", "--status-cached", "--status-error", "--ok"]) {
        expect(contrast(theme[status], theme["--panel-2"]), status).toBeGreaterThanOrEqual(4.5);
      }
    }
    expect(contrast("#9aa7b8", light["--panel-2"])).toBeLessThan(4.5); // the colour the light theme had
  });

  it("gives React Flow's attribution ≥ 4.5:1 in both themes", () => {
    expect(css).toMatch(/\.react-flow__attribution \{ background: var\(--panel\);/);
    expect(css).toMatch(/\.react-flow__attribution a \{ color: var\(--muted\);/);
    for (const theme of [dark, light]) expect(contrast(theme["--muted"], theme["--panel"])).toBeGreaterThanOrEqual(4.5);
  });

  it("gives form fields the focus ring of buttons and nodes", () => {
    expect(css).toMatch(/input:focus-visible, select:focus-visible, textarea:focus-visible \{ outline: 2px solid var\(--focus\);/);
    expect(css).not.toMatch(/outline: 1px solid var\(--accent\)/);
  });
});

describe("landmarks, headings and the tab's title", () => {
  it("names the palette and its search box; the history filter is beside its heading, not in it", () => {
    app = connectedApp().app;
    const palette = render(app, <Palette />);
    expect(palette).toMatch(/<aside[^>]*aria-label="Node palette"/);
    expect(palette).toMatch(/<input[^>]*aria-label="Search nodes"/);
    const history = render(app, <HistoryPanel />);
    expect(history).toContain("<h2>History</h2>");
    expect(history).toMatch(/<select[^>]*aria-label="Show runs with the status"/);
  });

  it("shows the shown run's progress in the tab's title while it goes", () => {
    expect(runProgress({})).toBeNull();
    expect(runProgress({ a: { status: "done" }, b: { status: "cached" } })).toBeNull(); // ended: the plain title
    expect(runProgress({ a: { status: "done" }, b: { status: "running", value: 5, total: 10 }, c: { status: "queued" }, d: { status: "skipped" } })).toBe(0.5);
    expect(pageTitle("Text to image", 0.456)).toBe("[45%] nodegraph — Text to image");
    expect(pageTitle("Text to image", null)).toBe("nodegraph — Text to image");
    expect(pageTitle(undefined, null)).toBe("nodegraph");
  });
});

describe("subgraph port names", () => {
  it("keep the letters of a title in any script, as the graph format allows any port name", () => {
    expect(portNameFromTitle("正向提示")).toBe("正向提示");
    expect(portNameFromTitle("Prompt négatif")).toBe("prompt_négatif");
    expect(portNameFromTitle("★")).toBe("");
    const doc = fromGraphFile({
      format_version: 2,
      nodes: {
        pos: { type: "Int", title: "正向提示", inputs: { value: 1 } },
        neg: { type: "Int", title: "反向提示", inputs: { value: 2 } },
        add: { type: "IntMath", inputs: { a: { node: "pos", output: "value" }, b: { node: "neg", output: "value" }, op: "add" } },
      },
    });
    const result = collapseToSubgraph(doc, ["pos", "neg"], {})!;
    const [name] = Object.keys(result.doc.subgraphs ?? {});
    expect(Object.keys((result.doc.subgraphs![name] as SubgraphDefinition).outputs!)).toEqual(["正向提示", "反向提示"]); // not value, value_2
  });
});
