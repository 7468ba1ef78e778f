"""The AUDIO value and waveform operations: file round trips, resampling, trim/pad, mix, gain, fade, concatenate,
and the errors bad audio gets (unreadable, empty, too long, NaN, unsupported rates)."""

import math

import numpy as np
import pytest
import torch

from nodegraph_audio import waveform as wf
from nodegraph_audio.waveform import AudioError

torch.set_num_threads(1)


def _sine(frequency=440.0, rate=16000, seconds=0.5, channels=1, amplitude=0.5):
    t = torch.arange(int(rate * seconds)) / rate
    wave = amplitude * torch.sin(2 * math.pi * frequency * t)
    return {"waveform": wave.expand(1, channels, -1).clone(), "sample_rate": rate}


def _peak_frequency(wave: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy() * np.hanning(len(wave)), 1 << 16))
    return float(np.fft.rfftfreq(1 << 16, 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("format, tolerance", [("wav", 1e-4), ("flac", 1e-4), ("ogg", 0.05), ("mp3", 0.1)])
def test_file_round_trip_keeps_rate_channels_and_signal(tmp_path, format, tolerance):
    """A stereo sine written as WAV / FLAC / OGG / MP3 reads back with its rate, channels and (codec-close) samples."""
    audio = _sine(channels=2, rate=16000 if format != "mp3" else 44100)
    path = tmp_path / f"clip.{format}"
    wf.write_audio(path, audio["waveform"][0], audio["sample_rate"], format)
    back = wf.read_audio(path)
    assert back["sample_rate"] == audio["sample_rate"]
    assert back["waveform"].shape[:2] == (1, 2)
    if format in ("wav", "flac"):
        assert back["waveform"].shape == audio["waveform"].shape
        assert (back["waveform"] - audio["waveform"]).abs().max() < tolerance
    else:   # lossy codecs add delay / padding: compare the pitch and level instead
        assert abs(_peak_frequency(back["waveform"][0, 0], back["sample_rate"]) - 440) < 3
        level = back["waveform"].pow(2).mean().sqrt()
        assert abs(float(level) - 0.5 / math.sqrt(2)) < tolerance


def test_unreadable_empty_and_too_long_files_name_the_input(tmp_path):
    """Garbage bytes, a zero-sample WAV and a file over max_seconds are refused, naming `file`."""
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(b"this is not audio" * 10)
    with pytest.raises(AudioError, match="not a readable audio file") as error:
        wf.read_audio(garbage)
    assert error.value.argument == "file"
    empty = tmp_path / "empty.wav"
    wf.write_audio(empty, torch.zeros(1, 0), 16000, "wav")
    with pytest.raises(AudioError, match="no samples"):
        wf.read_audio(empty)
    long = tmp_path / "long.wav"
    wf.write_audio(long, torch.zeros(1, 16000 * 3), 16000, "wav")
    with pytest.raises(AudioError, match="over the limit of 2 s"):
        wf.read_audio(long, max_seconds=2)



def test_a_file_with_more_samples_than_a_waveform_holds_is_refused_before_decoding(tmp_path, monkeypatch):
    """max_seconds bounds the duration, not the samples: a 470 KB FLAC of 8-channel 96 kHz silence decoded 6.8 GB
    (a hostile pass). The samples the header declares are checked against MAX_SAMPLES before any is decoded."""
    import soundfile

    wide = tmp_path / "wide.flac"
    wf.write_audio(wide, torch.zeros(8, 16000), 16000, "flac")
    monkeypatch.setattr(wf, "MAX_SAMPLES", 8 * 16000 - 1)
    monkeypatch.setattr(soundfile, "read", lambda *a, **k: pytest.fail("decoded before the check"))
    with pytest.raises(AudioError, match="over the 127,999 a waveform may hold") as error:
        wf.read_audio(wide)
    assert error.value.argument == "file" and "8 channel(s)" in str(error.value)


def test_nan_and_bad_layouts_are_refused():
    """NaN samples, a 2-D waveform, an empty clip and unsupported rates each raise AudioError naming the argument."""
    audio = _sine()
    audio["waveform"][0, 0, 10] = float("nan")
    with pytest.raises(AudioError, match="1 NaN"):
        wf.check_audio(audio, "audio")
    with pytest.raises(AudioError, match=r"\(batch, channels, samples\)"):
        wf.check_audio({"waveform": torch.zeros(2, 100), "sample_rate": 16000})
    with pytest.raises(AudioError, match="empty"):
        wf.check_audio({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000})
    with pytest.raises(AudioError, match="not supported") as error:
        wf.check_audio({"waveform": torch.zeros(1, 1, 10), "sample_rate": 500}, "clip")
    assert error.value.argument == "clip"
    with pytest.raises(AudioError, match="not supported"):
        wf.resample(_sine(), 10**6)


@pytest.mark.parametrize("source, target", [(44100, 16000), (16000, 22050), (48000, 8000)])
def test_resampling_keeps_pitch_and_duration(source, target):
    """Resampling a 1 kHz sine keeps its frequency and its duration (samples scale by the rate ratio)."""
    out = wf.resample(_sine(1000.0, rate=source, seconds=0.4), target)
    assert out["sample_rate"] == target
    assert out["waveform"].shape[-1] == round(0.4 * target)
    assert abs(_peak_frequency(out["waveform"][0, 0], target) - 1000) < 2


def test_resampling_removes_content_above_the_new_nyquist():
    """A 7 kHz tone resampled from 44.1 kHz to 8 kHz is filtered away, not aliased to 1 kHz."""
    out = wf.resample(_sine(7000.0, rate=44100, seconds=0.3), 8000)
    middle = out["waveform"][0, 0, 200:-200]
    assert float(middle.abs().max()) < 0.02


def test_huge_results_are_refused_before_allocating(monkeypatch):
    """TrimPadAudio to 10 hours at 384 kHz asked for 51.5 GiB at once and got the generic out-of-memory advice
    (image size, tiled VAE); now the input that made it is named before any memory is taken."""
    audio = _sine(seconds=0.5, rate=16000)
    allocations = []
    monkeypatch.setattr(torch.nn.functional, "pad", lambda *a, **k: allocations.append(a) or a[0])
    with pytest.raises(AudioError, match=r"duration: the result would hold 576,000,000 samples .* use a shorter"):
        wf.trim_pad(audio, duration=36000.0)
    with pytest.raises(AudioError, match=r"sample_rate: the result would hold .* use a lower sample rate"):
        wf.resample(_sine(seconds=400.0, rate=1000), 384000)
    assert allocations == []
    assert wf.trim_pad(audio, duration=1.0)["waveform"].shape[-1] == 0.5 * 16000        # (the patched pad)


def test_trim_pad_mix_gain_fade_and_concatenate():
    """Each operation gives the expected length, level or envelope."""
    audio = _sine(seconds=1.0)
    trimmed = wf.trim_pad(audio, start=0.25, duration=0.5)
    assert trimmed["waveform"].shape[-1] == 8000
    padded = wf.trim_pad(audio, start=0.0, duration=1.5)
    assert padded["waveform"].shape[-1] == 24000 and float(padded["waveform"][..., 16000:].abs().max()) == 0
    with pytest.raises(AudioError, match="past the end"):
        wf.trim_pad(audio, start=2.0)
    louder = wf.apply_gain(audio, 6.0)
    assert torch.allclose(louder["waveform"], audio["waveform"] * 10 ** 0.3)
    mixed = wf.mix(audio, _sine(seconds=0.5, channels=2), gain_b_db=-120)
    assert mixed["waveform"].shape == (1, 2, 16000)        # mono spread to stereo, shorter padded
    assert torch.allclose(mixed["waveform"][0, 1], audio["waveform"][0, 0], atol=1e-5)
    with pytest.raises(AudioError, match="resample one"):
        wf.mix(audio, _sine(rate=22050))
    faded = wf.fade(audio, fade_in=0.1, fade_out=0.2)["waveform"][0, 0]
    assert float(faded[:20].abs().max()) < 0.01 and float(faded[-20:].abs().max()) < 0.01
    assert torch.allclose(faded[4000:8000], audio["waveform"][0, 0, 4000:8000])
    joined = wf.concatenate(audio, audio)
    assert joined["waveform"].shape[-1] == 32000
    crossfaded = wf.concatenate(audio, audio, crossfade=0.1)
    assert crossfaded["waveform"].shape[-1] == 32000 - 1600
    normalized = wf.normalize(audio, peak_db=-6.0)
    assert abs(float(normalized["waveform"].abs().max()) - 10 ** (-6 / 20)) < 1e-4


def test_a_span_past_the_end_blames_start_and_a_backwards_one_end():
    """silence_span names the input the user got wrong: a start past the clip is `start`, end <= start is `end`."""
    audio = wf.make_audio(torch.zeros(1, 1, 16000), 16000)
    with pytest.raises(AudioError, match=r"inside the clip \(0 … 1.000 s\)") as error:
        wf.silence_span(audio, 5.0, 6.0)
    assert error.value.argument == "start"
    with pytest.raises(AudioError) as error:
        wf.silence_span(audio, 0.5, 0.2)
    assert error.value.argument == "end"


def test_a_file_with_nan_samples_is_named_as_the_file(tmp_path):
    """A float WAV holding NaN is the file's fault: the message names the file and how to repair it, not a node."""
    import soundfile

    samples = np.zeros((1600, 1), dtype=np.float32)
    samples[10:20] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(str(path), samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan.wav holds 10 NaN / infinite sample\(s\)") as error:
        wf.read_audio(path)
    assert error.value.argument == "file" and "node" not in str(error.value)


def test_a_truncated_wav_is_refused_naming_both_lengths(tmp_path):
    """A WAV cut short (its header declares more samples than the file holds) is refused with the declared and
    found lengths and the fix; a zero-byte file says it is empty; the whole file reads."""
    whole = tmp_path / "whole.wav"
    wf.write_audio(whole, torch.zeros(1, 16000), 16000, "wav")
    assert wf.read_audio(whole)["waveform"].shape == (1, 1, 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:1000])
    with pytest.raises(AudioError, match=r"cut.wav is truncated: its header declares 16000 samples per channel "
                                         r"\(1.000 s\) but the file holds 478 \(0.030 s\).*copy the whole file"):
        wf.read_audio(cut)
    empty = tmp_path / "zero.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        wf.read_audio(empty)


def test_normalize_only_louder_lowers_loud_clips_and_keeps_quiet_ones():
    """only_louder lowers a clip that peaks above peak_db to it and leaves a quieter clip untouched."""
    wave = torch.stack([torch.full((1, 100), 3.0), torch.full((1, 100), 0.1)])
    out = wf.normalize({"waveform": wave, "sample_rate": 16000}, peak_db=-1.0, only_louder=True)["waveform"]
    assert abs(float(out[0].abs().max()) - 10 ** (-1 / 20)) < 1e-6 and torch.equal(out[1], wave[1])


def test_joining_clips_past_the_sample_cap_is_refused_before_it_allocates(monkeypatch):
    """Two clips under MAX_SAMPLES concatenated went past it (268 M samples, 5.1 GB; a hostile re-test): the join
    is checked before torch.cat, and no AUDIO over the cap passes check_audio."""
    monkeypatch.setattr(wf, "MAX_SAMPLES", 1000)
    clip = wf.make_audio(torch.zeros(1, 1, 600), 16000)
    monkeypatch.setattr(torch, "cat", lambda *a, **k: pytest.fail("allocated before the check"))
    with pytest.raises(AudioError, match="over the 1,000 a waveform may hold") as error:
        wf.concatenate(clip, clip)
    assert error.value.argument == "audio_b" and "TrimPadAudio" in str(error.value)
    monkeypatch.undo()
    monkeypatch.setattr(wf, "MAX_SAMPLES", 1000)
    with pytest.raises(AudioError, match="over the 1,000"):
        wf.check_audio({"waveform": torch.zeros(1, 2, 600), "sample_rate": 16000}, "clip")
    assert wf.concatenate(clip, clip, crossfade=0.02)["waveform"].shape[-1] == 880     # 600 + 600 - 320 fits
