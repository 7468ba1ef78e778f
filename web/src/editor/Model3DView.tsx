/**
 * An interactive 3D view of a mesh or point-cloud output file (three.js):
 * PLY, GLB / glTF, OBJ and STL, loaded with three's own loaders from the
 * file's URL. Drag to orbit, wheel to zoom, right-drag to pan. Point clouds
 * (and PLY files without faces) are drawn as points, coloured by their vertex
 * colours when they have them.
 *
 * three.js is imported on first use (a separate chunk), so the editor loads fast.
 * Without WebGL the view says so and the download link remains.
 *
 * Test ids: model3d (data-state = loading | ready | error, data-vertices, data-format).
 */
import { useEffect, useRef, useState } from "react";
import type { Model3DFormat } from "../run/media";

interface Props {
  url: string;
  format: Model3DFormat;
  points: boolean;
  /** Pixels, or a CSS length ("100%": the 3D viewer's stage). */
  height?: number | string;
}

export function Model3DView({ url, format, points, height = 220 }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<{ status: "loading" | "ready" | "error"; vertices?: number; message?: string }>({ status: "loading" });

  useEffect(() => {
    let disposed = false;
    let cleanup = () => undefined as void;
    (async () => {
      const element = host.current;
      if (!element) return;
      const { mountModel } = await import("./model3d");
      if (disposed) return;
      try {
        const mounted = await mountModel(element, url, format, points);
        if (disposed) {
          mounted.dispose();
          return;
        }
        cleanup = mounted.dispose;
        setState({ status: "ready", vertices: mounted.vertices });
      } catch (error) {
        if (!disposed) setState({ status: "error", message: (error as Error).message });
      }
    })();
    return () => {
      disposed = true;
      cleanup();
    };
  }, [url, format, points]);

  return (
    <div
      className="ng-model3d nodrag nowheel"
      data-testid="model3d"
      data-state={state.status}
      data-format={format}
      data-vertices={state.vertices ?? ""}
      style={{ height }}
      ref={host}
      title="drag to orbit, wheel to zoom, right-drag to pan"
    >
      {state.status === "loading" && <span className="ng-model3d-note ng-muted">loading 3D view…</span>}
      {state.status === "error" && <span className="ng-model3d-note ng-node-error">3D view unavailable: {state.message}</span>}
    </div>
  );
}
