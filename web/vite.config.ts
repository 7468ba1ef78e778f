/**
 * Vite build of the editor into web/dist (relative asset paths, so the Python
 * server can serve it from any prefix) and the vitest configuration.
 *
 * `npm run dev` proxies /ws and /files to a running `nodegraph serve`
 * (NODEGRAPH_SERVER, default http://127.0.0.1:8188).
 */
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

const server = process.env.NODEGRAPH_SERVER ?? "http://127.0.0.1:8188";

export default defineConfig({
  base: "./",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1024 },
  server: {
    proxy: {
      "/ws": { target: server.replace(/^http/, "ws"), ws: true },
      "/files": { target: server },
    },
  },
  test: { include: ["test/**/*.test.ts", "test/**/*.test.tsx"], environment: "node" },
});
