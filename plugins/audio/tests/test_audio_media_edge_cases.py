"""Audio edge cases a video / audio creator found (2026-12-07): loud audio the engine refused as a plugin bug, the
sound of .mka / .weba files, and AAC's trailing padding."""

import numpy as np
import pytest
import soundfile
import torch

from nodegraph import Session
from nodegraph.errors import NodeExecutionError

from nodegraph_audio import waveform  # noqa: E402


def _session(tmp_path) -> Session:
    (tmp_path / "in").mkdir(exist_ok=True)
    return Session(autoload=True, allow=["audio"], input_dir=tmp_path / "in", output_dir=tmp_path / "out")


def _tone(seconds=1.0, rate=44100, peak=0.5) -> np.ndarray:
    return (peak * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def test_the_plugins_peak_ceiling_is_the_engines():
    from nodegraph.executor import AUDIO_PEAK_CEILING

    assert waveform.PEAK_CEILING == AUDIO_PEAK_CEILING >= 100       # +40 dB gains on full-scale sound fit


def test_loud_mixes_gains_and_float_files_load_and_run(tmp_path):
    """MixAudio at +30 dB on both inputs, AudioGain +40 dB and a float WAV peaking at 20 failed as "plugin bugs"
    (the engine's ceiling was a peak of 16); they run now, and NormalizeAudio brings them back."""
    session = _session(tmp_path)
    soundfile.write(tmp_path / "in" / "tone.wav", _tone(), 44100, subtype="FLOAT")
    soundfile.write(tmp_path / "in" / "loud.wav", _tone(peak=20.0), 44100, subtype="FLOAT")
    load = lambda name: {"type": "LoadAudio", "inputs": {"file": name}}
    result = session.run({"format_version": 2, "nodes": {
        "a": load("tone.wav"), "loud": load("loud.wav"),
        "mix": {"type": "MixAudio", "inputs": {"audio_a": {"node": "a", "output": "audio"},
                                               "audio_b": {"node": "a", "output": "audio"},
                                               "gain_a_db": 30.0, "gain_b_db": 30.0}},
        "gain": {"type": "AudioGain", "inputs": {"audio": {"node": "a", "output": "audio"}, "gain_db": 40.0}},
        "norm": {"type": "NormalizeAudio", "inputs": {"audio": {"node": "mix", "output": "audio"}}}}},
        outputs=["loud", "gain", "norm"])
    assert abs(float(result.outputs["loud"]["audio"]["waveform"].abs().max()) - 20.0) < 1e-3
    assert abs(float(result.outputs["gain"]["audio"]["waveform"].abs().max()) - 50.0) < 0.1
    assert abs(float(result.outputs["norm"]["audio"]["waveform"].abs().max()) - 10 ** (-1 / 20)) < 1e-3


def test_a_float_file_at_pcm_scale_is_refused_naming_file_and_the_fix(tmp_path):
    session = _session(tmp_path)
    soundfile.write(tmp_path / "in" / "pcm.wav", _tone(peak=16000.0), 44100, subtype="FLOAT")
    with pytest.raises(NodeExecutionError) as info:
        session.run({"format_version": 2, "nodes": {"l": {"type": "LoadAudio", "inputs": {"file": "pcm.wav"}}}},
                    outputs=["l"])
    message = str(info.value)
    assert "input 'file'" in message and "peaks at 16000" in message and "Re-export" in message
    assert "plugin's authors" not in message


def test_a_gain_past_the_ceiling_is_an_input_error_naming_the_gain(tmp_path):
    """+40 dB on a sound already at 20 peaks at 2000: the gain node says so, naming gain_db (a MixAudio its
    larger gain), not the engine's "report to the plugin's authors"."""
    loud = {"waveform": torch.full((1, 1, 100), 20.0), "sample_rate": 8000}
    with pytest.raises(waveform.AudioError) as info:
        waveform.apply_gain(loud, 40.0)
    assert info.value.argument == "gain_db" and "NormalizeAudio" in info.value.message
    with pytest.raises(waveform.AudioError) as info:
        waveform.mix(loud, loud, 10.0, 40.0)
    assert info.value.argument == "gain_b_db"


av = pytest.importorskip("av")


def _encode(path, container_format: str, codec: str, rate: int, seconds: float) -> None:
    """A mono tone in `container_format`, written by PyAV as another program would."""
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        data = _tone(seconds, rate)[None]
        for start in range(0, data.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.parametrize("name,fmt", [("sound.mka", "matroska"), ("sound.weba", "webm")])
def test_matroska_audio_files_load(tmp_path, name, fmt):
    """An .mka upload (Opus in Matroska audio) was accepted by the server and refused by LoadAudio ("Format not
    recognised"): the audio-only Matroska / WebM names go through PyAV as .mkv / .webm do."""
    session = _session(tmp_path)
    _encode(tmp_path / "in" / name, fmt, "libopus", 48000, 1.0)
    result = session.run({"format_version": 2, "nodes": {"l": {"type": "LoadAudio", "inputs": {"file": name}}}},
                         outputs=["l"])
    wave = result.outputs["l"]["audio"]["waveform"]
    assert 0.95 * 48000 <= wave.shape[-1] <= 1.05 * 48000 and float(wave.abs().max()) > 0.3


def test_every_upload_name_for_load_audio_is_one_it_reads():
    """The names the server takes for LoadAudio (nodegraph.files.MEDIA_FORMATS["audio"]) are each read:
    libsndfile's, or PyAV's (VIDEO_CONTAINERS); so is every video LoadVideo reads that can hold sound."""
    from nodegraph.files import MEDIA_FORMATS

    soundfile_names = {".wav", ".flac", ".ogg", ".opus", ".mp3"}
    assert set(MEDIA_FORMATS["audio"]) - soundfile_names <= set(waveform.VIDEO_CONTAINERS)
    video = pytest.importorskip("nodegraph_video.video_io")
    assert set(video.READABLE) - {".gif", ".webp"} <= set(waveform.VIDEO_CONTAINERS)


@pytest.mark.parametrize("rate,seconds", [(44100, 1.0), (48000, 2.0)])
def test_an_m4a_loads_its_declared_length_without_the_trailing_padding(tmp_path, rate, seconds):
    """A 1.000 s M4A at 44.1 kHz loaded as 45,056 samples (956 of AAC's last-frame padding at the end): the
    track is cut to the length its header declares, and the tone is all there."""
    path = tmp_path / "tone.m4a"
    _encode(path, "mp4", "aac", rate, seconds)
    audio = waveform.read_audio(path)
    wave = audio["waveform"][0, 0].numpy()
    assert wave.shape[-1] == round(rate * seconds)
    assert np.abs(wave[-200:]).max() > 0.3                         # the tone reaches the end: no silence there
