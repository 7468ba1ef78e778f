import type { ReactNode } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, describe, expect, it } from "vitest";
import { HistoryPanel, QueuePanel } from "../src/editor/Panels";
import type { EditorApp } from "../src/state/app";
import { AppContext } from "../src/state/context";
import { connectedApp, stopApp, welcome } from "./helpers";

// An admin's history and queue list every user's runs, and may cancel, interrupt, requeue or delete them: the rows
// did not say whose they were (an operator's pass). A plain user sees only their own, and no owner.
describe("the owner of a run", () => {
  let app: EditorApp | null = null;
  afterEach(() => { if (app) stopApp(app); app = null; });

  const runs = [{ run_id: "r1", status: "succeeded", title: "Text to image", user: "bob", finished_at: 1700000000 }];
  const html = (node: ReactNode) => renderToStaticMarkup(<AppContext.Provider value={app!}>{node}</AppContext.Provider>);

  for (const [role, shown] of [["admin", true], ["user", false]] as const) {
    it(`is ${shown ? "shown to an admin" : "not shown to a plain user"}`, () => {
      const connected = connectedApp();
      app = connected.app;
      connected.socket.reply(welcome({ user: { name: "root", role } }));
      connected.socket.reply({ type: "history", runs, total: 1, offset: 0 });
      connected.socket.reply({ type: "queue", running: { run_id: "q1", status: "running", title: "x", user: "alice" }, pending: [] });
      const history = html(<HistoryPanel />);
      const queue = html(<QueuePanel />);
      expect(history.includes('data-testid="run-owner-r1"')).toBe(shown);
      expect(queue.includes('data-testid="run-owner-q1"')).toBe(shown);
      if (shown) {
        expect(history).toContain(" · bob");
        expect(queue).toContain(">alice<");
      }
    });
  }
});
