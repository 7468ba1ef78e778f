/**
 * The editor's layout: toolbar on top; palette, canvas and the side panel
 * (Plugins when open, queue, history, gallery) below; banner, plugin notice,
 * subgraph bar and toasts over the canvas; search popup, context menu, help
 * panel and image viewer over everything.
 */
import { ReactFlowProvider } from "@xyflow/react";
import { useEffect } from "react";
import { AppContext } from "./state/context";
import type { EditorApp } from "./state/app";
import { useStore } from "./state/store";
import { GraphCanvas } from "./editor/GraphCanvas";
import { ImageViewer } from "./editor/ImageViewer";
import { ContextMenu, HelpPanel, SearchPopup, SubgraphBar } from "./editor/Overlays";
import { Palette } from "./editor/Palette";
import { Banner, Gallery, HistoryPanel, PluginNotice, PluginsPanel, QueuePanel, Toasts, Toolbar } from "./editor/Panels";

function Themed({ app }: { app: EditorApp }) {
  const theme = useStore(app.ui, (s) => s.theme);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  return null;
}

export function App({ app }: { app: EditorApp }) {
  return (
    <AppContext.Provider value={app}>
      <ReactFlowProvider>
        <Themed app={app} />
        <div className="ng-app">
          <Toolbar />
          <div className="ng-main">
            <Palette />
            <main className="ng-center">
              <Banner />
              <PluginNotice />
              <SubgraphBar />
              <GraphCanvas />
              <Toasts />
            </main>
            <aside className="ng-side">
              <PluginsPanel />
              <QueuePanel />
              <HistoryPanel />
              <Gallery />
            </aside>
          </div>
          <SearchPopup />
          <ContextMenu />
          <HelpPanel />
          <ImageViewer />
        </div>
      </ReactFlowProvider>
    </AppContext.Provider>
  );
}
