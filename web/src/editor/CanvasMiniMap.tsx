/**
 * The canvas's minimap: React Flow's `<MiniMap>`, smaller (160×110), with a pan of our own and out of
 * the way of the nodes being worked on.
 *
 * - Press or drag on it: the view is centred on the point of the graph under the pointer (the mapping
 *   from minimap pixels to graph units is taken when the button goes down and kept for the whole drag,
 *   and the centre stays inside the nodes' bounds). React Flow's own `pannable` moved the view by the
 *   pointer's movement times a scale that grows as the view leaves the nodes (the minimap's bounds
 *   include the view): a short drag threw the view thousands of pixels away and the canvas went empty.
 * - The wheel on it zooms (React Flow's `zoomable`).
 * - It is hidden (and takes no clicks) while a selected node lies under it — a selected node shows its
 *   resize handles, which the minimap covered and whose clicks it took — and while a node is dragged or
 *   resized (`.ng-node-gesture` on the canvas, GraphCanvas.tsx).
 */
import { MiniMap, useReactFlow, useStore, type ReactFlowState } from "@xyflow/react";
import { useCallback, useEffect, useRef, type PointerEvent as ReactPointerEvent } from "react";

export const MINIMAP_WIDTH = 160;
export const MINIMAP_HEIGHT = 110;
/** React Flow's panel margin: the minimap's distance from the canvas's bottom-right corner. */
const PANEL_MARGIN = 15;
/** How close to the minimap a selected node may come (its resize handles stick out a few pixels). */
const HANDLE_SLACK = 8;

/** Whether a selected node's box on screen reaches under the minimap. */
function selectedUnderMinimap(s: ReactFlowState): boolean {
  const [tx, ty, zoom] = s.transform;
  const right = s.width - PANEL_MARGIN + HANDLE_SLACK;
  const bottom = s.height - PANEL_MARGIN + HANDLE_SLACK;
  const left = right - MINIMAP_WIDTH - 2 * HANDLE_SLACK;
  const top = bottom - MINIMAP_HEIGHT - 2 * HANDLE_SLACK;
  for (const node of s.nodeLookup.values()) {
    if (!node.selected || node.hidden) continue;
    const x = node.internals.positionAbsolute.x * zoom + tx;
    const y = node.internals.positionAbsolute.y * zoom + ty;
    const width = (node.measured.width ?? 0) * zoom;
    const height = (node.measured.height ?? 0) * zoom;
    if (x < right && x + width > left && y < bottom && y + height > top) return true;
  }
  return false;
}

export function CanvasMiniMap({ nodeColor }: { nodeColor: (node: { selected?: boolean; type?: string }) => string }) {
  const flow = useReactFlow();
  const away = useStore(selectedUnderMinimap);
  const drag = useRef<{ toGraph: DOMMatrix; bounds: { x: number; y: number; width: number; height: number } } | null>(null);

  const centreAt = useCallback((clientX: number, clientY: number) => {
    const current = drag.current;
    if (!current) return;
    const p = new DOMPoint(clientX, clientY).matrixTransform(current.toGraph);
    const { x, y, width, height } = current.bounds;
    flow.setCenter(Math.min(x + width, Math.max(x, p.x)), Math.min(y + height, Math.max(y, p.y)), { zoom: flow.getZoom() });
  }, [flow]);

  useEffect(() => {
    const move = (event: PointerEvent) => {
      if (drag.current) centreAt(event.clientX, event.clientY);
    };
    const up = () => {
      drag.current = null;
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
    window.addEventListener("pointercancel", up);
    return () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      window.removeEventListener("pointercancel", up);
    };
  }, [centreAt]);

  const onPointerDown = (event: ReactPointerEvent<HTMLDivElement>) => {
    if (event.button !== 0) return;
    const svg = (event.currentTarget as HTMLElement).querySelector("svg");
    const toScreen = svg?.getScreenCTM();
    const nodes = flow.getNodes().filter((node) => !node.hidden);
    if (!toScreen || !nodes.length) return;
    event.preventDefault();
    drag.current = { toGraph: toScreen.inverse(), bounds: flow.getNodesBounds(nodes) };
    centreAt(event.clientX, event.clientY);
  };

  return (
    <div className={`ng-minimap${away ? " ng-minimap-away" : ""}`} data-testid="minimap" data-away={away} onPointerDown={onPointerDown}>
      <MiniMap
        zoomable
        style={{ width: MINIMAP_WIDTH, height: MINIMAP_HEIGHT }}
        nodeColor={nodeColor}
        maskColor="var(--minimap-mask)"
        ariaLabel="Minimap: press or drag to centre the view there, wheel to zoom"
      />
    </div>
  );
}

/** While a node is dragged or resized (on), the minimap steps aside: `.ng-node-gesture` on the canvas. */
export function nodeGesture(on: boolean): void {
  document.getElementById("ng-canvas")?.classList.toggle("ng-node-gesture", on);
}
