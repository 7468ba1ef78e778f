"""The video plugin's nodes and graphs, run headless the way a user runs them (small sizes and steps).

Graph tests use the shipped tiny-world checkpoint and, for the motion module, a random one written here
for the same UNet (so they run before and without the shipped module's training); the shipped module is
exercised when it exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nodegraph import NodeContext, NodeInputError, Session
from nodegraph.errors import GraphValidationError, NodeExecutionError
from nodegraph.model_paths import ModelPaths
from nodegraph_video import SHIPPED_MODELS
from nodegraph_video.motion_module import MotionConfig, MotionModuleSet
from nodegraph_video.motion_training import save_motion_module

torch.set_num_threads(1)
PLUGIN = Path(__file__).resolve().parents[1]
ROOT = PLUGIN.parents[1]
TINY_CONFIG = MotionConfig(channels=(64, 128, 128), layers_per_block=2, max_frames=32)
needs_shipped = pytest.mark.skipif(not (SHIPPED_MODELS / "tiny_world_motion.safetensors").is_file(),
                                   reason="the shipped motion module is not trained yet")


@pytest.fixture(scope="module")
def motion_dir(tmp_path_factory) -> Path:
    """A model folder with a random motion module for the tiny-world UNet and one for an SD1-shaped UNet."""
    folder = tmp_path_factory.mktemp("models") / "motion_modules"
    folder.mkdir()
    torch.manual_seed(0)
    modules = MotionModuleSet(TINY_CONFIG)
    with torch.no_grad():
        for name, parameter in modules.named_parameters():
            if ".proj_out." in name:
                parameter.mul_(0.1)
    save_motion_module(folder / "random_tiny.safetensors", modules)
    save_motion_module(folder / "random_sd1.safetensors",
                       MotionModuleSet(MotionConfig(channels=(32, 32, 64, 64), layers_per_block=2)))
    save_motion_module(folder / "random_wide.safetensors",
                       MotionModuleSet(MotionConfig(channels=(32, 64, 64), layers_per_block=2)))
    return folder


@pytest.fixture(scope="module")
def session(motion_dir, tmp_path_factory) -> Session:
    """A session with the video plugin (entry point), the repo's checkpoints and a temporary model root."""
    paths = ModelPaths(roots=[motion_dir.parent], extra={"checkpoints": [ROOT / "models" / "checkpoints"]})
    return Session(autoload=True, allow=["video"], model_paths=paths,
                   output_dir=tmp_path_factory.mktemp("output"), input_dir=tmp_path_factory.mktemp("input"))


def _graph(name: str, changes: dict) -> dict:
    graph = json.loads((PLUGIN / "graphs" / f"{name}.json").read_text())
    for (node, key), value in changes.items():
        graph["nodes"][node]["inputs"][key] = value
    return graph


def _small(name: str, motion: str = "random_tiny.safetensors", frames: int = 4, changes: dict | None = None) -> dict:
    """The shipped graph at 4 frames and 2 steps, with the given motion module and input changes."""
    graph = _graph(name, {("motion", "motion_module_name"): motion, **(changes or {})})
    for node in graph["nodes"].values():
        inputs = node["inputs"]
        kind = node["type"].removeprefix("video.")          # the plugin's graphs name its nodes qualified
        if "steps" in inputs:
            inputs["steps"] = 2
        if kind in ("TinyWorldVideoPrompt", "PromptTravel", "EmptyVideoLatent", "ImageToVideo",
                            "InterpolateFrames", "RenderTinyWorldClip", "CrossfadeFrames"):
            inputs["frames"] = frames
        if kind == "PromptTravel":
            inputs["prompts"] = inputs["prompts"].replace("7:", f"{frames - 1}:")
    return graph


def _without_cross_frame(graph: dict) -> dict:
    """txt2vid without its CrossFrameAttention node ("consistent"): the sampler reads the motion module's MODEL."""
    graph["nodes"]["sample"]["inputs"]["model"] = graph["nodes"]["consistent"]["inputs"]["model"]
    del graph["nodes"]["consistent"]
    return graph


def _without_guidance(graph: dict) -> dict:
    """txt2vid without its ClipConsistencyGuidance node ("steady"): SampleVideo with no guidance."""
    del graph["nodes"]["steady"], graph["nodes"]["sample"]["inputs"]["guidance"]
    return graph


def _files(result, node: str) -> list[dict]:
    return result.outputs[node]["files"]


def test_plugin_is_found_by_entry_point(session):
    """The `video` entry point registers its nodes, the MOTION_MODULE type and the motion_modules folder."""
    assert "MOTION_MODULE" in session.registry.types
    for name in ("EmptyVideoLatent", "PromptTravel", "ApplyMotionModule", "SampleVideo", "ImageToVideo",
                 "VideoToVideo", "InterpolateFrames", "LoadVideo", "SaveVideo", "TrainMotionModule"):
        assert session.registry.node_plugin[name] == "video"


@pytest.mark.parametrize("name", ["txt2vid", "img2vid", "interpolate", "vid2vid"])
def test_graph_runs_headless_and_writes_video_files(session, name):
    """Each shipped graph runs (4 frames, 2 steps) and writes an mp4 and a gif of 4 frames plus a contact sheet."""
    result = session.run(_small(name))
    for node, suffix in (("video", ".mp4"), ("gif", ".gif")):
        (file,) = _files(result, node)
        assert file["kind"] == "video" and file["frames"] == 4 and file["width"] == 64
        assert Path(file["path"]).suffix == suffix and Path(file["path"]).stat().st_size > 100
    (sheet,) = _files(result, "save_sheet")
    assert sheet["kind"] == "image"


FRAME_RATE_SOURCE = {"txt2vid": "latent", "img2vid": "sample", "interpolate": "sample", "vid2vid": "sample"}


@pytest.mark.parametrize("name", sorted(FRAME_RATE_SOURCE))
def test_the_graph_frame_rate_is_set_in_one_place(session, name):
    """Changing the fps of the graph's latent (txt2vid) or video sampler changes the rate of every file it saves:
    SaveVideo's fps is linked to that node's fps output (it was a fixed 8 in every shipped graph)."""
    import av

    source = FRAME_RATE_SOURCE[name]
    graph = _small(name, changes={(source, "fps"): 12.0})
    assert all(node["inputs"]["fps"] == {"node": source, "output": "fps"}
               for node in graph["nodes"].values() if node["type"] == "video.SaveVideo")
    result = session.run(graph)
    mp4, gif = _files(result, "video")[0], _files(result, "gif")[0]
    assert mp4["fps"] == 12.0 and abs(gif["duration"] - gif["frames"] / 12.0) <= 0.005   # 80, 90 ms delays: the
    # clip's length to a centisecond
    with av.open(mp4["path"]) as container:
        assert float(container.streams.video[0].average_rate) == 12.0


def test_img2vid_keeps_the_first_frame(session):
    """ImageToVideo's first frame decodes to (nearly) the given image."""
    graph = _small("img2vid")
    graph["nodes"]["decode"]["inputs"]["latent"] = {"node": "sample", "output": "latent"}
    result = session.run(graph, outputs=["decode", "still"])
    frames, still = result.outputs["decode"]["image"], result.outputs["still"]["image"]
    assert frames.shape[0] == 4
    first_error = (frames[0] - still[0]).abs().mean()
    assert first_error < 0.05 and first_error < (frames[-1] - still[0]).abs().mean()


def test_mp4_carries_the_graph(session):
    """The saved mp4's comment metadata holds the graph that made it (drop it on the editor)."""
    from nodegraph_video.video_io import read_video

    result = session.run(_small("txt2vid"))
    clip = read_video(_files(result, "video")[0]["path"])
    assert clip.frames.shape == (4, 64, 64, 3)
    assert "SampleVideo" in json.loads(clip.graph_json)["nodes"]["sample"]["type"]


def test_context_windows_sample_a_clip_longer_than_the_window(session):
    """A 6-frame clip samples with a 4-frame window overlapping by 2."""
    graph = _small("txt2vid", frames=6, changes={("animated", "context_length"): 4, ("animated", "context_overlap"): 2})
    assert _files(session.run(graph), "video")[0]["frames"] == 6


def test_context_window_longer_than_the_clip_is_a_node_error(session):
    """A context window of 8 frames on a 4-frame clip fails while sampling (where the clip length is known), on
    the sampler's `model` input, with a message naming the node and input that hold the setting (it named
    `context_length`, which Sample Video does not have)."""
    graph = _small("txt2vid", changes={("animated", "context_length"): 8})
    with pytest.raises(NodeExecutionError, match="longer than the clip") as info:
        session.run(graph)
    assert info.value.exception.input == "model" and info.value.node_id == "sample"
    assert "set context_length on Apply Motion Module 'animated' to 4 or less" in str(info.value.exception)


def test_a_clip_past_the_position_table_names_the_node_with_context_length(session):
    """34 frames in one window of a module that knows 32 positions: the error says which node's context_length
    to set, and to what."""
    with pytest.raises(NodeExecutionError, match="frame positions up to 32") as info:
        session.run(_small("txt2vid", frames=34))
    assert info.value.exception.input == "model" and info.value.node_id == "sample"
    assert "set context_length on Apply Motion Module 'animated' to 32 or less" in str(info.value.exception)


def test_motion_module_of_another_family_is_a_node_error(session):
    """An SD1-shaped module (4 levels) on the 3-level tiny UNet fails at ApplyMotionModule naming motion_module."""
    with pytest.raises(NodeExecutionError, match="4 levels") as info:
        session.run(_small("txt2vid", motion="random_sd1.safetensors"))
    assert info.value.exception.input == "motion_module" and info.value.node_id == "animated"


def test_motion_module_of_other_widths_is_a_node_error(session):
    """A module with the tiny UNet's levels but other channel widths fails while sampling, naming motion_module."""
    with pytest.raises(NodeExecutionError, match="another model family") as info:
        session.run(_small("txt2vid", motion="random_wide.safetensors"))
    assert info.value.exception.input == "motion_module"


def test_unknown_or_corrupt_motion_module_is_a_node_error(session, motion_dir):
    """A missing name is a validation error listing the available files (the user's folder and the plugin's
    shipped models/, through register_model_dirs); a name leaving the folder is refused; a file that is not a
    motion module is a node error naming motion_module_name."""
    with pytest.raises(GraphValidationError, match="random_tiny.safetensors") as info:
        session.run(_small("txt2vid", motion="nope.safetensors"))
    error = info.value.errors[0]
    assert error.input == "motion_module_name" and "tiny_world_motion.safetensors" in error.message
    for name in ("../checkpoints/tiny_world.safetensors", "/etc/passwd", "a\x00b.safetensors"):
        with pytest.raises((GraphValidationError, NodeExecutionError)):
            session.run(_small("txt2vid", motion=name))
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(motion_dir / "not_motion.safetensors"))
    with pytest.raises(NodeExecutionError, match="not an AnimateDiff motion module") as info:
        session.run(_small("txt2vid", motion="not_motion.safetensors"))
    assert info.value.exception.input == "motion_module_name"


def test_core_ksampler_works_with_frames_set_on_the_patch(session):
    """With `frames` set on ApplyMotionModule the core KSampler samples the clip; without it, a clear error."""
    graph = _small("txt2vid", changes={("animated", "frames"): 4, ("consistent", "frames"): 4, ("steady", "frames"): 4})
    graph["nodes"]["sample"]["type"] = "KSampler"
    del graph["nodes"]["sample"]["inputs"]["denoise"]
    assert _files(session.run(graph), "video")[0]["frames"] == 4
    graph["nodes"]["animated"]["inputs"]["frames"] = 0
    with pytest.raises(NodeExecutionError, match="the motion module does not know the clip length"):
        session.run(graph)


def test_load_and_save_video_round_trip(session):
    """SaveVideo (webm) → LoadVideo gives the frames back; fps resampling picks frames; every format writes."""
    from nodegraph_video.video_io import FORMATS

    source = {"type": "RenderTinyWorldClip",
              "inputs": {"caption": "a large red circle moving from left to right, on a blue background",
                         "frames": 6, "size": 64}}
    nodes = {"source": source}
    for fmt in FORMATS:
        nodes[fmt] = {"type": "SaveVideo", "inputs": {"images": {"node": "source", "output": "images"}, "fps": 6.0,
                                                      "format": fmt, "filename_prefix": f"roundtrip/{fmt}"}}
    result = session.run({"format_version": 1, "nodes": nodes})
    webm = Path(result.outputs["webm"]["files"][0]["path"])
    assert {Path(result.outputs[f]["files"][0]["path"]).suffix for f in FORMATS} == {".mp4", ".webm", ".gif", ".webp"}
    gif, mp4 = result.outputs["gif"]["files"][0], result.outputs["mp4"]["files"][0]
    assert gif["fps"] == 6.0 and "info" not in gif   # centiseconds alternating (170, 160, 170 ms): 6 frames in 1 s
    assert mp4["fps"] == 6.0 and "info" not in mp4
    folder = Path(session.input_dir)
    (folder / "clip.webm").write_bytes(webm.read_bytes())
    loaded = session.run({"format_version": 1, "nodes": {
        "load": {"type": "LoadVideo", "inputs": {"video": "clip.webm", "fps": 0.0, "start_frame": 1, "max_frames": 64}},
        "half": {"type": "LoadVideo", "inputs": {"video": "clip.webm", "fps": 3.0, "start_frame": 0, "max_frames": 64}},
        "truth": source}}, outputs=["load", "half", "truth"])
    frames = loaded.outputs["load"]["images"]
    assert frames.shape == (5, 64, 64, 3) and loaded.outputs["load"]["frames"] == 5
    assert (frames - loaded.outputs["truth"]["images"][1:]).abs().mean() < 0.03
    assert loaded.outputs["half"]["frames"] == 3 and loaded.outputs["half"]["fps"] == 3.0


def test_odd_sizes_are_reported_as_the_file_holds_them(session):
    """mp4/webm pad an odd side by one edge row/column (4:2:0 chroma); the file result said 41×57, the file is 42×58.
    The node warns that it padded (the user asked for 41×57). GIF keeps the size as it is."""
    import av

    nodes = {"source": {"type": "ImageScale", "inputs": {"images": {"node": "clip", "output": "images"},
                                                         "width": 41, "height": 57}},
             "clip": {"type": "RenderTinyWorldClip", "inputs": {"caption": "a large red circle moving from left to "
                                                                           "right, on a blue background",
                                                                "frames": 2, "size": 64}}}
    for fmt in ("mp4", "gif"):
        nodes[fmt] = {"type": "SaveVideo", "inputs": {"images": {"node": "source", "output": "image"}, "fps": 4.0,
                                                      "format": fmt, "filename_prefix": f"odd/{fmt}"}}
    result = session.run({"format_version": 1, "nodes": nodes})
    outputs = result.outputs
    mp4, gif = outputs["mp4"]["files"][0], outputs["gif"]["files"][0]
    (warning,) = [w for w in result.warnings if w["node_id"] in ("mp4", "gif")]     # told, not only in the fields
    assert warning["node_id"] == "mp4" and "41×57 frames were padded to 42×58" in warning["message"]
    assert "column and row" in warning["message"]
    with av.open(mp4["path"]) as container:
        stream = container.streams.video[0]
        assert (mp4["width"], mp4["height"]) == (stream.codec_context.width, stream.codec_context.height) == (42, 58)
    assert (gif["width"], gif["height"]) == (41, 57)


def test_bad_video_files_are_node_errors(session):
    """Corrupt and unsupported files name `video`; a start past the end names `start_frame`; no file, `video`
    (found by validation, before any node runs)."""
    folder = Path(session.input_dir)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    (folder / "clip.flv").write_bytes(b"RIFF")

    def load(name: str) -> None:
        inputs = {"video": name, "fps": 0.0, "start_frame": 0, "max_frames": 8}
        session.run({"format_version": 1, "nodes": {"load": {"type": "LoadVideo", "inputs": inputs}}}, outputs=["load"])

    for name, message in [("broken.mp4", "not a readable video"), ("clip.flv", "unsupported file type")]:
        with pytest.raises(NodeExecutionError, match=message) as info:
            load(name)
        assert info.value.exception.input == "video"
    with pytest.raises(GraphValidationError, match="no file 'missing.mp4' in the input folder") as info:
        load("missing.mp4")
    assert info.value.errors[0].input == "video"


def test_zero_and_too_many_frames_are_refused(session):
    """A slice past the clip, a pick of nothing and more frames than the limit are errors naming the input."""
    from nodegraph import GraphValidationError

    render = {"type": "RenderTinyWorldClip", "inputs": {"caption": "a small red circle moving from left to right, "
                                                                   "on a blue background", "frames": 4, "size": 32}}
    for node, argument, message in (
            ({"type": "SliceFrames", "inputs": {"start": 9, "length": 0}}, "start", "has 4 frames"),
            ({"type": "PickFrames", "inputs": {"indices": "3:1"}}, "indices", "selects no frame"),
            ({"type": "PickFrames", "inputs": {"indices": "7"}}, "indices", "does not exist")):
        node["inputs"]["frames"] = {"node": "render", "output": "images"}
        with pytest.raises(NodeExecutionError, match=message) as info:
            session.run({"format_version": 1, "nodes": {"render": render, "op": node}}, outputs=["op"])
        assert info.value.exception.input == argument
    with pytest.raises(GraphValidationError, match="frames"):
        session.run({"format_version": 1, "nodes": {"latent": {"type": "EmptyVideoLatent", "inputs": {"frames": 100000}}}},
                    outputs=["latent"])


def test_save_video_leaves_nothing_when_encoding_fails(session, monkeypatch):
    """A failing encoder leaves no file (not even the reserved name) in the output folder."""
    import nodegraph_video.video_io as video_io

    def broken(*args, **kwargs):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(video_io, "_write_av", broken)
    before = set(Path(session.output_dir).rglob("*"))
    graph = {"format_version": 1, "nodes": {
        "source": {"type": "RenderTinyWorldClip", "inputs": {"frames": 3, "size": 32}},
        "save": {"type": "SaveVideo", "inputs": {"images": {"node": "source", "output": "images"}, "format": "mp4",
                                                 "filename_prefix": "broken/clip"}}}}
    with pytest.raises(NodeExecutionError, match="encoder exploded"):
        session.run(graph)
    assert set(Path(session.output_dir).rglob("*")) - before <= {Path(session.output_dir) / "broken"}


@needs_shipped
def test_shipped_motion_module_loads_for_the_shipped_model(session):
    """The shipped module loads, matches the tiny-world UNet and runs the txt2vid graph."""
    result = session.run(_small("txt2vid", motion="tiny_world_motion.safetensors"))
    assert _files(result, "video")[0]["frames"] == 4


def test_training_graph_smoke_run_saves_a_loadable_module(session, motion_dir, tmp_path):
    """The shipped training graph at 4 clips × 4 frames, 2 steps trains, saves (never overwriting) and reloads."""
    graph = _graph("train_tiny_world_motion", {("train", "clips"): 4, ("train", "frames"): 4, ("train", "steps"): 2,
                                               ("train", "batch_size"): 1, ("train", "checkpoint_every"): 1,
                                               ("train", "run_name"): f"smoke_{tmp_path.name}",
                                               ("save", "filename"): "smoke.safetensors"})
    first = session.run(graph).outputs["save"]["model_files"][0]["path"]
    again = Session(autoload=True, allow=["video"], model_paths=session.model_paths, output_dir=session.output_dir)
    result = again.run(graph, outputs=["train", "save"])
    report = json.loads(result.outputs["train"]["report"])
    assert report["steps"] == 2 and report["resumed_at"] == 2           # a new session resumes the finished run
    assert report["config"].startswith("channels [64, 128, 128]")
    saved, second = Path(first), Path(result.outputs["save"]["model_files"][0]["path"])
    assert saved.name == "smoke.safetensors" and saved.parent == motion_dir
    assert second.name == "smoke_1.safetensors" and saved.is_file()    # never overwritten: the next free name
    from nodegraph_video.motion_module import load_motion_state
    from safetensors.torch import load_file

    modules, layout = load_motion_state(load_file(str(second)))
    assert layout == "animatediff" and modules.config.channels == (64, 128, 128)


def test_free_phrasing_renders_and_encodes_and_unknown_words_are_named(session):
    """"a red circle moving up" is a clip (its ground truth rises; the prompt node gives 8 per-frame rows);
    a word neither grammar knows is an error against the caption input that names the word."""
    result = session.run({"format_version": 1, "nodes": {
        "clip": {"type": "RenderTinyWorldClip", "inputs": {"caption": "a red circle moving up", "frames": 8}},
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "prompt": {"type": "TinyWorldVideoPrompt", "inputs": {"text_encoder": {"node": "ckpt", "output": "text_encoder"},
                                                              "text": "a red circle moving up", "frames": 8}},
    }}, outputs=["clip", "prompt"])
    frames = result.outputs["clip"]["images"]
    red = (frames[..., 0] > 0.6) & (frames[..., 1] < 0.3)                     # (F, H, W) the red object
    rows = torch.arange(frames.shape[1], dtype=torch.float32)
    centre = [(red[k].float().sum(1) * rows).sum() / red[k].sum() for k in (0, 7)]
    assert centre[0] > centre[1] + 20                                          # bottom → top
    assert result.outputs["prompt"]["keyframes"].startswith("a small red circle at the bottom")
    assert all(v.shape[0] == 8 for v in result.outputs["prompt"]["conditioning"].values())
    for node, key in (("RenderTinyWorldClip", "caption"), ("TinyWorldVideoPrompt", "text")):
        inputs = {key: "a red circle bouncing"}
        if node == "TinyWorldVideoPrompt":
            inputs["text_encoder"] = {"node": "ckpt", "output": "text_encoder"}
        with pytest.raises(NodeExecutionError) as info:
            session.run({"format_version": 1, "nodes": {
                "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
                "n": {"type": node, "inputs": inputs}}}, outputs=["n"])
        assert info.value.exception.input == key and "'bouncing'" in str(info.value)


def test_sample_video_with_frame_correlated_noise(session):
    """SampleVideo's noise_correlation starts frames from partly shared noise (api.sample(noise=...)): the clip
    differs from the independent-noise clip, its frames are closer to each other, and 0 keeps the old result."""
    def frames_for(correlation: float) -> torch.Tensor:
        graph = _small("txt2vid", changes={("sample", "noise_correlation"): correlation})
        graph = _without_guidance(_without_cross_frame(graph))
        return session.run(graph, outputs=["sample"]).outputs["sample"]["latent"]["samples"]

    independent, shared, again = frames_for(0.0), frames_for(0.8), frames_for(0.0)
    assert torch.equal(independent, again) and not torch.allclose(independent, shared)

    def spread(latents: torch.Tensor) -> float:          # mean distance of each frame from the clip's mean frame
        return float((latents - latents.mean(0, keepdim=True)).pow(2).mean())

    assert spread(shared) < spread(independent)


def test_cross_frame_attention_makes_frames_alike_and_leaves_the_base_model_alone(session):
    """CrossFrameAttention between the motion module and SampleVideo: frames 1.. move toward frame 0's look
    (smaller spread), frame-0-only clips are unchanged by strength 0, the unpatched graph is unchanged after, and
    KSampler without a clip length is a node error naming `frames`."""
    def with_cross(mode: str | None, strength: float = 1.0) -> dict:
        graph = _small("txt2vid")                    # the shipped graph: "consistent" = CrossFrameAttention
        if mode:
            graph["nodes"]["consistent"]["inputs"].update(mode=mode, strength=strength)
        else:
            _without_cross_frame(graph)
        return graph

    def latents(graph: dict) -> torch.Tensor:
        return session.run(graph, outputs=["sample"]).outputs["sample"]["latent"]["samples"]

    def spread(x: torch.Tensor) -> float:
        return float((x - x.mean(0, keepdim=True)).pow(2).mean())

    plain = latents(with_cross(None))
    crossed = latents(with_cross("first"))
    assert spread(crossed) < spread(plain)
    torch.testing.assert_close(latents(with_cross("first_and_self", 0.0)), plain)
    assert torch.equal(latents(with_cross(None)), plain)                 # the cached base model is untouched

    graph = with_cross("first_and_self")
    graph["nodes"]["sample"]["type"] = "KSampler"
    del graph["nodes"]["sample"]["inputs"]["denoise"]
    graph["nodes"]["animated"]["inputs"]["frames"] = 4                    # the motion module knows; the patch does not
    with pytest.raises(NodeExecutionError, match="cross-frame attention does not know the clip length") as info:
        session.run(graph)
    assert info.value.exception.input == "frames"


def test_clip_consistency_guidance_reaches_sample_video(session):
    """ClipConsistencyGuidance into SampleVideo's `guidance`: the clip changes with scale > 0, scale 0 (or a sigma
    range the schedule never reaches) keeps the result without guidance, and an empty range is a node error."""
    def clip(scale: float | None, **inputs) -> torch.Tensor:
        graph = _without_guidance(_small("txt2vid"))
        if scale is not None:
            graph["nodes"]["steady"] = {"type": "ClipConsistencyGuidance", "inputs": {"scale": scale, **inputs}}
            graph["nodes"]["sample"]["inputs"]["guidance"] = {"node": "steady", "output": "guidance"}
        return session.run(graph, outputs=["sample"]).outputs["sample"]["latent"]["samples"]

    plain = clip(None)
    for statistic in ("mean", "median"):
        assert not torch.allclose(clip(0.5, statistic=statistic), plain)
    torch.testing.assert_close(clip(0.0), plain)
    torch.testing.assert_close(clip(0.5, sigma_low=1000.0, sigma_high=2000.0), plain)
    with pytest.raises(NodeExecutionError, match="above sigma_high") as info:
        clip(0.5, sigma_low=2.0, sigma_high=1.0)
    assert info.value.exception.input == "sigma_low"


def test_sample_video_free_init(session):
    """free_init_iterations 2 samples the clip twice (another, finite, deterministic result); FreeInit with
    partial denoising is a node error naming the input."""
    def clip(iterations: int, denoise: float = 1.0) -> torch.Tensor:
        graph = _small("txt2vid", changes={("sample", "free_init_iterations"): iterations,
                                           ("sample", "denoise"): denoise})
        return session.run(graph, outputs=["sample"]).outputs["sample"]["latent"]["samples"]

    once, twice = clip(1), clip(2)
    assert twice.shape == once.shape and torch.isfinite(twice).all() and not torch.allclose(once, twice)
    assert torch.equal(clip(2), twice)                                    # deterministic
    with pytest.raises(NodeExecutionError, match="needs denoise 1") as info:
        clip(2, denoise=0.5)
    assert info.value.exception.input == "free_init_iterations"


def test_training_stage_starts_from_a_module(session, motion_dir, tmp_path):
    """train_tiny_world_motion_more.json: TrainMotionModule with init_motion_module starts from that module's
    weights (one step at lr ~0 keeps them), and a module of another architecture is a node error naming the
    input."""
    from nodegraph_video.motion_module import load_motion_state
    from safetensors.torch import load_file

    changes = {("start", "motion_module_name"): "random_tiny.safetensors", ("train", "clips"): 4,
               ("train", "frames"): 4, ("train", "steps"): 1, ("train", "batch_size"): 1,
               ("train", "lr"): 1e-12, ("train", "warmup_steps"): 0, ("train", "ema_decay"): 0.0,
               ("train", "run_name"): f"stage_{tmp_path.name}", ("save", "filename"): "stage.safetensors"}
    graph = _graph("train_tiny_world_motion_more", changes)
    saved = session.run(graph).outputs["save"]["model_files"][0]["path"]
    trained, _ = load_motion_state(load_file(saved))
    start, _ = load_motion_state(load_file(str(motion_dir / "random_tiny.safetensors")))
    for (name, a), b in zip(trained.state_dict().items(), start.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)  # not the zero-initialised identity

    graph = _graph("train_tiny_world_motion_more", {**changes, ("start", "motion_module_name"): "random_wide.safetensors"})
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception.input == "init_motion_module"


def test_train_motion_module_shape_weights_are_checked_before_a_run(session):
    """A bad `shape_weights` literal is a validation error on that input (nothing is rendered or trained)."""
    graph = json.loads((PLUGIN / "graphs" / "train_tiny_world_motion.json").read_text())
    trainer = next(node_id for node_id, node in graph["nodes"].items() if node["type"].endswith("TrainMotionModule"))
    for bad in ("hexagon: 2", "star: -1", "star 3"):
        graph["nodes"][trainer]["inputs"]["shape_weights"] = bad
        errors = session.validate(graph)
        assert [e.input for e in errors] == ["shape_weights"], errors
    graph["nodes"][trainer]["inputs"]["shape_weights"] = "star: 3"
    assert session.validate(graph) == []


def test_changing_only_the_latent_frames_says_which_node_to_change(session):
    """txt2vid with latent.frames alone changed: the error names the prompt node's frames, lists 1 / F once."""
    graph = _small("txt2vid")
    graph["nodes"]["latent"]["inputs"]["frames"] = 6
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    message = str(info.value.exception)
    assert info.value.exception.input == "positive"
    assert "the conditioning is for 4 frames but the latent has 6" in message and "frames) to 6" in message
    assert message.count("6 (one per frame") == 1 and "every clip" not in message


def test_latent_sizes_and_frame_totals_are_checked_before_the_run(session):
    """A width off the multiple of 8 is a validation error; frames × clips over the latent's limit names both."""
    graph = _small("txt2vid")
    graph["nodes"]["latent"]["inputs"]["width"] = 63
    assert [e.input for e in session.validate(graph) if e.node_id == "latent"] == ["width"]
    from nodegraph_video import nodes as plugin

    node = plugin.EmptyVideoLatent()
    node.context = NodeContext("n", "EmptyVideoLatent", lambda *e: None, lambda n: None, session.services)
    with pytest.raises(NodeInputError, match=r"frames × batch_size = 256 × 64 = 16384") as error:
        node.run(width=64, height=64, frames=256, fps=8.0, batch_size=64)
    assert error.value.input == "batch_size"


def test_one_frame_prompt_is_a_one_row_conditioning(session):
    """TinyWorldVideoPrompt with frames 1 gives one row (the first keyframe), not a ZeroDivisionError."""
    result = session.run({"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "prompt": {"type": "TinyWorldVideoPrompt",
                   "inputs": {"text_encoder": {"node": "ckpt", "output": "text_encoder"},
                              "text": "a red circle moving up", "frames": 1}},
    }}, outputs=["prompt"])
    assert all(v.shape[0] == 1 for v in result.outputs["prompt"]["conditioning"].values())


def test_a_batch_of_clips_is_saved_one_file_per_clip(session):
    """txt2vid with batch_size 2 writes two 4-frame files per format (clip_frames is linked to the latent's
    frames), as the audio plugin writes one file per batch item; a clip length that does not divide the
    frames is an error naming clip_frames."""
    graph = _small("txt2vid", changes={("latent", "batch_size"): 2})
    result = session.run(graph)
    for node in ("video", "gif"):
        files = _files(result, node)
        assert len(files) == 2 and all(f["frames"] == 4 for f in files)
        assert len({f["path"] for f in files}) == 2
    render = {"type": "RenderTinyWorldClip", "inputs": {"frames": 4, "size": 32}}
    save = {"type": "SaveVideo", "inputs": {"images": {"node": "render", "output": "images"}, "format": "gif",
                                            "clip_frames": 3, "filename_prefix": "split/bad"}}
    with pytest.raises(NodeExecutionError, match="do not split into clips of 3") as info:
        session.run({"format_version": 1, "nodes": {"render": render, "save": save}})
    assert info.value.exception.input == "clip_frames"


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_animated_images_keep_repeated_frames(session, fmt):
    """A still clip saved as GIF / WebP holds every frame (Pillow and libwebp would merge identical ones into
    one long frame) and loads back whole."""
    from PIL import Image

    render = {"type": "RenderTinyWorldClip", "inputs": {"caption": "a small red circle, on a blue background",
                                                        "frames": 5, "size": 32}}
    save = {"type": "SaveVideo", "inputs": {"images": {"node": "render", "output": "images"}, "format": fmt,
                                            "fps": 8.0, "filename_prefix": "still/clip"}}
    result = session.run({"format_version": 1, "nodes": {"render": render, "save": save}}, outputs=["render", "save"])
    frames = result.outputs["render"]["images"]
    assert torch.equal(frames[0], frames[-1])                         # the clip really is still
    (file,) = _files(result, "save")
    with Image.open(file["path"]) as image:
        assert image.n_frames == file["frames"] == 5
    (Path(session.input_dir) / f"still.{fmt}").write_bytes(Path(file["path"]).read_bytes())
    loaded = session.run({"format_version": 1, "nodes": {"load": {"type": "LoadVideo", "inputs": {
        "video": f"still.{fmt}", "fps": 0.0, "start_frame": 0, "max_frames": 64}}}}, outputs=["load"])
    assert loaded.outputs["load"]["frames"] == 5 and loaded.warnings == []
    assert (loaded.outputs["load"]["images"] - frames).abs().mean() < 0.02


@pytest.mark.filterwarnings("error::UserWarning")     # torch's "NumPy array is not writable", once per GIF load
def test_load_video_warns_about_frames_left_out(session):
    """A 12-frame GIF loaded with max_frames 5 warns how many frames the file has, how many were read and
    which input raises the limit; loading all of it does not warn."""
    from PIL import Image

    images = [Image.new("RGB", (16, 16), (20 * k, 0, 0)) for k in range(12)]
    images[0].save(Path(session.input_dir) / "long.gif", save_all=True, append_images=images[1:], duration=100)
    def warnings(max_frames: int) -> list[str]:
        result = session.run({"format_version": 1, "nodes": {"load": {"type": "LoadVideo", "inputs": {
            "video": "long.gif", "fps": 0.0, "start_frame": 0, "max_frames": max_frames}}}}, outputs=["load"])
        return [w["message"] for w in result.warnings]

    (message,) = warnings(5)
    assert "long.gif has 12 frames" in message and "loaded 5 frames" in message and "raise max_frames" in message
    assert warnings(12) == [] and warnings(64) == []


def test_load_video_warns_when_transparency_is_dropped(session):
    """A transparent animated WebP/GIF loaded as solid colour without a word; frames stay RGB, with a warning."""
    from PIL import Image

    frames = [Image.new("RGBA", (16, 16), (255, 0, 0, 0)) for _ in range(3)]
    frames[0].save(Path(session.input_dir) / "alpha.webp", save_all=True, append_images=frames[1:], duration=100,
                   lossless=True)
    Image.new("RGB", (16, 16), (0, 0, 255)).save(Path(session.input_dir) / "solid.gif")
    for name, warned in (("alpha.webp", True), ("solid.gif", False)):
        result = session.run({"format_version": 1, "nodes": {"load": {"type": "LoadVideo", "inputs": {
            "video": name, "fps": 0.0, "start_frame": 0, "max_frames": 8}}}}, outputs=["load"])
        assert any("transparent pixels" in w["message"] for w in result.warnings) == warned, name


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_frames_before_start_frame_are_not_kept(tmp_path, fmt):
    """Decoding kept every frame before `start_frame` in memory: a 1080p clip read from frame 2000 held ~12 GB
    before the size cap was checked (a hostile re-test). Those frames are counted, not kept; what is read from
    `start_frame` on is unchanged."""
    import torch

    from nodegraph_video.video_io import _read_av, _read_pillow, read_video, write_video

    frames = torch.linspace(0, 1, 12)[:, None, None, None].expand(12, 16, 16, 3).contiguous()
    path = tmp_path / f"clip.{fmt}"
    write_video(path, frames, 12.0, fmt)
    read = _read_av if fmt == "mp4" else _read_pillow
    images = read(path, 10, 8)[0]
    assert images[0] is not None and all(image is None for image in images[1:8])
    assert all(image is not None for image in images[8:])
    clip = read_video(path, start_frame=8, max_frames=2)
    whole = read_video(path, start_frame=0, max_frames=12)
    assert torch.allclose(clip.frames, whole.frames[8:10])


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_decoding_keeps_only_the_frames_it_will_show_and_refuses_too_many_while_decoding(tmp_path, fmt):
    """A 7 KB GIF of 300 2048×2048 frames made LoadVideo decode 3.4 GB before its size check, and with fps > 0 a
    1000-frame one read at max_frames 1 kept every frame (a hostile pass). A resampled read now drops the frames
    it will not show as it goes, and keeping more than the pixel budget allows is refused while decoding; what is
    read is the same as before (every frame kept, then picked)."""
    import torch

    from nodegraph_video import video_io

    frames = torch.linspace(0, 1, 30)[:, None, None, None].expand(30, 16, 16, 3).contiguous()
    path = tmp_path / f"clip.{fmt}"
    video_io.write_video(path, frames, 12.0, fmt)
    read = video_io._read_av if fmt == "mp4" else video_io._read_pillow
    for fps, start, count in ((1.0, 0, 1), (5.0, 3, 4), (7.3, 0, 30), (24.0, 2, 9), (12.0, 0, 30), (2.5, 29, 3)):
        kept = video_io._KeptFrames(start, fps, count, 1 << 40)
        images = read(path, None, start, count / fps, kept)[0]
        whole, durations = read(path, None, start, count / fps)[:2]   # every frame from `start` on
        clip = video_io.read_video(path, fps=fps, start_frame=start, max_frames=count)
        held = sum(image is not None for image in images[start:])
        assert held <= count + 1, (fps, start, count, held)
        times = np.cumsum([0.0, *durations[:-1]]).tolist()
        picked = video_io._pick(times, fps, count, start, float(sum(durations)))
        expected = torch.from_numpy(np.stack([whole[i] for i in picked])).float() / 255
        assert torch.equal(clip.frames, expected), (fps, start, count)
    one = video_io._KeptFrames(0, 0.5, 1, 1 << 40)                   # 1 frame of a 2.5 s clip at 0.5 fps
    assert sum(image is not None for image in read(path, None, 0, 2.0, one)[0]) <= 2
    with pytest.raises(video_io.VideoFileError) as info:             # 30 frames of 16×16, room for 4
        video_io.read_video(path, max_frames=30, max_pixels=4 * 16 * 16)
    assert info.value.input == "max_frames" and "4 frames at this size" in str(info.value)
    budget = video_io._KeptFrames(0, 0.0, 30, 4 * 16 * 16)
    with pytest.raises(video_io.VideoFileError):                     # refused while decoding, not after
        read(path, 30, 0, None, budget)
    assert len(budget.images) == 6


def test_a_fast_gif_says_browsers_play_it_slower(session):
    """A gif at 240 fps stores 10 ms frames, which browsers show for ~100 ms: the result said "fps 100" and nothing
    warned. A rate over 50 fps now warns with the fix; 50 fps and other formats do not."""
    clip = {"type": "RenderTinyWorldClip", "inputs": {"caption": "a large red circle moving from left to right, on "
                                                                 "a blue background", "frames": 2, "size": 32}}
    nodes = {"clip": clip}
    for name, fmt, fps in (("fast", "gif", 240.0), ("ok", "gif", 50.0), ("webp", "webp", 240.0)):
        nodes[name] = {"type": "SaveVideo", "inputs": {"images": {"node": "clip", "output": "images"}, "fps": fps,
                                                       "format": fmt, "filename_prefix": f"fast/{name}"}}
    result = session.run({"format_version": 1, "nodes": nodes})
    (warning,) = [w for w in result.warnings if w["node_id"] in ("fast", "ok", "webp")]
    assert warning["node_id"] == "fast" and "plays at ~10 fps" in warning["message"]
    assert "fps 50 or less" in warning["message"]


def test_a_video_read_asks_for_the_free_memory_first(tmp_path, monkeypatch):
    """LoadVideo within its pixel budget still took GBs with no look at the free memory (a hostile re-test; the
    image nodes ask): the first frame's size gives what the read may keep, asked before the rest is decoded, and
    the refusal is the out-of-memory error, not "not a readable video"."""
    import torch

    from nodegraph import memory
    from nodegraph.errors import NodeOutOfMemory
    from nodegraph_video import video_io

    frames = torch.linspace(0, 1, 8)[:, None, None, None].expand(8, 64, 64, 3).contiguous()
    path = tmp_path / "clip.gif"
    video_io.write_video(path, frames, 12.0, "gif")
    monkeypatch.setenv(memory.RESERVE_ENV, "0")
    monkeypatch.setattr(memory, "system_memory", lambda: (100_000, 16 * 2**30))        # 100 kB free
    with pytest.raises(NodeOutOfMemory, match=r"the video's frames \(up to 9 of 64×64\)"):
        video_io.read_video(path, max_frames=8)
    monkeypatch.setattr(memory, "system_memory", lambda: (2**30, 16 * 2**30))
    assert video_io.read_video(path, max_frames=8).frames.shape == (8, 64, 64, 3)


def test_rendering_a_clip_asks_for_the_free_memory_first(session, monkeypatch):
    """RenderTinyWorldClip at 256 frames of 1024² went ahead into GBs (a hostile re-test); it asks first."""
    from nodegraph import memory
    from nodegraph.errors import NodeExecutionError, NodeOutOfMemory

    monkeypatch.setenv(memory.RESERVE_ENV, "0")
    monkeypatch.setattr(memory, "system_memory", lambda: (10**8, 16 * 2**30))        # 100 MB free
    clip = {"type": "RenderTinyWorldClip", "inputs": {"caption": "a large red circle moving from left to right, on "
                                                                 "a blue background", "frames": 64, "size": 512}}
    graph = {"format_version": 1, "nodes": {"clip": clip, "show": {"type": "ShowValue", "inputs": {
        "value": {"node": "clip", "output": "images"}}}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert isinstance(info.value.exception, NodeOutOfMemory) and "64 frames of 512×512" in str(info.value.exception)


def test_a_bad_prompt_weight_in_prompt_travel_names_its_own_input(session):
    """api.encode_text refused (x:1e30) naming `text`, an input PromptTravel does not have (a hostile re-test)."""
    from nodegraph.errors import NodeExecutionError

    graph = {"format_version": 1, "nodes": {
        "ck": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "travel": {"type": "PromptTravel", "inputs": {"text_encoder": {"node": "ck", "output": "text_encoder"},
                                                      "prompts": "0: (a red circle:1000000)\n4: a blue square",
                                                      "frames": 8}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "travel", "output": "conditioning"}}}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run(graph)
    assert info.value.exception.input == "prompts" and "past the ±100" in str(info.value.exception)


def test_decoding_looks_for_an_interrupt_as_it_goes(tmp_path):
    """A 3,000-frame GIF read from frame 2,990 took 80 s to honour an interrupt (a hostile re-test): the decoders
    ask every INTERRUPT_EVERY frames, and the interrupt is not turned into "not a readable video"."""
    import torch

    from nodegraph.errors import RunInterrupted
    from nodegraph_video import video_io

    frames = torch.linspace(0, 1, 40)[:, None, None, None].expand(40, 8, 8, 3).contiguous()
    for fmt in ("gif", "mp4"):
        path = tmp_path / f"clip.{fmt}"
        video_io.write_video(path, frames, 12.0, fmt)
        asked = []

        def check():
            asked.append(1)
            if len(asked) == 2:
                raise RunInterrupted("stop")

        with pytest.raises(RunInterrupted):
            video_io.read_video(path, start_frame=30, max_frames=4, check_interrupted=check)
        assert len(asked) == 2       # frame 0, then frame INTERRUPT_EVERY: stopped long before frame 30


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_a_saved_clip_holds_the_value_random_int_drew(session, fmt):
    """The graph a clip carries has the value a RandomInt drew in place of its link, as a PNG SaveImage writes
    does (`graph_as_run`), so running the clip again makes the same clip; it held the link, and a re-run drew
    again."""
    from nodegraph.media_graph import graph_text_from_media

    nodes = {"pick": {"type": "RandomInt", "inputs": {"low": 3, "high": 5}},
             "render": {"type": "RenderTinyWorldClip", "inputs": {"frames": {"node": "pick", "output": "value"},
                                                                  "size": 32}},
             "save": {"type": "SaveVideo", "inputs": {"images": {"node": "render", "output": "images"}, "fps": 8.0,
                                                      "format": fmt, "filename_prefix": "drawn/clip"}}}
    result = session.run({"format_version": 1, "nodes": nodes})
    (file,) = _files(result, "save")
    embedded = json.loads(graph_text_from_media(Path(file["path"]).read_bytes()))
    assert embedded["nodes"]["render"]["inputs"]["frames"] == file["frames"]
