import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NodeFiles, OutputFileView } from "../src/editor/OutputFiles";
import { Gallery } from "../src/editor/Panels";
import { describeItem, fileView, loadTextPreview, outputItemFrom, textPreview, type OutputItem } from "../src/run/media";
import { initialSessionState, reduceSession } from "../src/run/sessionState";
import { EditorApp } from "../src/state/app";
import { AppContext } from "../src/state/context";
import { createUiStore, openModel3D } from "../src/state/ui";
import { FakeSocket, connectedApp, stopApp } from "./helpers";

const context = { fileUrl: (id: string) => `files/${id}` };

const item = (kind: string, mime?: string, extra: Partial<OutputItem> = {}): OutputItem => ({
  runId: "r1",
  nodeId: "save",
  fileId: `output/out_00001.${kind}`,
  url: `files/output/out_00001.${kind}`,
  index: 0,
  kind,
  ...(mime ? { mime } : {}),
  ...extra,
});

describe("the rendering choice per kind", () => {
  it("maps each kind (and MIME type) to its element", () => {
    expect(fileView(item("image", "image/png"))).toEqual({ element: "img" });
    expect(fileView(item("video", "video/mp4"))).toEqual({ element: "video", mime: "video/mp4" });
    expect(fileView(item("video", "image/gif"))).toEqual({ element: "img" }); // animated GIF is played as an image
    expect(fileView(item("video", "image/webp"))).toEqual({ element: "img" });
    expect(fileView(item("audio", "audio/wav"))).toEqual({ element: "audio", mime: "audio/wav" });
    expect(fileView(item("audio", "video/webm"))).toEqual({ element: "audio", mime: "video/webm" }); // WebM audio
    expect(fileView(item("text", "application/json"))).toEqual({ element: "text" });
    expect(fileView(item("mesh", "model/gltf-binary"))).toEqual({ element: "model3d", format: "glb", points: false });
    expect(fileView({ ...item("pointcloud"), fileId: "output/cloud_00001.ply" })).toEqual({ element: "model3d", format: "ply", points: true });
    expect(fileView({ ...item("mesh"), fileId: "output/shape.OBJ" })).toEqual({ element: "model3d", format: "obj", points: false });
    const unreadable = fileView(item("pointcloud", "application/octet-stream")); // no 3D extension, no 3D MIME type
    expect(unreadable.element).toBe("download");
    expect(unreadable.element === "download" && unreadable.reason).toContain("PLY, GLB");
    const unknown = fileView(item("hologram"));
    expect(unknown.element).toBe("download");
    expect(unknown.element === "download" && unknown.reason).toContain("hologram");
  });

  it("renders <video controls>, <audio controls>, a text preview and download links as markup", () => {
    const html = (i: OutputItem) => renderToStaticMarkup(<OutputFileView item={i} />);
    const video = html(item("video", "video/mp4", { width: 64, height: 48, frames: 16, fps: 8 }));
    expect(video).toMatch(/<video[^>]* controls=""/);
    expect(video).toContain('<source src="files/output/out_00001.video" type="video/mp4"/>');
    expect(video).toContain("64×48 · 16 frames · 2.0 s");
    expect(video).toContain('data-testid="output-file-download"');
    const audio = html(item("audio", "audio/wav", { duration: 1.5, sampleRate: 16000 }));
    expect(audio).toMatch(/<audio[^>]* controls=""/);
    expect(audio).toContain("1.5 s · 16000 Hz");
    expect(html(item("text", "text/plain"))).toContain('data-testid="output-text"');
    const mesh = html(item("mesh", "model/gltf-binary"));
    expect(mesh).not.toMatch(/<(img|video|audio)/);
    expect(mesh).toContain('data-testid="model3d"');
    expect(mesh).toContain('data-format="glb"');
    expect(mesh).toContain('data-state="loading"');
    expect(mesh).toContain('download="out_00001.mesh"');
    expect(html(item("image", "image/png"))).toMatch(/<img src="files\/output\/out_00001.image"/);
  });

  it("keeps a node's files in index order, one per file id", () => {
    const html = renderToStaticMarkup(
      <NodeFiles nodeId="save" files={[item("image", "image/png", { index: 0 }), item("audio", "audio/wav", { index: 1, fileId: "output/b.wav" })]} />,
    );
    expect(html).toContain('data-testid="node-files-save"');
    expect((html.match(/data-view="(\w+)"/g) ?? []).join(" ")).toBe('data-view="img" data-view="audio"');
    expect(renderToStaticMarkup(<NodeFiles nodeId="x" files={[]} />)).toBe("");
  });

  it("shows a 3D file in the gallery as an icon tile that opens the 3D viewer (no three.js view in the tile)", () => {
    const cloud = { ...item("pointcloud"), fileId: "output/cloud_00001.ply" };
    const tile = renderToStaticMarkup(<OutputFileView item={cloud} compact />);
    expect(tile).toContain('data-testid="output-file-open3d"');
    expect(tile).toContain("point cloud · 3D");
    expect(tile).not.toContain('data-testid="model3d"');
    const ui = createUiStore();
    openModel3D(ui, cloud);
    expect(ui.get().model3d).toBe(cloud);
  });
});

describe("text previews", () => {
  it("pretty-prints JSON, cuts long text with a note, and leaves other text as written", () => {
    expect(textPreview('{"colors":["#ff0000"]}', { mime: "application/json" })).toBe('{\n  "colors": [\n    "#ff0000"\n  ]\n}');
    expect(textPreview('{"a":1}', { fileId: "output/c.json" })).toBe('{\n  "a": 1\n}');
    expect(textPreview("{not json", { mime: "application/json" })).toBe("{not json");
    expect(textPreview("abcdef", { limit: 3 })).toBe("abc\n… (cut: download the file for the rest)");
    expect(textPreview("abc", { truncated: true })).toContain("abc\n… (cut");
    expect(textPreview("plain\ttext")).toBe("plain\ttext");
  });

  it("reads at most the preview size from /files and says when the file goes on", async () => {
    const body = "é".repeat(20); // 40 bytes of UTF-8
    const fetchText = vi.fn(async () => new Response(body, { status: 200 }));
    expect(await loadTextPreview("files/output/a.txt", fetchText, 1000)).toEqual({ text: body, truncated: false });
    const cut = await loadTextPreview("files/output/a.txt", fetchText, 7); // ends inside a character
    expect(cut).toEqual({ text: "ééé", truncated: true });
    expect(fetchText).toHaveBeenCalledWith("files/output/a.txt", { credentials: "same-origin" });
    const missing = async () => new Response("no", { status: 404 });
    await expect(loadTextPreview("files/output/gone.txt?token=t", missing)).rejects.toThrow("HTTP 404 for gone.txt");
  });
});

describe("output files from the protocol", () => {
  it("turns output_file messages and get_outputs files of every kind into node files and gallery items", () => {
    let s = reduceSession(initialSessionState, { type: "server", message: { type: "run_started", run_id: "r1", nodes: ["save", "clip"], total: 2 } }, context);
    s = reduceSession(s, {
      type: "server",
      message: { type: "output_file", run_id: "r1", file_id: "output/clip_00001.mp4", node_id: "clip", kind: "video", index: 0, mime: "video/mp4", fps: 8, frames: 16 },
    }, context);
    expect(s.nodeFiles.clip).toEqual([{
      runId: "r1", nodeId: "clip", fileId: "output/clip_00001.mp4", url: "files/output/clip_00001.mp4", index: 0, kind: "video", mime: "video/mp4", fps: 8, frames: 16,
    }]);
    s = reduceSession(s, {
      type: "server",
      message: {
        type: "outputs", run_id: "r1", status: "succeeded", error: null, outputs: {},
        files: [
          { file_id: "output/clip_00001.mp4", node_id: "clip", kind: "video", index: 0, mime: "video/mp4", fps: 8, frames: 16, width: 64, height: 64 },
          { file_id: "output/colors_00001.json", node_id: "save", kind: "text", index: 0, mime: "application/json" },
          { file_id: "output/sound_00001.wav", node_id: "save", kind: "audio", index: 1, mime: "audio/wav", sample_rate: 16000 },
          { file_id: "output/shape_00001.glb", node_id: "save", kind: "mesh", index: 2, mime: "model/gltf-binary" },
        ],
      },
    }, context);
    expect(s.nodeFiles.clip).toHaveLength(1); // the same file once, now with its size
    expect(s.nodeFiles.clip[0].width).toBe(64);
    expect(s.nodeFiles.save.map((f) => f.kind)).toEqual(["text", "audio", "mesh"]);
    expect(s.nodeFiles.save[1].sampleRate).toBe(16000);
    expect(s.gallery.map((f) => f.kind)).toEqual(["mesh", "audio", "text", "video"]);
    expect(describeItem(s.gallery[3])).toBe("clip_00001.mp4 · 64×64 · 16 frames · 2.0 s");
  });

  it("keeps an older server's file records (no kind) as images", () => {
    const record = outputItemFrom("r", { file_id: "output/a.png", node_id: "n" }, "files/output/a.png", 3);
    expect(record).toEqual({ runId: "r", nodeId: "n", fileId: "output/a.png", url: "files/output/a.png", index: 3, kind: "image" });
  });
});

describe("the app with output files", () => {
  let socket: FakeSocket;
  let app: EditorApp;
  beforeEach(() => {
    ({ app, socket } = connectedApp());
  });
  afterEach(() => stopApp(app));

  it("shows an output_file of the running run on its node and in the gallery, by kind", () => {
    socket.reply({ type: "run_started", run_id: "r1", nodes: ["save"], total: 1 });
    socket.reply({ type: "output_file", run_id: "r1", file_id: "output/beep_00001.wav", node_id: "save", kind: "audio", index: 0, mime: "audio/wav" });
    expect(app.session.get().nodeFiles.save[0].url).toBe("files/output/beep_00001.wav"); // no token in the page: none in the URL
    const gallery = renderToStaticMarkup(<AppContext.Provider value={app}><Gallery /></AppContext.Provider>);
    expect(gallery).toMatch(/data-testid="gallery-item" data-kind="audio"/);
    // a square tile with a play button (a full-width player row broke the grid); the node keeps its player
    expect(gallery).toMatch(/data-testid="output-file-audio-play"/);
    expect(gallery).toMatch(/<source src="files\/output\/beep_00001.wav" type="audio\/wav"/);
    expect(gallery).not.toMatch(/<audio[^>]* controls=""/);
  });
});
