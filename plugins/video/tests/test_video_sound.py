"""SaveVideo's `audio` input: the sound track of an mp4 / webm (VideoHelperSuite's Video Combine muxes one)."""

import numpy as np
import pytest
import torch

from nodegraph import Session
from nodegraph.errors import NodeExecutionError

av = pytest.importorskip("av")


def _sound(seconds: float, channels: int = 2, batch: int = 1, rate: int = 22050) -> dict:
    """Stereo (or mono) sound: 440 Hz at 0.5 on the left, 880 Hz at 0.25 on the right."""
    t = torch.arange(int(rate * seconds)) / rate
    left, right = 0.5 * torch.sin(2 * torch.pi * 440 * t), 0.25 * torch.sin(2 * torch.pi * 880 * t)
    wave = torch.stack([left, right][:channels])[None].repeat(batch, 1, 1)
    return {"waveform": wave, "sample_rate": rate}


def _save(tmp_path, format="mp4", audio=None, clip_frames=0, frames=8):
    """The files SaveVideo wrote (_run)."""
    return [f["path"] for f in _run(tmp_path, format, audio, clip_frames, frames).outputs["save"]["files"]]


def _run(tmp_path, format="mp4", audio=None, clip_frames=0, frames=8):
    """SaveVideo run through a session, its images and audio made by a stand-in node of a test plugin."""
    import types

    from nodegraph import Node, NodeInputs, Output, hookimpl

    images = torch.rand(frames, 32, 32, 3, generator=torch.Generator().manual_seed(0))

    class Frames(Node):
        category = "test"

        class Inputs(NodeInputs):
            pass

        outputs = (Output("images", "IMAGE"), Output("audio", "AUDIO"))

        def run(self) -> dict:
            return {"images": images, "audio": audio}

    plugin = types.ModuleType("sound_test_plugin")
    plugin.register_nodes = hookimpl(lambda: [Frames])
    session = Session(autoload=True, allow=["video"], plugins=[plugin], output_dir=tmp_path / "out")
    inputs = {"images": {"node": "src", "output": "images"}, "fps": 8.0, "format": format,
              "filename_prefix": "clip", "clip_frames": clip_frames}
    if audio is not None:
        inputs["audio"] = {"node": "src", "output": "audio"}
    return session.run({"format_version": 2, "nodes": {"src": {"type": "Frames", "inputs": {}},
                                                       "save": {"type": "SaveVideo", "inputs": inputs}}})


def _sound_of(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
        chunks = [p.to_ndarray() for frame in container.decode(stream) for p in resampler.resample(frame)]
        return np.concatenate(chunks, axis=1), stream.rate, stream.codec_context.name


@pytest.mark.parametrize(("format", "codec"), [("mp4", "aac"), ("webm", "opus")])
def test_a_sound_track_is_muxed_cut_to_the_clip(tmp_path, format, codec):
    """2 s of stereo sound under 1 s of frames: the file plays 1 s of it, left still left."""
    (path,) = _save(tmp_path, format, _sound(2.0))
    data, rate, name = _sound_of(path)
    assert codec in name and data.shape[0] == 2
    assert 0.9 < data.shape[1] / rate < 1.15                  # cut to the frames' second (codec padding aside)
    assert 0.4 < np.abs(data[0]).max() < 0.6 and 0.15 < np.abs(data[1]).max() < 0.35


def test_one_sound_per_clip_and_the_errors_name_audio(tmp_path):
    first, second = _save(tmp_path, "mp4", _sound(1.0, batch=2), clip_frames=4)
    assert _sound_of(first)[0].shape[0] == 2 and _sound_of(second)[0].shape[0] == 2
    for audio, format, message in ((_sound(1.0), "gif", "a gif file holds no sound"),
                                   (_sound(1.0, batch=3), "mp4", "3 sounds for 1 clip"),
                                   ({"waveform": torch.zeros(1, 6, 100), "sample_rate": 22050}, "mp4",
                                    "6 channels")):
        with pytest.raises(NodeExecutionError, match=message) as caught:
            _save(tmp_path, format, audio)
        assert "input 'audio'" in str(caught.value)


def test_a_sound_louder_than_full_scale_warns_that_it_was_clipped(tmp_path):
    """8× full scale (a hard-clipped square wave in the AAC track) warns as SaveAudio does, counting the samples
    of the second the file keeps; a sound within ±1 does not warn."""
    loud = _sound(2.0, channels=1)
    loud["waveform"] = loud["waveform"] * 16                        # 0.5 · 16 = 8× full scale
    result = _run(tmp_path, "mp4", loud)
    (warning,) = result.warnings
    assert warning["node_id"] == "save"
    kept = 22050                                                     # the 1 s of frames, not the 2 s given
    clipped = int((loud["waveform"][..., :kept].abs() > 1).sum())
    assert f"{clipped} of {kept} samples" in warning["message"] and "(peak 8)" in warning["message"]
    assert "clipped to ±1" in warning["message"] and "NormalizeAudio (peak_db -1) or AudioGain before SaveVideo" \
        in warning["message"]
    (path,) = [f["path"] for f in result.outputs["save"]["files"]]
    assert np.abs(_sound_of(path)[0]).mean() > 0.7                   # still written: the square wave it clipped to
    assert _run(tmp_path, "mp4", _sound(2.0)).warnings == []
