"""The safety plugin's nodes (thin adapters over the library modules) and its plugin hooks.

    LoadSafetyChecker         a checker file → SAFETY_CHECKER (Stable Diffusion's safety_checker file, or ours;
                              the model folder "safety_checker" first, then the plugin's shipped models/)
    GenerateCheckerExamples   samples tiny-world prompts with a model → CHECKER_EXAMPLES (its images and
                              mid-sampling predictions, labelled by the world detector)
    TrainSafetyChecker        renders tiny-world scenes (and optionally those examples) and trains a tiny checker
                              for an "unsafe" concept
    SaveSafetyChecker         SAFETY_CHECKER → models/safety_checker/NAME.safetensors
    SafetyFilter              IMAGE + SAFETY_CHECKER → IMAGE with flagged images blurred / replaced / dropped;
                              the decision is recorded in the run's outputs (flagged, scores, decisions)
    SafeLatentDiffusion       GUIDANCE term: Safe Latent Diffusion (Schramowski et al. 2023) away from a concept
    NegativeConceptGuidance   GUIDANCE term: the concept as the negative prompt (the baseline)
    WatermarkImages           IMAGE → IMAGE with an invisible watermark (invisible-watermark, dwtDctSvd)
    ReadWatermark             IMAGE → the watermark text (recorded in the run's outputs)

Everything model-related goes through `nodegraph.api` (text encoding); the library modules hold the math.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, PortType, api, hookimpl

from . import SHIPPED_MODELS

SAFETY_CHECKER = PortType("SAFETY_CHECKER", "A safety checker: CLIP vision tower + concept embeddings and "
                                            "thresholds (Stable Diffusion's architecture).", color="#d32f2f")
CHECKER_EXAMPLES = PortType("CHECKER_EXAMPLES", "Labelled checker views of generated images (finished images and "
                                                "mid-sampling predictions): generated.CheckerExamples.",
                            color="#ef9a9a")
MODEL_FOLDER = "safety_checker"
DEFAULT_CHECKER = "tiny_world_safety.safetensors"


class LoadSafetyChecker(Node):
    """Load a safety checker: Stable Diffusion's safety_checker weights, or a tiny one trained here.

    Looks in the model folder `safety_checker` (put an SD pipeline's safety_checker/model.safetensors there
    under any name), then in the plugin's own models/ (`tiny_world_safety.safetensors`, concept "star").
    Pickle files (.ckpt/.pt/.bin) load only with the machine owner's opt-in (session service
    "allow_pickle" or NODEGRAPH_ALLOW_PICKLE=1), never from a graph input, as the built-in loaders.
    """

    category = "safety"
    shared_cache = True     # its output depends only on model files: users of a server share it

    class Inputs(NodeInputs):
        checker_name: str = Input(DEFAULT_CHECKER, model_folder=MODEL_FOLDER,
                                  description="file in models/safety_checker or the plugin's shipped models")

    outputs = (Output("checker", "SAFETY_CHECKER"),)

    def run(self, checker_name: str) -> dict:
        from .checker import CheckerError, checker_from_state_dict

        # resolved and confined by the API in the model folder (which register_model_dirs extends with the
        # plugin's shipped models/); pickles only with the owner's opt-in
        weights = api.open_weights(self.context, checker_name, folder=MODEL_FOLDER)
        try:
            return {"checker": checker_from_state_dict(weights, getattr(weights, "metadata", None),
                                                       source=checker_name)}
        except CheckerError as exc:
            raise NodeInputError("checker_name", str(exc)) from None


class GenerateCheckerExamples(Node):
    """Sample tiny-world prompts with a diffusion model and label what it drew: checker training data from
    the images a checker judges in use (finished images, and the decoded predictions SLD's gate judges).

    `count` sampling runs over `sizes`; each run gives its finished image and the CFG x0 prediction of every
    step with sigma <= `max_sigma`, cut to the checker's 64-px view. The label of all of a run's examples is
    the world detector's reading of the finished image (the concept is there or not); with `label_rule`
    "agree" (the default) a run is kept only when that reading agrees with what the prompt asked, since the
    detector misreads merged two-object images and the model sometimes draws something else (`kept`: the
    share of runs kept). See generated.py.
    """

    category = "safety/training"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        vae: Any = Input(port="VAE")
        concept: str = Input("star", min_length=1, max_length=200,
                             description="tiny-world words, as TrainSafetyChecker")
        count: int = Input(600, ge=3, le=5000, description="sampling runs (each keeps ~15 64-px views in memory)")
        sizes: str = Input("64x64, 64x64, 96x96, 80x48", max_length=400,
                           description="image sizes (WIDTHxHEIGHT), used in turn")
        seed: int = Input(0, seed=True)
        steps: int = Input(20, ge=1, le=200)
        cfg: float = Input(5.0, ge=0.0, le=30.0, step=0.5)
        sampler: str = Input("dpmpp_2m", choices_from="samplers")
        scheduler: str = Input("karras", choices_from="schedules")
        max_sigma: float = Input(3.5, ge=0.0, le=1e6, description="record predictions at sigma <= this (the gate's "
                                                                   "gate_sigma)")
        batch_size: int = Input(32, ge=1, le=512)
        label_rule: Literal["agree", "detector"] = Input(
            "agree", description="agree: keep only runs where the prompt and the detector's reading of the image "
                                 "agree on the concept (label noise of either is dropped); detector: keep all, "
                                 "labelled by the detector")

    outputs = (Output("examples", "CHECKER_EXAMPLES"), Output("concept_rate", "FLOAT"), Output("kept", "FLOAT"))

    def run(self, model: Any, text_encoder: Any, vae: Any, concept: str, count: int, sizes: str, seed: int,
            steps: int, cfg: float, sampler: str, scheduler: str, max_sigma: float, batch_size: int,
            label_rule: str = "agree") -> dict:
        import numpy as np
        import torch

        from ._world import world
        from .concepts import ConceptError, parse_concept
        from .generated import (CheckerExamples, PredictionRecorder, example_scenes, label_views, parse_sizes,
                                views_uint8)
        from .training import TINY_CONFIG

        try:
            parsed = parse_concept(concept)
        except ConceptError as exc:
            raise NodeInputError("concept", str(exc)) from None
        try:
            size_list = parse_sizes(sizes)
        except ValueError as exc:
            raise NodeInputError("sizes", str(exc)) from None
        view = TINY_CONFIG.vision.image_size
        scenes_and_prompts = example_scenes(parsed, count, seed)
        prompts = [caption for _, caption in scenes_and_prompts]
        asked = np.array([parsed.matches(scene) for scene, _ in scenes_and_prompts], dtype=bool)
        classifier = world.load_classifier()
        encoded: dict[str, dict] = {}

        def conditioning(texts: list[str]) -> dict:
            items = []
            for text in texts:
                if text not in encoded:
                    encoded[text] = api.encode_text(self.context, text_encoder, text)
                items.append(encoded[text])
            return {key: torch.cat([item[key] for item in items]) if isinstance(items[0][key], torch.Tensor)
                    else items[0][key] for key in items[0]}

        negative = api.encode_text(self.context, text_encoder, "")
        parts, done, kept = [], 0, 0
        for size_index, (width, height) in enumerate(size_list):
            runs = list(range(size_index, count, len(size_list)))
            for start in range(0, len(runs), batch_size):
                chunk = runs[start:start + batch_size]
                sink: list = []
                latent = api.empty_latent(self.context, width, height, batch_size=len(chunk), vae=vae)
                try:
                    result = api.sample(self.context, model, conditioning([prompts[i] for i in chunk]), negative,
                                        latent, seed=seed + size_index * count + start, steps=steps, cfg=cfg,
                                        sampler=sampler, scheduler=scheduler,
                                        guidance=(functools.partial(PredictionRecorder, sink, max_sigma),))
                except NodeInputError as exc:     # api.sample names its argument; the prompts come from text_encoder
                    if exc.input not in ("positive", "negative"):
                        raise
                    raise NodeInputError("text_encoder", f"{str(exc).split(': ', 1)[-1]} (the prompts are encoded "
                                                         f"with this node's text_encoder: connect the one of the "
                                                         f"model's own checkpoint)") from None
                finished = views_uint8(api.vae_decode(self.context, vae, result), view)
                labels = label_views(parsed, finished, classifier)
                keep = labels == asked[chunk] if label_rule == "agree" else np.ones(len(chunk), dtype=bool)
                kept += int(keep.sum())
                groups = np.asarray(chunk, dtype=np.int64)[keep]
                parts.append(CheckerExamples(finished[keep], labels[keep], groups, np.zeros(len(groups), np.float32)))
                for sigma, denoised in sink if keep.any() else ():
                    predicted = views_uint8(api.vae_decode(self.context, vae,
                                                           {"samples": denoised[torch.from_numpy(keep)]}), view)
                    parts.append(CheckerExamples(predicted, labels[keep], groups, np.full(len(groups), sigma,
                                                                                           np.float32)))
                done += len(chunk)
                self.context.progress(done, count)
        if kept == 0:
            raise NodeInputError("label_rule", f"the detector agreed with no prompt in {count} runs, so no example "
                                               f"is left; use label_rule 'detector', or check that the model draws "
                                               f"the tiny world")
        examples = CheckerExamples.concatenate(parts)
        finished_labels = examples.labels[examples.sigmas == 0]
        return {"examples": examples, "concept_rate": float(finished_labels.mean()), "kept": kept / count}


class TrainSafetyChecker(Node):
    """Train a tiny safety checker (SD's architecture at tiny size) to flag a tiny-world concept.

    Renders `count` labelled scenes (a third forced to show the concept), trains for `steps`, sets the
    threshold on `eval_count` fresh renders (calibration), and reports the accuracy on another `eval_count`
    fresh renders (held out from both).

    With `generated` (GenerateCheckerExamples), a `generated_fraction` of every batch comes from a model's
    images; their sampling runs are split 70/15/15 into training, calibration (the threshold is then set on
    generated examples: the images the checker judges in use) and held out (`accuracy` is measured there;
    `render_accuracy` stays on renders).
    """

    category = "safety/training"

    class Inputs(NodeInputs):
        concept: str = Input("star", min_length=1, max_length=200,
                             description="tiny-world words, e.g. 'star', 'red on black', 'large ring; blue square'")
        count: int = Input(12000, ge=30, le=200_000)
        steps: int = Input(1500, ge=1, le=100_000)
        batch_size: int = Input(64, ge=1, le=1024)
        lr: float = Input(0.001, gt=0.0, le=1.0)
        seed: int = Input(0, seed=True)
        eval_count: int = Input(3000, ge=30, le=100_000)
        generated: Any = Input(None, port="CHECKER_EXAMPLES", description="a model's images (GenerateCheckerExamples)")
        generated_fraction: float = Input(0.5, ge=0.0, le=1.0, step=0.05,
                                          description="share of each batch drawn from `generated`")
        patch_size: Literal[4, 8] = Input(8, description="the vision tower's patch side in px (64-px view): 8 = "
                                                         "64 tokens; 4 = 256 tokens, finer for small shapes, "
                                                         "~2.5x the time per step")

    outputs = (Output("checker", "SAFETY_CHECKER"), Output("accuracy", "FLOAT"), Output("render_accuracy", "FLOAT"))

    def run(self, concept: str, count: int, steps: int, batch_size: int, lr: float, seed: int,
            eval_count: int, generated: Any = None, generated_fraction: float = 0.5, patch_size: int = 8) -> dict:
        import numpy as np
        import torch

        from .concepts import ConceptError, parse_concept
        from .generated import CheckerExamples, split_groups
        from .training import calibrate_thresholds, evaluate, render_examples, train_checker

        try:
            parsed = parse_concept(concept)
        except ConceptError as exc:
            raise NodeInputError("concept", str(exc)) from None
        splits = None
        if generated is not None:
            if not isinstance(generated, CheckerExamples) or len(generated) == 0:
                raise NodeInputError("generated", "expected the examples of GenerateCheckerExamples (none given)")
            splits = [generated.subset(mask) for mask in split_groups(generated.groups, (0.7, 0.15, 0.15), seed)]
            if min(len(part) for part in splits) == 0:
                raise NodeInputError("generated", f"{len(np.unique(generated.groups))} sampling runs are too few to "
                                                  f"split into training, calibration and held-out parts; generate "
                                                  f"at least 20")
        images, labels = render_examples(parsed, count, seed=seed)

        def report(step: int, total: int, loss: float) -> None:
            if step % 10 == 0 or step == total:
                self.context.progress(step, total, info={"loss": round(loss, 5)})

        extra = (splits[0].images, splits[0].labels, generated_fraction) if splits else None
        checker, _ = train_checker(parsed, images, labels, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                   progress=report, extra=extra, patch_size=patch_size)
        if splits:
            calibrate_thresholds(checker, splits[1].images, splits[1].labels)
        else:
            calibrate_thresholds(checker, *render_examples(parsed, eval_count, seed=seed + 1_000_003))
        held_images, held_labels = render_examples(parsed, eval_count, seed=seed + 2_000_003)
        render_accuracy = evaluate(checker, torch.from_numpy(held_images).float() / 255, held_labels)["accuracy"]
        accuracy = render_accuracy if not splits else \
            evaluate(checker, torch.from_numpy(splits[2].images).float() / 255, splits[2].labels)["accuracy"]
        return {"checker": checker, "accuracy": accuracy, "render_accuracy": render_accuracy}


class SaveSafetyChecker(Node):
    """Write a SAFETY_CHECKER to models/safety_checker/NAME.safetensors (released key layout + our config)."""

    category = "safety/training"
    output_node = True

    class Inputs(NodeInputs):
        checker: Any = Input(port="SAFETY_CHECKER")
        filename: str = Input(DEFAULT_CHECKER, file_name_in="model", file_suffix=".safetensors",
                              min_length=1, max_length=120)
        overwrite: bool = Input(False, description="replace an existing file of that name (else NAME_1, ...)")

    outputs = ()

    def run(self, checker: Any, filename: str, overwrite: bool) -> dict:
        from .checker import save_safety_checker

        if not filename.endswith(".safetensors"):
            raise NodeInputError("filename", f"expected a name ending in .safetensors, found {filename!r}")
        folder = self.context.service("model_paths").directories(MODEL_FOLDER)[0]
        folder.mkdir(parents=True, exist_ok=True)
        path = api.confine(folder, filename, what="checker file name", input_name="filename")
        written = api.training(self.context).write_new_file(
            path, overwrite, lambda tmp: save_safety_checker(tmp, checker),
            self.context.service("model_paths").directories(MODEL_FOLDER), self.context.warn)
        return {"model_files": [{"path": str(written), "kind": "safety_checker", "format": "safetensors"}],
                "bytes": written.stat().st_size}


class SafetyFilter(Node):
    """Check images with a safety checker and blur, replace or drop the flagged ones.

    The run's outputs record `flagged` (one bool per input image), `scores` (the highest concept score per
    image: cosine similarity minus threshold, > 0 flags), `empty` (images with nothing in them — a flat frame
    — which is never flagged, whatever it scores) and `decisions` (what was done to each image).
    """

    category = "safety"
    version = "1.0.2"     # 1.0.2: blank frames are never flagged (`empty`)
    output_node = True

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        checker: Any = Input(port="SAFETY_CHECKER")
        action: Literal["blur", "replace", "drop"] = Input("blur")
        blur_fraction: float = Input(0.08, gt=0.0, le=1.0, step=0.01, description="blur sigma / image side")
        sensitivity: float = Input(0.0, ge=-1.0, le=1.0, step=0.005,
                                   description="added to every score (the reference's 'adjustment'): > 0 flags more")

    outputs = (Output("images", "IMAGE"),)

    def run(self, images: Any, checker: Any, action: str, blur_fraction: float, sensitivity: float) -> dict:
        import torch

        from .output_filter import filter_images

        api.check_image(images, "images", "SafetyFilter")
        result = checker.check_images(images)
        scores = result.concept_scores + sensitivity
        flagged = result.flagged_at(sensitivity)
        filtered = filter_images(images, flagged.tolist(), action, blur_fraction=blur_fraction)
        best = scores.max(dim=1).values if scores.numel() else torch.zeros(images.shape[0])
        return {"images": filtered.images, "flagged": [bool(f) for f in flagged],
                "scores": [round(float(s), 4) for s in best], "decisions": filtered.decisions,
                "empty": [not bool(s) for s in result.something],
                "concepts": list(checker.config.concept_names)}


def _concept_conditioning(node: Node, text_encoder: Any, concept: str) -> dict:
    if not concept.strip():
        raise NodeInputError("concept", "the safety concept is empty; write what to steer away from, e.g. 'star'")
    return api.encode_text(node.context, text_encoder, concept)


def _sigma_range(sigma_low: float, sigma_high: float) -> tuple[float, float]:
    if sigma_low > sigma_high:
        raise NodeInputError("sigma_low", f"sigma_low ({sigma_low}) is above sigma_high ({sigma_high}); swap them")
    return sigma_low, sigma_high


class SafeLatentDiffusion(Node):
    """Safe Latent Diffusion guidance (Schramowski et al. 2023) away from a concept given as text.

    Adds a term to GUIDANCE: after `warmup_steps`, where the prompt's noise prediction is not already
    `threshold` above the concept's, it is pushed away from the concept (scale `edit_scale`, clamped to 1
    per element), with momentum (`momentum_scale`, `momentum_beta`). Needs CFG (cfg > 1); costs one extra
    model evaluation per step. `preset` other than "custom" uses the paper's settings.

    Two additions (README, "With an anchor and a checker gate"): `anchor` replaces the concept with
    another (the direction becomes concept − anchor: "star" → "circle" keeps colour, size and place;
    "circle; square" uses the mean of both; one more evaluation per step and anchor), and `checker` +
    `vae` gate the term per image: it acts only on images whose predicted result the checker flagged at
    `gate_steps` consecutive steps with sigma <= `gate_sigma` (its scores shifted by `gate_sensitivity`),
    and costs no model evaluation before that. `prompt_share` (with an anchor) weights each image's edit by
    how much of the concept its prompt's own prediction holds (the projection of ε_p − ε_A onto ε_S − ε_A,
    the smallest over the anchors; none at `share_low`, all from `share_high`), so that a false alarm of
    the gate moves a star-free image less.
    """

    category = "safety/guidance"
    version = "1.1.1"     # 1.1.1: the gate never opens on a blank prediction; 1.1: prompt_share, share_low, share_high (off by default)

    class Inputs(NodeInputs):
        text_encoder: Any = Input(port="TEXT_ENCODER")
        concept: str = Input("star", multiline=True, max_length=2000, description="what to steer away from")
        preset: Literal["custom", "weak", "medium", "strong", "max"] = Input("custom")
        warmup_steps: int = Input(3, ge=0, le=1000, description="δ: steps before safety guidance applies")
        edit_scale: float = Input(1000.0, ge=0.0, le=100000.0, description="s_S: safety guidance scale")
        threshold: float = Input(0.5, ge=-100.0, le=100.0, step=0.005, description="λ: elementwise threshold")
        momentum_scale: float = Input(0.5, ge=0.0, le=10.0, step=0.05, description="s_m")
        momentum_beta: float = Input(0.7, ge=0.0, le=0.999, step=0.05, description="β_m")
        sigma_low: float = Input(0.0, ge=0.0, le=1e6, description="apply only for sigma in [low, high]")
        sigma_high: float = Input(1e6, ge=0.0, le=1e6)
        anchor: str = Input("", max_length=2000, description="replace the concept with this (e.g. 'circle', or "
                                                              "'circle; square' for their mean); empty = steer "
                                                              "away from it (the paper)")
        checker: Any = Input(None, port="SAFETY_CHECKER", description="act only on images this checker flags "
                                                                      "(needs vae)")
        vae: Any = Input(None, port="VAE", description="decodes the predicted images for the checker")
        gate_sigma: float = Input(3.5, ge=0.0, le=1e6, description="the checker judges predictions at sigma <= this")
        gate_steps: int = Input(2, ge=1, le=1000, description="consecutive flagged steps before an image is gated on")
        gate_sensitivity: float = Input(0.0, ge=-1.0, le=1.0, step=0.005,
                                        description="added to the checker's scores for the gate, as SafetyFilter's "
                                                    "sensitivity: < 0 fewer false alarms on safe images, more misses")
        prompt_share: bool = Input(False, description="weight each image's edit by the prompt's share of the "
                                                       "concept (projection onto concept − anchor)")
        share_low: float = Input(0.45, ge=-10.0, le=10.0, step=0.05, description="share at and below which the "
                                                                                  "image is not edited")
        share_high: float = Input(0.65, ge=-10.0, le=10.0, step=0.05, description="share from which the image gets "
                                                                                 "the full edit")
        guidance: Any = Input(None, port="GUIDANCE", description="terms to stack this one onto")

    outputs = (Output("guidance", "GUIDANCE"),)

    def run(self, text_encoder: Any, concept: str, preset: str, warmup_steps: int, edit_scale: float,
            threshold: float, momentum_scale: float, momentum_beta: float, sigma_low: float, sigma_high: float,
            anchor: str = "", checker: Any = None, vae: Any = None, gate_sigma: float = 3.5, gate_steps: int = 2,
            gate_sensitivity: float = 0.0, prompt_share: bool = False, share_low: float = 0.45,
            share_high: float = 0.65, guidance: Any = None) -> dict:
        from .sld import PRESETS, CheckerGate, SafeLatentDiffusionTerm, SLDParameters, anchor_texts

        try:
            parameters = PRESETS[preset] if preset != "custom" else SLDParameters(
                warmup_steps=warmup_steps, edit_scale=edit_scale, threshold=threshold, momentum_scale=momentum_scale,
                momentum_beta=momentum_beta)
        except ValueError as exc:  # the message starts with the parameter's name
            raise NodeInputError(str(exc).split(":", 1)[0], str(exc)) from None
        concept_conditioning = _concept_conditioning(self, text_encoder, concept)
        anchors = anchor_texts(anchor)
        for text in anchors:
            if text.lower() == concept.strip().lower():
                raise NodeInputError("anchor", f"the anchor is the concept itself ({text!r}), so the guidance "
                                               f"would be zero; name what should appear instead, e.g. 'circle'")
        anchor_conditioning = [api.encode_text(self.context, text_encoder, text) for text in anchors] or None
        gate = None
        if (checker is None) != (vae is None):
            missing = "vae" if vae is None else "checker"
            raise NodeInputError(missing, f"the checker gate needs both a checker and the VAE that decodes the "
                                          f"sampler's latents; connect {missing}, or disconnect both to guide every "
                                          f"image")
        if checker is not None:
            context = self.context

            def flag_images(latent):
                try:
                    images = api.vae_decode(context, vae, {"samples": latent})
                except NodeInputError as exc:    # e.g. the VAE of another model: say which input to fix
                    raise NodeInputError("vae", f"SafeLatentDiffusion's gate cannot decode the sampler's latents "
                                                f"with this VAE ({exc}); connect the VAE of the model being "
                                                f"sampled") from None
                return checker.check_images(images).flagged_at(gate_sensitivity)

            gate = functools.partial(CheckerGate, flag_images, gate_sigma, gate_steps)
        if prompt_share and share_high < share_low:
            raise NodeInputError("share_high", f"share_high ({share_high}) is below share_low ({share_low}); "
                                               f"swap them (equal values make a step)")
        factory = functools.partial(SafeLatentDiffusionTerm, concept_conditioning, parameters,
                                    _sigma_range(sigma_low, sigma_high), anchor_conditioning, gate,
                                    (share_low, share_high) if prompt_share else None)
        return {"guidance": (*(guidance or ()), factory)}


class NegativeConceptGuidance(Node):
    """Guidance away from a concept by using it as the negative prompt (the baseline for SLD).

    Equivalent to CFG with the concept as the negative prompt (`strength` 1); stacks with other terms.
    """

    category = "safety/guidance"

    class Inputs(NodeInputs):
        text_encoder: Any = Input(port="TEXT_ENCODER")
        concept: str = Input("star", multiline=True, max_length=2000)
        strength: float = Input(1.0, ge=0.0, le=1.0, step=0.05,
                                description="0 = the original negative prompt, 1 = the concept replaces it")
        sigma_low: float = Input(0.0, ge=0.0, le=1e6, description="apply only for sigma in [low, high]")
        sigma_high: float = Input(1e6, ge=0.0, le=1e6)
        guidance: Any = Input(None, port="GUIDANCE")

    outputs = (Output("guidance", "GUIDANCE"),)

    def run(self, text_encoder: Any, concept: str, strength: float, sigma_low: float, sigma_high: float,
            guidance: Any = None) -> dict:
        from .sld import NegativeConceptTerm

        factory = functools.partial(NegativeConceptTerm, _concept_conditioning(self, text_encoder, concept),
                                    strength, _sigma_range(sigma_low, sigma_high))
        return {"guidance": (*(guidance or ()), factory)}


class WatermarkImages(Node):
    """Embed an invisible watermark (a short text) in every image, as Stable Diffusion's scripts do.

    Uses the invisible-watermark package's dwtDctSvd method; images need at least 256×256 pixels.
    """

    category = "safety"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        message: str = Input("nodegraph", min_length=1, max_length=32)

    outputs = (Output("images", "IMAGE"),)

    def run(self, images: Any, message: str) -> dict:
        from .watermark import WatermarkError, encode_watermark

        api.check_image(images, "images", "WatermarkImages")
        try:
            return {"images": encode_watermark(images, message)}
        except WatermarkError as exc:
            argument = "message" if str(exc).startswith("message") else "images"
            raise NodeInputError(argument, str(exc)) from None


class ReadWatermark(Node):
    """Read a watermark of `length` bytes from each image; the texts are recorded in the run's outputs."""

    category = "safety"
    output_node = True

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        length: int = Input(9, ge=1, le=32, description="message length in bytes (9 for 'nodegraph')")

    outputs = (Output("text", "STRING"),)

    def run(self, images: Any, length: int) -> dict:
        from .watermark import WatermarkError, decode_watermark

        api.check_image(images, "images", "ReadWatermark")
        try:
            raw = decode_watermark(images, length)
        except WatermarkError as exc:
            raise NodeInputError("length" if str(exc).startswith("length") else "images", str(exc)) from None
        texts = [item.decode("utf-8", errors="replace") for item in raw]
        return {"text": texts[0], "texts": texts}


NODES = [LoadSafetyChecker, GenerateCheckerExamples, TrainSafetyChecker, SaveSafetyChecker, SafetyFilter, SafeLatentDiffusion,
         NegativeConceptGuidance, WatermarkImages, ReadWatermark]


@hookimpl
def register_types() -> list[PortType]:
    return [SAFETY_CHECKER, CHECKER_EXAMPLES]


@hookimpl
def register_nodes() -> list[type[Node]]:
    return NODES


@hookimpl
def register_model_folders() -> dict[str, list[str]]:
    return {MODEL_FOLDER: [".safetensors", ".ckpt", ".pt", ".pth", ".bin"]}


@hookimpl
def register_model_dirs() -> dict[str, list[str]]:
    return {MODEL_FOLDER: [str(SHIPPED_MODELS)]}
