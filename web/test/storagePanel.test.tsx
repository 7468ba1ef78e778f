import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StoragePanel, Toasts, Toolbar } from "../src/editor/Panels";
import type { EditorApp } from "../src/state/app";
import { AppContext } from "../src/state/context";
import { connectedApp, stopApp, type FakeSocket } from "./helpers";

function render(app: EditorApp, element: React.ReactElement): string {
  return renderToStaticMarkup(<AppContext.Provider value={app}>{element}</AppContext.Provider>);
}

describe("the Storage panel", () => {
  let app: EditorApp;
  let socket: FakeSocket;

  beforeEach(() => {
    ({ app, socket } = connectedApp());
  });
  afterEach(() => stopApp(app));

  it("is a toolbar button, and shows nothing until opened", () => {
    expect(render(app, <Toolbar />)).toContain('data-testid="storage-button"');
    expect(render(app, <StoragePanel />)).toBe("");
  });

  it("shows the usage with its bar, the files with thumbnails, sizes and Delete, and More", async () => {
    app.showStorage(true);
    expect(render(app, <StoragePanel />)).toContain("asking the server…");
    const request = socket.messages().filter((m) => m.type === "list_files").at(-1)!;
    socket.reply({
      type: "files", request_id: request.request_id, total: 150, complete: true, offset: 0,
      files: [
        { file_id: "output/run a/x.png", bytes: 2048, modified: 1_700_000_000, mime: "image/png" },
        { file_id: "input/notes.txt", bytes: 12, modified: 1_700_000_000, mime: "text/plain" },
      ],
      usage: { uploads: 12, outputs: 2048, runs: 2 ** 20, max_bytes: 4 * 2 ** 20 },
    });
    for (let i = 0; i < 5; i += 1) await Promise.resolve();
    const html = render(app, <StoragePanel />);
    expect(html).toContain("1.0 MiB of 4.0 MiB used (uploads &lt;0.01 MiB, outputs &lt;0.01 MiB, runs 1.0 MiB)");
    expect(html).toMatch(/role="meter"[^>]*aria-valuemax="4194304"/);
    expect(html).toContain('src="files/output/run%20a/x.png?size=128"');
    expect(html).toContain('loading="lazy"');
    expect(html).toContain('data-file="input/notes.txt"');
    expect(html).toContain("2.00 KiB");
    expect(html).toContain('aria-label="Delete run a/x.png (2.00 KiB)"');
    expect(html).toContain("More (148 not shown)");
  });

  it("puts a toast's action on it as a button", () => {
    app.toast("Could not submit — Quota exceeded: 10 MiB", "error", { label: "Open storage", run: () => app.showStorage(true) });
    expect(render(app, <Toasts />)).toMatch(/<button[^>]*data-testid="toast-action"[^>]*>Open storage<\/button>/);
  });
});
