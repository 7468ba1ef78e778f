"""SaveAudio's bit depth and ConcatenateAudio's crossfade, in graphs that build their inputs in tmp_path."""

import numpy as np
import pytest
import soundfile
import torch

from nodegraph import Session
from nodegraph.errors import GraphValidationError

torch.set_num_threads(1)
RATE = 16000


@pytest.fixture()
def session(tmp_path):
    (tmp_path / "in").mkdir()
    return Session(autoload=True, allow=["audio"], input_dir=tmp_path / "in", output_dir=tmp_path / "out")


def _ramp_wav(path, subtype: str, peak: float = 0.9) -> np.ndarray:
    """A 0.1 s stereo ramp written with `subtype`; returns what soundfile reads back from it (float64)."""
    wave = np.stack([np.linspace(-peak, peak, RATE // 10), np.linspace(peak, -peak, RATE // 10)], axis=1)
    soundfile.write(path, wave, RATE, subtype=subtype)
    return soundfile.read(path, dtype="float64")[0]


def _load_and_save(file: str, format: str, bit_depth: str) -> dict:
    return {"format_version": 1, "nodes": {
        "load": {"type": "LoadAudio", "inputs": {"file": file}},
        "save": {"type": "SaveAudio", "inputs": {"audio": {"node": "load", "output": "audio"}, "format": format,
                                                 "bit_depth": bit_depth, "filename_prefix": "depth"}},
    }}


@pytest.mark.parametrize("format, subtype", [("wav", "PCM_24"), ("flac", "PCM_24")])
def test_a_24_bit_file_round_trips_at_24_bits(session, tmp_path, format, subtype):
    """LoadAudio → SaveAudio (bit_depth 24) writes every sample of a 24-bit file back exactly; 16 bits (the default,
    and what SaveAudio always wrote) loses the low 8 bits."""
    source = _ramp_wav(tmp_path / "in" / f"ramp24.{format}", subtype)
    result = session.run(_load_and_save(f"ramp24.{format}", format, "24"))
    (file,) = result.outputs["save"]["files"]
    written = tmp_path / "out" / file["path"]
    assert soundfile.info(written).subtype == "PCM_24" and file["info"] == {"bit_depth": "24"}
    assert np.array_equal(soundfile.read(written, dtype="float64")[0], source)
    result = session.run(_load_and_save(f"ramp24.{format}", format, "16"))
    sixteen = soundfile.read(tmp_path / "out" / result.outputs["save"]["files"][0]["path"], dtype="float64")[0]
    assert not np.array_equal(sixteen, source) and np.abs(sixteen - source).max() < 2 ** -15


def test_a_32_bit_float_wav_keeps_samples_beyond_full_scale(session, tmp_path):
    """A float WAV peaking at 1.5 saved with bit_depth "32 float" keeps its samples (no clipping, no warning)."""
    source = _ramp_wav(tmp_path / "in" / "loud.wav", "FLOAT", peak=1.5)
    result = session.run(_load_and_save("loud.wav", "wav", "32 float"))
    written = tmp_path / "out" / result.outputs["save"]["files"][0]["path"]
    assert soundfile.info(written).subtype == "FLOAT" and result.warnings == []
    assert np.allclose(soundfile.read(written, dtype="float64")[0], source, atol=1e-7)


@pytest.mark.parametrize("format, bit_depth, words", [("flac", "32 float", "FLAC stores integer samples"),
                                                      ("ogg", "24", "ogg is a lossy codec"),
                                                      ("mp3", "32 float", "mp3 is a lossy codec")])
def test_a_bit_depth_the_format_cannot_hold_is_refused_before_the_run(session, tmp_path, format, bit_depth, words):
    """flac + 32 float, ogg / mp3 + anything but 16: a validation error on bit_depth with the fix."""
    _ramp_wav(tmp_path / "in" / "ramp.wav", "PCM_16")
    with pytest.raises(GraphValidationError) as info:
        session.run(_load_and_save("ramp.wav", format, bit_depth))
    (error,) = info.value.errors
    assert (error.node_id, error.input) == ("save", "bit_depth") and words in error.message and "Fix:" in error.message


def _two_tones(tmp_path, seconds_a: float, seconds_b: float) -> None:
    for name, seconds in (("a.wav", seconds_a), ("b.wav", seconds_b)):
        soundfile.write(tmp_path / "in" / name, 0.5 * np.sin(np.arange(int(RATE * seconds)) * 0.1), RATE)


def _concatenate(crossfade: float) -> dict:
    return {"format_version": 1, "nodes": {
        "a": {"type": "LoadAudio", "inputs": {"file": "a.wav"}},
        "b": {"type": "LoadAudio", "inputs": {"file": "b.wav"}},
        "join": {"type": "ConcatenateAudio", "inputs": {"audio_a": {"node": "a", "output": "audio"},
                                                        "audio_b": {"node": "b", "output": "audio"},
                                                        "crossfade": crossfade}},
    }}


def test_a_crossfade_longer_than_a_clip_warns(session, tmp_path):
    """A 2 s crossfade between a 0.5 s and a 1 s clip overlaps 0.5 s (all of audio_a) and says so; a crossfade that
    fits says nothing."""
    _two_tones(tmp_path, 0.5, 1.0)
    result = session.run(_concatenate(2.0), outputs=["join"])
    assert result.outputs["join"]["audio"]["waveform"].shape[-1] == RATE        # 0.5 + 1 - 0.5 s
    (warning,) = result.warnings
    assert warning["node_id"] == "join"
    assert "crossfade 2 s is longer than audio_a (0.500 s)" in warning["message"]
    assert "overlap by 0.500 s" in warning["message"] and "at most 0.500 s" in warning["message"]
    fits = session.run(_concatenate(0.25), outputs=["join"])
    assert fits.outputs["join"]["audio"]["waveform"].shape[-1] == RATE * 5 // 4 and fits.warnings == []


def test_a_wav_carries_the_graph_as_it_ran_and_the_run_record(session):
    """A WAV holds the graph with the seed a RandomInt drew in place of its link (LIST/INFO ICMT) and the run
    record (an `ngrn` chunk), as a PNG holds both; it still reads back as the same samples (soundfile and
    Python's wave module skip the chunks). It held neither."""
    import json
    import wave

    from nodegraph_audio.waveform import wav_text

    result = session.run({"format_version": 1, "nodes": {
        "pick": {"type": "RandomInt", "inputs": {"low": 0, "high": 1000}},
        "sound": {"type": "SynthesizeSound", "inputs": {"caption": "tone at c4",
                                                        "seed": {"node": "pick", "output": "value"}}},
        "save": {"type": "SaveAudio", "inputs": {"audio": {"node": "sound", "output": "audio"},
                                                 "filename_prefix": "ran"}}}}, outputs=["sound", "save"])
    (file,) = result.outputs["save"]["files"]
    graph, run = wav_text(open(file["path"], "rb").read())
    seed = json.loads(graph)["nodes"]["sound"]["inputs"]["seed"]
    assert isinstance(seed, int) and seed == result.drawn["pick"]["value"]
    assert json.loads(run)["batch_index"] == 0 and "torch" in json.loads(run)
    samples, rate = soundfile.read(file["path"], dtype="float32")
    expected = result.outputs["sound"]["audio"]["waveform"][0, 0].numpy()
    assert rate == 16000 and np.abs(samples - expected).max() <= 1 / 32767
    with wave.open(file["path"]) as reader:
        assert reader.getnframes() == len(expected)
