"""Latent consistency distillation: a few-step student (full UNet or LoRA) from a CFG teacher (plain torch).

References: Luo et al. 2023, "Latent Consistency Models: Synthesizing High-Resolution Images with
Few-Step Inference" (Algorithm 1, LCD: skipping-step DDIM solver on the CFG-augmented PF-ODE,
EMA target network, consistency parametrisation with c_skip / c_out); Luo et al. 2023b,
"LCM-LoRA" (the same loss with the student's trainable weights in LoRA adapters); Song et al.
2023 (consistency models; pseudo-Huber loss from "Improved techniques", eq. 8).

One step, for latents x0 and a caption c:

    n ~ U{0 .. N-1},  t = τ_n (a DDIM timestep, k = T/N apart),  s = t − k
    x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε
    teacher at CFG w (w ~ U[cfg_min, cfg_max]):  x̂0 = u + w (c − u) on x0 and ε predictions
    x_s = √ᾱ_s x̂0 + √(1−ᾱ_s) ε̂                                  (one DDIM step t → s)
    f_θ(x, t) = c_skip(t) x + c_out(t) x0_θ(x, t)                (boundary condition f(x, 0) = x)
    loss = d(f_θ(x_t, t), stopgrad f_θ⁻(x_s, s)),  θ⁻ ← μ θ⁻ + (1 − μ) θ   (EMA target)

Map:

    LCDConfig                  the distillation settings (N, CFG range, EMA μ, loss, LoRA rank)
    consistency_scalings       c_skip, c_out of LCM (σ_data = 0.5, timestep scaling 10)
    predicted_x0               network output (eps / v) → x0 estimate
    pseudo_huber               √(‖a − b‖² + c²) − c per element, averaged
    LoraAdapter, add_lora      trainable low-rank adapters around every Linear / Conv2d of a module
    lora_state_dict            adapters → kohya-layout tensors (``lora_unet_<name>.lora_down/up.weight``,
                               ``.alpha``), the layout ``nodes/models/lora.py`` reads
    distill_lcm                the training loop (resumable through ``TrainingRun``)
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .trainer import DiffusionData, TrainConfig, TrainingRun, _autocast, _optimiser_step, lr_at

Progress = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class LCDConfig:
    """Settings of latent consistency distillation (defaults from the LCM / LCM-LoRA papers, scaled down)."""

    ddim_timesteps: int = 50         # N: solver steps over the T training timesteps (skip k = T / N = 20)
    cfg_min: float = 3.0             # teacher guidance drawn uniformly from [cfg_min, cfg_max] each batch
    cfg_max: float = 7.0             # (usual CFG scale: uncond + w (cond − uncond))
    target_decay: float = 0.95       # μ of the EMA target network (LCM uses 0.95)
    loss: str = "huber"              # "huber" (pseudo-Huber, c = huber_c) or "l2"
    huber_c: float = 0.001
    mode: str = "lora"               # "lora": train LoRA adapters (LCM-LoRA); "unet": the whole UNet
    lora_rank: int = 8
    lora_alpha: float = 8.0

    def __post_init__(self) -> None:
        if self.ddim_timesteps < 2:
            raise ValueError(f"ddim_timesteps must be >= 2, got {self.ddim_timesteps}")
        if not 1.0 <= self.cfg_min <= self.cfg_max:
            raise ValueError(f"need 1 <= cfg_min <= cfg_max, got {self.cfg_min}, {self.cfg_max}")
        if not 0.0 <= self.target_decay < 1.0:
            raise ValueError(f"target_decay must be in [0, 1), got {self.target_decay}")
        if self.loss not in ("huber", "l2"):
            raise ValueError(f"loss must be 'huber' or 'l2', got {self.loss!r}")
        if self.mode not in ("lora", "unet"):
            raise ValueError(f"mode must be 'lora' or 'unet', got {self.mode!r}")
        if self.lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")


def consistency_scalings(t: torch.Tensor, sigma_data: float = 0.5,
                         timestep_scaling: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_skip, c_out) of LCM: c_skip = σd² / ((s t)² + σd²), c_out = s t / √((s t)² + σd²); f(x, 0) = x."""
    scaled = t.float() * timestep_scaling
    c_skip = sigma_data**2 / (scaled**2 + sigma_data**2)
    c_out = scaled / (scaled**2 + sigma_data**2).sqrt()
    return c_skip, c_out


def predicted_x0(output: torch.Tensor, x_t: torch.Tensor, alpha_cumprod: torch.Tensor, prediction: str) -> torch.Tensor:
    """x0 from an eps prediction ((x − √(1−ᾱ) ε) / √ᾱ) or a v prediction (√ᾱ x − √(1−ᾱ) v)."""
    a = alpha_cumprod.view(-1, *([1] * (x_t.ndim - 1)))
    if prediction == "eps":
        return (x_t - (1 - a).sqrt() * output) / a.sqrt()
    if prediction == "v":
        return a.sqrt() * x_t - (1 - a).sqrt() * output
    raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")


def predicted_eps(output: torch.Tensor, x_t: torch.Tensor, alpha_cumprod: torch.Tensor, prediction: str) -> torch.Tensor:
    """ε from an eps prediction (itself) or a v prediction (√(1−ᾱ) x + √ᾱ v)."""
    if prediction == "eps":
        return output
    a = alpha_cumprod.view(-1, *([1] * (x_t.ndim - 1)))
    return (1 - a).sqrt() * x_t + a.sqrt() * output


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """Pseudo-Huber distance √((a − b)² + c²) − c, averaged (Song & Dhariwal 2023, eq. 8, element-wise)."""
    return ((a.float() - b.float()) ** 2 + c * c).sqrt().sub(c).mean()


# --- LoRA adapters -------------------------------------------------------------------------------

class LoraAdapter(nn.Module):
    """``base(x) + (alpha / rank) · up(down(x))`` around a frozen Linear or Conv2d (Hu et al. 2021, §4.1).

    ``down`` has the base layer's kernel, stride and padding; ``up`` is 1×1 and starts at zero, so
    the adapter starts as the identity change. Weight shapes are kohya's: down (rank, in[, kh, kw]),
    up (out, rank[, 1, 1]).
    """

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.rank, self.alpha = rank, alpha
        if isinstance(base, nn.Linear):
            self.down = nn.Linear(base.in_features, rank, bias=False)
            self.up = nn.Linear(rank, base.out_features, bias=False)
        elif isinstance(base, nn.Conv2d):
            self.down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding,
                                  base.dilation, bias=False)
            self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            raise TypeError(f"LoRA adapts Linear and Conv2d layers, not {type(base).__name__}")
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)
        self.to(device=base.weight.device)

    @property
    def weight(self) -> torch.Tensor:
        """The base layer's weight (code that reads ``layer.weight``, e.g. for its dtype, still works)."""
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.up(self.down(x)) * (self.alpha / self.rank)


def add_lora(module: nn.Module, rank: int, alpha: float) -> dict[str, LoraAdapter]:
    """Wrap every Linear / Conv2d of ``module`` (frozen) in a LoraAdapter; {original module name: adapter}."""
    module.requires_grad_(False)
    targets = [(name, child) for name, child in module.named_modules() if isinstance(child, (nn.Linear, nn.Conv2d))]
    adapters = {}
    for name, child in targets:
        parent_name, _, attribute = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        adapter = LoraAdapter(child, rank, alpha)
        setattr(parent, attribute, adapter)
        adapters[name] = adapter
    return adapters


def lora_state_dict(adapters: dict[str, LoraAdapter], dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """Adapters in the kohya layout: ``lora_unet_<name with _>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``."""
    out = {}
    for name, adapter in adapters.items():
        key = "lora_unet_" + name.replace(".", "_")
        out[f"{key}.lora_down.weight"] = adapter.down.weight.detach().to("cpu", dtype).contiguous()
        out[f"{key}.lora_up.weight"] = adapter.up.weight.detach().to("cpu", dtype).contiguous()
        out[f"{key}.alpha"] = torch.tensor(float(adapter.alpha), dtype=dtype)
    return out


# --- the loop --------------------------------------------------------------------------------------

def _trainable(module: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


@torch.no_grad()
def _update_target(target: nn.Module, student: nn.Module, decay: float) -> None:
    """θ⁻ ← μ θ⁻ + (1 − μ) θ over the trainable parameters."""
    online = _trainable(student)
    for name, parameter in target.named_parameters():
        if name in online:
            parameter.lerp_(online[name].detach(), 1 - decay)


def distill_lcm(unet: nn.Module, text_encoder: Any, data: DiffusionData, alphas_cumprod: torch.Tensor,
                config: TrainConfig, lcd: LCDConfig, progress: Progress,
                run: TrainingRun | None = None) -> tuple[nn.Module, dict[str, LoraAdapter], dict]:
    """Distil ``unet`` (left untouched) into a consistency student; returns (student, adapters, report).

    In "lora" mode the student is a copy of ``unet`` with zero-initialised LoRA adapters (only they
    train; ``adapters`` names them by the UNet's module names); in "unet" mode it is a full copy
    ({} adapters). The text encoder is frozen. Timesteps are ``len(alphas_cumprod)``; the
    teacher is ``unet`` itself with CFG. Deterministic for a seed; resumable through ``run``.
    """
    run = run or TrainingRun(None, {})
    torch.manual_seed(config.seed)
    device = next(unet.parameters()).device
    prediction = unet.config.prediction
    teacher = unet
    teacher.eval()
    text_encoder.requires_grad_(False)
    text_encoder.eval()
    student = copy.deepcopy(unet)
    adapters = add_lora(student, lcd.lora_rank, lcd.lora_alpha) if lcd.mode == "lora" else {}
    if lcd.mode == "unet":
        student.requires_grad_(True)
    target = copy.deepcopy(student).requires_grad_(False).eval()
    parameters = list(_trainable(student).values())
    optimiser = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    start = 0
    state = run.resume()
    if state is not None:
        with run.restoring():
            student.load_state_dict(state["student"], strict=False)
            target.load_state_dict(state["target"], strict=False)
            optimiser.load_state_dict(state["optimiser"])
        start = state["step"]
    alphas_cumprod = alphas_cumprod.to(device=device, dtype=torch.float32)
    total = len(alphas_cumprod)
    skip = total // lcd.ddim_timesteps
    solver_timesteps = torch.arange(1, lcd.ddim_timesteps + 1) * skip - 1          # τ_n, e.g. 19, 39, …, 999
    layer = text_encoder.config.output_layer
    with torch.no_grad():
        empty_context, _ = text_encoder(data.empty_ids[None].to(device), layer=layer, pooled=False)   # (1, 77, D)
    student.train()
    info: dict = dict(run.last_info)
    for step in range(start, config.steps):
        for micro in range(config.grad_accumulation):
            part = data.bucket(config.seed, step, micro)
            idx = part.batch_indices(config.batch_size, step, micro, config.seed)     # a folder's repeats weigh
            generator = torch.Generator().manual_seed(config.seed * 31 + step * 7 + micro)
            x0 = part.latents[idx].to(device).float()
            n = torch.randint(0, lcd.ddim_timesteps, (len(idx),), generator=generator)
            t = solver_timesteps[n].to(device)
            s = (t - skip).clamp(min=0)
            w = lcd.cfg_min + (lcd.cfg_max - lcd.cfg_min) * torch.rand(len(idx), generator=generator).to(device)
            noise = torch.randn(x0.shape, generator=generator).to(device)
            a_t, a_s = alphas_cumprod[t], alphas_cumprod[s]
            shape = (-1,) + (1,) * (x0.ndim - 1)
            x_t = a_t.sqrt().view(shape) * x0 + (1 - a_t).sqrt().view(shape) * noise
            with torch.no_grad():
                context, _ = text_encoder(part.token_ids[idx].to(device), layer=layer, pooled=False)
                uncond = empty_context.expand(len(idx), -1, -1)
                with _autocast(config, device):
                    both = teacher(torch.cat([x_t, x_t]), torch.cat([t, t]).float(), context=torch.cat([context, uncond]))
                cond_out, uncond_out = both.float().chunk(2)
                x0_c, x0_u = (predicted_x0(o, x_t, a_t, prediction) for o in (cond_out, uncond_out))
                eps_c, eps_u = (predicted_eps(o, x_t, a_t, prediction) for o in (cond_out, uncond_out))
                x0_g = x0_u + w.view(shape) * (x0_c - x0_u)
                eps_g = eps_u + w.view(shape) * (eps_c - eps_u)
                x_s = a_s.sqrt().view(shape) * x0_g + (1 - a_s).sqrt().view(shape) * eps_g        # DDIM t → s
                with _autocast(config, device):
                    target_out = target(x_s, s.float(), context=context).float()
                skip_s, out_s = consistency_scalings(s)
                goal = skip_s.view(shape) * x_s + out_s.view(shape) * predicted_x0(target_out, x_s, a_s, prediction)
            with _autocast(config, device):
                student_out = student(x_t, t.float(), context=context).float()
            skip_t, out_t = consistency_scalings(t)
            estimate = skip_t.view(shape) * x_t + out_t.view(shape) * predicted_x0(student_out, x_t, a_t, prediction)
            loss = (pseudo_huber(estimate, goal, lcd.huber_c) if lcd.loss == "huber"
                    else F.mse_loss(estimate.float(), goal.float()))
            (loss / config.grad_accumulation).backward()
        info = {"loss": loss.item(), "lr": lr_at(step, config),
                "grad_norm": _optimiser_step(parameters, optimiser, config, step)}
        _update_target(target, student, lcd.target_decay)
        done = step + 1
        if done == config.steps or (config.checkpoint_every and done % config.checkpoint_every == 0):
            trained = _trainable(student)
            target_weights = dict(target.named_parameters())
            run.save({"step": done, "student": {k: v.detach() for k, v in trained.items()},
                      "target": {k: target_weights[k].detach() for k in trained},
                      "optimiser": optimiser.state_dict(), "info": info})
        progress(done, config.steps, info)
    # LoRA: the online adapters (as the LCM-LoRA script saves them); full UNet: the EMA target (as LCM does)
    result = student if lcd.mode == "lora" else target
    if lcd.mode == "unet":
        adapters = {}
    result.eval().requires_grad_(False)
    return result, adapters, {**info, "steps": config.steps, "lcd": asdict(lcd), "config": asdict(config)}
