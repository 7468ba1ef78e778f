import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Palette } from "../src/editor/Palette";
import { PluginNotice, PluginsPanel, Toolbar } from "../src/editor/Panels";
import { problemsOf, unknownTypeHint, warningsSignature, type PluginWarning } from "../src/run/plugins";
import { EditorApp } from "../src/state/app";
import { AppContext } from "../src/state/context";
import { FakeSocket, welcome } from "./helpers";

const FAILED: PluginWarning = {
  kind: "failed",
  level: "error",
  plugin: "safety",
  message: "plugin 'safety' failed to load and was skipped: PluginError: unknown port type 'GUIDANCE'",
  fix: "fix its declaration as docs/plugins.md describes; until then skip it with --deny-plugin safety",
};
const CLASH: PluginWarning = {
  kind: "clash",
  level: "warning",
  plugin: "beta",
  plugins: ["alpha", "beta"],
  type: "Blur",
  message: "node type 'Blur' is declared by plugins 'alpha' and 'beta'",
  fix: "use alpha.Blur or beta.Blur, or --prefer-plugin Blur=alpha",
};
const DENIED: PluginWarning = { kind: "skipped", level: "info", plugin: "gamma", message: "plugin 'gamma' was not loaded: denied", fix: "nothing to do" };

function render(app: EditorApp, element: React.ReactElement): string {
  return renderToStaticMarkup(<AppContext.Provider value={app}>{element}</AppContext.Provider>);
}

describe("plugin warnings", () => {
  let socket: FakeSocket;
  let app: EditorApp;

  beforeEach(() => {
    vi.useFakeTimers();
    socket = new FakeSocket();
    app = new EditorApp(() => socket, { href: "http://127.0.0.1:8188/" });
    app.start();
    socket.open();
  });
  afterEach(() => {
    app.client.close();
    vi.useRealTimers();
  });

  it("orders problems errors first, leaves out info, and keys them by content", () => {
    expect(problemsOf([DENIED, CLASH, FAILED])).toEqual([FAILED, CLASH]);
    expect(warningsSignature([CLASH, FAILED])).toBe(warningsSignature([FAILED, DENIED, CLASH]));
    expect(warningsSignature([FAILED])).not.toBe(warningsSignature([FAILED, CLASH]));
  });

  it("takes the welcome's plugin_warnings and shows a badge, a notice and (when open) the panel with message and fix", () => {
    socket.reply(welcome({ plugin_warnings: [CLASH, FAILED] }));
    expect(app.session.get().pluginWarnings.map((w) => w.plugin)).toEqual(["beta", "safety"]);

    const toolbar = render(app, <Toolbar />);
    expect(toolbar).toMatch(/data-testid="plugins-badge" data-level="error">2</);

    const notice = render(app, <PluginNotice />);
    expect(notice).toContain("safety");
    expect(notice).toContain("failed to load");
    expect(notice).toContain("and 1 more plugin problem");

    expect(render(app, <PluginsPanel />)).toBe(""); // closed until asked for
    app.showPlugins(true);
    expect(socket.messages().at(-1)).toEqual({ type: "list_plugins" });
    const panel = render(app, <PluginsPanel />);
    const items = panel.match(/data-testid="plugin-warning"[^>]*/g) ?? [];
    expect(items.map((i) => /data-plugin="(\w+)"/.exec(i)?.[1])).toEqual(["safety", "beta"]);
    expect(panel).toContain("unknown port type &#x27;GUIDANCE&#x27;");
    expect(panel).toContain("--deny-plugin safety");
    expect(panel).toContain("--prefer-plugin Blur=alpha");
    expect(panel).toContain("asking the server");
  });

  it("fills the panel from the plugins reply: loaded plugins with node counts, info-level notes apart", () => {
    socket.reply(welcome());
    app.showPlugins(true);
    socket.reply({
      type: "plugins",
      loaded: [{ name: "primitives", source: "builtin", version: "0.1.0", nodes: ["primitives.Int", "primitives.Float"] }],
      failed: [{ name: "safety", message: FAILED.message }],
      skipped: [{ name: "gamma", reason: "denied" }],
      conflicts: [],
      clashes: [],
      warnings: [FAILED, DENIED],
    });
    const panel = render(app, <PluginsPanel />);
    expect(panel).toContain('data-testid="plugin-loaded-primitives"');
    expect(panel).toContain("2 nodes");
    expect(panel).toContain("Notes");
    expect(panel).toMatch(/data-level="info" data-plugin="gamma"/);
    expect(render(app, <Toolbar />)).toMatch(/data-testid="plugins-badge" data-level="error">1</); // info is not counted
  });

  it("asks for the plugin report again after a reconnect while the panel is open", () => {
    socket.reply(welcome());
    app.showPlugins(true);
    const asked = () => socket.messages().filter((m) => m.type === "list_plugins").length;
    expect(asked()).toBe(1);
    socket.reply(welcome());
    expect(asked()).toBe(2);
    app.showPlugins(false);
    socket.reply(welcome());
    expect(asked()).toBe(2);
  });

  it("hides a dismissed notice until the set of problems changes", () => {
    socket.reply(welcome({ plugin_warnings: [CLASH] }));
    expect(render(app, <PluginNotice />)).toContain('data-level="warning"');
    app.dispatch({ type: "dismiss_plugin_notice", signature: warningsSignature([CLASH]) });
    expect(render(app, <PluginNotice />)).toBe("");
    socket.reply(welcome({ plugin_warnings: [CLASH] })); // a reconnect with the same problems: still hidden
    expect(render(app, <PluginNotice />)).toBe("");
    socket.reply(welcome({ plugin_warnings: [CLASH, FAILED] }));
    expect(render(app, <PluginNotice />)).toContain("safety");
  });

  it("shows no badge and no notice without problems (and tolerates a server that sends no plugin_warnings)", () => {
    socket.reply({ type: "welcome", protocol_version: 1, server_version: "0", client_id: "me", schema_hash: "h" });
    expect(app.session.get().pluginWarnings).toEqual([]);
    expect(render(app, <Toolbar />)).not.toContain("plugins-badge");
    expect(render(app, <PluginNotice />)).toBe("");
  });

  it("names the plugin of clashing nodes in the palette (canonical name qualified), and no other", () => {
    socket.reply(welcome({ plugin_warnings: [CLASH] }));
    const node = (type: string, plugin: string, aliases: string[]) => ({
      type, qualified_type: `${plugin}.Blur`, aliases, plugin, category: "filters", display_name: "Blur", description: "", output_node: false, inputs: {}, outputs: [],
    });
    socket.reply({
      type: "nodes", schema_hash: "h2", types: {},
      nodes: [node("alpha.Blur", "alpha", []), node("beta.Blur", "beta", []), { ...node("Sharpen", "alpha", ["alpha.Sharpen"]), display_name: "Sharpen" }],
    });
    const palette = render(app, <Palette />);
    expect(palette).toContain('data-testid="palette-item-alpha.Blur"');
    expect(palette).toMatch(/Blur<span class="ng-muted ng-palette-plugin"> · alpha<\/span>/);
    expect(palette).toMatch(/Blur<span class="ng-muted ng-palette-plugin"> · beta<\/span>/);
    expect(palette).toMatch(/>Sharpen<\/button>/);
  });

  it("shows who is signed in on a server with users", () => {
    socket.reply(welcome({ user: { name: "ann", role: "admin" } }));
    expect(render(app, <Toolbar />)).toMatch(/data-testid="user-name"[^>]*>ann · admin</);
    socket.reply(welcome({ user: null }));
    expect(render(app, <Toolbar />)).not.toContain("user-name");
  });

  it("explains an unknown node type by its plugin's failure or by a clash", () => {
    expect(unknownTypeHint("safety.SafetyChecker", [CLASH, FAILED])).toContain("--deny-plugin safety");
    expect(unknownTypeHint("Blur", [FAILED, CLASH])).toContain("declared by plugins 'alpha' and 'beta'");
    expect(unknownTypeHint("Sharpen", [FAILED, CLASH])).toBeNull();
    expect(unknownTypeHint("other.Thing", [FAILED])).toBeNull();
  });
});
