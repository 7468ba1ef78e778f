/**
 * The toolbar (run, save, load, undo/redo, the user on a server with users,
 * plugins, connection), the queue
 * panel (running run with interrupt, queued runs with cancel, recent runs with
 * requeue), the Plugins panel (problems with their fixes, loaded plugins), the
 * gallery of output files (every kind, editor/OutputFiles.tsx), the banner,
 * the warnings banner (every node warning of the shown run, run/warnings.ts), the plugin
 * notice and the toasts (a toast may carry one action button: "Open storage" on a full storage's error).
 *
 * The Storage panel (toolbar "Storage") lists the user's stored files newest first (uploads and
 * outputs, 100 at a time with "More"), with what they use of their `max_bytes` as a line and a bar
 * (without a limit: the total of the files listed), a thumbnail for images, and Delete (asked
 * again before `delete_file`); run/storage.ts has its state and words. On a server with users
 * this is where the files of runs the history no longer lists are found and freed.
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
 * queue-panel, queue-running, queue-waiting, queue-item-<run>, cancel-<run>, interrupt-<run>,
 * requeue-<run>, plugins-panel, plugin-warning (data-level, data-plugin),
 * plugin-loaded-<name>, plugin-notice, plugin-notice-dismiss, plugin-notice-show,
 * gallery, gallery-item (data-kind), error-banner, toast, toast-action, warnings-banner (data-count),
 * warnings-toggle, warnings-dismiss, warning-item (data-node, data-earlier), storage-button,
 * storage-panel, storage-usage, storage-bar (aria-valuenow), storage-filter, storage-refresh,
 * storage-close, storage-row (data-file), storage-thumb, storage-delete, storage-confirm,
 * storage-cancel, storage-row-error, storage-more, storage-error, storage-empty.
 */
import { useEffect, useId, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { popoverPlace, type PopoverPlace } from "./popover";
import "./storage.css";
import type { RunSummary } from "../protocol/messages";
import { fileView, type OutputItem } from "../run/media";
import { historyRow, HISTORY_STATUSES } from "../run/history";
import {
  fileDate,
  fileFolderLabel,
  fileName,
  formatBytes,
  hasThumbnail,
  STORAGE_FOLDERS,
  thumbnailUrl,
  usageFraction,
  usageText,
  usedBytes,
  type StorageFolder,
  type StoredFile,
} from "../run/storage";
import { textOf } from "../protocol/records";
import { openModel3D, openViewer, setTheme } from "../state/ui";
import { listKey } from "./listKeys";
import { problemsOf, warningsSignature, type PluginWarning } from "../run/plugins";
import { queueWaitText, type Template } from "../run/sessionState";
import { filterTemplates, groupTemplates } from "../run/templates";
import { warningList, type NodeWarning } from "../run/warnings";
import { watchedProgressText } from "../run/watchedRuns";
import { idMap } from "../graph/idMaps";
import type { Toast } from "../state/app";
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
      <h1 className="ng-brand">nodegraph</h1>
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
        accept=".json,application/json,image/png,image/jpeg,image/webp,image/gif,video/mp4,video/webm,.mp4,.webm,.mkv,.mov,.gif"
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
      <StorageButton />
      <PluginsButton />
      <span className={`ng-connection ng-connection-${connection}`} data-testid="connection-status" data-status={connection}
        title={`the server connection: ${connection}`}>
        <span className="ng-connection-dot" aria-hidden="true">●</span>
        <span className="ng-connection-text">{connection}</span>
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
      aria-label={`Switch to the ${theme === "dark" ? "light" : "dark"} theme`}
    >
      {theme === "dark" ? "☀" : "☾"}<span className="ng-theme-word">{theme === "dark" ? " Light" : " Dark"}</span>
    </button>
  );
}

/** The Templates button and its menu: the server's workflow templates (graphs/ and each plugin's graphs/). */
function TemplatesButton() {
  const app = useApp();
  const open = useStore(app.ui, (s) => s.templates);
  const button = useRef<HTMLButtonElement>(null);
  useReturnFocus(open);
  return (
    <span className="ng-templates-anchor">
      <button
        ref={button}
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
      {open && <TemplatesMenu anchor={button} />}
    </span>
  );
}

/**
 * The open templates menu: a filter box on top (focused; every word must occur in the title,
 * description, source or path), then the matching templates by group. ↑/↓ pick one, Enter opens
 * it (the first match when none was picked), Escape closes the menu.
 */
function TemplatesMenu({ anchor }: { anchor: React.RefObject<HTMLButtonElement | null> }) {
  const app = useApp();
  const place = usePopoverPlace(anchor, TEMPLATES_MENU_WIDTH);
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
    <div className="ng-templates-menu" data-testid="templates-menu" style={place ? { left: place.left, top: place.top, width: place.width } : undefined}>
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

/** The templates menu's width where the window has room for it (styles.css caps it at the window's). */
const TEMPLATES_MENU_WIDTH = 380;

/**
 * Where a popover under `anchor` goes (editor/popover.ts): measured on its first render (its button is on the
 * page by then; its filter's autofocus needs it placed, not hidden) and again when the window changes size;
 * null outside a browser.
 */
function usePopoverPlace(anchor: React.RefObject<HTMLElement | null>, width: number): PopoverPlace | null {
  const measure = (): PopoverPlace | null => {
    const rect = anchor.current?.getBoundingClientRect();
    return rect ? popoverPlace(rect, width, { width: document.documentElement.clientWidth }) : null;
  };
  const [place, setPlace] = useState<PopoverPlace | null>(measure);
  useLayoutEffect(() => {
    const moved = () => setPlace(measure());
    window.addEventListener("resize", moved);
    return () => window.removeEventListener("resize", moved);
  }, [anchor, width]); // eslint-disable-line react-hooks/exhaustive-deps
  return place;
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

/** The Storage button: opens the Storage panel (the user's files and what they use of their limit). */
function StorageButton() {
  const app = useApp();
  const open = useStore(app.session, (s) => s.storage.open);
  return (
    <button
      type="button"
      className={`ng-storage-button${open ? " ng-pressed" : ""}`}
      data-testid="storage-button"
      aria-expanded={open}
      onClick={() => app.showStorage(!open)}
      title="Storage: your stored files (uploads and outputs) and the space they use"
      aria-label="Storage"
    >
      {/* a narrow window (the toolbar stays one line at 800 px) shows the icon instead of the word */}
      <svg className="ng-storage-icon" width="14" height="14" viewBox="0 0 16 16" fill="none" stroke="currentColor" strokeWidth="1.5" aria-hidden="true">
        <ellipse cx="8" cy="3.5" rx="5.5" ry="2" />
        <path d="M2.5 3.5v9c0 1.1 2.5 2 5.5 2s5.5-.9 5.5-2v-9M2.5 8c0 1.1 2.5 2 5.5 2s5.5-.9 5.5-2" />
      </svg>
      <span className="ng-storage-label">Storage</span>
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

/** One stored file: thumbnail (images), name (a link to the file), size, date and folder; Delete asks again. */
function StorageRow({ file, confirming, onConfirm }: { file: StoredFile; confirming: boolean; onConfirm: (fileId: string | null) => void }) {
  const app = useApp();
  const deleting = useStore(app.session, (s) => s.storage.deleting.includes(file.fileId));
  const error = useStore(app.session, (s) => s.storage.deleteErrors[file.fileId]);
  const keepButton = useRef<HTMLButtonElement>(null);
  const deleteButton = useRef<HTMLButtonElement>(null);
  const asked = useRef(false);
  useEffect(() => {
    if (confirming) {
      asked.current = true;
      keepButton.current?.focus(); // the safe answer: Enter twice does not delete
    } else if (asked.current) {
      asked.current = false;
      if (!deleting) deleteButton.current?.focus(); // kept: the focus goes back to Delete
    }
  }, [confirming, deleting]);
  const url = app.fileUrl(file.fileId);
  const name = fileName(file.fileId);
  const date = fileDate(file.modified);
  const folder = fileFolderLabel(file.fileId);
  return (
    <li className="ng-storage-row" data-testid="storage-row" data-file={file.fileId} aria-busy={deleting || undefined}>
      {hasThumbnail(file) ? (
        <img className="ng-storage-thumb" data-testid="storage-thumb" src={thumbnailUrl(url)} alt="" loading="lazy" decoding="async" width={40} height={40} />
      ) : (
        <span className="ng-storage-thumb ng-storage-nothumb" aria-hidden="true">{(file.mime.split("/")[1] || "file").slice(0, 4)}</span>
      )}
      <span className="ng-storage-text">
        <a className="ng-storage-name" href={url} target="_blank" rel="noreferrer" title={file.fileId}>
          {name}
        </a>
        <span className="ng-muted ng-storage-facts">
          {formatBytes(file.bytes)}
          {date ? ` · ${date}` : ""} · {folder}
        </span>
        {error && (
          <span className="ng-storage-row-error" data-testid="storage-row-error" role="alert">
            {error}
          </span>
        )}
      </span>
      <span className="ng-storage-side">
        {confirming ? (
          <span className="ng-storage-confirm" role="group" aria-label={`Delete ${name}?`}>
            <button
              type="button"
              className="ng-danger"
              data-testid="storage-confirm"
              aria-label={`Yes, delete ${name} for good`}
              onClick={(e) => {
                // the row goes: the focus waits on the list (not lost to the page) until it does
                e.currentTarget.closest<HTMLElement>(".ng-storage-list")?.focus({ preventScroll: true });
                onConfirm(null);
                void app.deleteFile(file.fileId);
              }}
            >
              Delete?
            </button>
            <button type="button" ref={keepButton} data-testid="storage-cancel" aria-label={`Keep ${name}`} onClick={() => onConfirm(null)}>
              Keep
            </button>
          </span>
        ) : (
          <button
            type="button"
            ref={deleteButton}
            data-testid="storage-delete"
            disabled={deleting}
            aria-label={`Delete ${name} (${formatBytes(file.bytes)})`}
            title="delete this file from the server (asks first)"
            onClick={() => onConfirm(file.fileId)}
          >
            {deleting ? "deleting…" : "Delete"}
          </button>
        )}
      </span>
    </li>
  );
}

/**
 * The user's stored files and what they use of their storage limit (run/storage.ts), newest first,
 * filtered by folder, 100 at a time; Escape closes it (here, and from anywhere: GraphCanvas).
 */
export function StoragePanel() {
  const app = useApp();
  const storage = useStore(app.session, (s) => s.storage);
  const [confirming, setConfirming] = useState<string | null>(null);
  const titleId = useId();
  const filterId = useId();
  useReturnFocus(storage.open);
  const panel = useRef<HTMLElement>(null);
  useEffect(() => {   // opened (its button, a full storage's toast): the keyboard is in it, not 244 Tabs away
    if (storage.open) panel.current?.focus({ preventScroll: true });
  }, [storage.open]);
  if (!storage.open) return null;
  const { usage, files, total } = storage;
  const fraction = usageFraction(usage);
  const used = usage ? usedBytes(usage) : null;
  const left = total !== null ? total - files.length : 0;
  const empty = storage.folder === "input" ? "No uploads." : storage.folder === "output" ? "No output files." : "No stored files.";
  return (
    <section
      className="ng-panel ng-storage"
      data-testid="storage-panel"
      ref={panel}
      tabIndex={-1}
      aria-labelledby={titleId}
      aria-busy={storage.loading || undefined}
      onKeyDown={(e) => {
        if (e.key !== "Escape") return;
        e.stopPropagation();
        if (confirming) setConfirming(null);
        else app.showStorage(false);
      }}
    >
      <h2>
        <span id={titleId}>Storage</span>
        <span className="ng-storage-head-buttons">
          <button
            type="button"
            className="ng-icon"
            data-testid="storage-refresh"
            title="list the files again"
            aria-label="Refresh the stored files"
            disabled={storage.loading}
            onClick={() => app.refreshStorage()}
          >
            ↻
          </button>
          <button type="button" className="ng-icon" data-testid="storage-close" title="close" aria-label="Close the Storage panel" onClick={() => app.showStorage(false)}>
            ×
          </button>
        </span>
      </h2>
      {total !== null && (
        <div className="ng-storage-usage" data-testid="storage-usage">
          <div>{usageText(usage, files, total)}</div>
          {usage && fraction !== null && (
            <div
              className={`ng-storage-bar${fraction >= 0.9 ? " ng-storage-bar-full" : ""}`}
              data-testid="storage-bar"
              role="meter"
              aria-label="Storage used"
              aria-valuemin={0}
              aria-valuemax={usage.maxBytes}
              aria-valuenow={used ?? usage.maxBytes}
              aria-valuetext={`${Math.round(fraction * 100)} % used`}
            >
              <div className="ng-storage-bar-fill" style={{ width: `${(fraction * 100).toFixed(1)}%` }} />
            </div>
          )}
        </div>
      )}
      <div className="ng-storage-filter">
        <label htmlFor={filterId} className="ng-muted">Show</label>
        <select
          id={filterId}
          data-testid="storage-filter"
          value={storage.folder}
          onChange={(e) => {
            setConfirming(null);
            app.setStorageFolder(e.target.value as StorageFolder);
          }}
          title="show all files, only your uploads, or only output files"
        >
          {STORAGE_FOLDERS.map((f) => (
            <option key={f.value} value={f.value}>
              {f.label}
            </option>
          ))}
        </select>
        {total !== null && <span className="ng-muted">{total} file{total === 1 ? "" : "s"}</span>}
      </div>
      {storage.error && (
        <div className="ng-storage-error" data-testid="storage-error" role="alert">
          {storage.error}
        </div>
      )}
      {total === null && storage.loading && <div className="ng-muted">asking the server…</div>}
      {total !== null && files.length === 0 && !storage.loading && <div className="ng-muted" data-testid="storage-empty">{empty}</div>}
      <ul className="ng-storage-list" aria-label="Stored files, newest first" tabIndex={-1}>
        {files.map((file) => (
          <PartBoundary key={file.fileId} area="stored file">
            <StorageRow file={file} confirming={confirming === file.fileId} onConfirm={setConfirming} />
          </PartBoundary>
        ))}
      </ul>
      {left > 0 && (
        <button type="button" className="ng-storage-more" data-testid="storage-more" disabled={storage.loading} onClick={() => app.moreStorage()}>
          {storage.loading ? "asking the server…" : `More (${left} not shown)`}
        </button>
      )}
      {!storage.complete && <div className="ng-muted">The folders hold more files than the server lists; delete some to see the rest.</div>}
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

/**
 * Whose run it is, for an admin: they see (and may cancel, interrupt, requeue or delete) every user's runs, and
 * the rows did not say whose. Nothing for a plain user (their own runs only) or without users.
 */
function RunOwner({ run, separator = "" }: { run: RunSummary; separator?: string }) {
  const app = useApp();
  const me = useStore(app.session, (s) => s.user);
  const owner = typeof run.user === "string" && run.user ? run.user : null;
  if (me?.role !== "admin" || owner === null) return null;
  return (
    <span className="ng-run-owner" data-testid={`run-owner-${run.run_id}`} title={`a run of user ${owner}`}>
      {separator}
      {owner}
    </span>
  );
}

/** One queue row: title, its owner (for an admin), status, its button; `progress` (a watched run's,
 *  run/watchedRuns.ts) below them. */
function RunLine({ run, progress, children }: { run: RunSummary; progress?: string; children?: ReactNode }) {
  return (
    <li className={`ng-run-line ng-run-${run.status}`} data-testid={`queue-item-${run.run_id}`}>
      <span className="ng-run-id" title={textOf(run.title) || "untitled graph"}>{textOf(run.title) || "untitled graph"}</span>
      <RunOwner run={run} />
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
  const waiting = queueWaitText(queue); // behind another user's run, which the server never names
  return (
    <section className="ng-panel" data-testid="queue-panel">
      <h2>Queue</h2>
      <ul>
        {waiting && <li className="ng-muted" data-testid="queue-waiting">{waiting}</li>}
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
          <RunOwner run={run} separator=" · " />
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
      <div className="ng-panel-head">
        <h2>History</h2>
        <select
          data-testid="history-filter"
          value={filter}
          onChange={(e) => app.ui.set((s) => ({ ...s, historyFilter: e.target.value }))}
          title="show runs with this status"
          aria-label="Show runs with the status"
        >
          {HISTORY_STATUSES.map((status) => (
            <option key={status} value={status}>
              {status}
            </option>
          ))}
        </select>
      </div>
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
  // Only the message is the alert (or status): the close button's "×" was read as the end of it.
  return (
    <div className={`ng-banner ng-banner-${banner.kind}`} data-testid={banner.kind === "error" ? "error-banner" : "info-banner"}>
      <span className="ng-banner-message" data-testid="banner-message" role={banner.kind === "error" ? "alert" : "status"}>
        {banner.text}
      </span>
      <button type="button" className="ng-icon" aria-label="Close the message" title="close" onClick={() => app.dispatch({ type: "banner", banner: null })}>
        <span aria-hidden="true">×</span>
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
  const errors = toasts.filter((t) => t.kind === "error");
  return (
    // Error toasts are alerts (read at once), outside the polite live region of the others: an alert inside
    // a polite region was announced by both.
    <div className="ng-toast-stack">
      {errors.map((toast) => <ToastView key={toast.id} toast={toast} />)}
      <div className="ng-toasts" aria-live="polite" aria-relevant="additions text">
        {toasts.filter((t) => t.kind !== "error").map((toast) => <ToastView key={toast.id} toast={toast} />)}
      </div>
    </div>
  );
}

function ToastView({ toast }: { toast: Toast }) {
  const app = useApp();
  return (
    <div
      className={`ng-toast ng-toast-${toast.kind}`}
      data-testid="toast"
      data-kind={toast.kind}
      role={toast.kind === "error" ? "alert" : undefined}
      onClick={() => app.dismissToast(toast.id)}
    >
      {toast.text}
      {toast.action && (
        <button
          type="button"
          className="ng-toast-action"
          data-testid="toast-action"
          onClick={(e) => {
            e.stopPropagation();
            app.dismissToast(toast.id);
            toast.action!.run();
          }}
        >
          {toast.action.label}
        </button>
      )}
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
