"""The training pack's public kits, served to plugins by `nodegraph.api.tiny_world()` / `api.training()`.

A kit is a read-only namespace of the pack's library names that API 1.1 promises to keep
(docs/plugins.md "Training and the tiny world"); everything else in `nodes.training` stays private.

    tiny_world_kit()   the procedural captioned world: scene specs, rendering at any size, captions,
                       parsing (templates and free-form prompts), sampling with hold-outs, and the
                       detector that scores images
    training_kit()     the loop pieces: TrainConfig, lr_at, EMA, TrainingRun (atomic checkpoints,
                       exact resume), start_or_resume / checkpoint / optimiser_step / batch_indices,
                       diffusion_targets, write_new_file (the never-overwrite save rule)
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any


class Kit:
    """A read-only namespace: attributes are the kit's names; `names` lists them (sorted)."""

    def __init__(self, name: str, members: dict[str, Any]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_members", MappingProxyType(dict(members)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._members))

    def __getattr__(self, attribute: str) -> Any:
        try:
            return self._members[attribute]
        except KeyError:
            raise AttributeError(f"the {self._name} kit has no {attribute!r}; it has: {', '.join(self.names)}") \
                from None

    def __setattr__(self, attribute: str, value: Any) -> None:
        raise AttributeError(f"the {self._name} kit is read-only")

    def __dir__(self) -> list[str]:
        return list(self.names)

    def __repr__(self) -> str:
        return f"<nodegraph {self._name} kit: {', '.join(self.names)}>"


def tiny_world_kit() -> Kit:
    """The tiny world (docs/tiny_world.md) and its detector (world_detector)."""
    from . import world, world_captions, world_detector

    members = {name: getattr(world, name) for name in (
        "SHAPES", "COLOURS", "SIZES", "POSITIONS", "BACKGROUNDS", "REFERENCE_SIZE", "DEFAULT_HOLDOUT",
        "TEMPLATES", "WorldError", "ObjectSpec", "SceneSpec", "TinyWorld", "sample_scene",
        "sample_held_out_scene", "is_held_out", "render", "paint_shape", "caption", "parse_caption")
        if hasattr(world, name)}
    members.update({name: getattr(world_detector, name) for name in (
        "DetectorError", "Detection", "DetectedObject", "detect", "detect_many", "score", "load_classifier",
        "features", "frechet_distance")})
    members["normalise_holdout"] = world.normalise_holdout
    members["normalise_shape_weights"] = world.normalise_shape_weights
    members["parse_shape_weights"] = world.parse_shape_weights
    members.update({name: getattr(world_captions, name) for name in (
        "PromptObject", "PromptSpec", "parse_prompt", "unknown_words", "free_caption")})
    members["SYNONYMS"] = MappingProxyType(world_captions.SYNONYMS)
    return Kit("tiny_world", members)


def training_kit() -> Kit:
    """The training loop pieces of trainer.py and the save rule of the training nodes."""
    from . import trainer
    from .nodes import _content_digest, _write_new_file

    members = {name: getattr(trainer, name) for name in (
        "TrainConfig", "lr_at", "EMA", "TrainingRun", "TrainingStateError", "diffusion_targets")}
    members.update({
        "start_or_resume": trainer._start_or_resume,
        "checkpoint": trainer._checkpoint,
        "optimiser_step": trainer._optimiser_step,
        "batch_indices": trainer._batch_indices,
        "write_new_file": _write_new_file,
        "content_digest": _content_digest,      # 1.3: an exact digest of data/weights for a run's identity
    })
    return Kit("training", members)
