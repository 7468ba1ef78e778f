"""The audio plugin's nodes in graphs, run headless the way a user runs them: the three demo graphs on the shipped
model, the file-result contract, and the node errors bad input gets (each naming its input)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from nodegraph import Session
from nodegraph.errors import NodeExecutionError
from nodegraph_audio import SHIPPED_MODELS, detect, synth

torch.set_num_threads(1)
PLUGIN = Path(__file__).resolve().parents[1]
GRAPHS = PLUGIN / "graphs"
needs_model = pytest.mark.skipif(not (SHIPPED_MODELS / "tiny_t2a.safetensors").is_file(),
                                 reason="the shipped tiny text-to-audio model is not trained yet")


@pytest.fixture(scope="module")
def session():
    """A session that loads the installed plugin through its entry point (and only it)."""
    return Session(autoload=True, allow=["audio"])


def _graph(name: str) -> dict:
    return json.loads((GRAPHS / f"{name}.json").read_text(encoding="utf-8"))


def _files(result, node: str) -> list[dict]:
    return result.outputs[node]["files"]


def test_plugin_is_found_by_entry_point(session):
    """The `audio` entry point registers its nodes and port types (AUDIO itself is the engine's)."""
    assert {"SPECTROGRAM", "VOCODER", "AUDIO_MODEL", "AUDIO"} <= set(session.registry.types.names())
    for name in ("LoadAudio", "SaveAudio", "STFT", "MelSpectrogram", "GriffinLim", "SpectrogramToImage",
                 "LoadVocoder", "LoadAudioModel", "AudioGapMask", "TrainAudioModel"):
        assert session.registry.node_plugin[name] == "audio"


@needs_model
def test_txt2audio_graph_writes_an_audio_file_with_the_asked_chord(session, tmp_path):
    """txt2audio.json runs headless: a 1.536 s 16 kHz WAV (kind "audio") whose chord is the prompt's, plus a picture."""
    result = session.run(_graph("txt2audio"), output_dir=tmp_path)
    files = _files(result, "save")
    assert [f["kind"] for f in files] == ["audio"] and files[0]["mime"] == "audio/wav"
    assert files[0]["sample_rate"] == 16000 and files[0]["duration"] == pytest.approx(1.536)
    wave, rate = soundfile.read(tmp_path / files[0]["path"], dtype="float32")
    assert rate == 16000 and wave.shape == (24576,)
    assert detect.chord(wave) == (4, "minor")                  # the graph asks for "loud e4 minor chord"
    assert _files(result, "save_picture")[0]["kind"] == "image"
    assert np.abs(wave).max() < 0.9 and result.warnings == []  # levelled below full scale: nothing clipped


def test_save_audio_warns_when_samples_clip_and_names_the_fix(session, tmp_path):
    """SaveAudio warns how many samples were clipped (and names NormalizeAudio); NormalizeAudio with only_louder
    before it removes the warning and leaves a quiet clip as it was."""
    def run(level: dict | None) -> tuple:
        nodes = {"synth": {"type": "SynthesizeSound", "inputs": {"caption": "loud c4 major chord", "seed": 1}},
                 "gain": {"type": "AudioGain", "inputs": {"audio": {"node": "synth", "output": "audio"},
                                                          "gain_db": 20.0}},
                 "save": {"type": "SaveAudio", "inputs": {"audio": {"node": "level" if level else "gain",
                                                                    "output": "audio"}, "filename_prefix": "a/c"}}}
        if level:
            nodes["level"] = {"type": "NormalizeAudio", "inputs": {"audio": {"node": "gain", "output": "audio"},
                                                                   **level}}
        result = session.run({"format_version": 1, "nodes": nodes}, output_dir=tmp_path)
        return [w["message"] for w in result.warnings], result
    (message,), _ = run(None)
    assert "were clipped to ±1" in message and "NormalizeAudio" in message and "%" in message
    warnings, result = run({"peak_db": -1.0, "only_louder": True})
    wave, _ = soundfile.read(tmp_path / _files(result, "save")[0]["path"], dtype="float32")
    assert warnings == [] and 0.85 < np.abs(wave).max() < 0.9


@pytest.mark.parametrize("rate, channels, fmt, words", [
    (384000, 1, "ogg", "up to 192000 Hz"),          # libvorbis crashed the whole process (a segfault) here
    (1000, 1, "mp3", "44100"),
    (16000, 6, "mp3", "at most 2 channels"),
])
def test_save_audio_refuses_what_the_format_cannot_hold_before_writing(session, tmp_path, rate, channels, fmt, words):
    """SaveAudio names the format's limit and the fix (ResampleAudio, another format) — no crash, no empty file."""
    soundfile.write(tmp_path / "clip.wav", np.zeros((1600, channels), dtype="float32"), 16000)
    nodes = {"load": {"type": "LoadAudio", "inputs": {"file": "clip.wav"}},
             "rate": {"type": "ResampleAudio", "inputs": {"audio": {"node": "load", "output": "audio"},
                                                          "sample_rate": rate}},
             "save": {"type": "SaveAudio", "inputs": {"audio": {"node": "rate", "output": "audio"},
                                                      "filename_prefix": "edge/a", "format": fmt}}}
    with pytest.raises(NodeExecutionError) as info:
        session.run({"format_version": 1, "nodes": nodes}, output_dir=tmp_path, input_dir=tmp_path)
    message = str(info.value.exception)
    assert "'format'" in message and words in message and "Fix:" in message, message
    assert not (tmp_path / "edge").exists() or not any((tmp_path / "edge").iterdir())


@needs_model
def test_inpaint_graph_keeps_the_sound_outside_the_gap_and_fills_it(session, tmp_path):
    """audio_inpaint.json: the latent outside the masked span is the source's; the silenced dropout is filled with
    the A minor chord at about the level around it."""
    result = session.run(_graph("audio_inpaint"), output_dir=tmp_path, outputs=["sample", "encode", "save"])
    before = result.outputs["encode"]["latent"]["samples"]
    after = result.outputs["sample"]["latent"]["samples"]
    frames_per_second = 16000 / 256
    outside = torch.ones(after.shape[-1], dtype=torch.bool)
    outside[int(0.44 * frames_per_second) - 3: int(0.96 * frames_per_second) + 4] = False
    assert torch.allclose(after[..., outside], before[..., outside], atol=1e-5)
    wave, _ = soundfile.read(tmp_path / _files(result, "save")[0]["path"], dtype="float32")
    gap, around = wave[int(0.55 * 16000):int(0.85 * 16000)], wave[int(0.2 * 16000):int(0.4 * 16000)]
    assert detect.chord(gap) == (9, "minor")
    assert 0.5 < np.sqrt(np.mean(gap ** 2)) / np.sqrt(np.mean(around ** 2)) < 2.0


@needs_model
def test_audio2audio_graph_keeps_the_timing_and_changes_the_chord(session, tmp_path):
    """audio2audio.json (denoise 0.7): the source's onset survives and the C4 major chord becomes minor."""
    result = session.run(_graph("audio2audio"), output_dir=tmp_path)
    source, _ = soundfile.read(tmp_path / _files(result, "save_source")[0]["path"], dtype="float32")
    output, _ = soundfile.read(tmp_path / _files(result, "save")[0]["path"], dtype="float32")
    assert detect.chord(source) == (0, "major") and detect.chord(output)[1] == "minor"
    assert 0.85 < np.abs(output).max() < 0.9          # levelled to -1 dBFS: nothing clipped in the file

    def onset(wave):
        envelope = np.convolve(np.abs(wave), np.ones(400) / 400, mode="same")
        return np.argmax(envelope > 0.3 * envelope.max()) / 16000

    assert abs(onset(output) - onset(source)) < 0.05


def _run_single(session, tmp_path, nodes: dict, output: str):
    return session.run({"format_version": 1, "nodes": nodes}, output_dir=tmp_path, input_dir=tmp_path,
                       outputs=[output])


def test_load_save_round_trip_and_spectrogram_nodes(session, tmp_path):
    """LoadAudio → STFT → InverseSTFT → SaveAudio (FLAC) is lossless; MelSpectrogram → dB → image has its size."""
    t = np.arange(8000) / 16000
    soundfile.write(tmp_path / "tone.wav", 0.4 * np.sin(2 * np.pi * 440 * t), 16000, subtype="FLOAT")
    nodes = {
        "load": {"type": "LoadAudio", "inputs": {"file": "tone.wav"}},
        "stft": {"type": "STFT", "inputs": {"audio": {"node": "load", "output": "audio"}, "n_fft": 512, "hop": 128}},
        "inverse": {"type": "InverseSTFT", "inputs": {"spectrogram": {"node": "stft", "output": "spectrogram"}}},
        "save": {"type": "SaveAudio", "inputs": {"audio": {"node": "inverse", "output": "audio"},
                                                 "filename_prefix": "round", "format": "flac"}},
        "mel": {"type": "MelSpectrogram", "inputs": {"audio": {"node": "load", "output": "audio"}, "n_mels": 40}},
        "db": {"type": "SpectrogramScale", "inputs": {"spectrogram": {"node": "mel", "output": "spectrogram"}}},
        "image": {"type": "SpectrogramToImage", "inputs": {"spectrogram": {"node": "db", "output": "spectrogram"}}},
    }
    result = session.run({"format_version": 1, "nodes": nodes}, output_dir=tmp_path, input_dir=tmp_path,
                         outputs=["save", "image"])
    back, _ = soundfile.read(tmp_path / _files(result, "save")[0]["path"], dtype="float32")
    assert np.abs(back - 0.4 * np.sin(2 * np.pi * 440 * t)).max() < 1e-3      # 16-bit FLAC
    assert tuple(result.outputs["image"]["image"].shape) == (1, 40, 1 + 8000 // 256, 3)


def _error(session, tmp_path, nodes, output) -> str:
    with pytest.raises(NodeExecutionError) as error:
        _run_single(session, tmp_path, nodes, output)
    return str(error.value)


def test_unreadable_empty_and_too_long_files_are_node_errors_naming_file(session, tmp_path):
    """LoadAudio refuses garbage, an empty WAV and a file over max_seconds, naming the input `file`."""
    (tmp_path / "junk.wav").write_bytes(b"RIFF....not really")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    soundfile.write(tmp_path / "long.wav", np.zeros(16000 * 3), 16000)
    for name, expected in (("junk.wav", "not a readable audio file"), ("empty.wav", "no samples"),
                           ("long.wav", "over the limit")):
        message = _error(session, tmp_path, {"load": {"type": "LoadAudio", "inputs": {"file": name,
                                                                                      "max_seconds": 2.0}}}, "load")
        assert "'file'" in message and expected in message


def test_nan_audio_is_refused_naming_the_input(session, tmp_path):
    """A waveform with NaN (made by a gain of NaN-producing audio) is refused by the next node, naming `audio`."""
    soundfile.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1] * 100, dtype=np.float32), 16000,
                    subtype="FLOAT")
    message = _error(session, tmp_path, {"load": {"type": "LoadAudio", "inputs": {"file": "nan.wav"}}}, "load")
    assert "NaN" in message and "'file'" in message


@needs_model
def test_model_input_rules_name_the_input(session, tmp_path):
    """AudioToLatent refuses 44.1 kHz audio and clips over 1.536 s, naming `audio` and the fix."""
    t = np.arange(44100) / 44100
    soundfile.write(tmp_path / "cd.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 44100)
    soundfile.write(tmp_path / "long16k.wav", np.zeros(16000 * 2), 16000)
    model = {"model": {"type": "LoadAudioModel", "inputs": {}}}
    for name, expected in (("cd.wav", "ResampleAudio"), ("long16k.wav", "over the model's length limit")):
        message = _error(session, tmp_path, {**model, "load": {"type": "LoadAudio", "inputs": {"file": name}},
                                             "latent": {"type": "AudioToLatent", "inputs": {
                                                 "audio": {"node": "load", "output": "audio"},
                                                 "audio_model": {"node": "model", "output": "audio_model"}}}},
                         "latent")
        assert "'audio'" in message and expected in message


def test_hifigan_vocoder_from_the_model_folder_vocodes_a_matching_mel(tmp_path):
    """A SpeechT5HifiGan-layout generator (random weights, its config in the metadata) saved in models/vocoder loads
    by name and vocodes an 80-mel, hop-256 spectrogram; a 64-mel spectrogram is refused naming `vocoder`."""
    from safetensors.torch import save_file

    from nodegraph.model_paths import ModelPaths
    from nodegraph_audio.hifigan import HifiGanConfig, HifiGanGenerator

    torch.manual_seed(0)
    config = HifiGanConfig(upsample_initial_channel=32)            # SpeechT5's layout at a tiny width
    generator = HifiGanGenerator(config)
    folder = tmp_path / "models" / "vocoder"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in generator.state_dict().items()},
              str(folder / "tiny_hifigan.safetensors"), metadata={"config": config.to_json()})
    session = Session(autoload=True, allow=["audio"], model_paths=ModelPaths(roots=[], extra={"vocoder": [folder]}))

    def graph(n_mels):
        return {"format_version": 1, "nodes": {
            "source": {"type": "SynthesizeSound", "inputs": {"caption": "loud tone at a4"}},
            "mel": {"type": "MelSpectrogram", "inputs": {"audio": {"node": "source", "output": "audio"},
                                                         "n_mels": n_mels, "f_min": 80.0, "f_max": 7600.0,
                                                         "power": 1.0}},
            "vocoder": {"type": "LoadVocoder", "inputs": {"vocoder_name": "tiny_hifigan.safetensors"}},
            "vocode": {"type": "Vocode", "inputs": {"spectrogram": {"node": "mel", "output": "spectrogram"},
                                                    "vocoder": {"node": "vocoder", "output": "vocoder"}}}}}

    audio = session.run(graph(80), output_dir=tmp_path, outputs=["vocode"]).outputs["vocode"]["audio"]
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape == (1, 1, synth.CLIP_SAMPLES)
    with pytest.raises(NodeExecutionError, match="'vocoder'.*80 mel bins.*64"):
        session.run(graph(64), output_dir=tmp_path, outputs=["vocode"])


def test_training_graph_smoke_trains_saves_and_loads(tmp_path):
    """train_tiny_t2a.json at 2 steps of batch 2 (a small width) trains, saves without overwriting, and the saved
    file loads and samples through LoadAudioModel + KSampler."""
    from nodegraph.model_paths import ModelPaths

    session = Session(autoload=True, allow=["audio"], model_paths=ModelPaths(roots=[tmp_path / "models"]))
    overrides = {"train.steps": 2, "train.batch_size": 2, "train.widths": "16,16,16", "train.warmup_steps": 1,
                 "train.run_name": "smoke", "save.filename": "smoke.safetensors", "save.overwrite": False}
    result = session.run(_graph("train_tiny_t2a"), overrides=overrides, output_dir=tmp_path / "output")
    first = Path(result.outputs["save"]["model_files"][0]["path"])
    assert first == tmp_path / "models" / "audio" / "smoke.safetensors"
    fresh = Session(autoload=True, allow=["audio"], model_paths=ModelPaths(roots=[tmp_path / "models"]))
    again = fresh.run(_graph("train_tiny_t2a"), overrides=overrides, output_dir=tmp_path / "output")
    assert Path(again.outputs["save"]["model_files"][0]["path"]).name == "smoke_1.safetensors"   # never overwritten
    report = json.loads(result.outputs["report"]["value"])
    assert report["steps"] == 2 and math.isfinite(report["final_loss_mean_last_50"])
    graph = _graph("txt2audio")
    graph["nodes"]["model"]["inputs"]["model_name"] = "smoke.safetensors"
    graph["nodes"]["sample"]["inputs"]["steps"] = 2
    out = session.run(graph, output_dir=tmp_path / "output", outputs=["decode"]).outputs["decode"]["audio"]
    assert out["waveform"].shape == (1, 1, synth.CLIP_SAMPLES) and bool(torch.isfinite(out["waveform"]).all())


def test_spectrogram_edited_as_an_image_comes_back_as_audio(session, tmp_path):
    """STFT → SpectrogramToImage → (an image edit: ImageBlend with itself) → ImageToSpectrogram → GriffinLim keeps the
    tone's pitch; a mel spectrogram vocoded by the griffin_lim VOCODER keeps it too."""
    nodes = {
        "source": {"type": "SynthesizeSound", "inputs": {"caption": "loud tone at a4", "seed": 1}},
        "stft": {"type": "STFT", "inputs": {"audio": {"node": "source", "output": "audio"}}},
        "image": {"type": "SpectrogramToImage", "inputs": {"spectrogram": {"node": "stft", "output": "spectrogram"}}},
        "edit": {"type": "ImageBlend", "inputs": {"a": {"node": "image", "output": "image"},
                                                  "b": {"node": "image", "output": "image"}, "factor": 0.5}},
        "back": {"type": "ImageToSpectrogram", "inputs": {"image": {"node": "edit", "output": "image"},
                                                          "reference": {"node": "stft", "output": "spectrogram"}}},
        "audio": {"type": "GriffinLim", "inputs": {"spectrogram": {"node": "back", "output": "spectrogram"}}},
        "mel": {"type": "MelSpectrogram", "inputs": {"audio": {"node": "source", "output": "audio"}, "n_mels": 128,
                                                     "f_max": 4000.0}},
        "vocoder": {"type": "LoadVocoder", "inputs": {"vocoder_name": "griffin_lim"}},
        "vocoded": {"type": "Vocode", "inputs": {"spectrogram": {"node": "mel", "output": "spectrogram"},
                                                 "vocoder": {"node": "vocoder", "output": "vocoder"}}},
    }
    result = session.run({"format_version": 1, "nodes": nodes}, output_dir=tmp_path, outputs=["audio", "vocoded"])
    for node in ("audio", "vocoded"):
        wave = result.outputs[node]["audio"]["waveform"][0, 0].numpy()
        assert abs(detect.semitone_error(detect.pitch(wave), 69)) < 0.5, node
    with pytest.raises(NodeExecutionError, match="'image'.*does not match"):
        session.run({"format_version": 1, "nodes": {
            **{k: nodes[k] for k in ("source", "stft")},
            "other": {"type": "SynthesizeSound", "inputs": {"caption": "noise burst"}},
            "short": {"type": "TrimPadAudio", "inputs": {"audio": {"node": "other", "output": "audio"},
                                                         "duration": 0.5}},
            "stft2": {"type": "STFT", "inputs": {"audio": {"node": "short", "output": "audio"}}},
            "image": {"type": "SpectrogramToImage",
                      "inputs": {"spectrogram": {"node": "stft2", "output": "spectrogram"}}},
            "back": {"type": "ImageToSpectrogram", "inputs": {"image": {"node": "image", "output": "image"},
                                                              "reference": {"node": "stft", "output": "spectrogram"}}},
        }}, output_dir=tmp_path, outputs=["back"])


@pytest.mark.parametrize("name", ["../x.safetensors", "/etc/passwd", "missing.safetensors"])
def test_vocoder_names_outside_or_missing_name_the_vocoder_input(name, tmp_path):
    """A vocoder name that leaves the model folder or names no file is an error against `vocoder_name`, found by
    validation (before the run)."""
    from nodegraph.errors import GraphValidationError

    session = Session(autoload=True, allow=["audio"], input_dir=tmp_path, output_dir=tmp_path)
    graph = {"format_version": 1, "nodes": {"v": {"type": "LoadVocoder", "inputs": {"vocoder_name": name}}}}
    with pytest.raises(GraphValidationError) as info:
        session.run(graph, outputs=["v"])
    assert [(e.node_id, e.input) for e in info.value.errors] == [("v", "vocoder_name")]
    assert "'griffin_lim'" in info.value.errors[0].message


@pytest.mark.parametrize("name", ["missing.safetensors", "../checkpoints/tiny_world.safetensors", "/etc/passwd"])
def test_audio_model_names_are_checked_against_the_model_folder_and_shipped_models(name, tmp_path):
    """model_name is a model-folder input: a name that is not there (or leaves the folder) is refused before the run,
    against model_name, and the shipped model is among the files the error offers."""
    from nodegraph.errors import GraphValidationError

    session = Session(autoload=True, allow=["audio"], input_dir=tmp_path, output_dir=tmp_path)
    with pytest.raises(GraphValidationError) as info:
        session.run({"format_version": 1, "nodes": {"m": {"type": "LoadAudioModel", "inputs": {"model_name": name}}}},
                    outputs=["m"])
    error = info.value.errors[0]
    assert error.input == "model_name"
    if name == "missing.safetensors":
        assert "tiny_t2a.safetensors" in error.message


@needs_model
def test_encode_prompt_reads_other_phrasings_as_the_worlds_captions(session):
    """EncodeAudioPrompt encodes "a loud C major chord" as the caption the model learned ("loud c4 major chord"),
    keeps exact captions as written (any template), and encodes anything else word by word; `prompt` says which,
    and names the words read as <unk>; a prompt with no word it knows is refused."""
    from nodegraph_audio.text import tokenize

    def encode(text: str) -> dict:
        return session.run({"format_version": 1, "nodes": {
            "m": {"type": "LoadAudioModel", "inputs": {}},
            "p": {"type": "EncodeAudioPrompt", "inputs": {"audio_model": {"node": "m", "output": "audio_model"},
                                                          "text": text}}}}, outputs=["p"]).outputs["p"]

    for text, prompt in (("a loud C major chord", "loud c4 major chord"), ("quiet note b5", "quiet note b5"),
                         ("metronome at 120bpm", "clicks at 120 bpm"), ("a violin chord", "a violin chord")):
        out = encode(text)
        assert out["prompt"].startswith(prompt) and out["conditioning"]["tokens"].tolist() == [tokenize(prompt)]
        beat = out["conditioning"]["beat"]                       # the shipped model has beat conditioning
        assert beat.shape == (1, 4, 96) and bool((beat[0, 0] == 1).all()) == prompt.startswith("clicks")
    assert encode("a violin chord")["prompt"] == "a violin chord (unknown words read as <unk>: a, violin)"
    with pytest.raises(NodeExecutionError) as info:              # no word it knows: refused, as video and 3D do
        encode("a dog barking")
    assert info.value.exception.input == "text" and "no word the tiny audio model knows" in str(info.value)
    assert "it names no sound of the tiny world" in str(info.value)
    with pytest.raises(NodeExecutionError) as info:              # a word beyond a-z is named whole ('tr', 's' before)
        encode("très fort accord")
    assert "'très', 'fort', 'accord'" in str(info.value)
    assert encode("Middle C")["prompt"] == "tone at c4"         # the README's "middle C", alone


@needs_model
def test_encode_prompt_warns_what_it_cannot_read(session):
    """A prompt read word by word warns why (a note or tempo the model was not trained on, two sounds, a chord
    without major / minor); a prompt read as one sound and the empty prompt do not warn."""
    fresh = Session(autoload=True, allow=["audio"])                 # a cached result does not repeat its warnings

    def warnings(text: str) -> list[str]:
        result = fresh.run({"format_version": 1, "nodes": {
            "m": {"type": "LoadAudioModel", "inputs": {}},
            "p": {"type": "EncodeAudioPrompt", "inputs": {"audio_model": {"node": "m", "output": "audio_model"},
                                                          "text": text}}}}, outputs=["p"])
        return [w["message"] for w in result.warnings]

    for text, reason in (("a tone at c9", "C9 is outside the notes the model was trained on"),
                         ("clicks at 300 bpm", "300 bpm is not a tempo the model was trained on"),
                         ("a rising sweep and a loud tone at c4", "two sounds (sweep and tone)"),
                         ("a violin chord", "a chord needs major or minor")):
        (message,) = warnings(text)
        assert reason in message and "encoded word by word" in message, message
    assert warnings("a loud C major chord") == [] and warnings("") == [] and warnings("clicks at 90 bpm") == []


def test_encode_prompt_gives_beat_features_to_a_beat_model_and_sampling_uses_them(tmp_path):
    """With a beat-conditioned model, EncodeAudioPrompt adds the beat phase for a click-track prompt (first click at
    `beat_offset`) and zeros for any other prompt and the empty one; txt2audio.json with CFG samples with them."""
    from nodegraph.model_paths import ModelPaths
    from nodegraph_audio.beat import beat_features
    from nodegraph_audio.denoiser import AudioDenoiser, AudioDenoiserConfig
    from nodegraph_audio.features import DEFAULT_SPEC
    from nodegraph_audio.model_file import save_audio_model

    torch.manual_seed(0)
    net = AudioDenoiser(AudioDenoiserConfig(widths=(16, 16), attention_levels=(1,), heads=2, embed_width=32,
                                            text_width=16, text_layers=1, beat_conditioning=True)).eval()
    for name, parameter in net.named_parameters():                 # an "untrained" net whose output depends on all
        parameter.data.normal_(0, 0.5 if name.startswith("beat_") else 0.05)
    folder = tmp_path / "models"
    folder.mkdir()
    save_audio_model(folder / "beat.safetensors", net, DEFAULT_SPEC, {})
    session = Session(autoload=True, allow=["audio"], model_paths=ModelPaths(roots=[], extra={"audio": [folder]}))

    def encode(text: str, offset: float = 0.05) -> torch.Tensor:
        return session.run({"format_version": 1, "nodes": {
            "m": {"type": "LoadAudioModel", "inputs": {"model_name": "beat.safetensors"}},
            "p": {"type": "EncodeAudioPrompt", "inputs": {"audio_model": {"node": "m", "output": "audio_model"},
                                                          "text": text, "beat_offset": offset}}}},
            outputs=["p"]).outputs["p"]["conditioning"]["beat"]

    assert torch.equal(encode("metronome at 120bpm"), beat_features(120, 0.05, DEFAULT_SPEC)[None])
    assert torch.equal(encode("loud clicks at 60 bpm", 0.2), beat_features(60, 0.2, DEFAULT_SPEC)[None])
    assert torch.equal(encode("ticking at 150 bpm"), beat_features(150, 0.05, DEFAULT_SPEC)[None])   # off the grid
    for text in ("a loud C major chord", "noise burst", "", "a violin chord"):
        assert torch.equal(encode(text), torch.zeros(1, 4, 96)), text
    graph = _graph("txt2audio")
    graph["nodes"]["model"]["inputs"]["model_name"] = "beat.safetensors"
    graph["nodes"]["prompt"]["inputs"]["text"] = "clicks at 120 bpm"
    graph["nodes"]["sample"]["inputs"]["steps"] = 2
    latent = session.run(graph, output_dir=tmp_path, outputs=["sample"]).outputs["sample"]["latent"]["samples"]
    graph["nodes"]["prompt"]["inputs"]["beat_offset"] = 0.3
    shifted = session.run(graph, output_dir=tmp_path, outputs=["sample"]).outputs["sample"]["latent"]["samples"]
    assert latent.shape == (1, 1, 256, 96) and bool(torch.isfinite(latent).all())
    assert not torch.allclose(latent, shifted)                   # the beat reaches the network through KSampler


def test_click_tempos_off_the_training_grid_are_read_and_followed():
    """read_click_tempo maps a click prompt at an off-grid tempo (60 … 240 bpm) to the nearest grid caption and the
    tempo asked, and nothing else; with the shipped beat model, "clicks at 150 bpm" (the grid has 140 and 160)
    comes out at 150 bpm within 5 % by the detector, and `prompt` names both tempos."""
    from nodegraph_audio import synth
    from nodegraph_audio.detect import tempo

    spec, asked = synth.read_click_tempo("a loud metronome at 90 beats per minute")
    assert (synth.caption(spec), asked) == ("loud clicks at 80 bpm", 90)
    assert synth.read_click_tempo("quiet pulse at 210bpm")[1] == 210
    for text in ("clicks at 120 bpm", "clicks at 40 bpm", "clicks at 250 bpm", "clicks at 90 and 110 bpm",
                 "a tone at 90 bpm", "clicks", "noise burst"):
        assert synth.read_click_tempo(text) is None, text
    if not (SHIPPED_MODELS / "tiny_t2a.safetensors").is_file():
        pytest.skip("the shipped audio model is missing")
    session = Session(autoload=True, allow=["audio"])
    graph = _graph("txt2audio")
    graph["nodes"]["prompt"]["inputs"]["text"] = "clicks at 150 bpm"
    outputs = session.run(graph, outputs=["decode", "prompt"]).outputs
    assert outputs["prompt"]["prompt"] == "clicks at 140 bpm (beat at 150 bpm)"
    wave = outputs["decode"]["audio"]
    samples = (wave["waveform"] if isinstance(wave, dict) else wave.waveform).numpy().reshape(-1)
    assert abs(tempo(samples) - 150) <= 7.5


def test_synthesize_sound_reads_other_phrasings(session):
    """SynthesizeSound makes the sound a free phrasing names (a 440 Hz tone for "soft beep at A4")."""
    result = session.run({"format_version": 1, "nodes": {
        "s": {"type": "SynthesizeSound", "inputs": {"caption": "soft beep at A4", "seed": 2}}}}, outputs=["s"])
    wave = result.outputs["s"]["audio"]["waveform"][0, 0].numpy()
    assert abs(detect.semitone_error(detect.pitch(wave), 69)) < 0.1 and detect.loudness(wave) == "quiet"


@pytest.mark.parametrize("low_db", [0.0, -0.0, -0.5])
def test_spectrogram_picture_refuses_an_empty_db_range(session, low_db):
    """AudioSpectrogramImage's low_db must be at least 1 dB below the loudest bin (0 dB): 0 left no grey scale."""
    from nodegraph.errors import GraphValidationError

    graph = {"format_version": 1, "nodes": {
        "a": {"type": "SynthesizeSound", "inputs": {}},
        "picture": {"type": "AudioSpectrogramImage", "inputs": {"audio": {"node": "a", "output": "audio"},
                                                                "low_db": low_db}}}}
    with pytest.raises(GraphValidationError) as info:
        session.run(graph, outputs=["picture"])
    assert info.value.errors[0].input == "low_db"


def test_an_uploaded_wav_loads(tmp_path):
    """What the editor's Upload button stores (a media upload of kind audio) is what LoadAudio reads."""
    import io
    import wave

    from nodegraph.files import FileStore

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x10" * 4000)
    file_id = FileStore(tmp_path / "in", tmp_path / "out").save_upload("my voice.wav", buffer.getvalue(), "audio")
    assert file_id == "input/my_voice.wav"
    session = Session(autoload=True, allow=["audio"], input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    audio = session.run({"format_version": 1, "nodes": {"load": {"type": "LoadAudio", "inputs": {
        "file": "my_voice.wav"}}}}, outputs=["load"]).outputs["load"]["audio"]
    assert audio["sample_rate"] == 8000 and audio["waveform"].shape == (1, 1, 4000)


def test_a_spectrogram_too_large_to_make_is_refused_naming_the_hop_that_fits(session, tmp_path, monkeypatch):
    """n_fft 16384 at hop 1 on a 5 s clip asked for 4.9 GiB at once and failed as out-of-memory advice about tiled
    VAE decoding (a hostile pass). STFT, MelSpectrogram and AudioSpectrogramImage refuse a spectrogram over
    MAX_SPECTROGRAM_VALUES first, naming `hop` and the least hop that fits — which then runs."""
    from nodegraph_audio import nodes as audio_nodes

    monkeypatch.setattr(audio_nodes, "MAX_SPECTROGRAM_VALUES", 200_000)
    soundfile.write(tmp_path / "tone.wav", np.zeros(16000, np.float32), 16000)
    load = {"type": "LoadAudio", "inputs": {"file": "tone.wav"}}
    for node_type in ("STFT", "MelSpectrogram", "AudioSpectrogramImage"):
        inputs = {"audio": {"node": "load", "output": "audio"}, "n_fft": 1024, "hop": 1}
        nodes = {"load": load, "spec": {"type": node_type, "inputs": inputs},
                 "show": {"type": "ShowValue", "inputs": {"value": {"node": "spec", "output": "image" if node_type ==
                                                                    "AudioSpectrogramImage" else "spectrogram"}}}}
        with pytest.raises(NodeExecutionError) as info:
            _run_single(session, tmp_path, nodes, "show")
        error = info.value.exception
        assert error.input == "hop" and "over the 200,000 one may hold" in str(error), (node_type, str(error))
        least = int(str(error).split("raise hop (to ")[1].split(" ")[0])
        inputs["hop"] = least
        _run_single(session, tmp_path, nodes, "show")
        inputs["hop"] = least - 1
        with pytest.raises(NodeExecutionError):
            _run_single(session, tmp_path, nodes, "show")


def test_a_spectrogram_within_the_cap_still_asks_for_the_free_memory(monkeypatch):
    """n_fft 16384 at hop 5 fits MAX_SPECTROGRAM_VALUES yet took 4.3 GB with no look at the free memory (a hostile
    re-test); the size is asked for before the STFT runs."""
    from nodegraph import memory
    from nodegraph.errors import NodeOutOfMemory
    from nodegraph_audio import nodes as audio_nodes

    monkeypatch.setenv(memory.RESERVE_ENV, "0")
    monkeypatch.setattr(memory, "system_memory", lambda: (10**8, 16 * 2**30))        # 100 MB free
    with pytest.raises(NodeOutOfMemory, match="the spectrogram"):
        audio_nodes._check_spectrogram_size(16384, 5, 1, 80_000)
    audio_nodes._check_spectrogram_size(1024, 256, 1, 80_000)          # 513 × 313 values: a few MB
