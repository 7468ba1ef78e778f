/**
 * The 3D viewer: a mesh or point-cloud output file shown large over the editor (a gallery tile's
 * click, state/ui.ts `model3d`), in the same interactive three.js view as on the Save nodes
 * (editor/Model3DView.tsx, which loads three.js on first use). Drag to orbit, wheel to zoom,
 * right-drag to pan; Escape, × or a click on the backdrop closes it. Like the image viewer it is
 * a modal dialog: the focus moves into it, Tab stays inside, and goes back to the opener on close.
 *
 * Test ids: model3d-viewer, model3d-viewer-close (the view inside is `model3d`).
 */
import { describeItem, fileName, fileView } from "../run/media";
import { useApp } from "../state/context";
import { useStore } from "../state/store";
import { Model3DView } from "./Model3DView";
import { ViewerDialog } from "./ViewerDialog";

export function Model3DViewer() {
  const app = useApp();
  const item = useStore(app.ui, (s) => s.model3d);
  if (!item) return null;
  const view = fileView(item);
  if (view.element !== "model3d") return null;
  const close = () => app.ui.set((s) => ({ ...s, model3d: null }));
  return (
    <ViewerDialog label={`3D viewer: ${describeItem(item)}`} testId="model3d-viewer" onClose={close}>
      <div className="ng-viewer-bar">
        <span className="ng-viewer-caption">{describeItem(item)}</span>
        <span className="ng-kind">{view.points ? "point cloud" : "mesh"} · 3D</span>
        <a className="ng-download" href={item.url} download={fileName(item.fileId)} title={`download ${item.fileId}`} aria-label={`Download ${fileName(item.fileId)}`}>⤓</a>
        <button type="button" className="ng-icon" data-testid="model3d-viewer-close" onClick={close} title="close (Escape)" aria-label="Close the 3D viewer">
          ×
        </button>
      </div>
      <div className="ng-model3d-stage">
        <Model3DView key={item.url} url={item.url} format={view.format} points={view.points} height="100%" />
      </div>
    </ViewerDialog>
  );
}
