"""Griffin-Lim and the mel inversion stop at an interrupt, and the inversion's work is bounded by the input's length
(an attacker's pass: a 4,000 s clip's Vocode held a server's only worker 13 minutes past its user's 60 s limit, and
an interrupt did nothing until the node returned)."""

import pytest
import torch

from nodegraph import Session
from nodegraph import events as ev
from nodegraph.errors import RunInterrupted
from nodegraph_audio import nodes, spectral

torch.set_num_threads(1)


def _vocode_graph(iterations: int, seconds: float = 2.0) -> dict:
    return {"format_version": 2, "nodes": {
        "snd": {"type": "SynthesizeSound", "inputs": {}},
        "pad": {"type": "TrimPadAudio", "inputs": {"audio": {"node": "snd", "output": "audio"}, "duration": seconds}},
        "mel": {"type": "MelSpectrogram", "inputs": {"audio": {"node": "pad", "output": "audio"}}},
        "voc": {"type": "LoadVocoder", "inputs": {"vocoder_name": "griffin_lim", "iterations": iterations}},
        "out": {"type": "Vocode", "inputs": {"spectrogram": {"node": "mel", "output": "spectrogram"},
                                             "vocoder": {"node": "voc", "output": "vocoder"}}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "out", "output": "audio"}}}}}


@pytest.fixture(scope="module")
def session():
    """A session with the audio plugin (and only it)."""
    return Session(autoload=True, allow=["audio"])


def test_the_iterative_transforms_call_before_iteration_and_stop_when_it_raises():
    """mel_to_linear and griffin_lim call `before_iteration` once per iteration; an exception from it ends them."""
    filters = spectral.mel_filterbank(16000, 256, 20)
    mel = filters @ torch.rand(1, 129, 30)
    calls = []
    spectral.mel_to_linear(mel, filters, iterations=7, before_iteration=lambda: calls.append("mel"))
    spectral.griffin_lim(torch.rand(1, 129, 30), 256, 64, iterations=5, before_iteration=lambda: calls.append("gl"))
    assert calls == ["mel"] * 7 + ["gl"] * 5

    def stop():
        raise RunInterrupted("out")
    with pytest.raises(RunInterrupted):
        spectral.griffin_lim(torch.rand(1, 129, 30), 256, 64, iterations=1000, before_iteration=stop)


def test_an_interrupt_stops_vocode_while_it_runs(session):
    """An interrupt asked for as Vocode starts ends the run inside it: the node never finishes (before, Vocode ran
    all its iterations and the run stopped only after it)."""
    seen = []

    def sink(event):
        seen.append(event)
        if isinstance(event, ev.NodeStarted) and event.node_id == "out":
            session.interrupt()
    with pytest.raises(RunInterrupted) as stopped:
        session.run(_vocode_graph(1000), on_event=sink)
    assert stopped.value.node_id == "out"
    assert not any(isinstance(e, ev.NodeFinished) and e.node_id == "out" for e in seen)


def test_the_mel_inversion_is_bounded_by_the_spectrograms_length(session, monkeypatch):
    """The mel → linear inversion ran a fixed 200 iterations whatever the length (over 12 minutes on a 4,000 s
    clip); past MEL_INVERSION_WORK it runs fewer, and the node says so."""
    assert nodes.mel_inversion_iterations(513 * 1000) == nodes.MEL_INVERSION_ITERATIONS      # a short clip: all
    assert nodes.mel_inversion_iterations(nodes.MEL_INVERSION_WORK // 10) == 10
    assert nodes.mel_inversion_iterations(nodes.MEL_INVERSION_WORK * 2) == 0         # the pseudo-inverse's estimate
    used = []
    real = spectral.mel_to_linear
    monkeypatch.setattr(spectral, "mel_to_linear",
                        lambda *args, **kwargs: used.append(args[2]) or real(*args, **kwargs))
    monkeypatch.setattr(nodes, "MEL_INVERSION_WORK", 513 * 64 * 5)      # this 2 s clip's ~64 frames: 5 iterations
    result = session.run(_vocode_graph(2, 2.0))
    assert used and used[0] < nodes.MEL_INVERSION_ITERATIONS
    assert any("its inversion ran" in w["message"] and f"{used[0]} of 200" in w["message"] for w in result.warnings)
