/**
 * The toolbar (run, save, load, undo/redo, connection), the queue panel
 * (running run with interrupt, queued runs with cancel, recent runs with
 * requeue), the gallery of output images, the banner and the toasts.
 *
 * Test ids: toolbar, run-button, save-button, load-input, undo-button,
 * redo-button, connection-status, queue-panel, queue-running, queue-item-<run>,
 * cancel-<run>, interrupt-<run>, requeue-<run>, gallery, gallery-item,
 * error-banner, toast.
 */
import { useRef, type ReactNode } from "react";
import type { RunSummary } from "../protocol/messages";
import { useApp } from "../state/context";
import { useStore } from "../state/store";

export function Toolbar() {
  const app = useApp();
  const connection = useStore(app.session, (s) => s.connection);
  const canUndo = useStore(app.editor.store, (s) => s.history.past.length > 0);
  const canRedo = useStore(app.editor.store, (s) => s.history.future.length > 0);
  const title = useStore(app.editor.store, (s) => s.doc.metadata?.title);
  const pending = useStore(app.session, (s) => s.queue.pending.length + (s.queue.running ? 1 : 0));
  const fileInput = useRef<HTMLInputElement>(null);
  return (
    <header className="ng-toolbar" data-testid="toolbar">
      <span className="ng-brand">nodegraph</span>
      <span className="ng-graph-title">{typeof title === "string" ? title : "untitled graph"}</span>
      <button type="button" data-testid="undo-button" disabled={!canUndo} onClick={() => app.editor.undo()} title="Undo (Ctrl+Z)">
        ↶
      </button>
      <button type="button" data-testid="redo-button" disabled={!canRedo} onClick={() => app.editor.redo()} title="Redo (Ctrl+Shift+Z)">
        ↷
      </button>
      <button type="button" onClick={() => fileInput.current?.click()} title="Load a graph (.json, or a PNG saved by SaveImage)">
        Load
      </button>
      <input
        ref={fileInput}
        hidden
        type="file"
        accept=".json,application/json,image/png"
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
      <span className="ng-spacer" />
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

function RunLine({ run, children }: { run: RunSummary; children?: ReactNode }) {
  return (
    <li className={`ng-run-line ng-run-${run.status}`} data-testid={`queue-item-${run.run_id}`}>
      <span className="ng-run-id">{run.title || run.run_id}</span>
      <span className="ng-run-status">{run.status}</span>
      {children}
    </li>
  );
}

export function QueuePanel() {
  const app = useApp();
  const queue = useStore(app.session, (s) => s.queue);
  const history = useStore(app.session, (s) => s.history);
  const recent = history.filter((r) => r.status !== "queued" && r.status !== "running").slice(0, 10);
  return (
    <section className="ng-panel" data-testid="queue-panel">
      <h2>Queue</h2>
      <ul>
        {queue.running && (
          <RunLine run={queue.running}>
            <button type="button" data-testid={`interrupt-${queue.running.run_id}`} onClick={() => void app.interrupt(queue.running!.run_id)}>
              Interrupt
            </button>
          </RunLine>
        )}
        {queue.pending.map((run) => (
          <RunLine key={run.run_id} run={run}>
            <button type="button" data-testid={`cancel-${run.run_id}`} onClick={() => void app.cancel(run.run_id)}>
              Cancel
            </button>
          </RunLine>
        ))}
        {!queue.running && queue.pending.length === 0 && <li className="ng-muted">Nothing queued.</li>}
      </ul>
      {recent.length > 0 && (
        <>
          <h3>Recent</h3>
          <ul>
            {recent.map((run) => (
              <RunLine key={run.run_id} run={run}>
                {run.status !== "succeeded" && (
                  <button type="button" data-testid={`requeue-${run.run_id}`} onClick={() => void app.requeue(run.run_id)}>
                    Requeue
                  </button>
                )}
              </RunLine>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

export function Gallery() {
  const app = useApp();
  const gallery = useStore(app.session, (s) => s.gallery);
  return (
    <section className="ng-panel ng-gallery" data-testid="gallery">
      <h2>Gallery</h2>
      {gallery.length === 0 && <div className="ng-muted">Output images appear here.</div>}
      <div className="ng-gallery-grid">
        {gallery.map((image) => (
          <a key={image.fileId} href={image.url} target="_blank" rel="noreferrer" data-testid="gallery-item" title={`${image.nodeId} · ${image.fileId}`}>
            <img src={image.url} alt={image.fileId} loading="lazy" />
          </a>
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
      <div className="ng-banner ng-banner-error" data-testid="error-banner">
        The connection to the server dropped; reconnecting…
      </div>
    );
  }
  if (!banner) return null;
  return (
    <div className={`ng-banner ng-banner-${banner.kind}`} data-testid={banner.kind === "error" ? "error-banner" : "info-banner"}>
      <span>{banner.text}</span>
      <button type="button" className="ng-icon" onClick={() => app.dispatch({ type: "banner", banner: null })}>
        ×
      </button>
    </div>
  );
}

export function Toasts() {
  const app = useApp();
  const toasts = useStore(app.toasts, (t) => t);
  return (
    <div className="ng-toasts">
      {toasts.map((toast) => (
        <div key={toast.id} className={`ng-toast ng-toast-${toast.kind}`} data-testid="toast" data-kind={toast.kind} onClick={() => app.dismissToast(toast.id)}>
          {toast.text}
        </div>
      ))}
    </div>
  );
}
