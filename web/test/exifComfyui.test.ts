import { describe, expect, it } from "vitest";
import { comfyuiTexts, ExifError, graphFromExif, webpExif } from "../src/graph/exif";
import { foreignKind } from "../src/graph/foreign";

/** A WebP as ComfyUI's SaveAnimatedWEBP writes it: EXIF (big-endian TIFF, "Exif\0\0" prefix as Pillow keeps it) with
 *  ASCII "prompt:<json>" in Model (0x0110) and "workflow:<json>" in Make (0x010f). */
function comfyuiWebp(tags: [number, string][]): Uint8Array {
  const encoder = new TextEncoder();
  const values = tags.map(([, text]) => encoder.encode(`${text}\0`));
  const ifdSize = 2 + 12 * tags.length + 4;
  const tiff = new Uint8Array(8 + ifdSize + values.reduce((n, v) => n + v.length, 0));
  const view = new DataView(tiff.buffer);
  tiff.set(encoder.encode("MM"), 0);
  view.setUint16(2, 42);
  view.setUint32(4, 8);
  view.setUint16(8, tags.length);
  let data = 8 + ifdSize;
  tags.forEach(([tag], k) => {
    const entry = 10 + 12 * k;
    view.setUint16(entry, tag);
    view.setUint16(entry + 2, 2); // ASCII
    view.setUint32(entry + 4, values[k].length);
    view.setUint32(entry + 8, data);
    tiff.set(values[k], data);
    data += values[k].length;
  });
  const exif = new Uint8Array([...encoder.encode("Exif\0\0"), ...tiff]);
  const padded = exif.length % 2 ? [...exif, 0] : [...exif];
  const body = [...encoder.encode("WEBP"), ...encoder.encode("EXIF"), ...new Uint8Array(new Uint32Array([exif.length]).buffer), ...padded];
  return new Uint8Array([...encoder.encode("RIFF"), ...new Uint8Array(new Uint32Array([body.length]).buffer), ...body]);
}

const prompt = { "3": { class_type: "KSampler", inputs: { seed: 18446744073709551615n.toString() } } };
const workflow = { last_node_id: 3, links: [], nodes: [{ id: 3, type: "KSampler", widgets_values: [1, "fixed"] }] };

describe("ComfyUI's WebPs (graph in EXIF Model / Make)", () => {
  it("opens the workflow, as a ComfyUI PNG's workflow chunk, and it is imported as a ComfyUI workflow", () => {
    const bytes = comfyuiWebp([[0x0110, `prompt:${JSON.stringify(prompt)}`], [0x010f, `workflow:${JSON.stringify(workflow)}`]]);
    expect(comfyuiTexts(webpExif(bytes)!).prompt).toBe(JSON.stringify(prompt));
    const raw = graphFromExif(bytes, "WebP");
    expect(foreignKind(raw)).toBe("comfyui-workflow");
    expect((raw as { nodes: { type: string }[] }).nodes[0].type).toBe("KSampler");
  });

  it("falls back to the prompt when there is no workflow, and says so when the text is not JSON", () => {
    const onlyPrompt = comfyuiWebp([[0x0110, `prompt:${JSON.stringify(prompt)}`]]);
    expect(foreignKind(graphFromExif(onlyPrompt, "WebP"))).toBe("comfyui-api");
    const broken = comfyuiWebp([[0x010f, "workflow:{not json"]]);
    expect(() => graphFromExif(broken, "WebP")).toThrow(ExifError);
    expect(() => graphFromExif(broken, "WebP")).toThrow(/ComfyUI workflow \/ prompt \(its EXIF\) is not JSON/);
  });

  it("a WebP with neither says it carries no graph without claiming ComfyUI's hold none", () => {
    const camera = comfyuiWebp([[0x010f, "Canon"]]);
    expect(() => graphFromExif(camera, "WebP")).toThrow(/carries no graph: its EXIF has neither nodegraph's SaveImage record nor ComfyUI's workflow/);
  });
});
