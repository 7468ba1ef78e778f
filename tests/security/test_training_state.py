"""Training state is safetensors + JSON: nothing is unpickled, resume stays exact, damage is a clear error."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace

import pytest
import torch

from nodegraph import NodeExecutionError, Session
from nodes.models.clip import CLIP_L, CLIPTextModel
from nodes.models.unet import UNetConfig, UNetModel
from nodes.models.vae import AutoencoderKL, VAEConfig
from nodes.sampling.schedules import alphas_cumprod_from_betas, scaled_linear_betas
from nodes.training.trainer import (STATE_JSON, STATE_TENSORS, DiffusionData, TrainConfig, TrainingRun,
                                    TrainingStateError, train_diffusion, train_vae)

from .conftest import link

from ..interrupt import StopTraining, stop_at


class _Planted:
    """A pickle payload that would create a marker file if it were ever unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(folder, marker) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "training_state.pt", "wb") as handle:
        pickle.dump({"step": 1, "identity": "x", "payload": _Planted(str(marker))}, handle)


def test_state_files_are_safetensors_and_json_only(tmp_path):
    """A saved state is one .safetensors and one JSON file (with the step); no pickle is written."""
    from safetensors.torch import load_file

    run = TrainingRun(tmp_path / "run", {"a": 1})
    model = torch.nn.Linear(3, 2)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    optimiser.step()
    run.save({"step": 7, "model": model.state_dict(), "optimiser": optimiser.state_dict(), "ema": None})
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [STATE_JSON, STATE_TENSORS]
    saved = json.loads((tmp_path / "run" / STATE_JSON).read_text())
    assert saved["step"] == 7 and saved["format"] == "nodegraph.training_state/1"
    tensors = load_file(str(tmp_path / "run" / STATE_TENSORS))
    assert any(t.dtype == torch.uint8 for t in tensors.values())                 # the RNG state
    state = run.resume()
    assert state["step"] == 7 and torch.equal(state["model"]["weight"], model.weight)
    assert state["optimiser"]["param_groups"][0]["betas"] == (0.9, 0.99)          # tuples come back as tuples
    assert set(state["optimiser"]["state"]) == {0, 1}                             # int keys come back as ints
    optimiser.load_state_dict(state["optimiser"])


def test_resume_restores_the_global_rng(tmp_path):
    """The global torch RNG after resume continues exactly where it was at the save."""
    run = TrainingRun(tmp_path / "run", {"a": 1})
    torch.manual_seed(123)
    torch.rand(5)
    run.save({"step": 1})
    expected = torch.rand(3)
    torch.manual_seed(999)
    run.resume()
    assert torch.equal(torch.rand(3), expected)


def test_planted_pickle_state_is_refused_not_opened(tmp_path):
    """An old or planted training_state.pt is refused with a clear error and its payload never runs."""
    marker = tmp_path / "pwned"
    _plant(tmp_path / "run", marker)
    with pytest.raises(TrainingStateError, match="pickle"):
        TrainingRun(tmp_path / "run", {"a": 1}).resume()
    assert not marker.exists()


def test_training_node_with_planted_pickle_names_run_name(tmp_path):
    """TrainVAE on a run folder holding a planted pickle fails naming run_name; the payload never runs."""
    marker = tmp_path / "pwned"
    _plant(tmp_path / "out" / "training" / "vae", marker)
    graph = {"format_version": 1, "nodes": {
        "data": {"type": "TinyWorldDataset", "inputs": {"count": 4, "size": 16}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "width": 32, "channel_mult": "1",
                                               "steps": 1, "batch_size": 2, "run_name": "vae"}},
        "show": {"type": "ShowValue", "inputs": {"value": link("vae", "report")}}}}
    with pytest.raises(NodeExecutionError) as info:
        Session(output_dir=tmp_path / "out").run(graph)
    assert info.value.exception.input == "run_name" and "pickle" in str(info.value.exception)
    assert not marker.exists()


def test_mismatched_or_damaged_state_is_a_clear_error(tmp_path):
    """Tensors from one save with the JSON of another, or a damaged JSON, raise TrainingStateError with the fix."""
    run = TrainingRun(tmp_path / "run", {"a": 1})
    run.save({"step": 1, "w": torch.ones(2)})
    first_json = (tmp_path / "run" / STATE_JSON).read_text()
    run.save({"step": 2, "w": torch.zeros(2)})
    (tmp_path / "run" / STATE_JSON).write_text(first_json)
    with pytest.raises(TrainingStateError, match="different saves"):
        run.resume()
    (tmp_path / "run" / STATE_JSON).write_text("[" * 100_000)
    with pytest.raises(TrainingStateError, match="damaged.*delete the run folder"):
        run.resume()
    (tmp_path / "run" / STATE_JSON).write_text(first_json)
    (tmp_path / "run" / STATE_TENSORS).write_bytes(b"\x00" * 5)
    with pytest.raises(TrainingStateError, match="damaged"):
        run.resume()


def test_diffusion_resume_is_exact(tmp_path):
    """UNet + text encoder training interrupted after a checkpoint and resumed ends bitwise equal."""
    def models():
        torch.manual_seed(0)
        text = replace(CLIP_L, width=32, layers=1, heads=2, intermediate=64)
        unet = UNetModel(UNetConfig(model_channels=32, channel_mult=(1, 1), num_res_blocks=1,
                                    transformer_depth=(0, 1), context_dim=32, num_heads=2))
        return unet, CLIPTextModel(text)

    torch.manual_seed(1)
    data = DiffusionData(torch.randn(6, 4, 8, 8), torch.randint(1, 1000, (6, 77)), torch.full((77,), 49407))
    alphas = alphas_cumprod_from_betas(scaled_linear_betas())
    config = TrainConfig(steps=4, batch_size=3, lr=1e-3, warmup_steps=1, ema_decay=0.9, checkpoint_every=2)
    whole = models()
    train_diffusion(*whole, data, alphas, config, lambda *a: None, TrainingRun(tmp_path / "a", {"x": 1}))

    run = TrainingRun(tmp_path / "b", {"x": 1})
    with pytest.raises(StopTraining):
        train_diffusion(*models(), data, alphas, config, stop_at(3), run)
    resumed = models()
    train_diffusion(*resumed, data, alphas, config, lambda *a: None, run)
    for module_a, module_b in zip(whole, resumed):
        for a, b in zip(module_a.state_dict().values(), module_b.state_dict().values()):
            assert torch.equal(a, b)
    assert not any(p.suffix == ".pt" for p in (tmp_path / "b").iterdir())


def test_vae_state_survives_a_fresh_process_view(tmp_path):
    """A VAE state written by save() resumes from the files alone (a new TrainingRun object) at the saved step."""
    config = TrainConfig(steps=2, batch_size=2, lr=1e-3, warmup_steps=1, ema_decay=0.0, checkpoint_every=1)
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1,), num_res_blocks=1, z_channels=4))
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    train_vae(vae, images, config, lambda *a: None, TrainingRun(tmp_path / "v", {"k": 1}))
    state = TrainingRun(tmp_path / "v", {"k": 1}).resume()
    assert state["step"] == 2 and state["ema"] is None
    assert all(torch.equal(state["model"][k], v) for k, v in vae.state_dict().items())
    assert os.path.getsize(tmp_path / "v" / STATE_TENSORS) > 0


def test_two_runs_saving_into_one_folder_at_once_keep_whole_pairs(tmp_path):
    """Two runs sharing a run_name at the same time (two processes, a sweep) wrote the same temporary files: one
    died in os.replace, or one save's tensors sat beside the other's JSON. Saves now take turns: every state
    read back is one whole save (the last one wins)."""
    import threading

    from nodes.training.trainer import TrainingRun

    runs = [TrainingRun(tmp_path / "race", {"a": 1}) for _ in range(2)]
    failures: list[BaseException] = []

    def save_many(run: TrainingRun, offset: int) -> None:
        try:
            for step in range(20):
                run.save({"step": offset + step, "w": torch.full((256,), float(offset + step))})
        except BaseException as exc:  # noqa: BLE001 — collected for the assertion
            failures.append(exc)

    threads = [threading.Thread(target=save_many, args=(run, 1000 * i)) for i, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        state = TrainingRun(tmp_path / "race", {"a": 1}).resume()
        if state is not None:
            assert torch.equal(state["w"], torch.full((256,), float(state["step"])))     # one save's pair
    for thread in threads:
        thread.join()
    assert failures == []
    assert TrainingRun(tmp_path / "race", {"a": 1}).resume()["step"] in (19, 1019)


def test_an_interrupted_training_says_its_state_is_kept_and_the_rerun_says_it_resumes(tmp_path):
    """Ctrl+C printed only "interrupted" (was anything kept?) and the re-run gave no sign it resumed."""
    from nodegraph.errors import RunInterrupted

    graph = {"format_version": 1, "nodes": {
        "data": {"type": "TinyWorldDataset", "inputs": {"count": 4, "size": 16}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": {"node": "data", "output": "dataset"}, "width": 32,
                                               "channel_mult": "1", "steps": 6, "batch_size": 2,
                                               "checkpoint_every": 2, "run_name": "stop"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "vae", "output": "report"}}}}}
    session = Session(output_dir=tmp_path / "out")
    warnings: list[str] = []
    stopped: list[bool] = []

    def on_event(event):
        if event.type == "node_warning":
            warnings.append(event.message)
        if event.type == "node_progress" and event.node_id == "vae" and event.value == 3 and not stopped:
            stopped.append(True)
            session.interrupt()

    with pytest.raises(RunInterrupted):
        session.run(graph, on_event=on_event)
    import re

    [said] = warnings
    kept = re.fullmatch(r"training run 'stop': interrupted; its training state at step (\d+) is kept: run the same "
                        r"graph again to resume from there", said)
    assert kept and int(kept[1]) in (2, 4), said           # the last checkpoint before the stop
    warnings.clear()
    session.run(graph, on_event=on_event)
    assert warnings[0].startswith(f"training run 'stop': resuming the saved training state from step {kept[1]}")
