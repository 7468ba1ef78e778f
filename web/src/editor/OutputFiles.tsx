/**
 * Output files shown by kind, on their node and in the gallery (the rule is
 * `fileView` in run/media.ts): images as <img>, videos as <video controls>
 * (animated GIF/WebP as <img>), audio as <audio controls>, text files as a
 * preview read from /files, meshes and point clouds in an interactive three.js
 * view (editor/Model3DView.tsx) with a download link. Clicking an image opens the
 * image viewer (editor/ImageViewer.tsx) on it, with its siblings (the node's other
 * images, or the gallery) to step through and compare. A gallery tile of a mesh or point cloud is
 * an icon tile; a click opens the large 3D viewer (editor/Model3DViewer.tsx).
 *
 * Test ids: output-file (data-kind, data-view = the element chosen),
 * output-file-download, output-text, output-file-open3d (a gallery tile of a 3D file).
 */
import { useContext, useEffect, useState } from "react";
import { describeItem, fileName, fileView, loadTextPreview, textPreview, type OutputItem } from "../run/media";
import { AppContext } from "../state/context";
import { openViewer } from "../state/ui";
import { Model3DView } from "./Model3DView";

/** The start of a text file, fetched once per URL. */
function TextPreview({ item }: { item: OutputItem }) {
  const [state, setState] = useState<{ text: string } | { error: string } | null>(null);
  useEffect(() => {
    let live = true;
    setState(null);
    loadTextPreview(item.url)
      .then(({ text, truncated }) => live && setState({ text: textPreview(text, { mime: item.mime, fileId: item.fileId, truncated }) }))
      .catch((error: Error) => live && setState({ error: error.message }));
    return () => {
      live = false;
    };
  }, [item.url, item.mime, item.fileId]);
  if (state === null) return <pre className="ng-text-preview ng-muted nodrag nowheel" data-testid="output-text">loading…</pre>;
  if ("error" in state) return <pre className="ng-text-preview ng-node-error nodrag nowheel" data-testid="output-text">could not read the file: {state.error}</pre>;
  return (
    <pre className="ng-text-preview nodrag nowheel" data-testid="output-text">
      {state.text}
    </pre>
  );
}

/** A download link labelled with the file's kind and caption (name and size facts). */
function DownloadLink({ item }: { item: OutputItem }) {
  return (
    <a className="ng-download nodrag" href={item.url} download={fileName(item.fileId)} data-testid="output-file-download" title={`download ${item.fileId}`}>
      <span className="ng-kind">{item.kind}</span> ⤓ {describeItem(item)}
    </a>
  );
}

/** A gallery tile of a mesh or point cloud: an icon and its kind; a click opens the 3D viewer. */
function Model3DTile({ points, caption, onOpen }: { points: boolean; caption: string; onOpen?: () => void }) {
  return (
    <button
      type="button"
      className="ng-model3d-tile"
      data-testid="output-file-open3d"
      title={`${caption} — click for the 3D view`}
      onClick={onOpen}
    >
      <span className="ng-model3d-icon" aria-hidden="true">{points ? "⁘" : "◭"}</span>
      <span className="ng-kind">{points ? "point cloud" : "mesh"} · 3D</span>
    </button>
  );
}

/**
 * One output file; `compact` for gallery tiles (no text preview fetch, smaller media, 3D files as an icon
 * tile); `onOpen` for a click on an image, or on a gallery tile of a 3D file.
 */
export function OutputFileView({ item, compact = false, onOpen }: { item: OutputItem; compact?: boolean; onOpen?: () => void }) {
  const view = fileView(item);
  const caption = describeItem(item);
  let body;
  switch (view.element) {
    case "img":
      body = (
        <a
          href={item.url}
          target="_blank"
          rel="noreferrer"
          title={`${caption} — click for the large view`}
          onClick={(e) => {
            if (!onOpen || e.ctrlKey || e.metaKey) return;
            e.preventDefault();
            onOpen();
          }}
        >
          <img src={item.url} alt={fileName(item.fileId)} loading="lazy" />
        </a>
      );
      break;
    case "model3d":
      body = (
        <>
          {compact ? (
            <Model3DTile points={view.points} caption={caption} onOpen={onOpen} />
          ) : (
            <>
              <Model3DView url={item.url} format={view.format} points={view.points} />
              <DownloadLink item={item} />
            </>
          )}
        </>
      );
      break;
    case "video":
      body = (
        <>
          <video className="nodrag" controls preload="metadata" muted={compact} loop={compact} title={caption}>
            <source src={item.url} {...(view.mime ? { type: view.mime } : {})} />
          </video>
          {!compact && <DownloadLink item={item} />}
        </>
      );
      break;
    case "audio":
      body = (
        <>
          <audio className="nodrag" controls preload="metadata" title={caption}>
            <source src={item.url} {...(view.mime ? { type: view.mime } : {})} />
          </audio>
          {!compact && <DownloadLink item={item} />}
        </>
      );
      break;
    case "text":
      body = compact ? (
        <DownloadLink item={item} />
      ) : (
        <>
          <TextPreview item={item} />
          <DownloadLink item={item} />
        </>
      );
      break;
    case "download":
      body = (
        <>
          <DownloadLink item={item} />
          {!compact && <span className="ng-muted ng-file-note">{view.reason}</span>}
        </>
      );
      break;
  }
  return (
    <figure className={`ng-output-file ng-output-${view.element}`} data-testid="output-file" data-kind={item.kind} data-view={view.element} title={`${item.nodeId} · ${caption}`}>
      {body}
    </figure>
  );
}

/** The output files of one node (sorted by index), or nothing. */
export function NodeFiles({ nodeId, files }: { nodeId: string; files: OutputItem[] | undefined }) {
  const app = useContext(AppContext);
  if (!files || files.length === 0) return null;
  const images = files.filter((f) => fileView(f).element === "img");
  return (
    <div className="ng-node-files" data-testid={`node-files-${nodeId}`}>
      {files.map((item) => (
        <OutputFileView key={item.fileId} item={item} onOpen={app ? () => openViewer(app.ui, images, images.indexOf(item)) : undefined} />
      ))}
    </div>
  );
}
