/**
 * The mask editor: paint where an inpainting run should change an uploaded image (ComfyUI's "Open in
 * MaskEditor", InvokeAI's canvas brush). Opened by "Edit mask…" beside an image upload widget or in the
 * node's context menu (`openMaskEditor` in state/ui.ts), on an input that names a file.
 *
 * - The input file (`/files/input/<name>`, as the upload preview) is drawn with the mask over it as a
 *   translucent colour; the image's existing transparency is the starting mask (LoadImage: MASK = 1 − alpha).
 *   A PNG's pixels are decoded here (graph/pngDecode.ts), straight: a canvas premultiplies, reading the colour
 *   under a fully transparent pixel as black, and re-editing a saved mask then blackened what it had hidden.
 *   JPEG, WebP, an interlaced PNG or one with EXIF are read through a canvas (they keep that limit).
 * - A brush move redraws only the rectangle it touched and keeps a running painted count (maskImage.ts
 *   `paintStroke`): redrawing and recounting the whole mask took 180-440 ms a move on a 12 MP photo.
 * - Brush and eraser (B / E), a size slider ([ and ] step it), Clear, Invert, Undo of the last stroke
 *   (Ctrl+Z; every stroke, clear and invert is one step), the overlay's colour and opacity, zoom in / out /
 *   fit. Pointer events, so a mouse, a pen and a finger all paint (`touch-action: none` on the canvas).
 * - Save writes a PNG of the original pixels with alpha = 255 − mask (editor/maskImage.ts), uploads it as
 *   a new image (`<stem>_mask.png`; the server numbers it rather than overwrite) and sets the input to the
 *   name it was given: one undo step of the graph. Cancel, × and Escape discard the painting. A PNG larger
 *   than the server takes in one upload (`welcome.max_message_bytes`) is not sent: the dialog says so, with
 *   the two fixes (a larger --max-message-bytes; or the PNG downloaded from the dialog and copied into the
 *   input folder), and keeps the painting. Other refusals are said in the dialog too.
 * - A modal dialog (role dialog, aria-modal, named by its heading *Edit mask: <file>*): the focus moves
 *   into it, Tab stays inside, and the focus goes back to the opener when it closes (focusReturn.ts). While
 *   it is open the canvas's shortcuts are off (GraphCanvas returns early).
 *
 * Test ids: mask-editor, mask-canvas (data-width, data-height, data-painted: the painted pixel count),
 * mask-brush, mask-eraser, mask-size, mask-clear, mask-invert, mask-undo, mask-color, mask-opacity,
 * mask-zoom-in, mask-zoom-out, mask-zoom-fit, mask-zoom (data-zoom), mask-save, mask-cancel, mask-error,
 * mask-save-error (why Save did not upload), mask-download (the PNG too large to upload).
 */
import { useEffect, useId, useLayoutEffect, useRef, useState, type KeyboardEvent, type PointerEvent } from "react";
import { setInput } from "../graph/document";
import { encodePng, isPng, PngError } from "../graph/png";
import { decodePng } from "../graph/pngDecode";
import { ProtocolError } from "../protocol/client";
import { uploadedFileId } from "../schema/widgets";
import { failureText } from "../state/app";
import { useApp } from "../state/context";
import { useStore } from "../state/store";
import { clampScale, fitScale, type MaskEditorState } from "../state/ui";
import { trapTab, useReturnFocus } from "./focusReturn";
import {
  BRUSH_MAX,
  BRUSH_MIN,
  clearMask,
  countPainted,
  hexColor,
  invertMask,
  maskFileName,
  maskFromAlpha,
  nextBrushSize,
  overlayRect,
  paintStroke,
  withMaskAsAlpha,
  type PixelRect,
} from "./maskImage";

/** Undo steps kept: each is a copy of the mask (4 MiB for a 2048² image). */
const UNDO_LIMIT = 20;

interface LoadedImage {
  width: number;
  height: number;
  rgba: Uint8ClampedArray;
}

export function MaskEditor() {
  const app = useApp();
  const target = useStore(app.ui, (s) => s.maskEditor);
  if (!target) return null;
  // keyed: another input (or file) starts from a fresh mask and undo list
  return <MaskEditorDialog key={`${target.nodeId}\u0000${target.input}\u0000${target.file}`} target={target} />;
}

const UNREADABLE = "the image could not be loaded (is the file still in the input folder?)";

/** The input file's pixels (`readImagePixels`), or why they could not be read. */
function useImagePixels(url: string): { image: LoadedImage | null; error: string | null } {
  const [state, setState] = useState<{ image: LoadedImage | null; error: string | null }>({ image: null, error: null });
  useEffect(() => {
    let live = true;
    readImagePixels(url).then(
      (image) => live && setState({ image, error: null }),
      (error: Error) => live && setState({ image: null, error: error.message }),
    );
    return () => {
      live = false;
    };
  }, [url]);
  return state;
}

/**
 * The pixels of the image at `url` (same origin: the page's /files), straight RGBA: a PNG decoded here, so the colour
 * under alpha 0 survives (a canvas reads it as black); anything else, and a PNG the decoder leaves to the browser
 * (interlaced, with EXIF, or one it cannot read), through a canvas.
 */
async function readImagePixels(url: string): Promise<LoadedImage> {
  const response = await fetch(url).catch(() => null);
  if (!response?.ok) throw new Error(UNREADABLE);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (isPng(bytes)) {
    try {
      return await decodePng(bytes);
    } catch (error) {
      if (!(error instanceof PngError)) throw error;
      // the browser may still read it (an interlaced PNG, say): the canvas path, with its limit
    }
  }
  const local = URL.createObjectURL(new Blob([bytes])); // the bytes already fetched, not a second download
  try {
    return await canvasPixels(local);
  } finally {
    URL.revokeObjectURL(local);
  }
}

/** The pixels of the image at `url` read through a 2D canvas (premultiplied: RGB under alpha 0 reads as 0,0,0). */
function canvasPixels(url: string): Promise<LoadedImage> {
  return new Promise((resolve, reject) => {
    const element = new Image();
    element.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = element.naturalWidth;
      canvas.height = element.naturalHeight;
      const context = canvas.getContext("2d", { willReadFrequently: true });
      if (!context || !canvas.width || !canvas.height) {
        reject(new Error("the browser could not read the image's pixels"));
        return;
      }
      context.drawImage(element, 0, 0);
      resolve({ width: canvas.width, height: canvas.height, rgba: context.getImageData(0, 0, canvas.width, canvas.height).data });
    };
    element.onerror = () => reject(new Error(UNREADABLE));
    element.src = url;
  });
}

/** A server limit large enough for an upload of `bytes` (a multiple of 16 MiB, with room for the frame's header). */
export function suggestedMessageLimit(bytes: number): number {
  const step = 16 * 2 ** 20;
  return Math.ceil((bytes + 64 * 1024) / step) * step;
}

/** Why a mask PNG of `bytes` was not uploaded, and the two ways to get it to the server. */
export function maskTooLargeText(name: string, bytes: number): string {
  const limit = suggestedMessageLimit(bytes);
  return `The mask ${name} is ${(bytes / 2 ** 20).toFixed(1)} MiB, more than this server takes in one upload ` +
    `(its --max-message-bytes), so it was not sent. To save it: restart the server with --max-message-bytes ${limit} ` +
    `(${limit / 2 ** 20} MiB) and press Save again, or download the PNG below, copy it into the server's input folder ` +
    "and type its name into the input. Your painting stays here until you close the dialog.";
}

function MaskEditorDialog({ target }: { target: MaskEditorState }) {
  const app = useApp();
  const headingId = useId();
  const dialog = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const stage = useRef<HTMLDivElement>(null);
  const url = app.fileUrl(uploadedFileId(target.file) ?? "");
  const { image, error } = useImagePixels(url);

  const mask = useRef<Uint8Array>(new Uint8Array(0));
  const undoSteps = useRef<Uint8Array[]>([]);
  const stroke = useRef<{ pointer: number; last: [number, number] } | null>(null);
  const [tool, setTool] = useState<"brush" | "eraser">("brush");
  const [size, setSize] = useState(24);
  const [color, setColor] = useState("#ff3b30");
  const [opacity, setOpacity] = useState(0.6);
  const [manualScale, setManualScale] = useState<number | null>(null);
  const [stageSize, setStageSize] = useState<[number, number]>([0, 0]);
  const [painted, setPainted] = useState(0);
  const [undoCount, setUndoCount] = useState(0);
  const [saving, setSaving] = useState(false);
  /** Why the last Save did not upload, and the PNG it made when it was too large to send (for download). */
  const [saveProblem, setSaveProblem] = useState<{ text: string; download: { name: string; url: string } | null } | null>(null);
  const paintedCount = useRef(0);
  useEffect(() => () => {
    if (saveProblem?.download) URL.revokeObjectURL(saveProblem.download.url);
  }, [saveProblem]);

  useReturnFocus(true);
  useEffect(() => {
    dialog.current?.focus({ preventScroll: true });
  }, []);

  const close = () => app.ui.set((s) => ({ ...s, maskEditor: null }));

  /** Draw the mask over the image in `rect` (the whole image by default). */
  const drawOverlay = (rect: PixelRect | null = null) => {
    const context = canvas.current?.getContext("2d");
    if (!context || !image) return;
    const area = rect ?? { x: 0, y: 0, width: image.width, height: image.height };
    const pixels = overlayRect(mask.current, image.width, area, hexColor(color), opacity);
    context.putImageData(new ImageData(pixels, area.width, area.height), area.x, area.y);
  };
  /** Draw the whole mask over the image, and count what is painted (the e2e test reads it). */
  const redraw = () => {
    drawOverlay();
    paintedCount.current = countPainted(mask.current);
    setPainted(paintedCount.current);
  };

  useEffect(() => {
    if (!image) return;
    mask.current = maskFromAlpha(image.rgba);
    undoSteps.current = [];
    setUndoCount(0);
  }, [image]);
  useEffect(redraw, [image, color, opacity]); // eslint-disable-line react-hooks/exhaustive-deps

  // The stage's inner size, for "Fit" (the window can be resized while the dialog is open).
  useLayoutEffect(() => {
    const element = stage.current;
    if (!element) return;
    const measure = () => setStageSize([Math.max(0, element.clientWidth - 16), Math.max(0, element.clientHeight - 16)]);
    measure();
    const observer = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(measure);
    observer?.observe(element);
    return () => observer?.disconnect();
  }, []);

  const scale = manualScale ?? (image ? fitScale([image.width, image.height], stageSize) : 1);

  /** Keep the mask as it is now as the step that Undo goes back to. */
  const remember = () => {
    undoSteps.current = [...undoSteps.current.slice(-(UNDO_LIMIT - 1)), mask.current.slice()];
    setUndoCount(undoSteps.current.length);
  };
  const replaceMask = (next: Uint8Array) => {
    remember();
    mask.current = next;
    redraw();
  };
  const undo = () => {
    const previous = undoSteps.current.pop();
    if (!previous) return;
    mask.current = previous;
    setUndoCount(undoSteps.current.length);
    redraw();
  };

  /** The pointer's position in image pixels. */
  const imagePoint = (event: PointerEvent<HTMLCanvasElement>): [number, number] => {
    const box = event.currentTarget.getBoundingClientRect();
    if (!image || !box.width || !box.height) return [0, 0];
    return [((event.clientX - box.left) / box.width) * image.width, ((event.clientY - box.top) / box.height) * image.height];
  };
  const paint = (from: [number, number], to: [number, number]) => {
    if (!image) return;
    const change = paintStroke(mask.current, image.width, image.height, from, to, size, tool === "brush" ? 255 : 0);
    if (!change.rect) return;
    drawOverlay(change.rect); // only what the brush touched: the whole 12 MP overlay took 180-440 ms a move
    paintedCount.current += change.paintedChange;
    setPainted(paintedCount.current);
  };
  const onPointerDown = (event: PointerEvent<HTMLCanvasElement>) => {
    if (!image || stroke.current || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    event.currentTarget.setPointerCapture?.(event.pointerId);
    remember();
    const point = imagePoint(event);
    stroke.current = { pointer: event.pointerId, last: point };
    paint(point, point);
  };
  const onPointerMove = (event: PointerEvent<HTMLCanvasElement>) => {
    const current = stroke.current;
    if (!current || current.pointer !== event.pointerId) return;
    const point = imagePoint(event);
    paint(current.last, point);
    current.last = point;
  };
  const endStroke = (event: PointerEvent<HTMLCanvasElement>) => {
    if (stroke.current?.pointer === event.pointerId) stroke.current = null;
  };

  const save = async () => {
    if (!image || saving) return;
    setSaving(true);
    setSaveProblem(null);
    const name = maskFileName(target.file);
    const png = await encodePng(image.width, image.height, withMaskAsAlpha(image.rgba, mask.current));
    let stored: string;
    try {
      // the client refuses a frame past the server's limit before sending it (protocol/client.ts `upload`)
      stored = (await app.client.upload(name, png, "image")).name;
    } catch (error) {
      setSaving(false);
      // refused: the dialog says why, and the painting stays for another try
      if (error instanceof ProtocolError && error.code === "too_large") {
        const url = URL.createObjectURL(new Blob([png], { type: "image/png" }));
        setSaveProblem({ text: maskTooLargeText(name, png.length), download: { name, url } });
      } else {
        setSaveProblem({ text: failureText(error, `upload ${name}`), download: null });
      }
      return;
    }
    setSaving(false);
    app.toast(`Uploaded ${stored}`);
    app.editor.edit((doc) => setInput(doc, target.nodeId, target.input, stored)); // one undo step, not coalesced
    app.dispatch({ type: "clear_input_error", nodeId: target.nodeId, input: target.input });
    close();
  };

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const mod = event.ctrlKey || event.metaKey;
    const inField = event.target instanceof HTMLInputElement && event.target.type !== "range";
    if (event.key === "Escape") close();
    else if (event.key === "[" || event.key === "]") setSize((s) => nextBrushSize(s, event.key === "]" ? 1 : -1));
    else if (mod && event.key.toLowerCase() === "z" && !event.shiftKey) undo();
    else if (!mod && !inField && event.key.toLowerCase() === "b") setTool("brush");
    else if (!mod && !inField && event.key.toLowerCase() === "e") setTool("eraser");
    else {
      trapTab(event, dialog.current);
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  };

  const zoom = Math.round(scale * 100);
  const box = image ? { width: Math.max(1, Math.round(image.width * scale)), height: Math.max(1, Math.round(image.height * scale)) } : null;
  return (
    <div className="ng-viewer-backdrop">
      <div
        className="ng-viewer ng-mask-editor"
        data-testid="mask-editor"
        role="dialog"
        aria-modal="true"
        aria-labelledby={headingId}
        tabIndex={-1}
        ref={dialog}
        onKeyDown={onKeyDown}
      >
        <div className="ng-viewer-bar">
          <h2 id={headingId} className="ng-viewer-caption ng-mask-title">Edit mask: {target.file}</h2>
          <button type="button" className="ng-icon" onClick={close} title="discard (Escape)" aria-label="Close the mask editor without saving">×</button>
        </div>
        <div className="ng-viewer-bar ng-mask-tools" role="toolbar" aria-label="Mask tools">
          <button type="button" data-testid="mask-brush" aria-pressed={tool === "brush"} onClick={() => setTool("brush")} title="paint the area to change (B)">Brush</button>
          <button type="button" data-testid="mask-eraser" aria-pressed={tool === "eraser"} onClick={() => setTool("eraser")} title="erase the mask (E)">Eraser</button>
          <label className="ng-mask-field">
            Size
            <input
              type="range"
              data-testid="mask-size"
              min={BRUSH_MIN}
              max={BRUSH_MAX}
              value={size}
              aria-label="brush size"
              aria-valuetext={`${size} pixels`}
              title="[ and ] step it"
              onChange={(e) => setSize(Number(e.target.value))}
            />
            <span className="ng-mask-number">{size}px</span>
          </label>
          <button type="button" data-testid="mask-undo" disabled={undoCount === 0} onClick={undo} title="undo the last stroke (Ctrl+Z)">Undo</button>
          <button type="button" data-testid="mask-clear" onClick={() => image && replaceMask(clearMask(image.width * image.height))}>Clear</button>
          <button type="button" data-testid="mask-invert" onClick={() => replaceMask(invertMask(mask.current))}>Invert</button>
          <label className="ng-mask-field">
            Colour
            <input type="color" data-testid="mask-color" value={color} aria-label="mask colour" onChange={(e) => setColor(e.target.value)} />
          </label>
          <label className="ng-mask-field">
            Opacity
            <input
              type="range"
              data-testid="mask-opacity"
              min={10}
              max={100}
              value={Math.round(opacity * 100)}
              aria-label="mask opacity"
              aria-valuetext={`${Math.round(opacity * 100)} percent`}
              onChange={(e) => setOpacity(Number(e.target.value) / 100)}
            />
          </label>
          <button type="button" className="ng-icon" data-testid="mask-zoom-out" aria-label="Zoom out" onClick={() => setManualScale(clampScale(scale / 1.25))}>−</button>
          <span className="ng-viewer-zoom" data-testid="mask-zoom" data-zoom={scale}>{zoom}%</span>
          <button type="button" className="ng-icon" data-testid="mask-zoom-in" aria-label="Zoom in" onClick={() => setManualScale(clampScale(scale * 1.25))}>+</button>
          <button type="button" data-testid="mask-zoom-fit" aria-pressed={manualScale === null} onClick={() => setManualScale(null)}>Fit</button>
        </div>
        <div className="ng-mask-stage" ref={stage}>
          {error && <p className="ng-mask-error" role="alert" data-testid="mask-error">Cannot edit the mask of {target.file}: {error}</p>}
          {!error && !image && <p className="ng-mask-loading">Loading {target.file}…</p>}
          {image && box && (
            <div className="ng-mask-layers" style={box}>
              <img src={url} alt={target.file} draggable={false} />
              <canvas
                ref={canvas}
                data-testid="mask-canvas"
                data-width={image.width}
                data-height={image.height}
                data-painted={painted}
                width={image.width}
                height={image.height}
                aria-label={`mask over ${target.file}: ${painted} pixels painted; draw with the pointer`}
                role="img"
                style={{ cursor: tool === "brush" ? "crosshair" : "cell" }}
                onPointerDown={onPointerDown}
                onPointerMove={onPointerMove}
                onPointerUp={endStroke}
                onPointerCancel={endStroke}
              />
            </div>
          )}
        </div>
        {saveProblem && (
          <p className="ng-mask-error" role="alert" data-testid="mask-save-error">
            {saveProblem.text}
            {saveProblem.download && (
              <>
                {" "}
                <a data-testid="mask-download" href={saveProblem.download.url} download={saveProblem.download.name}>
                  Download {saveProblem.download.name}
                </a>
              </>
            )}
          </p>
        )}
        <div className="ng-viewer-bar ng-mask-actions">
          <span className="ng-mask-hint">Painted areas become transparent: LoadImage's mask (what inpainting changes).</span>
          <button type="button" data-testid="mask-cancel" onClick={close}>Cancel</button>
          <button type="button" className="ng-run" data-testid="mask-save" disabled={!image || saving} onClick={() => void save()}>
            {saving ? "Saving…" : "Save"}
          </button>
        </div>
      </div>
    </div>
  );
}
