"""LoRAs made in a graph: latent consistency distillation, a LoRA of your own images, and saving them.

    DistillLCM   DATASET, MODEL (the teacher, frozen), TEXT_ENCODER (frozen), VAE
                 → MODEL (the few-step model: the teacher with the LCM-LoRA applied, or a distilled UNet),
                   LORA (the LCM-LoRA; None in "unet" mode), report
    TrainLoRA    DATASET (your images and captions), MODEL, TEXT_ENCODER (frozen), VAE
                 → MODEL (with the new LoRA applied), LORA, report (lora_train.py: kohya's / diffusers'
                   DreamBooth-LoRA: adapters on the attention projections learn the diffusion loss)
    SaveLoRA     LORA → models/loras/NAME.safetensors in the kohya layout LoadLoRA reads
                 (never replacing a file unless `overwrite`)

The header a LoRA browser reads: ``lora_display_metadata`` (network keys, ``modelspec.*``) and, for TrainLoRA,
``kohya_training_metadata`` (how it was trained, kohya's ``ss_*`` keys) and ``tag_frequency_by_folder``
(``ss_tag_frequency``); all deterministic, so the same training writes the same bytes.

Sample the result with the LCM sampler, CFG 1 (guidance is distilled in), 2-8 steps, the
"sgm_uniform" schedule. The loop is lcm.py (Luo et al. 2023, LCD; LCM-LoRA). Registered by
nodes.py's ``register_nodes`` / ``register_types``; shares its run-folder, progress and save helpers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, PortType

from .nodes import (_content_digest, _data_text, _encode_dataset, _note_renamed, _on_compute_device, _progress,
                    _require_fp32, _run, _run_folder, _save_target, _sd_unet_and_clip, _searched, _train,
                    _write_new_file)

LORA = PortType("LORA", "LoRA weights made in a graph (kohya layout), to save with SaveLoRA.", color="#ce93d8")


@dataclass(frozen=True)
class TrainedLora:
    """A LoRA trained in a graph: kohya-layout tensors, metadata, and the name it was trained as."""

    tensors: dict
    metadata: dict
    name: str

    def __nodegraph_sizeof__(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def lora_display_metadata(name: str, unet_config: Any, rank: int, alpha: float, steps: int, teacher: str,
                          usage: str = "LCM-LoRA: sample with the lcm sampler at CFG 1, 2-8 steps",
                          made: str = "distilled from") -> dict:
    """The header keys LoRA browsers show (A1111's and Civitai's read kohya's `ss_*`; the SAI model spec's
    `modelspec.*`): rank, alpha, name, how to use it. The architecture is SD 1's only for SD 1's own sizes (the
    tiny world's UNet has SD 1's layout, not its widths: an SD 1.5 LoRA slot cannot take it)."""
    sd1 = getattr(unet_config, "model_channels", None) == 320 and getattr(unet_config, "context_dim", None) == 768
    return {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": f"{alpha:g}",
            "ss_output_name": name, "ss_steps": str(steps),
            "ss_training_comment": f"{usage}; {made} {teacher}",
            "modelspec.sai_model_spec": "1.0.0",
            "modelspec.architecture": "stable-diffusion-v1-lora" if sd1 else "nodegraph-sd1-layout-lora",
            "modelspec.implementation": "nodegraph", "modelspec.title": name, "modelspec.usage_hint": usage}


MAX_TAGS = 1000      # tags kept in a LoRA's ss_tag_frequency (a header, read whole by LoRA browsers)


def tag_frequency(captions: list[str]) -> dict[str, int]:
    """kohya's `ss_tag_frequency` entry for one dataset: each comma-separated tag of the captions (stripped, as
    written) → how many captions hold it; the MAX_TAGS most frequent, by (−count, tag). A1111's and Civitai's LoRA
    browsers show these as the trigger words; EncodeText reads them so a LoRA's own words are no "unknown word".
    The order is fixed (a set's order followed the string hash seed, so identical trainings wrote files of
    different SHA-256, and which tags a tie at MAX_TAGS kept varied)."""
    from collections import Counter

    counts = Counter(tag for caption in captions for tag in dict.fromkeys(t.strip() for t in caption.split(","))
                     if tag)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_TAGS])


def tag_frequency_by_folder(captions: list[str], folders: list[str]) -> dict[str, dict[str, int]]:
    """kohya's whole `ss_tag_frequency`: {dataset folder ("10_zorbchar"): tag_frequency of its captions}, the
    folders in dataset order; `folders[i]` is the folder of `captions[i]`."""
    grouped: dict[str, list[str]] = {}
    for caption, folder in zip(captions, folders, strict=True):
        grouped.setdefault(folder, []).append(caption)
    return {folder: tag_frequency(group) for folder, group in grouped.items()}


def kohya_training_metadata(base_model: str, train: Any, caption_dropout: float, resolution: tuple[int, int],
                            dataset_dirs: dict[str, dict[str, int]]) -> dict[str, str]:
    """The `ss_*` keys of how a LoRA was trained that kohya's sd-scripts write and A1111's and Civitai's LoRA views
    show (A1111 lists ss_sd_model_name, ss_resolution, ss_clip_skip, ss_num_train_images first), every value a
    string as kohya writes it (str() of the number; ss_resolution "(64, 64)"; ss_dataset_dirs JSON
    {"10_zorbchar": {"n_repeats": 10, "img_count": 8}}; ss_num_train_images counts each image × its repeats).

    `train` is the run's TrainConfig. No ss_training_started_at / ss_session_id: a time and a random id would
    make two identical trainings write files of different SHA-256 (run records name files by it).
    ss_clip_skip is "None", kohya's value when training reads the text encoder's default layer, as TrainLoRA does.
    """
    width, height = resolution
    metadata = {
        "ss_sd_model_name": base_model.replace("\\", "/").rsplit("/", 1)[-1],   # kohya: the file's base name
        "ss_resolution": f"({width}, {height})",
        "ss_clip_skip": "None",
        "ss_num_train_images": str(sum(row["img_count"] * row["n_repeats"] for row in dataset_dirs.values())),
        "ss_dataset_dirs": json.dumps(dataset_dirs),
        "ss_learning_rate": str(train.lr),
        "ss_batch_size_per_device": str(train.batch_size),
        "ss_gradient_accumulation_steps": str(train.grad_accumulation),
        "ss_max_train_steps": str(train.steps),
        "ss_lr_warmup_steps": str(train.warmup_steps),
        "ss_lr_scheduler": str(getattr(train, "lr_scheduler", "cosine")),
        "ss_optimizer": f"torch.optim.adamw.AdamW(weight_decay={train.weight_decay},betas=(0.9, 0.99))",  # lora_train
        "ss_seed": str(train.seed),
        "ss_caption_dropout_rate": str(caption_dropout),
        "ss_mixed_precision": str(train.mixed_precision),
    }
    for key, name in (("ss_noise_offset", "noise_offset"), ("ss_min_snr_gamma", "min_snr_gamma")):
        if getattr(train, name, 0.0):          # kohya writes these when they are used
            metadata[key] = str(getattr(train, name))
    return metadata


def dataset_folders(dataset: Any, count: int, name: str) -> tuple[list[str], dict[str, dict[str, int]]]:
    """(the folder of each of the dataset's `count` items, kohya's ss_dataset_dirs) of a DATASET: an
    ImageFolderDataset's own (its N_name folders); any other dataset is one folder called `name`, 1 repeat."""
    folders = getattr(dataset, "item_folders", None)
    dirs = getattr(getattr(dataset, "report", None), "dataset_dirs", None)
    if folders is not None and dirs is not None and len(folders) == count:
        return list(folders), dict(dirs)
    return [name] * count, {name: {"n_repeats": 1, "img_count": count}}


def dataset_resolution(dataset: Any) -> tuple[int, int]:
    """(width, height) of the dataset's first image: kohya's ss_resolution (a bucketed dataset's first size)."""
    height, width = dataset[0][0].shape[-2:]
    return int(width), int(height)


class DistillLCM(Node):
    """Distil a model into a few-step latent consistency model (LCM; as a LoRA or a whole UNet).

    The teacher is the connected MODEL with classifier-free guidance drawn from [cfg_min, cfg_max];
    each step compares the student at timestep t with the EMA target one DDIM step (of
    1000/ddim_timesteps timesteps) closer to the data. "lora" trains LoRA adapters on every
    Linear / Conv2d of the UNet (an LCM-LoRA, a small file that LoadLoRA applies to the base model);
    "unet" trains a full copy. Sample with the "lcm" sampler at CFG 1, 2-8 steps. The LoRA learns
    few-step sampling of what the teacher already draws, not the subject of the dataset's images (to
    teach a model your own images, fine-tune it with TrainDiffusion's init_model).
    """

    category = "training"
    version = "1.0.1"  # .1: captions are plain text cut at 75 tokens (a longer one, or BREAK, failed)

    class Inputs(NodeInputs):
        dataset: Any = Input(port="DATASET")
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        vae: Any = Input(port="VAE")
        mode: Literal["lora", "unet"] = Input("lora")
        lora_rank: int = Input(8, ge=1, le=256)
        steps: int = Input(2000, ge=1, le=10_000_000)
        batch_size: int = Input(32, ge=1, le=4096)
        lr: float = Input(1e-3, gt=0.0, le=1.0, description="LCM-LoRA uses 1e-4 on SD; tiny models take more")
        warmup_steps: int = Input(50, ge=0, le=1_000_000)
        ddim_timesteps: int = Input(50, ge=2, le=1000, description="solver steps N (skip = 1000 / N timesteps)")
        cfg_min: float = Input(3.0, ge=1.0, le=30.0)
        cfg_max: float = Input(7.0, ge=1.0, le=30.0)
        target_decay: float = Input(0.95, ge=0.0, lt=1.0, description="EMA μ of the target network")
        loss: Literal["huber", "l2"] = Input("huber")
        mixed_precision: Literal["no", "bf16"] = Input("no")
        seed: int = Input(0, seed=True)
        checkpoint_every: int = Input(250, ge=0, le=10_000_000)
        run_name: str = Input("lcm", file_name_in="output", subfolders=True, min_length=1, max_length=80)

    outputs = (Output("model", "MODEL"), Output("lora", "LORA"), Output("report", "STRING"))

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        """Before the run, what would only fail after the teacher is loaded: the guidance range upside down."""
        low, high = literals.get("cfg_min"), literals.get("cfg_max")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and high < low:
            return {"cfg_max": f"cfg_max {high} is below cfg_min {low}; raise it"}
        return {}

    def run(self, dataset: Any, model: Any, text_encoder: Any, vae: Any, mode: str, lora_rank: int, steps: int,
            batch_size: int, lr: float, warmup_steps: int, ddim_timesteps: int, cfg_min: float, cfg_max: float,
            target_decay: float, loss: str, mixed_precision: str, seed: int, checkpoint_every: int,
            run_name: str) -> dict:
        import torch

        from nodes.models.lora import lora_from_state_dict
        from nodes.models.nodes import diffusion_model, model_schedule

        from .lcm import LCDConfig, distill_lcm, lora_state_dict
        from .trainer import TrainConfig

        folder = _run_folder(self, run_name)
        if cfg_max < cfg_min:
            raise NodeInputError("cfg_max", f"cfg_max {cfg_max} is below cfg_min {cfg_min}; raise it")
        if mode == "unet" and (takers := _consumers(self.context, "lora")):     # before hours of training, not after
            raise NodeInputError("mode", f"mode 'unet' makes a whole model and no LoRA, but node(s) "
                                         f"{', '.join(repr(t) for t in takers)} take this node's `lora` output; set "
                                         f"mode 'lora', or save the `model` output with SaveCheckpoint")
        schedule = model_schedule(model)
        unet = model.net
        if schedule is None or getattr(getattr(unet, "config", None), "prediction", None) not in ("eps", "v"):
            raise NodeInputError("model", "DistillLCM distils eps / v UNets sampled on a discrete schedule (the tiny "
                                          "world's and SD's); this MODEL is not one")
        if len(model.time_map.sigmas) % ddim_timesteps:
            raise NodeInputError("ddim_timesteps", f"{ddim_timesteps} does not divide the model's "
                                                   f"{len(model.time_map.sigmas)} timesteps; use e.g. 50 or 25")
        unet, clip = _sd_unet_and_clip("DistillLCM", model, text_encoder)
        _require_fp32("model", unet)
        _require_fp32("text_encoder", clip)
        lcd = LCDConfig(ddim_timesteps=ddim_timesteps, cfg_min=cfg_min, cfg_max=cfg_max, target_decay=target_decay,
                        loss=loss, mode=mode, lora_rank=lora_rank, lora_alpha=float(lora_rank))
        train = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 20, warmup_steps=warmup_steps,
                            ema_decay=0.0, mixed_precision=mixed_precision, seed=seed,
                            checkpoint_every=checkpoint_every)
        data = _encode_dataset(self, dataset, vae, clip.config.pad_token_id)
        model.apply_patches()                      # the teacher is the MODEL as connected (its LoRAs applied)
        run = _run(self, run_name, folder, {"lcd": repr(lcd), "train": repr(train),
                                            "data": _data_text(len(data), data), "teacher": getattr(model, "name", "?"),
                                            "unet": repr(unet.config), "weights": _content_digest(unet, clip)})
        alphas_cumprod = 1.0 / (1.0 + model.time_map._sigmas64.double() ** 2)      # sigma² = (1 − ᾱ) / ᾱ
        with _on_compute_device(self, unet, text_encoder.encoder):   # the teacher and its prompts on the GPU
            student, adapters, report = _train(distill_lcm, unet, clip, data, alphas_cumprod.float(), train, lcd,
                                               _progress(self), run)
        if mode == "unet":
            distilled = diffusion_model(student, run_name, preview=vae.preview, schedule=schedule)
            return {"model": distilled, "lora": None, "report": json.dumps(report, default=str)}
        tensors = lora_state_dict(adapters, torch.float32)
        metadata = {"nodegraph.lcm": json.dumps({"sampler": "lcm", "cfg": 1.0, "steps": "2-8",
                                                 "scheduler": "sgm_uniform", "teacher": getattr(model, "name", "?"),
                                                 "lcd": report["lcd"]}),
                    **lora_display_metadata(run_name, unet.config, lora_rank, float(lora_rank), steps,
                                            getattr(model, "name", "?"))}
        weights = lora_from_state_dict(tensors, metadata, name=f"{run_name} (LCM-LoRA)")
        fast = replace(model, patches=(*model.patches, (weights, 1.0)), _denoiser=None, name=f"{model.name}+lcm")
        report["lora_parameters"] = sum(t.numel() for k, t in tensors.items() if not k.endswith(".alpha"))
        return {"model": fast, "lora": TrainedLora(tensors, metadata, run_name),
                "report": json.dumps(report, default=str)}


class TrainLoRA(Node):
    """Teach a model your own images as a LoRA (kohya's / diffusers' DreamBooth-LoRA): LoRA adapters on the UNet's
    attention projections (q, k, v, out) learn to denoise the dataset's images with their captions; the model and
    the text encoder stay frozen. The MODEL output is the model with the new LoRA applied (strength 1); SaveLoRA
    writes the LORA, which LoadLoRA applies at any strength like a downloaded one. Give every image a caption
    naming the subject with a word of its own ("a photo of zorb"; ImageFolderDataset's `default_caption` for a
    folder without captions). Resumes a stopped run from its last state, as the other training nodes.
    """

    category = "training"

    class Inputs(NodeInputs):
        dataset: Any = Input(port="DATASET")
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        vae: Any = Input(port="VAE")
        rank: int = Input(8, ge=1, le=256, description="the LoRA's rank (its size): 4-32 as usual")
        alpha: float = Input(0.0, ge=0.0, le=1024.0,
                             description="kohya's network_alpha: the LoRA is scaled by alpha / rank (0: the rank, "
                                         "scale 1; kohya's default 1 needs a higher lr)")
        steps: int = Input(500, ge=1, le=10_000_000)
        batch_size: int = Input(4, ge=1, le=4096)
        grad_accumulation: int = Input(1, ge=1, le=1024, description="batches per optimiser step (kohya's "
                                                                     "gradient_accumulation_steps)")
        lr: float = Input(1e-4, gt=0.0, le=1.0, description="1e-4 (kohya's default) suits Stable Diffusion; too "
                                                            "low for the shipped tiny model: use 1e-3 - 2e-3 there")
        lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Input(
            "cosine", description="cosine / linear: warm-up, then down to lr/10; constant_with_warmup: warm-up, then "
                                  "lr; constant: lr throughout (no warm-up)")
        warmup_steps: int = Input(20, ge=0, le=1_000_000)
        caption_dropout: float = Input(0.0, ge=0.0, le=1.0, description="chance that an image trains without its "
                                                                        "caption, drawn per image per step (kohya's "
                                                                        "caption_dropout_rate)")
        noise_offset: float = Input(0.0, ge=0.0, le=1.0, description="offset noise (kohya's noise_offset, ~0.05-0.1): "
                                                                     "lets the LoRA make images darker or lighter")
        min_snr_gamma: float = Input(0.0, ge=0.0, le=100.0, description="min-SNR loss weighting (kohya's "
                                                                        "min_snr_gamma, 5 as usual; 0: off)")
        mixed_precision: Literal["no", "bf16"] = Input("no")
        seed: int = Input(0, seed=True)
        checkpoint_every: int = Input(100, ge=0, le=10_000_000,
                                      description="save the training state every N steps (0: only at the end)")
        run_name: str = Input("lora", file_name_in="output", subfolders=True, min_length=1, max_length=80)

    outputs = (Output("model", "MODEL"), Output("lora", "LORA"), Output("report", "STRING"))

    def run(self, dataset: Any, model: Any, text_encoder: Any, vae: Any, rank: int, alpha: float, steps: int,
            batch_size: int, grad_accumulation: int, lr: float, lr_scheduler: str, warmup_steps: int,
            caption_dropout: float, noise_offset: float, min_snr_gamma: float, mixed_precision: str, seed: int,
            checkpoint_every: int, run_name: str) -> dict:
        import torch

        from nodes.models.lora import lora_from_state_dict
        from nodes.models.nodes import model_schedule

        from .lcm import lora_state_dict
        from .lora_train import train_lora
        from .trainer import TrainConfig, TrainingDivergedError

        folder = _run_folder(self, run_name)
        unet = model.net
        prediction = getattr(getattr(unet, "config", None), "prediction", None)
        if model_schedule(model) is None or prediction not in ("eps", "v"):
            raise NodeInputError("model", "TrainLoRA trains eps / v UNets sampled on a discrete schedule (the tiny "
                                          "world's and SD's); this MODEL is not one")
        unet, clip = _sd_unet_and_clip("TrainLoRA", model, text_encoder)
        _require_fp32("model", unet)
        train = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 10, warmup_steps=warmup_steps,
                            ema_decay=0.0, mixed_precision=mixed_precision, seed=seed,
                            checkpoint_every=checkpoint_every, grad_accumulation=grad_accumulation,
                            lr_scheduler=lr_scheduler, noise_offset=noise_offset, min_snr_gamma=min_snr_gamma)
        alpha = alpha or float(rank)               # kohya's too: alpha 0 (or none) means the rank
        captions: list[str] = []
        data = _encode_dataset(self, dataset, vae, clip.config.pad_token_id, captions=captions)
        model.apply_patches()                      # the base is the MODEL as connected (its LoRAs applied)
        network = {"rank": rank, "caption_dropout": caption_dropout,
                   **({"alpha": alpha} if alpha != rank else {})}    # absent at its default: older states resume
        run = _run(self, run_name, folder, {"lora": network,
                                            "train": repr(train), "data": _data_text(len(data), data),
                                            "base": getattr(model, "name", "?"), "unet": repr(unet.config),
                                            "weights": _content_digest(unet, clip)})
        alphas_cumprod = 1.0 / (1.0 + model.time_map._sigmas64.double() ** 2)      # sigma² = (1 − ᾱ) / ᾱ
        with _on_compute_device(self, unet, text_encoder.encoder):
            try:
                adapters, report = _train(train_lora, unet, clip, data, alphas_cumprod.float(), train,
                                          _progress(self), run, rank=rank, alpha=alpha, objective=prediction,
                                          caption_dropout=caption_dropout)
            except TrainingDivergedError as exc:
                raise NodeInputError("lr", str(exc)) from None
        tensors = lora_state_dict(adapters, torch.float32)
        metadata = lora_display_metadata(run_name, unet.config, rank, alpha, steps, getattr(model, "name", "?"),
                                         usage="a LoRA of your own images: LoadLoRA it onto the model it was "
                                               "trained on, strength 0.5-1", made="trained on")
        item_folders, dataset_dirs = dataset_folders(dataset, len(captions), run_name)
        metadata.update(kohya_training_metadata(getattr(model, "name", "?"), train, caption_dropout,
                                                dataset_resolution(dataset), dataset_dirs))
        metadata["ss_tag_frequency"] = json.dumps(tag_frequency_by_folder(captions, item_folders))
        report["dataset_dirs"] = dataset_dirs            # each folder's images and repeats (kohya's ss_dataset_dirs)
        weights = lora_from_state_dict(tensors, metadata, name=f"{run_name} (LoRA)")
        taught = replace(model, patches=(*model.patches, (weights, 1.0)), _denoiser=None, name=f"{model.name}+{run_name}")
        report["lora_parameters"] = sum(t.numel() for k, t in tensors.items() if not k.endswith(".alpha"))
        return {"model": taught, "lora": TrainedLora(tensors, metadata, run_name),
                "report": json.dumps(report, default=str)}


def _consumers(context: Any, output: str) -> list[str]:
    """The ids of the nodes of the running graph that take `output` of the running node."""
    from nodegraph.graph import Link

    graph, me = getattr(context, "graph", None), getattr(context, "node_id", None)
    if graph is None:
        return []
    return sorted(node_id for node_id, node in graph.nodes.items()
                  if any(isinstance(v, Link) and v.node == me and v.output == output for v in node.inputs.values()))


class SaveLoRA(Node):
    """Write a LORA made in a graph (e.g. DistillLCM's) to models/loras as a kohya-layout .safetensors file.

    An existing file is never replaced unless `overwrite` is true (then NAME_1, NAME_2, ... otherwise).
    """

    category = "training"
    output_node = True

    class Inputs(NodeInputs):
        lora: Any = Input(port="LORA")
        filename: str = Input("my_lora.safetensors", file_name_in="loras", file_suffix=".safetensors", min_length=1,
                              max_length=120, description="a plain .safetensors name in models/loras")
        dtype: Literal["fp16", "fp32", "bf16"] = Input("fp16")
        overwrite: bool = Input(False, description="replace an existing file of that name (else NAME_1, ...)")

    outputs = ()

    def run(self, lora: Any, filename: str, dtype: str, overwrite: bool) -> dict:
        import torch
        from safetensors.torch import save_file

        if lora is None:
            raise NodeInputError("lora", "there is no LoRA: DistillLCM in mode 'unet' makes a whole model; save its "
                                         "MODEL with SaveCheckpoint (or switch the mode to 'lora')")
        if not isinstance(lora, TrainedLora):
            raise NodeInputError("lora", f"expected a LORA from a training node, found {type(lora).__name__}")
        target = _save_target(self, "loras", filename)
        torch_dtype = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        tensors = {k: v.to(torch_dtype).contiguous() for k, v in lora.tensors.items()}
        path = _write_new_file(target, overwrite, lambda tmp: save_file(tensors, str(tmp), metadata=lora.metadata),
                               _searched(self, "loras"), self.context.warn)
        _note_renamed(self, target, path)
        return {"model_files": [{"path": str(path), "kind": "lora", "format": "safetensors"}],
                "bytes": path.stat().st_size}
