import { describe, expect, it } from "vitest";
import { displayOutput } from "../src/editor/outputText";

/**
 * An output node that passes its image on (a Preview Bridge: outputs IMAGE and records files) showed
 * `{"images": {"type": "Tensor", "shape": [1,64,64,3], "dtype": "torch.float32"}}` as text beside its preview.
 */
const TENSOR = { type: "Tensor", shape: [1, 64, 64, 3], dtype: "torch.float32" };
const FILE = { file_id: "out/a.png", kind: "image" };

describe("an output node's result text", () => {
  it("shows nothing for a pass-through image when the node has files (the picture is shown)", () => {
    // as the server sends them: files apart from the outputs (the node shows them), outputs without `files`
    expect(displayOutput({ images: TENSOR }, true)).toBeNull();
    expect(displayOutput(TENSOR, true)).toBeNull();
    expect(displayOutput({ value: 3, images: TENSOR }, true)).toBe(JSON.stringify({ value: 3 }, null, 1));
    expect(displayOutput({ images: TENSOR, files: [FILE] })).toBeNull();
    expect(displayOutput({ images: [TENSOR, TENSOR], mask: { type: "Image", size: [64, 64], mode: "L" }, files: [FILE] }))
      .toBeNull();
  });

  it("writes a tensor or image short, not as its JSON description, when no file shows it", () => {
    expect(displayOutput({ images: TENSOR })).toBe("images: tensor 1×64×64×3 float32");
    expect(displayOutput({ picture: { type: "Image", size: [512, 384], mode: "RGB" }, files: [] }))
      .toBe("picture: image 512×384 RGB");
    expect(displayOutput({ latents: [{ type: "ndarray", shape: [4, 8, 8], dtype: "float16" }] }))
      .toBe("latents: ndarray 4×8×8 float16");
    expect(displayOutput(TENSOR)).toBe("tensor 1×64×64×3 float32");
  });

  it("keeps the other values as before: text as it is, the rest as JSON beside the pictures' lines", () => {
    expect(displayOutput({ text: "hello", images: TENSOR })).toBe("hello");
    expect(displayOutput({ value: 3, images: TENSOR, files: [FILE] })).toBe(JSON.stringify({ value: 3 }, null, 1));
    expect(displayOutput({ value: 3, images: TENSOR })).toBe(`images: tensor 1×64×64×3 float32\n${JSON.stringify({ value: 3 }, null, 1)}`);
    expect(displayOutput({ files: [FILE] })).toBeNull();
    expect(displayOutput("plain")).toBe("plain");
    expect(displayOutput(null)).toBeNull();
    // a dict that merely has a `type` key is data, not a picture
    expect(displayOutput({ box: { type: "face", shape: "square" } })).toBe(JSON.stringify({ box: { type: "face", shape: "square" } }, null, 1));
  });
});
