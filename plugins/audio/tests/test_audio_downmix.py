"""DownmixAudio / waveform.remix_channels: mono ↔ stereo, 5.1 and 7.1 down-mixes by ITU-R BS.775 (LFE dropped,
centre and surrounds at −3 dB), one channel alone; checked against hand-computed samples, and in a graph (a 6-channel
WAV → stereo → SaveVideo, which refused the 6 channels asking for a down-mix no node did)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile
import torch

from nodegraph import Session
from nodegraph.errors import NodeExecutionError
from nodegraph_audio.waveform import AudioError, downmix_matrix, remix_channels

K = 1 / math.sqrt(2)        # −3 dB


def _audio(*channels: list[float], rate: int = 8000) -> dict:
    """An AUDIO of batch 1 whose channel c holds channels[c] (the same length each)."""
    return {"waveform": torch.tensor([list(map(float, c)) for c in channels]).unsqueeze(0), "sample_rate": rate}


# one sample per channel, with distinct values, so each coefficient shows: 5.1 = L R C LFE Ls Rs
L, R, C, LFE, LS, RS, LB, RB = 0.10, 0.20, 0.40, 0.80, 0.03, 0.05, 0.007, 0.011


def test_five_one_to_stereo_is_bs775():
    """L' = L + 0.7071·C + 0.7071·Ls, R' = R + 0.7071·C + 0.7071·Rs; the LFE is dropped."""
    out = remix_channels(_audio([L], [R], [C], [LFE], [LS], [RS]), "stereo")["waveform"]
    expected = [[L + K * C + K * LS], [R + K * C + K * RS]]      # [[0.40406], [0.51820]]
    assert out.shape == (1, 2, 1)
    assert torch.allclose(out[0], torch.tensor(expected), atol=1e-6)
    assert out[0, 0, 0].item() == pytest.approx(0.404056, abs=1e-6)
    assert out[0, 1, 0].item() == pytest.approx(0.518198, abs=1e-6)


def test_seven_one_to_stereo_folds_back_and_side_pairs():
    """7.1 (L R C LFE Lb Rb Ls Rs): both surround pairs at −3 dB into their side, the LFE dropped."""
    out = remix_channels(_audio([L], [R], [C], [LFE], [LB], [RB], [LS], [RS]), "stereo")["waveform"][0, :, 0]
    assert out.tolist() == pytest.approx([L + K * (C + LB + LS), R + K * (C + RB + RS)], abs=1e-6)


def test_mono_is_the_mean_of_the_stereo_mix():
    """Stereo → (L + R) / 2; 5.1 → 0.5·L + 0.5·R + 0.7071·C + 0.3536·(Ls + Rs) (BS.775's mono at −3 dB)."""
    stereo = remix_channels(_audio([0.5, -1.0], [0.25, 1.0]), "mono")["waveform"]
    assert stereo.shape == (1, 1, 2) and stereo[0, 0].tolist() == pytest.approx([0.375, 0.0])
    five = remix_channels(_audio([L], [R], [C], [LFE], [LS], [RS]), "mono")["waveform"][0, 0, 0].item()
    assert five == pytest.approx(0.5 * L + 0.5 * R + K * C + K / 2 * (LS + RS), abs=1e-6)
    assert five == pytest.approx(0.461127, abs=1e-6)
    same = remix_channels(_audio([0.3, 0.6], [0.3, 0.6]), "mono")["waveform"]    # identical sides keep their level
    assert same[0, 0].tolist() == pytest.approx([0.3, 0.6])


def test_mono_to_stereo_copies_and_same_counts_are_unchanged():
    """Mono is copied to both sides; stereo → stereo and mono → mono are the input, batch kept."""
    wave = torch.tensor([[[0.1, -0.2]], [[0.3, 0.4]]])                       # batch 2, mono
    out = remix_channels({"waveform": wave, "sample_rate": 8000}, "stereo")["waveform"]
    assert out.shape == (2, 2, 2) and torch.equal(out[:, 0], wave[:, 0]) and torch.equal(out[:, 1], wave[:, 0])
    stereo = _audio([0.1, 0.2], [0.3, 0.4])
    assert torch.equal(remix_channels(stereo, "stereo")["waveform"], stereo["waveform"])
    assert torch.equal(remix_channels({"waveform": wave, "sample_rate": 8000}, "mono")["waveform"], wave)


def test_one_channel_alone_and_its_errors():
    """channel k (from 1) gives that channel as mono; a channel the audio lacks, or a count with no standard
    layout, is refused naming the input and the fix."""
    six = _audio([L], [R], [C], [LFE], [LS], [RS])
    assert remix_channels(six, "channel", 3)["waveform"].tolist() == [[[pytest.approx(C)]]]
    with pytest.raises(AudioError, match="no channel 7") as caught:
        remix_channels(six, "channel", 7)
    assert caught.value.argument == "channel" and "L, R, C, LFE, Ls, Rs" in caught.value.message
    with pytest.raises(AudioError, match="no standard layout") as caught:
        remix_channels(_audio([0.1], [0.2], [0.3], [0.4]), "stereo")
    assert caught.value.argument == "audio" and "MixAudio" in caught.value.message


def test_downmix_matrix_rows():
    """The gains as a table (what the docs state): 5.1 → stereo rows, and mono rows sum to 1 for stereo."""
    assert downmix_matrix(6, "stereo").tolist() == [pytest.approx([1, 0, K, 0, K, 0]),
                                                    pytest.approx([0, 1, K, 0, 0, K])]
    assert downmix_matrix(2, "mono").tolist() == [[0.5, 0.5]]


def test_a_six_channel_wav_gets_a_sound_track_through_downmix_audio(tmp_path):
    """quad.wav-like 6-channel audio: SaveVideo refuses it and names DownmixAudio; after DownmixAudio to stereo
    the video is written with a stereo sound track."""
    (tmp_path / "in").mkdir()
    rate, seconds = 16000, 1.0
    t = np.arange(int(rate * seconds)) / rate
    six = np.stack([0.1 * np.sin(2 * np.pi * (200 + 100 * c) * t) for c in range(6)], 1)
    soundfile.write(tmp_path / "in" / "six.wav", six, rate, subtype="FLOAT")
    session = Session(autoload=True, allow=["audio", "video"], input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    link = lambda node, output: {"node": node, "output": output}      # noqa: E731
    clip = {"type": "video.RenderTinyWorldClip", "inputs": {"caption": "a small red circle, on a blue background",
                                                            "frames": 8, "size": 32}}
    load = {"type": "audio.LoadAudio", "inputs": {"file": "six.wav"}}
    save = {"type": "video.SaveVideo", "inputs": {"images": link("clip", "images"), "fps": 8.0, "format": "mp4",
                                                  "filename_prefix": "six/clip", "audio": link("load", "audio")}}
    with pytest.raises(NodeExecutionError, match="6 channels") as info:
        session.run({"format_version": 1, "nodes": {"clip": clip, "load": load, "save": save}})
    assert "DownmixAudio" in str(info.value.exception)
    mixed = {"type": "audio.DownmixAudio", "inputs": {"audio": link("load", "audio"), "to": "stereo"}}
    save["inputs"]["audio"] = link("mix", "audio")
    result = session.run({"format_version": 1, "nodes": {"clip": clip, "load": load, "mix": mixed, "save": save}},
                         outputs=["mix", "save"])
    wave = result.outputs["mix"]["audio"]["waveform"]
    assert wave.shape == (1, 2, rate)
    expected_left = six[:, 0] + K * six[:, 2] + K * six[:, 4]
    assert np.allclose(wave[0, 0].numpy(), expected_left, atol=1e-6)
    import av

    (file,) = result.outputs["save"]["files"]
    with av.open(file["path"]) as container:
        assert container.streams.audio[0].codec_context.channels == 2


def test_comfyuis_core_audio_nodes_import_as_ours():
    """ComfyUI's core LoadAudio failed to import ("has no input 'audio'") and its SaveAudio saved WAV where
    ComfyUI writes FLAC: the plugin maps both (register_comfyui_classes)."""
    from nodegraph import Session

    session = Session(autoload=True, allow=["audio"])
    graph = session.import_comfyui({
        "1": {"class_type": "LoadAudio", "inputs": {"audio": "tone.wav [input]"}},
        "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/ComfyUI"}}})
    assert graph.nodes["1"].type.endswith("LoadAudio") and graph.nodes["1"].inputs == {"file": "tone.wav"}
    assert graph.nodes["2"].inputs["format"] == "flac" and graph.nodes["2"].inputs["filename_prefix"] == "audio/ComfyUI"
