/**
 * Output files shown by kind, on their node and in the gallery (the rule is
 * `fileView` in run/media.ts): images as <img>, videos as <video controls>
 * (animated GIF/WebP as <img>), audio as <audio controls>, text files as a
 * preview read from /files, meshes and point clouds in an interactive three.js
 * view (editor/Model3DView.tsx) with a download link. Clicking an image opens the
 * image viewer (editor/ImageViewer.tsx) on it, with its siblings (the node's other
 * images, or the gallery) to step through and compare. A gallery tile of a mesh or point cloud is
 * an icon tile; a click opens the large 3D viewer (editor/Model3DViewer.tsx). A gallery tile of a video is its
 * first frame under a ▶ (a click plays it large, with controls), of a sound an icon with a play button: every
 * tile is square, the size of an image tile.
 *
 * Test ids: output-file (data-kind, data-view = the element chosen),
 * output-file-download, output-text, output-file-open3d (a gallery tile of a 3D file), output-file-video-tile,
 * output-file-audio-play.
 */
import { useContext, useEffect, useRef, useState } from "react";
import { describeItem, fileName, fileView, loadTextPreview, posterFrameUrl, textPreview, type OutputItem } from "../run/media";
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
 * A gallery tile of a video: its first frame (posterFrameUrl) under a ▶, the size of an image tile; a click opens
 * the file large in a new tab, with the browser's player and its controls (at 64 px the controls hid the frame).
 */
function VideoTile({ item, mime, caption }: { item: OutputItem; mime?: string; caption: string }) {
  return (
    <a className="ng-media-tile nodrag" href={item.url} target="_blank" rel="noreferrer" data-testid="output-file-video-tile" title={`${caption} — click to play it large`}>
      <video preload="metadata" muted playsInline aria-hidden="true">
        <source src={posterFrameUrl(item.url)} {...(mime ? { type: mime } : {})} />
      </video>
      <span className="ng-media-play" aria-hidden="true">▶</span>
    </a>
  );
}

/** A gallery tile of a sound: an icon and a play / pause button, the size of an image tile (a player row broke the grid). */
function AudioTile({ item, mime, caption }: { item: OutputItem; mime?: string; caption: string }) {
  const audio = useRef<HTMLAudioElement>(null);
  const [playing, setPlaying] = useState(false);
  return (
    <div className="ng-media-tile ng-audio-tile" title={caption}>
      <span className="ng-model3d-icon" aria-hidden="true">♪</span>
      <button
        type="button"
        className="ng-media-play-button nodrag"
        data-testid="output-file-audio-play"
        aria-label={`${playing ? "Pause" : "Play"} ${fileName(item.fileId)}`}
        onClick={() => {
          const element = audio.current;
          if (!element) return;
          if (element.paused) void element.play().catch(() => setPlaying(false));
          else element.pause();
        }}
      >
        {playing ? "❚❚" : "▶"}
      </button>
      <audio ref={audio} preload="none" onPlay={() => setPlaying(true)} onPause={() => setPlaying(false)} onEnded={() => setPlaying(false)}>
        <source src={item.url} {...(mime ? { type: mime } : {})} />
      </audio>
    </div>
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
      body = compact ? (
        <VideoTile item={item} mime={view.mime} caption={caption} />
      ) : (
        <>
          <video className="nodrag" controls preload="metadata" title={caption}>
            <source src={item.url} {...(view.mime ? { type: view.mime } : {})} />
          </video>
          <DownloadLink item={item} />
        </>
      );
      break;
    case "audio":
      body = compact ? (
        <AudioTile item={item} mime={view.mime} caption={caption} />
      ) : (
        <>
          <audio className="nodrag" controls preload="metadata" title={caption}>
            <source src={item.url} {...(view.mime ? { type: view.mime } : {})} />
          </audio>
          <DownloadLink item={item} />
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
