"""Training nodes: training is a graph too (graphs/train/ holds the graphs that made the shipped model).

    TinyWorldDataset     the procedural captioned world (world.py), rendered once into memory → DATASET
    ImageFolderDataset   images + same-name .txt captions from the input folder → DATASET (+ skip report)
    RenderTinyWorld      a tiny-world caption → the exact image the world draws for it (a ground truth
                         for img2img, ControlNet hints and comparisons with generated images)
    TrainVAE             DATASET → VAE (KL autoencoder; scale factor and preview map fitted after training)
    TrainDiffusion       DATASET, VAE → MODEL, TEXT_ENCODER (a UNet and a CLIP-architecture text encoder
                         trained from scratch; eps or v objective; EMA; caption dropout for CFG)
    DistillTextEncoder   DATASET, MODEL, TEXT_ENCODER, VAE → TEXT_ENCODER (a copy taught to read captions with
                         filler words and swapped words as the original reads them; the UNet stays frozen)
    TrainControlNet      DATASET, MODEL, TEXT_ENCODER, VAE → CONTROL_NET (hints: object mask, Canny edges or
                         distance depth, computed from the images; the model stays frozen)
    SaveCheckpoint       MODEL, TEXT_ENCODER, VAE → a single-file SD-layout .safetensors in models/checkpoints,
                         with its exact config in the metadata (LoadCheckpoint reads it with no extra arguments)
    SaveControlNet       CONTROL_NET → models/controlnet/NAME.safetensors (LoadControlNet reads it)

Training state is checkpointed every `checkpoint_every` steps under
`<output>/training/<run_name>/` (safetensors + JSON, never a pickle); running the
same node again with the same settings resumes from there (an interrupted run
loses at most one interval). The run's identity holds its settings, a digest of
exactly what it trains on (images and captions; for latent trainers the images the
latents were encoded from and the VAE's weights, since the latents' last bits follow
the CPU thread count) and of any starting weights; a larger `steps` alone continues
the saved run, any other change starts again with a warning and keeps the old state as training_state_N.* (trainer.py
`TrainingRun`, docs/training.md "Re-running a training graph").

Every input that names a file or folder goes through `nodegraph.paths.confine`:
`run_name` (a name, or subfolders like `runs/a`, inside `<output>/training/`),
`folder` of ImageFolderDataset (inside the input folder), and the `filename` of
SaveCheckpoint / SaveControlNet (a plain `.safetensors` name in the first
directory of the model folder). The save nodes never replace an existing file
unless `overwrite` is true.
Progress events carry the loss (`info`). Training nodes are cached like any
node: a finished training is not repeated while its inputs stay the same.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import AfterValidator

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, PortType, hookimpl

DATASET = PortType("DATASET", "Captioned training images: item i → (image (3, H, W) in [-1, 1], caption).",
                   color="#90a4ae")


class RenderedDataset:
    """A dataset held in memory: uint8 images (N, H, W, 3) and captions; item i → (image in [-1, 1], caption)."""

    def __init__(self, images: Any, captions: list[str]):
        self.images, self.captions = images, captions

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        return self.images[index].permute(2, 0, 1).float() / 127.5 - 1.0, self.captions[index]

    def __nodegraph_sizeof__(self) -> int:
        return self.images.numel()


class RenderTinyWorld(Node):
    """Draw the tiny-world scene a caption describes, exactly as the training data draws it.

    The caption may be free-form and leave out size, position or background: what it does not
    name is drawn at random from `seed` (the caption output then names everything).
    """

    category = "training"
    version = "1.1.0"

    class Inputs(NodeInputs):
        caption: str = Input("a large red circle in the centre, on a white background", multiline=True,
                             min_length=1, max_length=2000)
        size: int = Input(64, ge=16, le=1024, multiple_of=8)
        height: int = Input(0, ge=0, le=1024, multiple_of=8, description="0 = size (square); else the height")
        seed: int = Input(0, seed=True, description="draws what the caption leaves out")

    outputs = (Output("image", "IMAGE"), Output("caption", "STRING"))

    def run(self, caption: str, size: int, height: int, seed: int) -> dict:
        import random

        import numpy as np
        import torch

        from . import world
        from .world_captions import parse_prompt, unknown_words

        prompt, unknown = parse_prompt(caption), unknown_words(caption)
        if prompt is None or unknown:   # a ground truth: a word the world cannot draw ("medium") is an error
            hint = f" (the world has no {', '.join(repr(w) for w in unknown)})" if unknown else ""
            raise NodeInputError(
                "caption", f"{caption!r} is not a tiny-world scene{hint}: name one or two shapes with their colours, "
                           f"and optionally size, position and background, as in 'a small red circle on the left, "
                           f"on a blue background' or 'a red circle and a blue square' (docs/tiny_world.md lists "
                           f"the words)")
        scene = prompt.complete(random.Random(f"render/{seed}"), jitter=False)
        pixels = world.render(scene, (height or size, size))
        image = torch.from_numpy(np.ascontiguousarray(pixels)).float().div(255).unsqueeze(0)   # (1, H, W, 3)
        return {"image": image, "caption": world.caption(scene)}


def _parse_holdout(text: str) -> list[tuple[str, ...]]:
    """"green triangle; blue star" → [("green", "triangle"), ("blue", "star")]."""
    return [tuple(rule.split()) for rule in text.replace(",", ";").split(";") if rule.strip()]


def _check_shape_weights(text: str) -> str:
    """Pydantic after-validator of TinyWorldDataset's ``shape_weights`` (a literal is checked before any run)."""
    from .world import parse_shape_weights

    parse_shape_weights(text)
    return text


class BucketedDataset:
    """Images of several sizes, one RenderedDataset per (height, width) bucket; item i → (image, caption).

    Multi-resolution training draws each batch from one bucket (``buckets``), as SDXL's
    aspect-ratio bucketing does; global item order is bucket by bucket.
    """

    def __init__(self, buckets: list[tuple[tuple[int, int], RenderedDataset]]):
        self.buckets = buckets
        self._starts = []
        total = 0
        for _, data in buckets:
            self._starts.append(total)
            total += len(data)
        self._length = total

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[Any, str]:
        import bisect

        bucket = bisect.bisect_right(self._starts, index) - 1
        return self.buckets[bucket][1][index - self._starts[bucket]]

    def __nodegraph_sizeof__(self) -> int:
        return sum(data.__nodegraph_sizeof__() for _, data in self.buckets)


def _parse_sizes(text: str, size: int) -> list[tuple[int, int]]:
    """"32, 48x80, 64" → [(32, 32), (48, 80), (64, 64)] (HxW); "" → [(size, size)]."""
    sizes = []
    for part in text.replace(";", ",").split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            values = [int(v) for v in part.split("x")]
        except ValueError:
            values = []
        if len(values) not in (1, 2) or any(v < 16 or v > 1024 or v % 8 for v in values):
            raise NodeInputError("sizes", f"expected sides or HxW pairs, multiples of 8 from 16 to 1024, separated by "
                                          f"commas (e.g. '32, 48x80, 64, 96, 128'); found {part!r}")
        sizes.append((values[0], values[-1]))
    return sizes or [(size, size)]


class TinyWorldDataset(Node):
    """The procedural captioned world of shapes ("a small red circle on the left, on a blue background").

    Deterministic from the seed; combinations in `holdout` never appear (to test generalisation).
    `caption_style` "free"/"mixed" adds free-form captions (attributes left out, reordered,
    synonyms; docs/tiny_world.md); `sizes` renders balanced size buckets for multi-resolution
    training; `layout` "continuous" places objects off the grid with irregular outlines
    (ControlNet hints); `shape_weights` ("star: 3") draws some shapes more often than others
    (held-out pairs are still never shown); `caption_filler` inserts words that say nothing about
    the scene into a share of the captions, `caption_word_swap` replaces some of their words that name
    no attribute, `caption_paraphrase` rewords position and background phrases and puts colours after
    shapes (`world_captions.paraphrase_caption`, version 2).
    """

    category = "training"
    version = "1.4.0"

    class Inputs(NodeInputs):
        seed: int = Input(0, seed=True)
        count: int = Input(20000, ge=1, le=2_000_000)
        size: int = Input(64, ge=16, le=1024, multiple_of=8)
        holdout: str = Input("green triangle; blue star; yellow ring; purple circle; orange square",
                             description="'colour shape' pairs (or any attribute values) never shown, ';'-separated")
        two_object_fraction: float = Input(0.0, ge=0.0, le=1.0)
        caption_style: Literal["template", "free", "mixed"] = Input("template")
        sizes: str = Input("", max_length=200, description="size buckets, e.g. '32, 48x80, 64, 96, 128' (HxW); "
                                                           "empty = size")
        layout: Literal["grid", "continuous"] = Input("grid")
        shape_weights: Annotated[str, AfterValidator(_check_shape_weights)] = Input(
            "", max_length=200,
            description="relative shape frequencies, e.g. 'star: 3' (';' or ','-separated; unnamed shapes 1); "
                        "empty = uniform")
        caption_filler: float = Input(0.0, ge=0.0, le=1.0, description="share of captions given 1-3 words that say "
                                                                       "nothing about the scene (robustness to "
                                                                       "unknown words); 0 = none")
        caption_word_swap: float = Input(0.0, ge=0.0, le=1.0, description="share of captions whose words that name no "
                                                                          "attribute ('on', 'the', 'half') are partly "
                                                                          "replaced by filler words; 0 = none")
        caption_paraphrase: float = Input(0.0, ge=0.0, le=1.0, description="share of captions whose position and "
                                                                           "background phrases are reworded ('upper', "
                                                                           "'toward the left', 'and a blue background') "
                                                                           "and colours put after shapes; 0 = none")
        caption_paraphrase_version: int = Input(2, ge=1, le=5, description="how captions are reworded: 2 = model "
                                                "v6's (also a leading 'blue backdrop' and colours after shapes); "
                                                "3 = positions and a trailing background only; 4 = 3 and colours "
                                                "after shapes tied by a verb ('a circle which is red'); 5 = 4 with "
                                                "the background left out of a caption whose colour moved")

    outputs = (Output("dataset", "DATASET"),)

    def run(self, seed: int, count: int, size: int, holdout: str, two_object_fraction: float,
            caption_style: str, sizes: str, layout: str, shape_weights: str = "", caption_filler: float = 0.0,
            caption_word_swap: float = 0.0, caption_paraphrase: float = 0.0, caption_paraphrase_version: int = 2) -> dict:
        import numpy as np
        import torch

        from .world import TinyWorld, WorldError, parse_shape_weights

        buckets = _parse_sizes(sizes, size)
        try:
            weights = parse_shape_weights(shape_weights)
        except ValueError as exc:
            raise NodeInputError("shape_weights", str(exc)) from None
        try:
            world = TinyWorld(seed=seed, size=size, holdout=_parse_holdout(holdout),
                              two_object_fraction=two_object_fraction, length=count, caption_style=caption_style,
                              sizes=buckets, layout=layout, shape_weights=weights, caption_filler=caption_filler,
                              caption_word_swap=caption_word_swap, caption_paraphrase=caption_paraphrase,
                              paraphrase_version=caption_paraphrase_version)
        except WorldError as exc:
            raise NodeInputError("holdout" if "holdout" in str(exc) else "count", str(exc)) from None
        members = {shape: [i for i in range(count) if world.image_size(i) == shape] for shape in buckets}
        from nodegraph.memory import ensure_free

        largest = max(buckets, key=lambda hw: hw[0] * hw[1])
        ensure_free(sum(len(indices) * h * w * 3 for (h, w), indices in members.items()),     # rendered as uint8
                    f"the dataset ({count} images of up to {largest[1]}×{largest[0]})")
        parts = []
        done = 0
        for shape, indices in members.items():
            if not indices:
                continue
            images = np.empty((len(indices), *shape, 3), dtype=np.uint8)
            captions = []
            for row, i in enumerate(indices):
                example = world.example(i)
                images[row] = example.image
                captions.append(example.caption)
                done += 1
                if done % 1000 == 0:
                    self.context.progress(done, count)
            parts.append((shape, RenderedDataset(torch.from_numpy(images), captions)))
        if len(parts) == 1:
            return {"dataset": parts[0][1]}
        return {"dataset": BucketedDataset(parts)}


class ImageFolderDataset(Node):
    """Your own images with same-name .txt (or .caption) captions, from a folder inside the input folder.

    Corrupt images are skipped and counted (see the report output), and so are images without a caption
    unless `default_caption` gives them one (a folder of one subject without captions: DreamBooth's
    instance prompt). kohya's `N_name` folders are read as kohya reads them: each image of `10_zorbchar/`
    is drawn 10 times as often as one of a `1_` folder, and "zorbchar" captions an uncaptioned image of it;
    the report says each folder's images, repeats and share of the draws. kohya's regularisation folders
    (`reg/` beside `img/`) are left out with a warning: prior preservation is not supported.
    """

    category = "training"
    version = "1.2.0"     # .0.1: 16-bit and float grey images keep their tones; .0.2: captions NAME.TXT, UTF-8 only;
    #                       .0.3: a strip image (over 16:1) resampled from its centre square; 1.1: default_caption;
    #                       1.2: kohya N_name repeats and class tokens, .caption files, reg/ folders left out

    class Inputs(NodeInputs):
        folder: str = Input("dataset", file_name_in="input", subfolders=True, min_length=1, max_length=255,
                            description="a folder inside the input folder ('.': the input folder itself)")
        size: int = Input(64, ge=8, le=2048, multiple_of=8)
        default_caption: str = Input("", max_length=2000,
                                     description="the caption of images without a .txt / .caption (or with an "
                                                 "empty one) outside a kohya N_name folder (whose name gives "
                                                 "theirs), e.g. DreamBooth's 'a photo of zorb'; empty: they are "
                                                 "skipped")

    outputs = (Output("dataset", "DATASET"), Output("report", "STRING"))

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Any) -> str | None:
        """The folder's files (names, sizes, times): adding, removing or changing one reads it again."""
        from .image_folder import folder_fingerprint

        try:
            return folder_fingerprint(resolve_file("input/", literals["folder"]))
        except LookupError:
            return "missing"

    def run(self, folder: str, size: int, default_caption: str = "") -> dict:
        from nodegraph.paths import confine
        from nodegraph.validation import INPUT_FOLDER_ITSELF

        from .image_folder import DatasetError, ImageFolderDataset as Folder

        input_dir = Path(self.context.service("input_dir"))
        itself = folder == INPUT_FOLDER_ITSELF     # '.': the input folder itself (a server user's own), e.g. flat
        root = input_dir if itself else confine(input_dir, folder, what="dataset folder", input_name="folder",
                                                subfolders=True)
        shown = "the input folder" if itself else f"the input folder's {folder!r}"
        try:
            dataset = Folder(root, size=size, shown_as=shown, default_caption=default_caption)
        except DatasetError as exc:
            raise NodeInputError("size" if exc.argument == "size" else "folder", exc.reason) from None
        if size < SMALL_TRAINING_SIZE:        # accepted (a test may want it), but a picture of a 2x2 latent teaches little
            self.context.warn(f"size {size} px makes a {size // 8}x{size // 8} latent: a model learns almost "
                              f"nothing of a picture that small; {SMALL_TRAINING_SIZE}-128 px suits the tiny "
                              f"world model, 512 and more a Stable Diffusion one")
        skipped = dataset.report.skipped_files()
        if dataset.report.skipped or dataset.report.linked_folders:   # said, not only in the report output
            self.context.warn(f"{dataset.report.summary()}" + (f"; skipped: {'; '.join(skipped[:5])}"
                                                                + (" …" if len(skipped) > 5 else "") if skipped else ""))
        for note in dataset.report.notes():       # regularisation folders left out, .txt used over a .caption
            self.context.warn(note)
        return {"dataset": dataset, "report": dataset.report.summary()
                + (f"; skipped: {'; '.join(skipped)}" if skipped else "")}


SMALL_TRAINING_SIZE = 32      # below this ImageFolderDataset warns (the tiny world model trains at 32-128)


def _int_list(name: str, text: str, least: int = 0) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise NodeInputError(name, f"expected comma-separated integers such as '1,2,2', found {text!r}") from None
    if not values or any(v < least for v in values):
        what = "positive" if least == 1 else "non-negative"
        raise NodeInputError(name, f"expected one or more {what} integers, found {text!r}")
    return values


def _channel_mult_problem(literals: dict[str, Any]) -> dict[str, str]:
    """`check_literals` of the nodes with a `channel_mult`: each level's multiplier is a positive integer (0 was
    let through and failed inside torch with a zero-channel convolution)."""
    text = literals.get("channel_mult")
    if not isinstance(text, str):
        return {}
    try:
        _int_list("channel_mult", text, least=1)
    except NodeInputError as exc:
        return {"channel_mult": str(exc).removeprefix("input 'channel_mult': ")}
    return {}


def _run_folder(node: Node, run_name: str) -> Path:
    """<output>/training/<run_name>, confined there (subfolders allowed); checked before any work starts."""
    from nodegraph.paths import confine

    return confine(Path(node.context.service("output_dir")) / "training", run_name, what="run name",
                   input_name="run_name", subfolders=True)


def _run(node: Node, run_name: str, folder: Path, identity: dict) -> Any:
    """The TrainingRun of `folder`: resumed only by a run with the same `identity`, or one that only trains
    longer; a state set aside or continued is reported as a node warning naming `run_name`."""
    from .trainer import TrainingRun

    return TrainingRun(folder, identity, warn=node.context.warn, shown_as=f"training run {run_name!r}",
                       budget=node.context.services.get("output_budget"))


def _content_digest(*values: Any) -> str:
    """A short exact digest (blake2b) of tensors (dtype, shape, bytes), modules' weights, dataclasses of
    tensors, lists, dicts, text and numbers: what a run's identity records of its data and starting weights,
    so a changed image or caption, or other weights, is never resumed as the old run."""
    import dataclasses
    import hashlib

    import torch

    from .trainer import DiffusionData

    digest = hashlib.blake2b(digest_size=10)

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{tensor.dtype}{tuple(value.shape)}\0".encode())
            digest.update(tensor.view(torch.uint8).numpy())
        elif isinstance(value, torch.nn.Module):
            feed(value.state_dict())
        elif isinstance(value, DiffusionData) and value.source:    # what it was encoded from, not the latents
            feed((value.source, value.token_ids, value.empty_ids, value.parts))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                feed(getattr(value, field.name))
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                digest.update(f"K{key}\0".encode())
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"L{len(value)}\0".encode())
            for item in value:
                feed(item)
        else:
            digest.update(f"V{value!r}\0".encode("utf-8", "surrogateescape"))

    for value in values:
        feed(value)
    return digest.hexdigest()


def _data_text(count: int, *contents: Any) -> str:
    """A run identity's "data": the item count (readable in messages) and a digest of exactly what trains."""
    return f"{count} items, content {_content_digest(*contents)}"


def _config_text(config: Any, leave_out: tuple[str, ...] = ()) -> str:
    """repr() of a dataclass config without the fields in `leave_out` (those that do not change training)."""
    import dataclasses

    shown = ", ".join(f"{field.name}={getattr(config, field.name)!r}" for field in dataclasses.fields(config)
                      if field.name not in leave_out)
    return f"{type(config).__name__}({shown})"


def _train(train: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a training loop; a saved state it cannot use becomes an error naming `run_name`, and an interrupt
    says which state was kept."""
    from nodegraph.errors import RunInterrupted

    from .trainer import TrainingRun, TrainingStateError

    try:
        return train(*args, **kwargs)
    except TrainingStateError as exc:
        raise NodeInputError("run_name", str(exc)) from None
    except (RunInterrupted, KeyboardInterrupt):
        from .trainer import TrainConfig

        every = next((v.checkpoint_every for v in (*args, *kwargs.values()) if isinstance(v, TrainConfig)), None)
        for run in (v for v in (*args, *kwargs.values()) if isinstance(v, TrainingRun)):
            if run.kept_step is not None:
                run.warn(f"{run.shown}: interrupted; its training state at step {run.kept_step} is kept: run the "
                         f"same graph again to resume from there")
            elif run.folder is not None:     # said: the steps done are lost (it printed only "interrupted")
                when = (f"one is saved every {every} steps" if every else "checkpoint_every 0 saves one only at "
                        "the end") if every is not None else "one is saved at each checkpoint"
                run.warn(f"{run.shown}: interrupted before its first training state was saved ({when}), so a "
                         f"rerun starts from step 0; a smaller checkpoint_every keeps more of a stopped run")
        raise


def _on_compute_device(node: Node, *modules: Any) -> Any:
    """A block in which `modules` sit on the session's compute device (the GPU when there is one).

    They are handed to the memory manager (``using``), so they count against its budget, are never
    offloaded while the block runs, and may be offloaded after it like any loaded model. Training loops
    follow their module's device. A context without a memory manager (a bare node in a unit test)
    trains where the modules are.
    """
    memory = node.context.services.get("memory")
    return memory.using(*modules) if memory is not None else nullcontext()


def _encode_pixels(vae: Any, pixels: Any) -> Any:
    """Latents of (B, 3, H, W) pixels in [-1, 1], computed where the VAE is, as float32 on the CPU."""
    weight = next(vae.parameters())
    return vae.encode(pixels.to(weight.device, weight.dtype)).float().cpu()


def _sd_unet_and_clip(node_type: str, model: Any, text_encoder: Any) -> tuple[Any, Any]:
    """The UNet of an SD-family MODEL and the first CLIP encoder of its TEXT_ENCODER; a flow, audio or point model
    (or the flow checkpoint's encoders) is a NodeInputError naming the input, not an AttributeError later."""
    from nodes.models.unet import UNetModel

    net = getattr(model, "net", None)
    if not isinstance(net, UNetModel):
        raise NodeInputError("model", f"{node_type} works on a UNet model (SD 1.x / 2.x layout: LoadCheckpoint of "
                                      f"tiny_world_v4.safetensors, or TrainDiffusion); this MODEL holds a "
                                      f"{type(net).__name__}: connect a UNet checkpoint's model")
    encoders = getattr(getattr(text_encoder, "encoder", None), "encoders", None)
    if not callable(getattr(encoders, "values", None)) or not len(encoders):    # a (Module)dict of CLIP encoders
        family = getattr(text_encoder, "family", "another")
        raise NodeInputError("text_encoder", f"{node_type} needs the CLIP text encoder of an SD-family checkpoint; "
                                             f"this TEXT_ENCODER is a {family} one: connect the text_encoder of the "
                                             f"checkpoint that gave the model")
    return net, next(iter(encoders.values()))


def _require_fp32(input_name: str, module: Any) -> None:
    """Training reads and copies this module's weights: they must be fp32 (LoadCheckpoint's "auto" is fp16 on a GPU)."""
    import torch

    found = {p.dtype for p in module.parameters()} - {torch.float32}
    if found:
        raise NodeInputError(input_name, f"training needs fp32 weights, found {', '.join(sorted(map(str, found)))}; set "
                                         "the loader's weight_dtype to fp32 (its 'auto' loads fp16 on a GPU)")


def _progress(node: Node):
    def report(step: int, total: int, info: dict) -> None:
        node.context.progress(step, total, info={k: round(v, 6) if isinstance(v, float) else v
                                                 for k, v in info.items()})
    return report


def _images(dataset: Any, limit: int | None = None) -> Any:
    import torch

    count = len(dataset) if limit is None else min(limit, len(dataset))
    return torch.stack([dataset[i][0] for i in range(count)])      # (N, 3, H, W) in [-1, 1]


class TrainVAE(Node):
    """Train a KL autoencoder (the SD VAE architecture at small width) on a dataset's images.

    With `init` connected, training starts from that VAE's weights and architecture
    (the width … latent_channels inputs are then ignored): fine-tuning, e.g. at full
    resolution after cheap training on crops, or a decoder adapted to your own images.
    """

    category = "training"
    version = "1.1.0"

    class Inputs(NodeInputs):
        dataset: Any = Input(port="DATASET")
        init: Any = Input(None, port="VAE", description="optional: fine-tune this VAE instead of starting fresh")
        width: int = Input(32, ge=32, le=512, multiple_of=32,
                           description="channels of the full-resolution level (a multiple of 32: its group norms)")
        channel_mult: str = Input("1,2,2", description="per level; n levels downscale by 2^(n-1)")
        res_blocks: int = Input(1, ge=1, le=4)
        latent_channels: int = Input(4, ge=1, le=16)
        steps: int = Input(1500, ge=1, le=1_000_000)
        batch_size: int = Input(16, ge=1, le=1024)
        crop_size: int = Input(0, ge=0, le=4096, multiple_of=8,
                               description="train on random crops of this size (0 = whole images); cheaper steps")
        lr: float = Input(1e-3, gt=0.0, le=1.0)
        warmup_steps: int = Input(50, ge=0, le=100_000)
        kl_weight: float = Input(1e-6, ge=0.0, le=1.0)
        ema_decay: float = Input(0.99, ge=0.0, lt=1.0)
        seed: int = Input(0, seed=True)
        checkpoint_every: int = Input(250, ge=0, le=1_000_000)
        run_name: str = Input("vae", file_name_in="output", subfolders=True, min_length=1, max_length=80)
        train_encoder: bool = Input(True, description="off (with init): fine-tune the decoder only, keeping the "
                                                      "latent space a diffusion model was trained on")
        latent_noise: float = Input(0.0, ge=0.0, le=1.0, description="noise std added to scaled latents before "
                                                                     "decoding (a decoder robust to sampled latents)")

    outputs = (Output("vae", "VAE"), Output("report", "STRING"))

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        return _channel_mult_problem(literals)

    def run(self, dataset: Any, init: Any, width: int, channel_mult: str, res_blocks: int, latent_channels: int,
            steps: int, batch_size: int, crop_size: int, lr: float, warmup_steps: int, kl_weight: float,
            ema_decay: float, seed: int, checkpoint_every: int, run_name: str, train_encoder: bool = True,
            latent_noise: float = 0.0) -> dict:
        import torch

        from nodes.models.vae import AutoencoderKL, VAEConfig, fit_latent_rgb_factors

        from .trainer import TrainConfig, train_vae

        folder = _run_folder(self, run_name)
        if getattr(dataset, "buckets", None):
            raise NodeInputError("dataset", "TrainVAE trains on one image size (a convolutional VAE then works at any "
                                            "size); connect a TinyWorldDataset with one size (empty 'sizes')")
        if not train_encoder and init is None:
            raise NodeInputError("train_encoder", "a new VAE's encoder must train; connect `init` to fine-tune only "
                                                  "the decoder of an existing VAE, or switch train_encoder on")
        torch.manual_seed(seed)
        if init is not None:
            vae_config = init.config
            vae = AutoencoderKL(vae_config)
            vae.load_state_dict(init.state_dict())              # a copy: the input VAE stays as it was
            vae.float()
            origin = {"init": _content_digest(init)}
        else:
            vae_config = VAEConfig(ch=width, ch_mult=_int_list("channel_mult", channel_mult, least=1),
                                   num_res_blocks=res_blocks, z_channels=latent_channels)
            vae = AutoencoderKL(vae_config)
            origin = {}
        config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 20, warmup_steps=warmup_steps,
                             ema_decay=ema_decay, seed=seed, checkpoint_every=checkpoint_every)
        images = _images(dataset)
        if crop_size and crop_size >= max(images.shape[-2:]):
            self.context.warn(f"crop_size {crop_size} is not smaller than the images "
                              f"({images.shape[-1]}×{images.shape[-2]}): whole images are trained on; set a smaller "
                              f"crop_size for cheaper steps, or 0")
        decoder_only = {} if train_encoder and not latent_noise else {"train_encoder": train_encoder,
                                                                       "latent_noise": latent_noise}
        # the preview map (latent_rgb_*) is a least-squares fit whose last bits vary from run to run: not identity
        run = _run(self, run_name, folder, {
            "vae": _config_text(vae_config, leave_out=("latent_rgb_factors", "latent_rgb_bias")),
            "train": repr(config), "data": _data_text(len(images), images), "crop": crop_size, **origin,
            **decoder_only})
        with _on_compute_device(self, vae):
            report = _train(train_vae, vae, images, config, _progress(self), run, kl_weight=kl_weight,
                            crop=crop_size, train_encoder=train_encoder, latent_noise=latent_noise)
            with torch.no_grad():   # latent scale so that sampling sees unit variance; a preview map for progress
                sample = images[: min(512, len(images))]
                latents = _encode_pixels(vae, sample)                 # scaled by the default factor
                std = float(latents.std() / vae_config.scale_factor)
                # a frozen encoder keeps its latent space, scale included (a model trained on it stays valid)
                fitted = replace(vae_config, scale_factor=vae_config.scale_factor if not train_encoder else 1.0 / std)
                vae.config = fitted
                # to pixels in [-1, 1], as latent_preview reads a map (fitted to [0, 1], previews were washed out)
                factors, bias = fit_latent_rgb_factors(_encode_pixels(vae, sample), sample)
            vae.config = replace(fitted, latent_rgb_factors=tuple(map(tuple, factors.tolist())),
                                 latent_rgb_bias=tuple(bias.tolist()))
        report["scale_factor"] = vae.config.scale_factor
        return {"vae": vae, "report": json.dumps(report, default=str)}


ENCODE_PROGRESS_EVERY = 256     # images between "encoding images" progress events


def _encode_dataset(node: Node, dataset: Any, vae: Any, pad_token_id: int, tally: list[int] | None = None,
                    captions: list[str] | None = None) -> Any:
    """VAE latents of every image (once) and token ids of every caption; one part per size bucket. Reports
    progress as it goes (info stage "encoding images": 24,000 images take minutes on a CPU before step 1);
    `tally` is [encoded so far, all images] across the buckets; each caption is appended to `captions` if given."""
    import torch

    tally = tally if tally is not None else [0, len(dataset)]
    if getattr(dataset, "buckets", None):
        from .trainer import DiffusionData

        parts = tuple(_encode_dataset(node, part, vae, pad_token_id, tally, captions) for _, part in dataset.buckets)
        return DiffusionData(parts[0].latents, parts[0].token_ids, parts[0].empty_ids, parts,
                             source=_content_digest([part.source for part in parts]))

    import hashlib

    from nodes.models.tokenizer import caption_ids, default_tokenizer

    from .trainer import DiffusionData

    tokenizer = default_tokenizer()
    latents, ids = [], []
    batch: list = []
    cut: list[str] = []
    source = hashlib.blake2b(_content_digest(vae).encode(), digest_size=10)     # the images, captions and VAE
    with torch.no_grad(), _on_compute_device(node, vae):
        for i in range(len(dataset)):
            image, caption = dataset[i][:2]
            pixels = image.detach().cpu().contiguous()
            source.update(f"{pixels.dtype}{tuple(pixels.shape)}\0".encode())
            source.update(pixels.reshape(-1).view(torch.uint8).numpy())
            source.update(f"{caption}\0".encode("utf-8", "surrogateescape"))
            if captions is not None:
                captions.append(caption)
            batch.append(image)
            tokens, was_cut = caption_ids(tokenizer, caption, pad_token_id)
            ids.append(tokens)
            if was_cut:
                cut.append(caption)
            if len(batch) == 128 or i == len(dataset) - 1:
                latents.append(_encode_pixels(vae, torch.stack(batch)))   # the data stays on the CPU
                batch = []
            tally[0] += 1
            if tally[0] % ENCODE_PROGRESS_EVERY == 0 or tally[0] == tally[1]:
                node.context.progress(tally[0], tally[1], info={"stage": "encoding images"})
    if cut:
        warn_cut_captions(node, cut)
    weights = _repeat_weights(dataset)
    if weights is not None:            # only then: a dataset without repeats keeps its digest (its runs resume)
        source.update(f"repeats {weights.tolist()}\0".encode())
    return DiffusionData(torch.cat(latents), torch.stack(ids), caption_ids(tokenizer, "", pad_token_id)[0],
                         source=source.hexdigest(), weights=weights)


def _repeat_weights(dataset: Any) -> Any:
    """The per-item sampling weights of a dataset with kohya repeats (ImageFolderDataset's `repeats`: an image of
    a 10_ folder drawn 10× as often), or None when every item is drawn alike (no repeats, or all the same)."""
    import torch

    repeats = getattr(dataset, "repeats", None)
    if not repeats or len(set(repeats)) == 1:
        return None
    return torch.tensor([float(count) for count in repeats], dtype=torch.float64)


def warn_cut_captions(node: Node, cut: list[str]) -> None:
    """One warning for the captions cut at 75 tokens (a 132-word caption ended the training with no word why)."""
    example = cut[0] if len(cut[0]) <= 80 else cut[0][:77] + "..."
    node.context.warn(f"{len(cut)} caption(s) are longer than the 75 tokens the text encoder reads and were cut "
                      f"there for training (e.g. {example!r}); put what matters first, or shorten them")


class TrainDiffusion(Node):
    """Train a text-conditioned latent diffusion model (UNet + CLIP-architecture text encoder) from scratch,
    or fine-tune one (init_model + init_text_encoder).

    A dataset with several image sizes (TinyWorldDataset `sizes`) trains at all of them: each batch
    is drawn from one size bucket, buckets in proportion to their images (multi-resolution /
    multi-aspect training). The EMA decay warms up as min(ema_decay, (1+k)/(10+k)). With
    `train_unet` false a fine-tune trains the text encoder alone, through the frozen UNet.
    """

    category = "training"
    version = "1.2.1"  # .1: captions are plain text cut at 75 tokens (a longer one, or BREAK, failed)

    class Inputs(NodeInputs):
        dataset: Any = Input(port="DATASET")
        vae: Any = Input(port="VAE")
        model_channels: int = Input(64, ge=32, le=1024, multiple_of=32,
                                    description="channels of the first level (a multiple of 32: its group norms)")
        channel_mult: str = Input("1,2,2")
        res_blocks: int = Input(2, ge=1, le=4)
        attention_levels: str = Input("0,1,1", description="transformer depth per level (0 = no attention)")
        heads: int = Input(4, ge=1, le=64)
        text_width: int = Input(96, ge=16, le=1280, multiple_of=8)
        text_layers: int = Input(3, ge=1, le=32)
        train_text_encoder: bool = Input(True)
        objective: Literal["eps", "v"] = Input("eps")
        beta_schedule: Literal["scaled_linear", "linear", "cosine"] = Input("scaled_linear")
        zero_terminal_snr: bool = Input(False, description="rescale the betas so the last step is pure noise "
                                                           "(Lin et al. 2024); needs the v objective")
        steps: int = Input(4000, ge=1, le=10_000_000)
        batch_size: int = Input(32, ge=1, le=4096)
        grad_accumulation: int = Input(1, ge=1, le=1024)
        lr: float = Input(4e-4, gt=0.0, le=1.0)
        warmup_steps: int = Input(200, ge=0, le=1_000_000)
        ema_decay: float = Input(0.998, ge=0.0, lt=1.0)
        caption_dropout: float = Input(0.1, ge=0.0, le=1.0)
        grad_clip: float = Input(1.0, ge=0.0, le=1000.0)
        mixed_precision: Literal["no", "bf16"] = Input("no")
        seed: int = Input(0, seed=True)
        checkpoint_every: int = Input(250, ge=0, le=10_000_000)
        run_name: str = Input("diffusion", file_name_in="output", subfolders=True, min_length=1, max_length=80)
        init_model: Any = Input(None, port="MODEL", description="optional: fine-tune this UNet (with "
                                "init_text_encoder); the architecture, objective and schedule inputs are then ignored")
        init_text_encoder: Any = Input(None, port="TEXT_ENCODER", description="optional: the text encoder to "
                                       "fine-tune with init_model")
        train_unet: bool = Input(True, description="false: fine-tune the text encoder alone and keep init_model's "
                                                   "UNet as it is (its LoRAs and ControlNets stay valid)")

    outputs = (Output("model", "MODEL"), Output("text_encoder", "TEXT_ENCODER"), Output("report", "STRING"))

    @classmethod
    def check_literals(cls, literals: dict[str, Any], list_model_files: Any) -> dict[str, str]:
        problems = _channel_mult_problem(literals)
        if literals.get("train_unet") is False and literals.get("train_text_encoder") is False:
            problems["train_unet"] = ("with train_unet and train_text_encoder both false nothing would train; set "
                                      "one of them true")
        return problems

    def run(self, dataset: Any, vae: Any, model_channels: int, channel_mult: str, res_blocks: int,
            attention_levels: str, heads: int, text_width: int, text_layers: int, train_text_encoder: bool,
            objective: str, beta_schedule: str, zero_terminal_snr: bool, steps: int, batch_size: int,
            grad_accumulation: int, lr: float, warmup_steps: int, ema_decay: float, caption_dropout: float,
            grad_clip: float, mixed_precision: str, seed: int, checkpoint_every: int, run_name: str,
            init_model: Any = None, init_text_encoder: Any = None, train_unet: bool = True) -> dict:
        import copy

        import torch

        from nodes.models.clip import CLIP_L, CLIPTextModel, PromptEncoder
        from nodes.models.nodes import TextEncoder, diffusion_model
        from nodes.models.tokenizer import default_tokenizer
        from nodes.models.loading import schedule_alphas_cumprod
        from nodes.models.unet import UNetConfig, UNetModel

        from .trainer import TrainConfig, train_diffusion

        folder = _run_folder(self, run_name)
        mult = _int_list("channel_mult", channel_mult, least=1)
        depth = _int_list("attention_levels", attention_levels)
        if len(depth) != len(mult):
            raise NodeInputError("attention_levels", f"give one depth per level: {len(mult)} values")
        if text_width % heads:
            raise NodeInputError("heads", f"text_width {text_width} must be divisible by heads {heads}")
        if zero_terminal_snr and objective != "v":
            raise NodeInputError("zero_terminal_snr", "a zero-terminal-SNR schedule has a step of pure noise, where "
                                                      "an eps prediction says nothing about the image; set objective "
                                                      "to 'v' (or switch zero_terminal_snr off)")
        torch.manual_seed(seed)
        text_config = replace(CLIP_L, width=text_width, layers=text_layers, heads=heads, intermediate=4 * text_width)
        unet_config = UNetConfig(in_channels=vae.config.z_channels, out_channels=vae.config.z_channels,
                                 model_channels=model_channels, channel_mult=mult, num_res_blocks=res_blocks,
                                 transformer_depth=depth, transformer_depth_middle=1, context_dim=text_width,
                                 num_heads=heads, prediction=objective)
        unet, clip = UNetModel(unet_config), CLIPTextModel(text_config)
        schedule = {"betas": beta_schedule, "timesteps": 1000, "zero_terminal_snr": zero_terminal_snr}
        origin: dict = {}
        if (init_model is None) != (init_text_encoder is None):
            raise NodeInputError("init_text_encoder" if init_model is not None else "init_model",
                                 "fine-tuning needs both init_model and init_text_encoder (e.g. LoadCheckpoint's "
                                 "model and text_encoder); connect both or neither")
        if not train_unet and (init_model is None or not train_text_encoder):
            raise NodeInputError("train_unet", "with train_unet false only the text encoder trains: connect "
                                               "init_model and init_text_encoder and set train_text_encoder true, "
                                               "or set train_unet true")
        if init_model is not None:   # fine-tune: copies (the inputs stay as they were), their own architecture
            from nodes.models.nodes import model_schedule

            base, encoders = init_model.net, getattr(init_text_encoder.encoder, "encoders", {})
            schedule = model_schedule(init_model)
            if not isinstance(base, UNetModel) or schedule is None or list(encoders) != ["clip_l"]:
                raise NodeInputError("init_model", "fine-tuning takes a UNet model on a discrete schedule with a "
                                                   "single CLIP text encoder (SD 1.x layout, as the tiny world's)")
            init_model.apply_patches()
            unet, clip = copy.deepcopy(base).float(), copy.deepcopy(encoders["clip_l"]).float()
            unet.requires_grad_(True)
            clip.requires_grad_(True)
            unet_config, text_config, objective = unet.config, clip.config, unet.config.prediction
            origin = {"init": _content_digest(base, encoders["clip_l"]),
                      "schedule": json.dumps(schedule, sort_keys=True)[:200]}
        config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 40, warmup_steps=warmup_steps,
                             grad_accumulation=grad_accumulation, grad_clip=grad_clip, ema_decay=ema_decay,
                             mixed_precision=mixed_precision, seed=seed, checkpoint_every=checkpoint_every)
        data = _encode_dataset(self, dataset, vae, text_config.pad_token_id)
        run = _run(self, run_name, folder, {
            "unet": repr(unet_config), "text": repr(text_config), "train": repr(config),
            "data": _data_text(len(data), data), "objective": objective, "betas": beta_schedule,
            "dropout": caption_dropout, "train_te": train_text_encoder,
            **({"zero_terminal_snr": True} if zero_terminal_snr else {}),
            **({"train_unet": False} if not train_unet else {}), **origin})
        with _on_compute_device(self, unet, clip):
            report = _train(train_diffusion, unet, clip, data, schedule_alphas_cumprod(schedule).float(), config,
                            _progress(self), run, objective=objective, caption_dropout=caption_dropout,
                            train_text_encoder=train_text_encoder, train_unet=train_unet)
        model = diffusion_model(unet, run_name, preview=vae.preview, schedule=schedule)   # sampled as trained
        encoder = TextEncoder(PromptEncoder({"clip_l": clip}, pooled_from="clip_l", tokenizer=default_tokenizer()),
                              "sd1")
        report["schedule"] = schedule
        report["fine_tuned"] = init_model is not None
        return {"model": model, "text_encoder": encoder, "report": json.dumps(report, default=str)}


class DistillTextEncoder(Node):
    """Teach a copy of a model's text encoder to read captions as people garble them: reworded, with filler
    words inserted and words that name no attribute swapped, the frozen UNet must predict what it predicts
    for the clean caption with the original encoder (self-distillation; docs/training.md, models v4, v5).

    The dataset's captions are the clean ones (e.g. TinyWorldDataset without caption_filler); each step
    rewrites them afresh (`world_captions.paraphrase_caption`, `swap_function_words`, `add_filler_words`,
    in that order). The UNet, VAE and
    the model's LoRAs and ControlNets are untouched and stay valid. The word swap knows only the tiny
    world's attribute words: for other captions (ImageFolderDataset) use the filler words alone.
    """

    category = "training"
    version = "1.0.1"  # .1: captions are plain text cut at 75 tokens (a longer one, or BREAK, failed)

    class Inputs(NodeInputs):
        dataset: Any = Input(port="DATASET")
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        vae: Any = Input(port="VAE")
        filler: float = Input(0.5, ge=0.0, le=1.0, description="share of captions given 1-3 filler words")
        word_swap: float = Input(0.5, ge=0.0, le=1.0, description="share of captions whose words that name no "
                                                                  "tiny-world attribute are partly swapped for filler "
                                                                  "words (for captions of other images set 0: it would "
                                                                  "swap their content words too)")
        keep_share: float = Input(0.2, ge=0.0, le=1.0, description="share of items read unchanged (the student "
                                                                   "must still read clean captions like the teacher)")
        paraphrase: float = Input(0.0, ge=0.0, le=1.0, description="share of captions whose position and background "
                                                                  "phrases are reworded first ('upper', 'toward the "
                                                                  "left', 'and a blue background': tiny-world "
                                                                  "captions only)")
        paraphrase_version: int = Input(1, ge=1, le=2, description="1: model v5's wordings; 2: backgrounds only "
                                                                   "with the word 'background' / 'backdrop', and "
                                                                   "colours also after their shapes")
        steps: int = Input(1500, ge=1, le=10_000_000)
        batch_size: int = Input(32, ge=1, le=4096)
        lr: float = Input(2e-4, gt=0.0, le=1.0)
        warmup_steps: int = Input(50, ge=0, le=1_000_000)
        ema_decay: float = Input(0.999, ge=0.0, lt=1.0)
        mixed_precision: Literal["no", "bf16"] = Input("no")
        seed: int = Input(0, seed=True)
        checkpoint_every: int = Input(250, ge=0, le=10_000_000)
        run_name: str = Input("text_encoder_distill", file_name_in="output", subfolders=True, min_length=1,
                              max_length=80)

    outputs = (Output("text_encoder", "TEXT_ENCODER"), Output("report", "STRING"))

    def run(self, dataset: Any, model: Any, text_encoder: Any, vae: Any, filler: float, word_swap: float,
            keep_share: float, paraphrase: float, paraphrase_version: int, steps: int, batch_size: int, lr: float,
            warmup_steps: int,
            ema_decay: float, mixed_precision: str, seed: int, checkpoint_every: int, run_name: str) -> dict:
        import copy

        from nodes.models.clip import PromptEncoder
        from nodes.models.nodes import TextEncoder
        from nodes.models.tokenizer import caption_ids, default_tokenizer
        from nodes.models.unet import UNetModel

        from .trainer import TrainConfig, distill_text_encoder
        from .world_captions import add_filler_words, paraphrase_caption, swap_function_words

        folder = _run_folder(self, run_name)
        _sd_unet_and_clip("DistillTextEncoder", model, text_encoder)
        encoders = getattr(text_encoder.encoder, "encoders", {})
        if not isinstance(model.net, UNetModel) or list(encoders) != ["clip_l"]:
            raise NodeInputError("text_encoder", "DistillTextEncoder takes a UNet model with a single CLIP text "
                                                 "encoder (SD 1.x layout, as the tiny world's)")
        if getattr(dataset, "buckets", None):
            raise NodeInputError("dataset", "DistillTextEncoder trains at one image size; give TinyWorldDataset one "
                                            "size (empty 'sizes')")
        if filler == 0 and word_swap == 0 and paraphrase == 0:
            raise NodeInputError("filler", "with filler, word_swap and paraphrase all 0 no caption is rewritten; set "
                                           "one above 0")
        if text_encoder.loras:
            raise NodeInputError("text_encoder", "the text encoder has LoRAs applied; distil the encoder without them")
        teacher = encoders["clip_l"]
        _require_fp32("model", model.net)
        _require_fp32("text_encoder", teacher)
        model.apply_patches()
        student = copy.deepcopy(teacher).float()
        pad = teacher.config.pad_token_id
        tokenizer = default_tokenizer()
        config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 20, warmup_steps=warmup_steps,
                             ema_decay=ema_decay, mixed_precision=mixed_precision, seed=seed,
                             checkpoint_every=checkpoint_every)
        data = _encode_dataset(self, dataset, vae, pad)
        captions = dataset.captions        # RenderedDataset and ImageFolderDataset keep their captions

        def rewrite(caption: str, rng: Any) -> str:
            if paraphrase and rng.random() < paraphrase:        # no draw at 0: earlier graphs keep their captions
                caption = paraphrase_caption(caption, rng, version=paraphrase_version)
            if rng.random() < word_swap:
                caption = swap_function_words(caption, rng)
            if rng.random() < filler:
                caption = add_filler_words(caption, rng)
            return caption

        def tokenize(caption: str) -> Any:
            return caption_ids(tokenizer, caption, pad)[0]

        run = _run(self, run_name, folder, {
            "text": repr(teacher.config), "train": repr(config),
            "data": _data_text(len(data.latents), data, list(captions)),
            "unet": _content_digest(model.net),
            "filler": filler, "word_swap": word_swap, "keep": keep_share,
            **({"paraphrase": paraphrase} if paraphrase else {}),
            **({"paraphrase_version": paraphrase_version} if paraphrase_version != 1 else {}),
            "init": _content_digest(teacher)})
        alphas_cumprod = 1.0 / (1.0 + model.time_map.sigmas.double() ** 2)         # sigma² = (1 − ᾱ) / ᾱ
        with _on_compute_device(self, model.net, teacher, student):
            report = _train(distill_text_encoder, model.net, teacher, student, data, captions, rewrite, tokenize,
                            alphas_cumprod.float(), config, _progress(self), run, keep_share=keep_share)
        encoder = TextEncoder(PromptEncoder({"clip_l": student}, pooled_from="clip_l", tokenizer=tokenizer),
                              text_encoder.family)
        report.update(filler=filler, word_swap=word_swap, paraphrase=paraphrase, paraphrase_version=paraphrase_version)
        return {"text_encoder": encoder, "report": json.dumps(report, default=str)}


class TrainControlNet(Node):
    """Train a ControlNet for a model (UNet and text encoder frozen) on hints computed from a dataset's images.

    Hints: "mask" (ForegroundMask: the object's silhouette), "canny" (CannyEdges) or
    "depth" (DistanceDepth of the mask). The encoder copy starts from the UNet's weights.
    """

    category = "training"
    version = "1.0.1"  # .1: captions are plain text cut at 75 tokens (a longer one, or BREAK, failed)

    class Inputs(NodeInputs):
        dataset: Any = Input(port="DATASET")
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        vae: Any = Input(port="VAE")
        hint: Literal["mask", "canny", "depth"] = Input("mask")
        steps: int = Input(1500, ge=1, le=10_000_000)
        batch_size: int = Input(16, ge=1, le=4096)
        lr: float = Input(2e-4, gt=0.0, le=1.0)
        warmup_steps: int = Input(50, ge=0, le=1_000_000)
        ema_decay: float = Input(0.0, ge=0.0, lt=1.0)
        caption_dropout: float = Input(0.1, ge=0.0, le=1.0)
        mixed_precision: Literal["no", "bf16"] = Input("no")
        seed: int = Input(0, seed=True)
        checkpoint_every: int = Input(250, ge=0, le=10_000_000)
        run_name: str = Input("controlnet", file_name_in="output", subfolders=True, min_length=1, max_length=80)

    outputs = (Output("control_net", "CONTROL_NET"), Output("report", "STRING"))

    def run(self, dataset: Any, model: Any, text_encoder: Any, vae: Any, hint: str, steps: int, batch_size: int,
            lr: float, warmup_steps: int, ema_decay: float, caption_dropout: float, mixed_precision: str, seed: int,
            checkpoint_every: int, run_name: str) -> dict:
        import math

        import torch

        from nodes.models.controlnet import SD_HINT_WIDTHS, ControlNet, ControlNetConfig

        from .trainer import TrainConfig, init_controlnet_from_unet, train_controlnet

        folder = _run_folder(self, run_name)
        unet, clip = _sd_unet_and_clip("TrainControlNet", model, text_encoder)
        _require_fp32("model", unet)
        _require_fp32("text_encoder", clip)
        factor = vae.config.downscale
        if 2 ** round(math.log2(factor)) != factor or factor > 2 ** (len(SD_HINT_WIDTHS) - 1):
            raise NodeInputError("vae", f"the VAE's downscale {factor} is not a power of two up to 8")
        torch.manual_seed(seed)
        config = ControlNetConfig(unet.config, hint_widths=SD_HINT_WIDTHS[: int(math.log2(factor)) + 1])
        controlnet = ControlNet(config)
        init_controlnet_from_unet(controlnet, unet)
        train = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 20, warmup_steps=warmup_steps,
                            ema_decay=ema_decay, mixed_precision=mixed_precision, seed=seed,
                            checkpoint_every=checkpoint_every)
        if getattr(dataset, "buckets", None):
            raise NodeInputError("dataset", "TrainControlNet trains at one image size; give TinyWorldDataset one size "
                                            "(empty 'sizes'); layout 'continuous' varies object sizes and positions")
        data = _encode_dataset(self, dataset, vae, clip.config.pad_token_id)
        hints = _hints(self, dataset, hint)
        run = _run(self, run_name, folder, {"controlnet": repr(config), "train": repr(train),
                                            "data": _data_text(len(data.latents), data, hints),
                                            "model": _content_digest(unet, clip), "hint": hint,
                                            "dropout": caption_dropout})
        alphas_cumprod = 1.0 / (1.0 + model.time_map.sigmas.double() ** 2)         # sigma² = (1 − ᾱ) / ᾱ
        with _on_compute_device(self, controlnet, unet, text_encoder.encoder):
            report = _train(train_controlnet, controlnet, unet, clip, data, hints, alphas_cumprod.float(), train,
                            _progress(self), run, objective=unet.config.prediction, caption_dropout=caption_dropout)
        controlnet.requires_grad_(False)
        controlnet.nodegraph_name = run_name
        report["hint"] = hint
        return {"control_net": controlnet, "report": json.dumps(report, default=str)}


def _hints(node: Node, dataset: Any, kind: str) -> Any:
    """One-channel uint8 hints (N, H, W) of every dataset image."""
    import torch

    from nodes.image.preprocess import canny_edges, distance_depth, foreground_mask

    out = []
    for start in range(0, len(dataset), 256):
        images = torch.stack([dataset[i][0] for i in range(start, min(start + 256, len(dataset)))])
        images = ((images + 1) / 2).clamp(0, 1).movedim(1, -1)                   # (B, H, W, 3) in [0, 1]
        if kind == "canny":
            hint = canny_edges(images)[..., 0]
        elif kind == "depth":
            hint = distance_depth(foreground_mask(images))[..., 0]
        else:
            hint = foreground_mask(images)
        out.append((hint * 255).round().to(torch.uint8))
        node.context.check_interrupted()
    return torch.cat(out)


def _save_target(node: Node, folder_name: str, filename: str) -> Path:
    """model folder `folder_name` (its first directory, created) / `filename`, a plain confined .safetensors name."""
    from nodegraph.paths import confine

    folder = node.context.service("model_paths").directories(folder_name)[0]
    path = confine(folder, filename, what="file name", input_name="filename")
    if not filename.endswith(".safetensors") or filename.startswith("."):
        raise NodeInputError("filename", f"expected a plain file name ending in .safetensors (not starting with "
                                         f"'.'), found {filename!r}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:          # e.g. a file where the folder should be
        raise NodeInputError("filename", f"cannot create the model folder {folder.name!r} to save into "
                                         f"({type(exc).__name__}: {exc.strerror or exc}); move away what is in its "
                                         f"place, or add a writable models folder (--model-paths)") from None
    return path


def _note_renamed(node: Node, target: Path, path: Path) -> None:
    """Warn when a save took the next free name: graphs that load the name asked for still get the old file."""
    if path != target:
        node.context.warn(f"{target.name} exists, so this was saved as {path.name} (set overwrite to replace it); "
                          f"graphs that load {target.name} still load the old file")


def _stable_safetensors(path: Path) -> None:
    """Make a saved .safetensors file the same bytes for the same content, readable by other users.

    The safetensors writer orders the metadata keys differently in each process (a hash map), so identical
    models had different SHA-256s (run records name files by them): the header is rewritten with sorted
    metadata keys when that keeps its length (it always does: same keys and values, same JSON writer
    conventions); the data after it is untouched. And the temporary file's 0600 mode becomes the umask's.
    """
    import os

    with open(path, "r+b") as file:
        size = int.from_bytes(file.read(8), "little")
        header = file.read(size)
        parsed = json.loads(header)
        metadata = parsed.get("__metadata__")
        if isinstance(metadata, dict) and len(metadata) > 1:
            parsed["__metadata__"] = dict(sorted(metadata.items()))
            text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if len(text) <= size and json.loads(text) == json.loads(header):
                file.seek(8)
                file.write(text + b" " * (size - len(text)))      # the format pads its header with spaces
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    """The process's umask, read without setting it (os.umask sets it process-wide, racing a server's other
    threads): /proc/self/status on Linux, else the usual 0o022."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _searched(node: Node, folder_name: str) -> list[Path]:
    """Every folder the loaders search for `folder_name` models (the first is where saves go)."""
    return list(node.context.service("model_paths").directories(folder_name))


def _write_new_file(path: Path, overwrite: bool, write: Any, searched: Any = (),
                    warn: Callable[[str], None] | None = None) -> Path:
    """`write(tmp)` into a temporary file beside `path`, then put it at `path`.

    With `overwrite` the file replaces `path` atomically; when a file of that name is in another of the
    `searched` folders (a shipped model), `warn` (a node's `context.warn`) is told that graphs naming it now
    load the new one. Without `overwrite` an existing file is
    never touched: the result goes to the first free name `stem_1.safetensors`,
    `stem_2.safetensors`, ... (claimed with a hard link, which fails if the name exists,
    so two runs cannot take the same name). A name that a file in one of the `searched`
    folders already has (the other folders a loader looks in: a plugin's shipped models) is
    taken too: written beside it, the new file would silently replace the shipped one in
    every graph that names it.
    """
    import os

    from nodegraph.files import claim_name

    def shadows(name: str) -> bool:
        return any((Path(folder) / name).exists() for folder in searched if Path(folder) != path.parent)

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        write(tmp)
        _stable_safetensors(tmp)
        if overwrite:
            os.replace(tmp, path)
            if warn is not None and shadows(path.name):
                others = [str(folder) for folder in searched if Path(folder) != path.parent
                          and (Path(folder) / path.name).exists()]
                warn(f"saved as {path.name} in {path.parent}, which the loaders search before {others[0]}: graphs "
                     f"that load {path.name} now get this file, not the one there (overwrite replaces what a name "
                     f"means; delete this file to bring the other back)")
            return path
        for number in range(0, 10_000):
            candidate = path if number == 0 else path.with_name(f"{path.stem}_{number}{path.suffix}")
            if shadows(candidate.name):
                continue
            if claim_name(tmp, candidate):
                return candidate
        raise NodeInputError("filename", f"{path.name}: 10000 numbered files exist already; choose another name")
    finally:
        if tmp.exists():
            tmp.unlink()


class SaveControlNet(Node):
    """Write a CONTROL_NET to models/controlnet as one .safetensors file (original key layout, exact config).

    An existing file is never replaced unless `overwrite` is true: the ControlNet is then
    written as NAME_1.safetensors (the next free number); the `model_files` result names the file.
    """

    category = "training"
    output_node = True
    version = "1.1.0"

    class Inputs(NodeInputs):
        control_net: Any = Input(port="CONTROL_NET")
        filename: str = Input("my_controlnet.safetensors", file_name_in="controlnet", file_suffix=".safetensors",
                              min_length=1, max_length=120,
                              description="a plain .safetensors name in models/controlnet")
        dtype: Literal["fp16", "fp32", "bf16"] = Input("fp16")
        overwrite: bool = Input(False, description="replace an existing file of that name (else NAME_1, ...)")

    outputs = ()

    def run(self, control_net: Any, filename: str, dtype: str, overwrite: bool) -> dict:
        import torch

        from nodes.models.loading import save_controlnet

        target = _save_target(self, "controlnet", filename)
        torch_dtype = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        path = _write_new_file(target, overwrite, lambda tmp: save_controlnet(tmp, control_net, dtype=torch_dtype),
                               _searched(self, "controlnet"), self.context.warn)
        _note_renamed(self, target, path)
        return {"model_files": [{"path": str(path), "kind": "controlnet", "format": "safetensors"}],
                "bytes": path.stat().st_size}


class SaveCheckpoint(Node):
    """Write MODEL + TEXT_ENCODER + VAE as one single-file SD-layout checkpoint (fp16) in models/checkpoints.

    The metadata records the exact configs, the prediction type and the noise schedule the
    model is sampled on (betas kind, timesteps, zero-terminal SNR), so LoadCheckpoint
    rebuilds the same model with no arguments.

    An existing file is never replaced unless `overwrite` is true: the checkpoint is then
    written as NAME_1.safetensors (the next free number); the `model_files` result names the file.
    """

    category = "training"
    output_node = True
    version = "1.2.0"

    class Inputs(NodeInputs):
        model: Any = Input(port="MODEL")
        text_encoder: Any = Input(port="TEXT_ENCODER")
        vae: Any = Input(port="VAE")
        filename: str = Input("my_model.safetensors", file_name_in="checkpoints", file_suffix=".safetensors",
                              min_length=1, max_length=120,
                              description="a plain .safetensors name in models/checkpoints")
        dtype: Literal["fp16", "fp32", "bf16"] = Input("fp16")
        description: str = Input("", multiline=True, max_length=10_000)
        overwrite: bool = Input(False, description="replace an existing file of that name (else NAME_1, ...)")

    outputs = ()

    def run(self, model: Any, text_encoder: Any, vae: Any, filename: str, dtype: str, description: str,
            overwrite: bool) -> dict:
        import torch

        from nodes.models.loading import save_checkpoint
        from nodes.models.nodes import model_schedule

        target = _save_target(self, "checkpoints", filename)
        metadata = {"nodegraph.description": description} if description else {}
        torch_dtype = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        if text_encoder.family == "sd3":   # a flow MMDiT (TrainFlow): SD3's single-file layout, flow_checkpoint.py
            from nodes.models.mmdit import MMDiT

            from .flow_checkpoint import save_flow_checkpoint

            if not isinstance(model.net, MMDiT):
                raise NodeInputError("model", f"the text encoder is a flow (SD3-layout) one, so the model must be its "
                                              f"MMDiT; this MODEL holds a {type(model.net).__name__}: connect the "
                                              f"model and text_encoder of one checkpoint")

            path = _write_new_file(target, overwrite, lambda tmp: save_flow_checkpoint(
                tmp, mmdit=model.net, vae=vae, text_encoder=text_encoder.encoder,
                shift=getattr(model.time_map, "shift", None), dtype=torch_dtype, metadata=metadata),
                _searched(self, "checkpoints"), self.context.warn)
            _note_renamed(self, target, path)
            return {"model_files": [{"path": str(path), "kind": "checkpoint", "format": "safetensors"}],
                    "bytes": path.stat().st_size}
        _sd_unet_and_clip("SaveCheckpoint", model, text_encoder)
        path = _write_new_file(target, overwrite, lambda tmp: save_checkpoint(
            tmp, family=text_encoder.family, unet=model.net, vae=vae, text_encoder=text_encoder.encoder,
            dtype=torch_dtype, metadata=metadata, schedule=model_schedule(model)), _searched(self, "checkpoints"),
            self.context.warn)
        _note_renamed(self, target, path)
        return {"model_files": [{"path": str(path), "kind": "checkpoint", "format": "safetensors"}],
                "bytes": path.stat().st_size}


NODES = [TinyWorldDataset, ImageFolderDataset, RenderTinyWorld, TrainVAE, TrainDiffusion, DistillTextEncoder,
         TrainControlNet, SaveCheckpoint, SaveControlNet]


@hookimpl
def register_types() -> list[PortType]:
    from .lcm_nodes import LORA   # lcm_nodes.py imports this module's helpers

    return [DATASET, LORA]


@hookimpl
def register_nodes() -> list[type[Node]]:
    from .flow_nodes import TrainFlow   # flow_nodes.py imports this module's helpers
    from .lcm_nodes import DistillLCM, SaveLoRA, TrainLoRA

    return [*NODES, TrainFlow, DistillLCM, TrainLoRA, SaveLoRA]


@hookimpl
def register_api() -> dict[str, Any]:
    from .kits import tiny_world_kit, training_kit

    return {"tiny_world": lambda context: tiny_world_kit(), "training": lambda context: training_kit()}
