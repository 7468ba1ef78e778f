import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { OutputFileView } from "../src/editor/OutputFiles";
import { FILE_KINDS, describeItem, fileView, formatBytes, outputItemFrom } from "../src/run/media";

// kind "file": a plugin's media no other kind shows (MIDI, a zip) — a download tile with name, size and MIME type
describe("the generic file kind", () => {
  const record = { file_id: "output/song_00001.mid", node_id: "m", kind: "file", mime: "audio/midi", bytes: 5120, index: 0 };
  const item = outputItemFrom("r1", record, "files/output/song_00001.mid");

  it("is a known kind, shown as a download naming the MIME type", () => {
    expect(FILE_KINDS).toContain("file");
    const view = fileView(item);
    expect(view.element).toBe("download");
    expect(view.element === "download" && view.reason).toContain("audio/midi");
  });

  it("captions the download with the name, size and MIME type", () => {
    expect(item.bytes).toBe(5120);
    expect(describeItem(item)).toBe("song_00001.mid · 5.0 KB · audio/midi");
    const html = renderToStaticMarkup(<OutputFileView item={item} />);
    expect(html).toContain('data-kind="file"');
    expect(html).toContain('download="song_00001.mid"');
    expect(html).toContain("song_00001.mid · 5.0 KB · audio/midi");
  });

  it("writes sizes for people", () => {
    expect(formatBytes(812)).toBe("812 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.0 GB");
  });
});
