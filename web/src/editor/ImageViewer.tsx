/**
 * The image viewer: a large view of an output image or live preview, over the editor.
 *
 * - Zoom: the percentage is image pixels to screen pixels, as in other image viewers: "100%"
 *   shows one image pixel per screen pixel, "Fit" the whole image as large as the stage allows
 *   (how it opens; a new frame is fitted again while in fit mode). The wheel and +/− zoom from
 *   there; drag to pan.
 * - Frames: a batch (a node's images, or the gallery) steps with ←/→ or the buttons,
 *   "frame i / n" shows where you are, and the strip of thumbnails jumps to one.
 * - Compare: pick another image of the set; a slider reveals one over the other. The compared
 *   image is drawn in the same box as the shown one (scaled to fit it, aspect kept), so images
 *   of different sizes line up.
 * - Escape or a click on the backdrop closes it.
 * - It is a modal dialog (role dialog, aria-modal, named by its caption): the focus moves into it
 *   when it opens, Tab and Shift+Tab stay inside it, and the focus goes back to what opened it
 *   when it closes (editor/focusReturn.ts).
 *
 * Test ids: image-viewer, viewer-image, viewer-frame (text "i / n"), viewer-next, viewer-prev,
 * viewer-zoom-in, viewer-zoom-out, viewer-zoom (data-zoom: screen pixels per image pixel; data-fit),
 * viewer-zoom-fit, viewer-zoom-actual (100%), viewer-compare-<i>, viewer-compare-slider,
 * viewer-compare-image, viewer-close, viewer-use-as-input (*Use as input*: the image becomes the LoadImage node's
 * input, `EditorApp.useImageAsInput`; the viewer closes when it did).
 */
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { describeItem, fileName } from "../run/media";
import { useApp } from "../state/context";
import { useStore } from "../state/store";
import { clampScale, fitScale, stepViewer } from "../state/ui";
import { ViewerDialog } from "./ViewerDialog";

export function ImageViewer() {
  const app = useApp();
  const viewer = useStore(app.ui, (s) => s.viewer);
  // null: fit the image to the stage; a number: screen pixels per image pixel (1 = 100%).
  const [manualScale, setManualScale] = useState<number | null>(null);
  const [pan, setPan] = useState<[number, number]>([0, 0]);
  const [split, setSplit] = useState(50);
  const [stageSize, setStageSize] = useState<[number, number]>([0, 0]);
  const [natural, setNatural] = useState<{ url: string; size: [number, number] } | null>(null);
  const drag = useRef<{ x: number; y: number; pan: [number, number] } | null>(null);
  const stage = useRef<HTMLDivElement>(null);

  const item = viewer ? viewer.items[viewer.index] : null;
  const size: [number, number] | null = item && natural?.url === item.url ? natural.size : null;
  const scale = manualScale ?? (size ? fitScale(size, stageSize) : 1);
  const zoomBy = (factor: number) => setManualScale(clampScale(scale * factor));

  useEffect(() => {
    if (!viewer) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "ArrowRight") app.ui.set((s) => (s.viewer ? { ...s, viewer: stepViewer(s.viewer, 1) } : s));
      else if (e.key === "ArrowLeft") app.ui.set((s) => (s.viewer ? { ...s, viewer: stepViewer(s.viewer, -1) } : s));
      else if (e.key === "+" || e.key === "=") zoomBy(1.25);
      else if (e.key === "-") zoomBy(1 / 1.25);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  useEffect(() => {
    setPan([0, 0]);
  }, [viewer?.index]);

  // The stage's inner size, for "Fit" (the window can be resized while the viewer is open).
  const open = viewer !== null;
  useLayoutEffect(() => {
    const element = stage.current;
    if (!open || !element) return;
    const measure = () => setStageSize([Math.max(0, element.clientWidth - 16), Math.max(0, element.clientHeight - 16)]);
    measure();
    const observer = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(measure);
    observer?.observe(element);
    return () => observer?.disconnect();
  }, [open]);

  if (!viewer || !item) return null;
  const other = viewer.compare !== null ? viewer.items[viewer.compare] : null;
  const close = () => {
    app.ui.set((s) => ({ ...s, viewer: null }));
    setManualScale(null);
    setPan([0, 0]);
  };
  const step = (delta: number) => app.ui.set((s) => (s.viewer ? { ...s, viewer: stepViewer(s.viewer, delta) } : s));
  const transform = `translate(${pan[0]}px, ${pan[1]}px)`;
  // Both images take the shown image's box at this scale; until its size is known it stays hidden.
  const box = size ? { width: Math.round(size[0] * scale), height: Math.round(size[1] * scale) } : null;

  return (
    <ViewerDialog label={`Image viewer: ${describeItem(item)}`} testId="image-viewer" onClose={close}>
      <div className="ng-viewer-bar">
        <span className="ng-viewer-caption">{describeItem(item)}</span>
        {viewer.items.length > 1 && (
          <>
            <button type="button" data-testid="viewer-prev" onClick={() => step(-1)} title="previous (←)" aria-label="Previous image">‹</button>
            <span data-testid="viewer-frame">{viewer.index + 1} / {viewer.items.length}</span>
            <button type="button" data-testid="viewer-next" onClick={() => step(1)} title="next (→)" aria-label="Next image">›</button>
          </>
        )}
        <button type="button" data-testid="viewer-zoom-out" onClick={() => zoomBy(1 / 1.25)} title="zoom out (−)" aria-label="Zoom out">−</button>
        <span
          className="ng-viewer-zoom"
          data-testid="viewer-zoom"
          data-zoom={scale}
          data-fit={manualScale === null}
          title={size ? `${size[0]}×${size[1]} px image; the percentage is screen pixels per image pixel` : undefined}
        >
          {Math.round(scale * 100)}%
        </span>
        <button type="button" data-testid="viewer-zoom-in" onClick={() => zoomBy(1.25)} title="zoom in (+)" aria-label="Zoom in">+</button>
        <button
          type="button"
          data-testid="viewer-zoom-actual"
          className={manualScale === 1 ? "ng-pressed" : ""}
          onClick={() => { setManualScale(1); setPan([0, 0]); }}
          title="actual size: one image pixel per screen pixel"
        >
          100%
        </button>
        <button
          type="button"
          data-testid="viewer-zoom-fit"
          className={manualScale === null ? "ng-pressed" : ""}
          onClick={() => { setManualScale(null); setPan([0, 0]); }}
          title="fit the whole image in the view"
        >
          Fit
        </button>
        <button
          type="button"
          data-testid="viewer-use-as-input"
          title="upload this image as the LoadImage node's input (the selected one when there are several)"
          onClick={() => void app.useImageAsInput(item.url, fileName(item.fileId)).then((done) => done && close())}
        >
          Use as input
        </button>
        <a className="ng-download" href={item.url} download={fileName(item.fileId)} aria-label={`Download ${fileName(item.fileId)}`} title="download">⤓</a>
        <button type="button" className="ng-icon" data-testid="viewer-close" onClick={close} title="close (Escape)" aria-label="Close the image viewer">×</button>
      </div>
      <div
        className="ng-viewer-stage"
        ref={stage}
        onWheel={(e) => zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15)}
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
          <img
            data-testid="viewer-image"
            src={item.url}
            alt={fileName(item.fileId)}
            draggable={false}
            // while comparing, only the part left of the slider (the compared image has the rest)
            style={box ? (other ? { ...box, clipPath: `inset(0 ${100 - split}% 0 0)` } : box) : { visibility: "hidden" }}
            onLoad={(e) => {
              const img = e.currentTarget;
              setNatural({ url: item.url, size: [img.naturalWidth, img.naturalHeight] });
            }}
          />
          {other && box && (
            <img
              className="ng-viewer-compare"
              data-testid="viewer-compare-image"
              src={other.url}
              alt={fileName(other.fileId)}
              draggable={false}
              style={{ ...box, clipPath: `inset(0 0 0 ${split}%)` }}
            />
          )}
          {other && box && (
            // over the bottom of the image box, exactly as wide as it (the thumb's centre runs from the box's
            // left edge to its right edge: styles.css), so the thumb sits on the dividing line; before, it
            // spanned the dialog and sat 150 px from the line
            <input
              className="ng-compare-slider"
              data-testid="viewer-compare-slider"
              type="range"
              min={0}
              max={100}
              step="any"
              value={split}
              aria-label="Compare: position of the dividing line"
              onChange={(e) => setSplit(Number(e.target.value))}
              onMouseDown={(e) => e.stopPropagation()}
              title="slide to compare: left of the line is this image, right the compared one"
            />
          )}
        </div>
      </div>
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
                  aria-label={`Compare with image ${i + 1}`}
                  aria-pressed={viewer.compare === i}
                >
                  ⇆
                </button>
              )}
            </span>
          ))}
        </div>
      )}
    </ViewerDialog>
  );
}
