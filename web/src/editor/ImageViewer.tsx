/**
 * The image viewer: a large view of an output image or live preview, over the editor.
 *
 * - Zoom: the wheel, the +/− buttons or "1:1"/"fit"; drag to pan when zoomed in.
 * - Frames: a batch (a node's images, or the gallery) steps with ←/→ or the buttons,
 *   "frame i / n" shows where you are, and the strip of thumbnails jumps to one.
 * - Compare: pick another image of the set; a slider reveals one over the other.
 * - Escape or a click on the backdrop closes it.
 *
 * Test ids: image-viewer, viewer-image, viewer-frame (text "i / n"), viewer-next, viewer-prev,
 * viewer-zoom-in, viewer-zoom-out, viewer-zoom (data-zoom), viewer-compare-<i>, viewer-compare-slider,
 * viewer-compare-image, viewer-close.
 */
import { useEffect, useRef, useState } from "react";
import { describeItem, fileName } from "../run/media";
import { useApp } from "../state/context";
import { useStore } from "../state/store";
import { stepViewer } from "../state/ui";

export function ImageViewer() {
  const app = useApp();
  const viewer = useStore(app.ui, (s) => s.viewer);
  const [zoom, setZoom] = useState(1);
  const [pan, setPan] = useState<[number, number]>([0, 0]);
  const [split, setSplit] = useState(50);
  const drag = useRef<{ x: number; y: number; pan: [number, number] } | null>(null);

  useEffect(() => {
    if (!viewer) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "ArrowRight") app.ui.set((s) => (s.viewer ? { ...s, viewer: stepViewer(s.viewer, 1) } : s));
      else if (e.key === "ArrowLeft") app.ui.set((s) => (s.viewer ? { ...s, viewer: stepViewer(s.viewer, -1) } : s));
      else if (e.key === "+" || e.key === "=") setZoom((z) => Math.min(16, z * 1.25));
      else if (e.key === "-") setZoom((z) => Math.max(0.25, z / 1.25));
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [app, viewer]);

  useEffect(() => {
    setPan([0, 0]);
  }, [viewer?.index]);

  if (!viewer) return null;
  const item = viewer.items[viewer.index];
  const other = viewer.compare !== null ? viewer.items[viewer.compare] : null;
  const close = () => {
    app.ui.set((s) => ({ ...s, viewer: null }));
    setZoom(1);
    setPan([0, 0]);
  };
  const step = (delta: number) => app.ui.set((s) => (s.viewer ? { ...s, viewer: stepViewer(s.viewer, delta) } : s));
  const transform = `translate(${pan[0]}px, ${pan[1]}px) scale(${zoom})`;

  return (
    <div className="ng-viewer-backdrop" onClick={(e) => e.target === e.currentTarget && close()}>
      <div className="ng-viewer" data-testid="image-viewer">
        <div className="ng-viewer-bar">
          <span className="ng-viewer-caption">{describeItem(item)}</span>
          {viewer.items.length > 1 && (
            <>
              <button type="button" data-testid="viewer-prev" onClick={() => step(-1)} title="previous (←)">‹</button>
              <span data-testid="viewer-frame">{viewer.index + 1} / {viewer.items.length}</span>
              <button type="button" data-testid="viewer-next" onClick={() => step(1)} title="next (→)">›</button>
            </>
          )}
          <button type="button" data-testid="viewer-zoom-out" onClick={() => setZoom((z) => Math.max(0.25, z / 1.25))} title="zoom out (−)">−</button>
          <span data-testid="viewer-zoom" data-zoom={zoom}>{Math.round(zoom * 100)}%</span>
          <button type="button" data-testid="viewer-zoom-in" onClick={() => setZoom((z) => Math.min(16, z * 1.25))} title="zoom in (+)">+</button>
          <button type="button" onClick={() => { setZoom(1); setPan([0, 0]); }}>fit</button>
          <a className="ng-download" href={item.url} download={fileName(item.fileId)}>⤓</a>
          <button type="button" className="ng-icon" data-testid="viewer-close" onClick={close} title="close (Escape)">×</button>
        </div>
        <div
          className="ng-viewer-stage"
          onWheel={(e) => setZoom((z) => Math.max(0.25, Math.min(16, z * (e.deltaY < 0 ? 1.15 : 1 / 1.15))))}
          onMouseDown={(e) => {
            drag.current = { x: e.clientX, y: e.clientY, pan };
          }}
          onMouseMove={(e) => {
            if (drag.current && e.buttons === 1 && !(e.target as HTMLElement).classList.contains("ng-compare-slider")) {
              setPan([drag.current.pan[0] + e.clientX - drag.current.x, drag.current.pan[1] + e.clientY - drag.current.y]);
            }
          }}
          onMouseUp={() => {
            drag.current = null;
          }}
        >
          <div className="ng-viewer-layers" style={{ transform }}>
            <img data-testid="viewer-image" src={item.url} alt={fileName(item.fileId)} draggable={false} />
            {other && (
              <img
                className="ng-viewer-compare"
                data-testid="viewer-compare-image"
                src={other.url}
                alt={fileName(other.fileId)}
                draggable={false}
                style={{ clipPath: `inset(0 0 0 ${split}%)` }}
              />
            )}
          </div>
        </div>
        {other && (
          <input
            className="ng-compare-slider"
            data-testid="viewer-compare-slider"
            type="range"
            min={0}
            max={100}
            value={split}
            onChange={(e) => setSplit(Number(e.target.value))}
            title="slide to compare: left of the line is this image, right the compared one"
          />
        )}
        {viewer.items.length > 1 && (
          <div className="ng-viewer-strip">
            {viewer.items.map((other2, i) => (
              <span key={other2.fileId + i} className={`ng-viewer-thumb${i === viewer.index ? " ng-current" : ""}`}>
                <img src={other2.url} alt="" onClick={() => app.ui.set((s) => (s.viewer ? { ...s, viewer: { ...s.viewer, index: i } } : s))} />
                {i !== viewer.index && (
                  <button
                    type="button"
                    data-testid={`viewer-compare-${i}`}
                    className={viewer.compare === i ? "ng-pressed" : ""}
                    onClick={() => app.ui.set((s) => (s.viewer ? { ...s, viewer: { ...s.viewer, compare: s.viewer.compare === i ? null : i } } : s))}
                    title="compare with this one (slider)"
                  >
                    ⇆
                  </button>
                )}
              </span>
            ))}
          </div>
        )}
      </div>
    </div>
  );
}
