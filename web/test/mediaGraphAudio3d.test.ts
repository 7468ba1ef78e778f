import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseJson } from "../src/graph/exactJson";
import { graphTextFromMedia, mediaKind, noGraphText } from "../src/graph/mediaGraph";
import { concat as cat } from "./pngFixture";

// `nodegraph run saved.wav|.glb|.ply|.obj` read the graph SaveAudio / SaveMesh / SavePointCloud embedded
// (nodegraph/media_graph.py), the editor's Open and drop said "not valid JSON" (an editor leftover). The fixtures are
// made by the plugins' own writers (fixtures/make_media_graph_fixtures.py: waveform.append_wav_text,
// mesh_files.with_embedded_text); Python's reader reads each of them back.
const fixture = (name: string) => new Uint8Array(readFileSync(fileURLToPath(new URL(`fixtures/${name}`, import.meta.url))));
const enc = (s: string) => new TextEncoder().encode(s);
const le32 = (n: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n, true); return b; };
const chunk = (kind: string, body: Uint8Array) => cat(enc(kind), le32(body.length), body, new Uint8Array(body.length % 2));
const wav = (...chunks: Uint8Array[]) => { const body = cat(enc("WAVE"), ...chunks); return cat(enc("RIFF"), le32(body.length), body); };
const text = '{"format_version":2,"nodes":{}}';

describe("the graph a saved sound or 3D file carries", () => {
  it("is read from the WAV, GLB, PLY and OBJ the plugins write, its big seed exact", () => {
    for (const [name, kind] of [["saved.wav", "WAV"], ["saved.glb", "GLB"], ["saved.ply", "PLY"], ["saved.obj", "OBJ"]] as const) {
      const bytes = fixture(name);
      expect(mediaKind(bytes)).toBe(kind);
      const graph = parseJson(graphTextFromMedia(bytes)!) as { metadata: { title: string }; nodes: { s: { inputs: { seed: unknown } } } };
      expect(graph.metadata.title, name).toBe("é 3d");
      expect(graph.nodes.s.inputs.seed, name).toBe(18446744073709551615n);
    }
  });

  it("reads a WAV's ICMT after other chunks and INFO fields, and stops at a damaged or cut one", () => {
    const info = (...fields: Uint8Array[]) => chunk("LIST", cat(enc("INFO"), ...fields));
    const sound = chunk("data", new Uint8Array(7)); // odd: a pad byte follows
    expect(graphTextFromMedia(wav(chunk("fmt ", new Uint8Array(16)), sound, info(chunk("INAM", enc("x\0")), chunk("ICMT", enc(`${text}\0`)))))).toBe(text);
    expect(graphTextFromMedia(wav(sound, info(chunk("INAM", enc("no comment\0")))))).toBeNull();
    expect(graphTextFromMedia(wav(sound))).toBeNull();
    const whole = wav(sound, info(chunk("ICMT", enc(`${text}\0`))));
    expect(graphTextFromMedia(whole.subarray(0, whole.length - 12))).toBe(text.slice(0, text.length - 11)); // as Python: what is there
    expect(graphTextFromMedia(whole.subarray(0, 30))).toBeNull();
    const sizes = new Uint8Array(12 + 8 * 200_000); // 200,000 empty chunks: the walk stops after 100,000
    sizes.set(cat(enc("RIFF"), le32(sizes.length - 8), enc("WAVE")));
    for (let i = 0; i < 200_000; i++) sizes.set(enc("junk"), 12 + 8 * i);
    expect(graphTextFromMedia(cat(sizes, info(chunk("ICMT", enc(text)))))).toBeNull();
  });

  it("reads a GLB's asset.extras.nodegraph only when it is an object, and a PLY / OBJ line only in the header", () => {
    const glb = (document: unknown) => {
      const json = enc(JSON.stringify(document));
      return cat(enc("glTF"), le32(2), le32(20 + json.length), le32(json.length), enc("JSON"), json);
    };
    expect(graphTextFromMedia(glb({ asset: { version: "2.0", extras: { nodegraph: { nodes: {} } } } }))).toBe('{"nodes":{}}');
    expect(graphTextFromMedia(glb({ asset: { version: "2.0", extras: { nodegraph: "text" } } }))).toBeNull();
    expect(graphTextFromMedia(glb({ asset: { version: "2.0" } }))).toBeNull();
    expect(graphTextFromMedia(glb([1]))).toBeNull();
    expect(graphTextFromMedia(glb({}).subarray(0, 18))).toBeNull();

    const ply = (header: string) => enc(`ply\r\nformat ascii 1.0\r\n${header}end_header\r\n0 0 0\r\n`);
    expect(graphTextFromMedia(ply(`comment nodegraph ${text}\r\n`))).toBe(text); // CRLF lines
    expect(graphTextFromMedia(ply("comment made by hand\r\n"))).toBeNull();
    expect(graphTextFromMedia(cat(ply(""), enc(`comment nodegraph ${text}\n`)))).toBeNull(); // after end_header: data
    expect(graphTextFromMedia(enc(`ply\ncomment ${"x".repeat(140_000)}\ncomment nodegraph ${text}\nend_header\n`))).toBeNull(); // past 128 KiB

    expect(graphTextFromMedia(enc(`# nodegraph ${text}\nv 0 0 0\n`))).toBe(text);
    expect(graphTextFromMedia(enc(`# nodegraph ${text}`))).toBe(text); // no newline at the end
    expect(mediaKind(enc("# made by hand\nv 0 0 0\n"))).toBeNull(); // an OBJ without a graph is plain text
    expect(graphTextFromMedia(cat(enc("# nodegraph "), Uint8Array.from([0xff, 0x0a]), enc("v 0 0 0\n")))).toBeNull(); // not UTF-8
  });

  it("says which node saves a file of that kind with its graph, and which one loads it", () => {
    expect(noGraphText("WAV")).toMatch(/^this WAV file carries no graph: only files saved by SaveAudio do .*LoadAudio/);
    expect(noGraphText("PLY")).toMatch(/SaveMesh or SavePointCloud .*LoadMesh or LoadPointCloud/);
    expect(noGraphText("Matroska")).toMatch(/^this WebM \/ MKV file carries no graph: only files saved by SaveVideo/);
  });
});
