"""Fine-tuning the text encoder alone through a frozen UNet (TrainDiffusion train_unet=false, #16 §1)."""

from __future__ import annotations

import json

import pytest
import torch

from nodegraph import NodeExecutionError, Session
from nodegraph.model_paths import ModelPaths
from nodes.training.trainer import TrainConfig, train_diffusion

from .test_lcm_distill import ALPHAS, tiny_data, tiny_pair

from ..interrupt import StopTraining, stop_at


def link(node: str, output: str) -> dict:
    return {"node": node, "output": output}


def tiny_model_nodes(data: dict, **train: object) -> dict:
    """A 32 px dataset, a 1-step VAE and a 1-step tiny TrainDiffusion ("unet"), as graph nodes."""
    return {
        "data": {"type": "TinyWorldDataset", "inputs": {"size": 32, **data}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "width": 32,
                                               "channel_mult": "1,1", "steps": 1, "batch_size": 2}},
        "unet": {"type": "TrainDiffusion", "inputs": {
            "dataset": link("data", "dataset"), "vae": link("vae", "vae"), "model_channels": 32, "channel_mult": "1,1",
            "res_blocks": 1, "attention_levels": "0,1", "heads": 2, "text_width": 32, "text_layers": 1,
            "steps": 1, "batch_size": 2, "warmup_steps": 1, **train}}}


def session_in(tmp_path) -> Session:
    return Session(model_paths=ModelPaths(roots=[tmp_path / "models"]), output_dir=tmp_path / "out")


def test_a_frozen_unet_stays_bit_identical_while_the_text_encoder_learns():
    unet, clip = tiny_pair()
    unet_before = {k: v.clone() for k, v in unet.state_dict().items()}
    clip_before = {k: v.clone() for k, v in clip.state_dict().items()}
    config = TrainConfig(steps=6, batch_size=6, lr=1e-3, warmup_steps=1, ema_decay=0.0)
    train_diffusion(unet, clip, tiny_data(), ALPHAS, config, lambda *a: None, train_unet=False)
    assert all(torch.equal(unet_before[k], v) for k, v in unet.state_dict().items())
    assert any(not torch.equal(clip_before[k], v) for k, v in clip.state_dict().items())
    assert all(p.grad is None for p in unet.parameters())


def test_train_unet_false_needs_a_model_to_keep(tmp_path):
    """Without init_model (nothing to keep) or with the text encoder frozen too, the node names train_unet."""
    graph = {"format_version": 1, "nodes": {
        **tiny_model_nodes({"count": 4, "caption_filler": 0.5}, train_unet=False),
        "show": {"type": "ShowValue", "inputs": {"value": link("unet", "report")}}}}
    with pytest.raises(NodeExecutionError) as error:
        session_in(tmp_path).run(graph)
    assert error.value.node_id == "unet"
    assert "train_unet" in str(error.value) and "init_model" in str(error.value), str(error.value)


def _gap(unet, teacher, student, x_t, t, clean, garbled) -> float:
    """Mean squared difference of the UNet's predictions with the student's garbled and the teacher's clean reading."""
    with torch.no_grad():
        return float((unet(x_t, t, context=student(garbled)[0]) - unet(x_t, t, context=teacher(clean)[0])).pow(2).mean())


def test_distillation_teaches_the_student_to_read_garbled_captions_like_the_teacher():
    """A rewrite that inserts a token the teacher never learnt: after distillation the UNet predicts with the
    student's reading of the rewrite nearly what it predicts with the teacher's reading of the caption; the UNet
    and the teacher are untouched."""
    import copy
    import random

    from nodes.training.trainer import distill_text_encoder

    unet, teacher = tiny_pair()
    student = copy.deepcopy(teacher)
    data = tiny_data()
    captions = [str(i % 3) for i in range(len(data.latents))]
    base_ids = {c: data.token_ids[i] for i, c in enumerate(captions)}

    def rewrite(caption: str, rng: random.Random) -> str:
        return caption + "+"

    def tokenize(text: str) -> torch.Tensor:
        ids = base_ids[text.rstrip("+")].clone()
        if text.endswith("+"):
            ids = torch.cat([ids[:1], torch.tensor([4321]), ids[1:-1]])     # a token after the start token
        return ids

    unet_before = {k: v.clone() for k, v in unet.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    torch.manual_seed(3)
    x_t, t = torch.randn(6, 4, 8, 8), torch.tensor([100.0, 300.0, 500.0, 700.0, 900.0, 999.0])
    clean = torch.stack([base_ids[str(i % 3)] for i in range(6)])
    garbled = torch.stack([tokenize(str(i % 3) + "+") for i in range(6)])
    before = _gap(unet, teacher, student, x_t, t, clean, garbled)
    config = TrainConfig(steps=150, batch_size=6, lr=3e-3, warmup_steps=1, ema_decay=0.0)
    report = distill_text_encoder(unet, teacher, student, data, captions, rewrite, tokenize, ALPHAS, config,
                                  lambda *a: None, keep_share=0.0, empty_share=0.0)
    after = _gap(unet, teacher, student, x_t, t, clean, garbled)
    assert after < 0.5 * before, (before, after, report["loss"])     # measured: 0.28
    assert all(torch.equal(unet_before[k], v) for k, v in unet.state_dict().items())
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())


def test_distill_text_encoder_node_refuses_what_it_cannot_do(tmp_path):
    """No rewrite at all, or a dataset with several sizes, is an error naming the input."""
    session = session_in(tmp_path)
    base = {**tiny_model_nodes({"count": 8}),
            "multi": {"type": "TinyWorldDataset", "inputs": {"count": 8, "size": 32, "sizes": "32, 32x48"}}}
    distill = {"model": link("unet", "model"), "text_encoder": link("unet", "text_encoder"), "vae": link("vae", "vae"),
               "steps": 2, "batch_size": 2}
    cases = [({"dataset": link("data", "dataset"), "filler": 0.0, "word_swap": 0.0}, "filler"),
             ({"dataset": link("multi", "dataset")}, "dataset")]
    for extra, input_name in cases:
        graph = {"format_version": 1, "nodes": {**base, "distill": {"type": "DistillTextEncoder",
                                                                      "inputs": {**distill, **extra}},
                                                "show": {"type": "ShowValue", "inputs": {"value": link("distill",
                                                                                                       "report")}}}}
        with pytest.raises(NodeExecutionError) as error:
            session.run(graph)
        assert error.value.node_id == "distill" and f"'{input_name}'" in str(error.value), str(error.value)


def test_distill_text_encoder_node_returns_a_new_trained_encoder_of_the_same_family(tmp_path):
    graph = {"format_version": 1, "nodes": {
        **tiny_model_nodes({"count": 8, "caption_style": "free"}),
        "distill": {"type": "DistillTextEncoder", "inputs": {
            "dataset": link("data", "dataset"), "model": link("unet", "model"), "text_encoder": link("unet", "text_encoder"),
            "vae": link("vae", "vae"), "steps": 3, "batch_size": 4, "warmup_steps": 1, "ema_decay": 0.0, "lr": 1e-3}},
        "old": {"type": "ShowValue", "inputs": {"value": link("unet", "text_encoder")}},
        "new": {"type": "ShowValue", "inputs": {"value": link("distill", "text_encoder")}}}}
    out = session_in(tmp_path).run(graph).outputs
    old, new = out["old"]["value"].encoder.encoders["clip_l"], out["new"]["value"].encoder.encoders["clip_l"]
    assert old is not new and out["new"]["value"].family == out["old"]["value"].family
    assert any(not torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))
    assert not any(p.requires_grad for p in new.parameters())


def test_distill_text_encoder_node_paraphrases_alone(tmp_path):
    """paraphrase is a rewrite of its own (filler and word swap off): the node trains and reports it."""
    graph = {"format_version": 1, "nodes": {
        **tiny_model_nodes({"count": 8, "caption_style": "mixed"}),
        "distill": {"type": "DistillTextEncoder", "inputs": {
            "dataset": link("data", "dataset"), "model": link("unet", "model"), "text_encoder": link("unet", "text_encoder"),
            "vae": link("vae", "vae"), "filler": 0.0, "word_swap": 0.0, "paraphrase": 1.0, "keep_share": 0.0,
            "steps": 2, "batch_size": 4, "warmup_steps": 1, "ema_decay": 0.0, "lr": 1e-3}},
        "show": {"type": "ShowValue", "inputs": {"value": link("distill", "report")}}}}
    report = json.loads(session_in(tmp_path).run(graph).outputs["show"]["value"])
    assert (report["paraphrase"], report["filler"], report["word_swap"], report["steps"]) == (1.0, 0.0, 0.0, 2)


def test_distillation_resumes_exactly(tmp_path):
    """Interrupted after a checkpoint and resumed, the student ends as in an uninterrupted run (the rewrites are
    functions of the seed and step)."""
    import copy
    import random

    from nodes.training.trainer import TrainingRun, distill_text_encoder

    unet, teacher = tiny_pair()
    data = tiny_data()
    captions = [str(i % 3) for i in range(len(data.latents))]
    ids = {c: data.token_ids[i] for i, c in enumerate(captions)}

    def rewrite(caption: str, rng: random.Random) -> str:
        return caption + "+" * rng.randint(1, 3)

    def tokenize(text: str) -> torch.Tensor:
        extra = len(text) - len(text.rstrip("+"))
        base = ids[text.rstrip("+")]
        return torch.cat([base[:1], torch.full((extra,), 4321), base[1:77 - extra]])

    config = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup_steps=1, ema_decay=0.9, checkpoint_every=3)
    whole = copy.deepcopy(teacher)
    distill_text_encoder(unet, teacher, whole, data, captions, rewrite, tokenize, ALPHAS, config, lambda *a: None,
                         TrainingRun(tmp_path / "a", {"x": 1}))

    run = TrainingRun(tmp_path / "b", {"x": 1})
    with pytest.raises(StopTraining):
        distill_text_encoder(unet, teacher, copy.deepcopy(teacher), data, captions, rewrite, tokenize, ALPHAS, config,
                             stop_at(5), run)
    resumed = copy.deepcopy(teacher)
    distill_text_encoder(unet, teacher, resumed, data, captions, rewrite, tokenize, ALPHAS, config, lambda *a: None, run)
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
