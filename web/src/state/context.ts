/** The React context that hands the EditorApp to every component. */
import { createContext, useContext } from "react";
import type { EditorApp } from "./app";

export const AppContext = createContext<EditorApp | null>(null);

export function useApp(): EditorApp {
  const app = useContext(AppContext);
  if (!app) throw new Error("useApp() outside <AppContext.Provider>");
  return app;
}
