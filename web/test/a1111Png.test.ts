import { describe, expect, it } from "vitest";
import { a1111Text, foreignFormat, foreignKind } from "../src/graph/foreign";
import { PngError, graphFromPng } from "../src/graph/png";
import { buildPng, tEXt } from "./pngFixture";

// An A1111 image dropped on the editor said it "was not saved by nodegraph's SaveImage or by ComfyUI" although it
// carries its generation parameters; the editor now sends them to the server (import_graph), which makes a
// text-to-image graph of them, as ComfyUI opens such images (an A1111 migrant's pass).
describe("an AUTOMATIC1111 image", () => {
  const text = "a red circle\nSteps: 4, Sampler: Euler a, Seed: 9, Size: 64x64";

  it("gives its parameters to the server's import", async () => {
    const raw = await graphFromPng(buildPng(tEXt("parameters", text)));
    expect(raw).toEqual({ parameters: text });
    expect(foreignKind(raw)).toBe("a1111-parameters");
    expect(foreignFormat(raw)).toContain("AUTOMATIC1111's generation parameters");
    expect(foreignKind({ parameters: text, other: 1 })).toBeNull();
  });

  it("is still refused when it carries nothing, naming every chunk looked for", async () => {
    await expect(graphFromPng(buildPng())).rejects.toThrow(PngError);
    await expect(graphFromPng(buildPng(tEXt("parameters", "  ")))).rejects.toThrow(/AUTOMATIC1111's "parameters"/);
  });
});

// A1111 can also save its parameters as a .txt beside each image, and its UI copies "PNG Info" as text: "not valid
// JSON: Expecting value" (a hostile re-test). Such text is read as the PNG's chunk is, by the server's rule.
describe("A1111's parameters as text", () => {
  it("is read when its last line is the settings line, and nothing else is", () => {
    expect(a1111Text("\uFEFFa cat\r\nSteps: 20, Seed: 1\r\n")).toEqual({ parameters: "a cat\r\nSteps: 20, Seed: 1" });
    expect(a1111Text("just a prompt")).toBeNull();
    expect(a1111Text('{"Steps: 1": 2}')).toBeNull();
    expect(a1111Text("Steps: 3, Seed: 1\nthen a prompt")).toBeNull(); // the settings line is the last
    expect(a1111Text(`x\nSteps: 1, ${"a".repeat(100_001)}`)).toBeNull();
  });
});
