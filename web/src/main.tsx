/**
 * Entry point: create the EditorApp (websocket to the server that served this
 * page), render the editor, and expose a small read-only handle for debugging
 * and tests as `window.nodegraph` (`graph()` returns the graph file being edited,
 * `app` the EditorApp).
 */
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import "@xyflow/react/dist/style.css";
import "./styles.css";
import { App } from "./App";
import { toGraphFile } from "./graph/document";
import { EditorApp } from "./state/app";

const app = new EditorApp();
app.start();

(window as unknown as { nodegraph: unknown }).nodegraph = {
  app,
  graph: () => toGraphFile(app.editor.doc),
  load: (graph: unknown) => app.loadGraph(graph),
  session: () => app.session.get(),
};

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App app={app} />
  </StrictMode>,
);
