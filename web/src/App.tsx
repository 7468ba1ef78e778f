/**
 * The editor's layout: toolbar on top; palette, canvas and the queue/gallery
 * side panel below (with the Plugins panel when open); banner, plugin notice
 * and toasts over the canvas.
 */
import { ReactFlowProvider } from "@xyflow/react";
import { AppContext } from "./state/context";
import type { EditorApp } from "./state/app";
import { GraphCanvas } from "./editor/GraphCanvas";
import { Palette } from "./editor/Palette";
import { Banner, Gallery, PluginNotice, PluginsPanel, QueuePanel, Toasts, Toolbar } from "./editor/Panels";

export function App({ app }: { app: EditorApp }) {
  return (
    <AppContext.Provider value={app}>
      <ReactFlowProvider>
        <div className="ng-app">
          <Toolbar />
          <div className="ng-main">
            <Palette />
            <main className="ng-center">
              <Banner />
              <PluginNotice />
              <GraphCanvas />
              <Toasts />
            </main>
            <aside className="ng-side">
              <PluginsPanel />
              <QueuePanel />
              <Gallery />
            </aside>
          </div>
        </div>
      </ReactFlowProvider>
    </AppContext.Provider>
  );
}
