/**
 * Output files shown by kind, on their node and in the gallery (the rule is
 * `fileView` in run/media.ts): images as <img>, videos as <video controls>
 * (animated GIF/WebP as <img>), audio as <audio controls>, text files as a
 * preview read from /files, meshes and point clouds as a download link.
 *
 * Test ids: output-file (data-kind, data-view = the element chosen),
 * output-file-download, output-text.
 */
import { useEffect, useState } from "react";
import { describeItem, fileName, fileView, loadTextPreview, textPreview, type OutputItem } from "../run/media";

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

/** One output file; `compact` for gallery tiles (no text preview fetch, smaller media). */
export function OutputFileView({ item, compact = false }: { item: OutputItem; compact?: boolean }) {
  const view = fileView(item);
  const caption = describeItem(item);
  let body;
  switch (view.element) {
    case "img":
      body = (
        <a href={item.url} target="_blank" rel="noreferrer" title={caption}>
          <img src={item.url} alt={fileName(item.fileId)} loading="lazy" />
        </a>
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
  if (!files || files.length === 0) return null;
  return (
    <div className="ng-node-files" data-testid={`node-files-${nodeId}`}>
      {files.map((item) => (
        <OutputFileView key={item.fileId} item={item} />
      ))}
    </div>
  );
}
