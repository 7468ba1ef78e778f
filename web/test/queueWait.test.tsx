/**
 * A plain user behind another user's run saw an empty "running" line and "Queued it" with no reason their run did not
 * start: the server sends only counts (`running_total`, `ahead_total` in `queue` and `submitted`, docs/protocol.md), and
 * the Queue panel and the Run toast now say "Waiting for another user's run (N ahead of yours)".
 */
import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, describe, expect, it } from "vitest";
import { QueuePanel } from "../src/editor/Panels";
import type { ServerMessage } from "../src/protocol/messages";
import { initialSessionState, queueWaitText, reduceSession, type SessionState } from "../src/run/sessionState";
import type { EditorApp } from "../src/state/app";
import { AppContext } from "../src/state/context";
import { connectedApp, stopApp } from "./helpers";

const context = { fileUrl: (id: string) => `files/${id}` };
const mine = { run_id: "r2", status: "queued", title: "mine" };
const queued = (message: Record<string, unknown>): SessionState =>
  reduceSession(initialSessionState, { type: "server", message: { type: "queue", running: null, pending: [mine], ...message } as ServerMessage }, context);

let app: EditorApp | null = null;
afterEach(() => {
  if (app) stopApp(app);
  app = null;
});

describe("waiting for another user's run", () => {
  it("the queue state says it when runs run that this user cannot see and theirs is queued", () => {
    expect(queueWaitText(queued({ running_total: 1, ahead_total: 2 }).queue)).toBe("Waiting for another user's run (3 ahead of yours)");
    expect(queueWaitText(queued({ running_total: 1, ahead_total: 0 }).queue)).toBe("Waiting for another user's run (1 ahead of yours)");
    expect(queueWaitText(queued({ running_total: 0, ahead_total: 0 }).queue)).toBeNull(); // about to start
    expect(queueWaitText(queued({}).queue)).toBeNull(); // an older server: no counts
    expect(queueWaitText(queued({ running_total: "1", ahead_total: -4 }).queue)).toBeNull();
    expect(queueWaitText(queued({ running_total: 1, pending: [] }).queue)).toBeNull(); // nothing of theirs waits
    const own = { run_id: "r1", status: "running", title: "own" };
    expect(queueWaitText(queued({ running: own, running_total: 1 }).queue)).toBeNull(); // the panel shows their own
  });

  it("the Queue panel shows the line", () => {
    app = connectedApp().app;
    app.dispatch({ type: "server", message: { type: "queue", running: null, pending: [mine], running_total: 1, ahead_total: 1 } as ServerMessage });
    const html = renderToStaticMarkup(<AppContext.Provider value={app}><QueuePanel /></AppContext.Provider>);
    expect(html).toContain('data-testid="queue-waiting">Waiting for another user&#x27;s run (2 ahead of yours)</li>');
    expect(html).toContain('data-testid="queue-item-r2"');
  });

  it("the Run toast says it from the submitted reply, and only the position when nothing else runs", async () => {
    const connected = connectedApp();
    app = connected.app;
    const { socket } = connected;
    app.loadGraph({ format_version: 2, metadata: { title: "Wait test" }, nodes: { a: { type: "Int", inputs: { value: 1 } } } });
    let done = app.run();
    socket.reply({ type: "submitted", run_id: "r1", position: 1, running_total: 1, ahead_total: 1, request_id: socket.messages().at(-1)!.request_id });
    await done;
    expect(app.toasts.get().map((t) => t.text)).toContain("Queued Wait test. Waiting for another user's run (2 ahead of yours)");
    done = app.run();
    socket.reply({ type: "submitted", run_id: "r3", position: 0, running_total: 0, ahead_total: 0, request_id: socket.messages().at(-1)!.request_id });
    await done;
    expect(app.toasts.get().at(-1)?.text).toBe("Queued Wait test");
  });
});
