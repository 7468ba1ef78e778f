/**
 * The editor's layout: toolbar on top; palette, canvas and the side panel
 * (Plugins and Storage when open, queue, history, gallery) below; banner, plugin notice,
 * subgraph bar and toasts over the canvas; search popup, context menu, help
 * panel and image viewer over everything.
 *
 * Each part sits in its own error boundary (editor/ErrorBoundary.tsx): a part that
 * cannot be drawn shows an error box with Retry / Dismiss / Reload, the rest keeps working.
 */
import { ReactFlowProvider } from "@xyflow/react";
import { useEffect } from "react";
import { AppContext } from "./state/context";
import type { EditorApp } from "./state/app";
import { useStore } from "./state/store";
import { panelsFolded } from "./state/ui";
import { pageTitle, runProgress } from "./run/pageTitle";
import { useWindowWidth } from "./editor/windowWidth";
import { PartBoundary } from "./editor/ErrorBoundary";
import { GraphCanvas } from "./editor/GraphCanvas";
import { ImageViewer } from "./editor/ImageViewer";
import { MaskEditor } from "./editor/MaskEditor";
import { Model3DViewer } from "./editor/Model3DViewer";
import { ContextMenu, HelpPanel, SearchPopup, SubgraphBar } from "./editor/Overlays";
import { Palette } from "./editor/Palette";
import { Announcer, Banner, Gallery, HistoryPanel, PluginNotice, PluginsPanel, QueuePanel, RunWarnings, StoragePanel, Toasts, Toolbar } from "./editor/Panels";

function Themed({ app }: { app: EditorApp }) {
  const theme = useStore(app.ui, (s) => s.theme);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  return null;
}

/** The tab's title: the graph's, with the shown run's progress while it goes (run/pageTitle.ts). */
function PageTitle({ app }: { app: EditorApp }) {
  // the whole graph's title, also while a subgraph is open
  const graphTitle = useStore(app.editor.store, (s) => (s.path.length ? s.path[0].outer : s.doc).metadata?.title);
  const progress = useStore(app.session, (s) => runProgress(s.nodeStates));
  useEffect(() => {
    document.title = pageTitle(graphTitle, progress);
  }, [graphTitle, progress]);
  return null;
}

export function App({ app }: { app: EditorApp }) {
  const panelsHidden = panelsFolded(useStore(app.ui, (s) => s.panelsHidden), useWindowWidth());
  return (
    <AppContext.Provider value={app}>
      <ReactFlowProvider>
        <Themed app={app} />
        <PageTitle app={app} />
        <PartBoundary area="editor">
          <div className={`ng-app${panelsHidden ? " ng-panels-hidden" : ""}`}>
            {/* the first thing Tab reaches: past the toolbar and palette, onto the canvas (then Tab reaches its nodes) */}
            <a
              className="ng-skip-link"
              href="#ng-canvas"
              onClick={(e) => {
                e.preventDefault();
                document.getElementById("ng-canvas")?.focus();
              }}
            >
              Skip to canvas
            </a>
            <PartBoundary area="toolbar">
              <Toolbar />
            </PartBoundary>
            <div className="ng-main">
              <PartBoundary area="palette">
                <Palette />
              </PartBoundary>
              <main className="ng-center">
                <PartBoundary area="banner">
                  <div className="ng-banners">
                    <Banner />
                    <RunWarnings />
                  </div>
                  <PluginNotice />
                  <SubgraphBar />
                </PartBoundary>
                <PartBoundary area="canvas" actions={[{ label: "Undo the last change", run: () => app.editor.undo() }]}>
                  <GraphCanvas />
                </PartBoundary>
                <PartBoundary area="messages">
                  <Toasts />
                  <Announcer />
                </PartBoundary>
              </main>
              <aside className="ng-side" aria-label="Side panels: queue, history, gallery">
                <PartBoundary area="plugins panel">
                  <PluginsPanel />
                </PartBoundary>
                <PartBoundary area="storage panel">
                  <StoragePanel />
                </PartBoundary>
                <PartBoundary area="queue">
                  <QueuePanel />
                </PartBoundary>
                <PartBoundary area="history">
                  <HistoryPanel />
                </PartBoundary>
                <PartBoundary area="gallery">
                  <Gallery />
                </PartBoundary>
              </aside>
            </div>
            <PartBoundary area="search, menu and help">
              <SearchPopup />
              <ContextMenu />
              <HelpPanel />
            </PartBoundary>
            <PartBoundary area="image viewer">
              <ImageViewer />
              <Model3DViewer />
            </PartBoundary>
            <PartBoundary area="mask editor">
              <MaskEditor />
            </PartBoundary>
          </div>
        </PartBoundary>
      </ReactFlowProvider>
    </AppContext.Provider>
  );
}
