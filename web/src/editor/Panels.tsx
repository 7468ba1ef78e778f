/**
 * The toolbar (run, save, load, undo/redo, the user on a server with users,
 * plugins, connection), the queue
 * panel (running run with interrupt, queued runs with cancel, recent runs with
 * requeue), the Plugins panel (problems with their fixes, loaded plugins), the
 * gallery of output files (every kind, editor/OutputFiles.tsx), the banner,
 * the warnings banner (every node warning of the shown run, run/warnings.ts), the plugin
 * notice and the toasts.
 *
 * The history panel lists the server's runs (time, duration, seed, status, thumbnail),
 * filters them by status and opens a past run's graph; the templates menu lists
 * `graphs/` and the plugins' graphs with their titles and descriptions, under a filter box
 * (↑/↓, Enter opens).
 *
 * Test ids: toolbar, run-button, templates-button, templates-menu, templates-filter, templates-none, template-<id>, help-button, theme-button
 * (data-theme), history-panel, history-filter, history-row-<run> (data-status), history-open-<run>,
 * history-thumb-<run>, history-seed-<run>, save-button, load-input, undo-button,
 * redo-button, user-name, plugins-button, plugins-badge (data-level), connection-status,
 * queue-panel, queue-running, queue-item-<run>, cancel-<run>, interrupt-<run>,
 * requeue-<run>, plugins-panel, plugin-warning (data-level, data-plugin),
 * plugin-loaded-<name>, plugin-notice, plugin-notice-dismiss, plugin-notice-show,
 * gallery, gallery-item (data-kind), error-banner, toast, warnings-banner (data-count),
 * warnings-toggle, warnings-dismiss, warning-item (data-node, data-earlier).
 */
import { useEffect, useId, useMemo, useRef, useState, type ReactNode } from "react";
import type { RunSummary } from "../protocol/messages";
import { fileView, type OutputItem } from "../run/media";
import { historyRow, HISTORY_STATUSES } from "../run/history";
import { textOf } from "../protocol/records";
import { openModel3D, openViewer, setTheme } from "../state/ui";
import { listKey } from "./listKeys";
import { problemsOf, warningsSignature, type PluginWarning } from "../run/plugins";
import type { Template } from "../run/sessionState";
import { filterTemplates, groupTemplates } from "../run/templates";
import { warningList, type NodeWarning } from "../run/warnings";
import { watchedProgressText } from "../run/watchedRuns";
import { idMap } from "../graph/idMaps";
import { useApp } from "../state/context";
import { useStore } from "../state/store";
import { PartBoundary } from "./ErrorBoundary";
import { useReturnFocus } from "./focusReturn";
import { OutputFileView } from "./OutputFiles";

export function Toolbar() {
  const app = useApp();
  const connection = useStore(app.session, (s) => s.connection);
  const canUndo = useStore(app.editor.store, (s) => s.history.past.length > 0);
  const canRedo = useStore(app.editor.store, (s) => s.history.future.length > 0);
  const title = useStore(app.editor.store, (s) => s.doc.metadata?.title);
  const pending = useStore(app.session, (s) => s.queue.pending.length + (s.queue.running ? 1 : 0));
  const user = useStore(app.session, (s) => s.user);
  const help = useStore(app.ui, (s) => s.help);
  const fileInput = useRef<HTMLInputElement>(null);
  return (
    <header className="ng-toolbar" data-testid="toolbar">
      <span className="ng-brand">nodegraph</span>
      <span className="ng-graph-title" title={typeof title === "string" ? title : undefined}>
        {typeof title === "string" ? title : "untitled graph"}
      </span>
      <button type="button" data-testid="undo-button" disabled={!canUndo} onClick={() => app.editor.undo()} title="Undo (Ctrl+Z)" aria-label="Undo">
        ↶
      </button>
      <button type="button" data-testid="redo-button" disabled={!canRedo} onClick={() => app.editor.redo()} title="Redo (Ctrl+Shift+Z)" aria-label="Redo">
        ↷
      </button>
      <button type="button" onClick={() => fileInput.current?.click()} title="Load a graph (.json, or a PNG, JPEG or WebP saved by SaveImage)">
        Load
      </button>
      <input
        ref={fileInput}
        hidden
        type="file"
        accept=".json,application/json,image/png,image/jpeg,image/webp"
        data-testid="load-input"
        onChange={(e) => {
          const file = e.target.files?.[0];
          e.target.value = "";
          if (file) void app.loadFile(file);
        }}
      />
      <button type="button" data-testid="save-button" onClick={() => app.save()} title="Save the graph JSON (Ctrl+S)">
        Save
      </button>
      <TemplatesButton />
      <span className="ng-spacer" />
      <ThemeButton />
      <button type="button" data-testid="help-button" onClick={() => app.ui.set((s) => ({ ...s, help: !s.help }))} title="Keyboard shortcuts (?)" aria-label="Keyboard shortcuts" aria-expanded={help}>
        ?
      </button>
      {user && (
        <span className="ng-user" data-testid="user-name" title={`signed in as ${user.name} (${user.role}); this server has users`}>
          {user.name}
          {user.role === "admin" ? " · admin" : ""}
        </span>
      )}
      <PluginsButton />
      <span className={`ng-connection ng-connection-${connection}`} data-testid="connection-status" data-status={connection}>
        {connection}
      </span>
      <span className="ng-queue-count" title="runs running or queued">{pending ? `${pending} in queue` : ""}</span>
      <button
        type="button"
        className="ng-run"
        data-testid="run-button"
        disabled={connection !== "connected"}
        onClick={() => void app.run()}
        title="Queue the graph (Ctrl+Enter)"
      >
        ▶ Run
      </button>
    </header>
  );
}

function ThemeButton() {
  const app = useApp();
  const theme = useStore(app.ui, (s) => s.theme);
  return (
    <button
      type="button"
      data-testid="theme-button"
      data-theme={theme}
      onClick={() => setTheme(app.ui, theme === "dark" ? "light" : "dark")}
      title={`Switch to the ${theme === "dark" ? "light" : "dark"} theme`}
    >
      {theme === "dark" ? "☀ Light" : "☾ Dark"}
    </button>
  );
}

/** The Templates button and its menu: the server's workflow templates (graphs/ and each plugin's graphs/). */
function TemplatesButton() {
  const app = useApp();
  const open = useStore(app.ui, (s) => s.templates);
  useReturnFocus(open);
  return (
    <span className="ng-templates-anchor">
      <button
        type="button"
        data-testid="templates-button"
        className={open ? "ng-pressed" : ""}
        aria-haspopup="listbox"
        aria-expanded={open}
        onClick={() => {
          if (!open) app.client.send({ type: "list_templates" });
          app.ui.set((s) => ({ ...s, templates: !s.templates }));
        }}
        title="Open a workflow template (graphs/ and the installed plugins' graphs/)"
      >
        Templates ▾
      </button>
      {open && <TemplatesMenu />}
    </span>
  );
}

/**
 * The open templates menu: a filter box on top (focused; every word must occur in the title,
 * description, source or path), then the matching templates by group. ↑/↓ pick one, Enter opens
 * it (the first match when none was picked), Escape closes the menu.
 */
function TemplatesMenu() {
  const app = useApp();
  const templates = useStore(app.session, (s) => s.templates);
  const [query, setQuery] = useState("");
  const [active, setActive] = useState(0);
  const list = useRef<HTMLDivElement>(null);
  const listId = useId();
  const groups = useMemo(() => groupTemplates(filterTemplates(templates ?? [], query)), [templates, query]);
  const shown = groups.flatMap((g) => g.templates);
  useEffect(() => {
    list.current?.querySelector(".ng-active")?.scrollIntoView({ block: "nearest" });
  }, [active]);
  const open = (template: Template) => {
    app.ui.set((s) => ({ ...s, templates: false }));
    void app.openTemplate(template.id);
  };
  return (
    <div className="ng-templates-menu" data-testid="templates-menu">
      <input
        autoFocus
        type="search"
        className="ng-templates-filter"
        data-testid="templates-filter"
        role="combobox"
        aria-label="Filter templates"
        aria-expanded="true"
        aria-controls={listId}
        aria-activedescendant={shown[active] ? `${listId}-${active}` : undefined}
        placeholder="Filter templates (title, description, source)…"
        value={query}
        onChange={(e) => {
          setQuery(e.target.value);
          setActive(0);
        }}
        onKeyDown={(e) => {
          if (listKey(e.key, shown.length, active, setActive, (i) => open(shown[i]))) e.preventDefault();
        }}
      />
      <div className="ng-templates-list" ref={list} id={listId} role="listbox" aria-label="Templates">
        {templates === null && <div className="ng-muted">asking the server…</div>}
        {templates !== null && templates.length === 0 && <div className="ng-muted">This server lists no templates.</div>}
        {templates !== null && templates.length > 0 && shown.length === 0 && (
          <div className="ng-muted" data-testid="templates-none">No template matches “{query.trim()}”.</div>
        )}
        {groups.map((group) => (
          <div key={group.label} className="ng-template-group" role="group" aria-label={group.label}>
            <div className="ng-template-group-label ng-muted" aria-hidden="true">{group.label}</div>
            {group.templates.map((t) => (
              <button
                type="button"
                key={t.id}
                id={`${listId}-${shown.indexOf(t)}`}
                role="option"
                aria-selected={shown[active] === t}
                tabIndex={-1}
                className={`ng-template${shown[active] === t ? " ng-active" : ""}`}
                data-testid={`template-${t.id}`}
                onMouseEnter={() => setActive(shown.indexOf(t))}
                onClick={() => open(t)}
                title={textOf(t.title) || t.id}
              >
                <span className="ng-template-head">
                  <span className="ng-template-title">{textOf(t.title) || t.id}</span>
                  {t.source && <span className="ng-muted ng-template-source">{textOf(t.source)}</span>}
                </span>
                {t.description && <span className="ng-muted ng-template-description">{textOf(t.description)}</span>}
              </button>
            ))}
          </div>
        ))}
      </div>
    </div>
  );
}

/** The Plugins button: a badge counts plugin problems (red when one is an error). */
function PluginsButton() {
  const app = useApp();
  const warnings = useStore(app.session, (s) => s.pluginWarnings);
  const open = useStore(app.session, (s) => s.pluginsOpen);
  const problems = problemsOf(warnings);
  const level = problems.some((w) => w.level === "error") ? "error" : problems.length ? "warning" : "none";
  return (
    <button
      type="button"
      className={`ng-plugins-button${open ? " ng-pressed" : ""}`}
      data-testid="plugins-button"
      onClick={() => app.showPlugins(!open)}
      title={problems.length ? `${problems.length} plugin problem${problems.length === 1 ? "" : "s"}: show the Plugins panel` : "Plugins"}
    >
      Plugins
      {problems.length > 0 && (
        <span className={`ng-badge ng-badge-${level}`} data-testid="plugins-badge" data-level={level}>
          {problems.length}
        </span>
      )}
    </button>
  );
}

function WarningItem({ warning }: { warning: PluginWarning }) {
  return (
    <li className={`ng-plugin-warning ng-level-${warning.level}`} data-testid="plugin-warning" data-level={warning.level} data-plugin={warning.plugin}>
      <div className="ng-plugin-warning-head">
        <span className="ng-level">{warning.level}</span>
        <span className="ng-plugin-name">{warning.plugin}</span>
        <span className="ng-muted">{warning.kind}</span>
      </div>
      <div className="ng-plugin-message">{warning.message}</div>
      {warning.fix && (
        <div className="ng-plugin-fix">
          <b>Fix:</b> {warning.fix}
        </div>
      )}
    </li>
  );
}

/** Plugin problems (errors first, each with its fix), then notes and the loaded plugins (from `list_plugins`). */
export function PluginsPanel() {
  const app = useApp();
  const open = useStore(app.session, (s) => s.pluginsOpen);
  const warnings = useStore(app.session, (s) => s.pluginWarnings);
  const report = useStore(app.session, (s) => s.plugins);
  useReturnFocus(open);
  if (!open) return null;
  const problems = problemsOf(warnings);
  const notes = warnings.filter((w) => w.level !== "error" && w.level !== "warning");
  return (
    <section className="ng-panel ng-plugins" data-testid="plugins-panel">
      <h2>
        Plugins
        <button type="button" className="ng-icon" title="close" aria-label="Close the Plugins panel" onClick={() => app.showPlugins(false)}>
          ×
        </button>
      </h2>
      {problems.length === 0 && <div className="ng-muted">No plugin problems.</div>}
      {problems.length > 0 && <ul>{problems.map((w, i) => <WarningItem key={i} warning={w} />)}</ul>}
      {notes.length > 0 && (
        <>
          <h3>Notes</h3>
          <ul>{notes.map((w, i) => <WarningItem key={i} warning={w} />)}</ul>
        </>
      )}
      <h3>Loaded</h3>
      {report === null ? (
        <div className="ng-muted">asking the server…</div>
      ) : (
        <ul>
          {report.loaded.map((p) => (
            <li key={p.name} className="ng-plugin-loaded" data-testid={`plugin-loaded-${p.name}`} title={(p.nodes ?? []).join(", ")}>
              <span className="ng-plugin-name">{p.name}</span>
              <span className="ng-muted">
                {p.version ? ` ${p.version}` : ""} · {(p.nodes ?? []).length} node{(p.nodes ?? []).length === 1 ? "" : "s"}
                {p.source && p.source !== "builtin" ? ` · ${p.source}` : ""}
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/**
 * A small notice over the canvas when plugins have problems: the first one, a button to
 * the Plugins panel and a × that hides it until the set of problems changes.
 */
export function PluginNotice() {
  const app = useApp();
  const warnings = useStore(app.session, (s) => s.pluginWarnings);
  const dismissed = useStore(app.session, (s) => s.pluginNotice);
  const open = useStore(app.session, (s) => s.pluginsOpen);
  const problems = problemsOf(warnings);
  const signature = warningsSignature(warnings);
  if (!problems.length || open || dismissed === signature) return null;
  const first = problems[0];
  const more = problems.length - 1;
  return (
    <div className={`ng-plugin-notice ng-level-${first.level}`} data-testid="plugin-notice" data-level={first.level}>
      <span>
        <b>{first.plugin}</b>: {first.message}
        {more > 0 ? ` (and ${more} more plugin problem${more === 1 ? "" : "s"})` : ""}
      </span>
      <button type="button" data-testid="plugin-notice-show" onClick={() => app.showPlugins(true)}>
        Details
      </button>
      <button
        type="button"
        className="ng-icon"
        data-testid="plugin-notice-dismiss"
        title="hide until the plugin problems change"
        aria-label="Hide the plugin notice"
        onClick={() => app.dispatch({ type: "dismiss_plugin_notice", signature })}
      >
        ×
      </button>
    </div>
  );
}

/** One queue row: title, status, its button; `progress` (a watched run's, run/watchedRuns.ts) below them. */
function RunLine({ run, progress, children }: { run: RunSummary; progress?: string; children?: ReactNode }) {
  return (
    <li className={`ng-run-line ng-run-${run.status}`} data-testid={`queue-item-${run.run_id}`}>
      <span className="ng-run-id" title={textOf(run.title) || "untitled graph"}>{textOf(run.title) || "untitled graph"}</span>
      <span className="ng-run-status">{textOf(run.status)}</span>
      {children}
      {progress && <span className="ng-run-progress" data-testid={`queue-progress-${run.run_id}`}>{progress}</span>}
    </li>
  );
}

export function QueuePanel() {
  const app = useApp();
  const queue = useStore(app.session, (s) => s.queue);
  const interrupting = useStore(app.session, (s) => s.interrupting);
  const stopping = queue.running !== null && interrupting.includes(queue.running.run_id);
  const watched = useStore(app.session, (s) => (queue.running ? s.watched[queue.running.run_id] : undefined));
  return (
    <section className="ng-panel" data-testid="queue-panel">
      <h2>Queue</h2>
      <ul>
        {queue.running && (
          <RunLine run={queue.running} progress={watched && watchedProgressText(watched)}>
            <button
              type="button"
              data-testid={`interrupt-${queue.running.run_id}`}
              disabled={stopping}
              aria-label={`Interrupt run ${textOf(queue.running.title) || "untitled graph"}`}
              onClick={() => void app.interrupt(queue.running!.run_id)}
            >
              {stopping ? "interrupting…" : "Interrupt"}
            </button>
          </RunLine>
        )}
        {queue.pending.map((run) => (
          <RunLine key={run.run_id} run={run}>
            <button type="button" data-testid={`cancel-${run.run_id}`} aria-label={`Cancel run ${textOf(run.title) || "untitled graph"}`} onClick={() => void app.cancel(run.run_id)}>
              Cancel
            </button>
          </RunLine>
        ))}
        {!queue.running && queue.pending.length === 0 && <li className="ng-muted">Nothing queued.</li>}
      </ul>
    </section>
  );
}

/** One history row: thumbnail, title, time, duration, seed, status; open the graph, requeue a failed run. */
function HistoryRow({ run, files }: { run: RunSummary; files: OutputItem[] | undefined }) {
  const app = useApp();
  // The server's thumbnail: a small JPEG (`/files/<id>?size=128`, docs/protocol.md) instead of the full image.
  const row = historyRow(run, files, undefined, (id) => { const url = app.fileUrl(id); return `${url}${url.includes("?") ? "&" : "?"}size=128`; });
  const images = (files ?? []).filter((f) => fileView(f).element === "img");
  if (!images.length && row.thumbnail) images.push(row.thumbnail);

  const named = `${row.time ? `${row.time} ` : ""}${row.title}`; // "12:03 Text to image": what the row's buttons act on
  return (
    <li className={`ng-history-row ng-run-${run.status}`} data-testid={`history-row-${run.run_id}`} data-status={run.status} title={row.tooltip}>
      {row.thumbnail ? (
        <button
          type="button"
          className="ng-history-thumb-button"
          aria-label={`View the images of run ${named}`}
          onClick={() => openViewer(app.ui, images, Math.max(0, images.indexOf(row.thumbnail!)))}
        >
          <img className="ng-history-thumb" data-testid={`history-thumb-${run.run_id}`} src={row.thumbnail.url} alt="" />
        </button>
      ) : (
        <span className="ng-history-thumb ng-history-nothumb" aria-hidden="true">{row.kindLabel}</span>
      )}
      <span className="ng-history-text">
        <span className="ng-history-title">{row.title}</span>
        <span className="ng-muted ng-history-facts">
          {row.time}
          {row.duration ? ` · ${row.duration}` : ""}
          {row.seed !== null && <span data-testid={`history-seed-${run.run_id}`}> · seed {row.seed}</span>}
        </span>
      </span>
      <span className="ng-history-side">
        <span className="ng-run-status">{run.status}</span>
        <span>
          <button type="button" data-testid={`history-open-${run.run_id}`} onClick={() => void app.openRunGraph(run.run_id)} title="open this run's graph" aria-label={`Open run ${named}`}>
            Open
          </button>
          {(run.status === "failed" || run.status === "interrupted" || run.status === "cancelled") && (
            <button type="button" data-testid={`requeue-${run.run_id}`} aria-label={`Requeue run ${named}`} onClick={() => void app.requeue(run.run_id)}>
              Requeue
            </button>
          )}
        </span>
      </span>
    </li>
  );
}

export function HistoryPanel() {
  const app = useApp();
  const history = useStore(app.session, (s) => s.history);
  const runFiles = useStore(app.session, (s) => s.runFiles);
  const filter = useStore(app.ui, (s) => s.historyFilter);
  const finished = history.filter((r) => r.status !== "queued" && r.status !== "running");
  const shown = filter === "all" ? finished : finished.filter((r) => r.status === filter);
  return (
    <section className="ng-panel ng-history" data-testid="history-panel">
      <h2>
        History
        <select
          data-testid="history-filter"
          value={filter}
          onChange={(e) => app.ui.set((s) => ({ ...s, historyFilter: e.target.value }))}
          title="show runs with this status"
        >
          {HISTORY_STATUSES.map((status) => (
            <option key={status} value={status}>
              {status}
            </option>
          ))}
        </select>
      </h2>
      {shown.length === 0 && <div className="ng-muted">{finished.length ? `No ${filter} runs.` : "Finished runs appear here."}</div>}
      <ul>
        {shown.map((run) => (
          <PartBoundary key={run.run_id} area="history row">
            <HistoryRow run={run} files={runFiles[run.run_id]} />
          </PartBoundary>
        ))}
      </ul>
    </section>
  );
}

export function Gallery() {
  const app = useApp();
  const gallery = useStore(app.session, (s) => s.gallery);
  return (
    <section className="ng-panel ng-gallery" data-testid="gallery">
      <h2>Gallery</h2>
      {gallery.length === 0 && <div className="ng-muted">Output files appear here.</div>}
      <div className="ng-gallery-grid">
        {gallery.map((item) => (
          <div key={item.fileId} className={`ng-gallery-item ng-gallery-${item.kind}`} data-testid="gallery-item" data-kind={item.kind}>
            <OutputFileView
              item={item}
              compact
              onOpen={() => {
                if (fileView(item).element === "model3d") return openModel3D(app.ui, item);
                const images = gallery.filter((g) => fileView(g).element === "img");
                openViewer(app.ui, images, images.indexOf(item));
              }}
            />
          </div>
        ))}
      </div>
    </section>
  );
}

export function Banner() {
  const app = useApp();
  const banner = useStore(app.session, (s) => s.banner);
  const connection = useStore(app.session, (s) => s.connection);
  const clientId = useStore(app.session, (s) => s.clientId);
  if (connection !== "connected" && clientId !== null) {
    return (
      <div className="ng-banner ng-banner-error" data-testid="error-banner" role="alert">
        The connection to the server dropped; reconnecting… (if the server restarted with a new token, open
        /?token=NEW_TOKEN once)
      </div>
    );
  }
  if (!banner) return null;
  return (
    <div
      className={`ng-banner ng-banner-${banner.kind}`}
      data-testid={banner.kind === "error" ? "error-banner" : "info-banner"}
      role={banner.kind === "error" ? "alert" : "status"}
    >
      <span>{banner.text}</span>
      <button type="button" className="ng-icon" aria-label="Close the message" title="close" onClick={() => app.dispatch({ type: "banner", banner: null })}>
        ×
      </button>
    </div>
  );
}

/** How many warnings the warnings banner lists before "Show all". */
const WARNINGS_SHOWN = 3;

/**
 * Every warning of the shown run (several never replace each other): the node's title and
 * the message, those of results served from the cache marked as from an earlier run. A click
 * on one selects its node; × hides them until the next run's warnings.
 */
export function RunWarnings() {
  const app = useApp();
  const warnings = useStore(app.session, (s) => s.warnings);
  const doc = useStore(app.editor.store, (s) => s.doc);
  const [expanded, setExpanded] = useState(false);
  const [hidden, setHidden] = useState<Record<string, NodeWarning[]> | null>(null);
  const list = warningList(warnings);
  if (!list.length || hidden === warnings) return null;
  const root = app.editor.rootDoc();
  const schemas = app.schemasFor(root);
  const titleOf = (nodeId: string): string => {
    const slash = nodeId.indexOf("/");
    const outer = slash > 0 && !(nodeId in root.nodes) ? nodeId.slice(0, slash) : nodeId;
    const node = root.nodes[outer];
    const title = node ? node.title ?? schemas[node.type]?.display_name ?? outer : outer;
    return outer === nodeId ? title : `${title} › ${nodeId.slice(slash + 1)}`;
  };
  const earlier = list.filter((w) => w.warning.earlier).length;
  const shown = expanded ? list : list.slice(0, WARNINGS_SHOWN);
  return (
    <div className="ng-banner ng-banner-warning" data-testid="warnings-banner" data-count={list.length}>
      <div className="ng-warnings">
        <div className="ng-warnings-head">
          <span>
            <strong>⚠ {list.length === 1 ? "1 warning" : `${list.length} warnings`} in this run</strong>
            {earlier > 0 && (
              <span className="ng-muted">
                {" "}— {earlier === list.length ? (list.length === 1 ? "it is" : "all are") : `${earlier} are`} from an earlier run: the result came from the cache
              </span>
            )}
          </span>
          {list.length > WARNINGS_SHOWN && (
            <button type="button" data-testid="warnings-toggle" onClick={() => setExpanded(!expanded)}>
              {expanded ? "Show fewer" : `Show all ${list.length}`}
            </button>
          )}
        </div>
        <div className="ng-warnings-list">
          {shown.map(({ nodeId, warning }, i) => (
            <div
              key={i}
              className={`ng-warning-item${warning.earlier ? " ng-earlier" : ""}`}
              data-testid="warning-item"
              data-node={nodeId}
              data-earlier={warning.earlier ? "true" : "false"}
              title="click to select the node"
              onClick={() => {
                const id = nodeId in doc.nodes ? nodeId : nodeId.split("/")[0];
                if (id in doc.nodes) app.editor.select(idMap([[id, true as const]]));
              }}
            >
              <b>{titleOf(nodeId)}</b>: {warning.message}
              {warning.earlier && earlier < list.length && <span className="ng-muted"> (from an earlier run)</span>}
            </div>
          ))}
        </div>
      </div>
      <button type="button" className="ng-icon" data-testid="warnings-dismiss" title="hide these warnings" aria-label="Hide these warnings" onClick={() => setHidden(warnings)}>
        ×
      </button>
    </div>
  );
}

export function Toasts() {
  const app = useApp();
  const toasts = useStore(app.toasts, (t) => t);
  return (
    // a polite live region: screen readers read each new toast; an error one is an alert (read at once)
    <div className="ng-toasts" aria-live="polite" aria-relevant="additions text">
      {toasts.map((toast) => (
        <div
          key={toast.id}
          className={`ng-toast ng-toast-${toast.kind}`}
          data-testid="toast"
          data-kind={toast.kind}
          role={toast.kind === "error" ? "alert" : undefined}
          onClick={() => app.dismissToast(toast.id)}
        >
          {toast.text}
        </div>
      ))}
    </div>
  );
}

/**
 * The run's milestones for screen readers (run/announce.ts): a polite live region, out of sight;
 * each announcement is a new element, so the same words for the next run are read again.
 */
export function Announcer() {
  const app = useApp();
  const said = useStore(app.announcement, (a) => a);
  return (
    <div className="ng-visually-hidden" role="status" aria-live="polite" data-testid="announcer">
      {said && <span key={said.id}>{said.text}</span>}
    </div>
  );
}
