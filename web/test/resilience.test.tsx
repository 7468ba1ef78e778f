import type { ReactNode } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorBox, PartBoundary } from "../src/editor/ErrorBoundary";
import { HistoryPanel, QueuePanel, Toolbar } from "../src/editor/Panels";
import { cleanRuns, cleanTemplates, textOf } from "../src/protocol/records";
import { historyRow } from "../src/run/history";
import { initialSessionState, reduceSession } from "../src/run/sessionState";
import { EditorApp } from "../src/state/app";
import { AppContext } from "../src/state/context";
import { FakeSocket, connectedApp, stopApp } from "./helpers";

const context = { fileUrl: (id: string) => `files/${id}` };
const poisoned = { run_id: "a".repeat(32), status: "succeeded", title: { x: 1 }, seed: 18446744073709551615n, finished_at: 1700000000 };

describe("titles that are not text", () => {
  it("are made text as the records arrive: runs, queue entries, templates", () => {
    const [run] = cleanRuns([poisoned, { status: "failed" }, null]);
    expect(run.title).toBe('{"x":1}');
    expect(run.seed).toBe("18446744073709551615"); // exact digits, not a rounded number
    expect(cleanRuns([{ run_id: "r", status: "queued", title: 5 }])[0].title).toBe("5");
    expect(cleanTemplates([{ id: "t", title: { a: 1 }, description: ["d"] }, { id: 3 }])).toEqual([{ id: "t", title: '{"a":1}', description: '["d"]' }]);
    expect(textOf(null)).toBe("");
    let state = reduceSession(initialSessionState, { type: "server", message: { type: "history", runs: [poisoned] as never, total: 1, offset: 0 } }, context);
    state = reduceSession(state, { type: "server", message: { type: "queue", running: poisoned as never, pending: [poisoned] as never } }, context);
    expect(state.history[0].title).toBe('{"x":1}');
    expect(state.queue.running?.title).toBe('{"x":1}');
    expect(historyRow({ run_id: "r", status: "failed", title: { y: 2 } as never }, undefined).title).toBe('{"y":2}');
    expect(historyRow(state.history[0], undefined).seed).toBe("18446744073709551615");
  });

  describe("in the panels", () => {
    let socket: FakeSocket;
    let app: EditorApp;
    beforeEach(() => {
      ({ app, socket } = connectedApp());
    });
    afterEach(() => stopApp(app));

    it("render as text: the history, the queue and the templates menu survive a run titled with an object", () => {
      socket.reply({ type: "history", runs: [{ ...poisoned, seed: 3 }], total: 1, offset: 0 });
      socket.reply({ type: "queue", running: { run_id: "b".repeat(32), status: "running", title: { x: 2 } }, pending: [] });
      socket.reply({ type: "templates", templates: [{ id: "t.json", title: { x: 3 }, description: 7 }] });
      app.ui.set((s) => ({ ...s, templates: true }));
      const html = (node: ReactNode) => renderToStaticMarkup(<AppContext.Provider value={app}>{node}</AppContext.Provider>);
      expect(html(<HistoryPanel />)).toContain("{&quot;x&quot;:1}");
      expect(html(<QueuePanel />)).toContain("{&quot;x&quot;:2}");
      expect(html(<Toolbar />)).toContain("{&quot;x&quot;:3}");
    });
  });
});

describe("the error boundary around each part", () => {
  it("turns an error in a part into a box with Retry, the part's actions, Dismiss and Reload", () => {
    const state = PartBoundary.getDerivedStateFromError(new Error("Objects are not valid as a React child"));
    const boundary = new PartBoundary({ area: "history", actions: [{ label: "Undo the last change", run: () => undefined }] });
    boundary.state = { error: state.error!, dismissed: false };
    const html = renderToStaticMarkup(<>{boundary.render()}</>);
    expect(html).toContain('data-testid="error-box" data-area="history"');
    expect(html).toContain("The history could not be shown</b>: Objects are not valid as a React child");
    for (const id of ["error-box-retry", "error-box-action-0", "error-box-dismiss", "error-box-reload"]) expect(html).toContain(`data-testid="${id}"`);
    boundary.state = { error: state.error!, dismissed: true };
    expect(boundary.render()).toBeNull();
    expect(PartBoundary.getDerivedStateFromError("a string")).toMatchObject({ error: new Error("a string") });
  });

  it("draws its children while nothing failed", () => {
    expect(renderToStaticMarkup(<PartBoundary area="x"><b>fine</b></PartBoundary>)).toBe("<b>fine</b>");
    expect(renderToStaticMarkup(<ErrorBox area="canvas" message="boom" onRetry={() => undefined} onDismiss={() => undefined} />)).toContain("boom");
  });
});
