"""Reading checkpoint files and building our modules from them.

Map
- ``open_state_dict(path) -> StateDictFile``: a lazy ``Mapping[str, Tensor]`` over a
  ``.safetensors`` file (memory-mapped through ``safetensors.safe_open``; a tensor is read
  when its module is built), a sharded ``*.safetensors.index.json``, or, only with
  ``allow_pickle=True``, a pickle ``.ckpt`` / ``.pt`` read by ``torch.load(weights_only=True)``.
  ``.shapes`` and ``.metadata`` come from the header without reading any tensor.
- ``load_checkpoint(path) -> Checkpoint(unet, vae, text_encoder, info)``: a single-file
  checkpoint (LDM / SGM layout) or a diffusers pipeline folder; ``components`` picks parts.
- ``load_unet`` / ``load_vae`` / ``load_text_encoder``: one component from a full checkpoint, a
  diffusers folder, or a file holding only that component (LDM or diffusers keys).
- ``load_controlnet`` / ``save_controlnet``: ControlNets in the original (``control_model.`` or
  bare) and diffusers key layouts.
- ``save_checkpoint(path, ...)``: write our modules as an LDM-layout single file whose
  metadata records the exact configs (``nodegraph.config``), so non-standard sizes round-trip.
- ``ModelLoadError`` (from ``detect.py``): every failure, naming the file, what was expected,
  what was found and the fix.
- ``vocabulary_of(metadata)``: "tiny_world" for the shipped tiny-world checkpoints (their description), set as
  the text encoder's ``vocabulary`` so EncodeText can warn about words that world never uses.
- ``pickle_allowed_by_environment()``: the machine owner's opt-in to pickle files
  (``NODEGRAPH_ALLOW_PICKLE=1``), read by the loader nodes (a graph can never opt in).
- ``TrainingCallbackState``: the inert stand-in ``weights_only`` loading gives for the Lightning callback class
  that CompVis-era ``.ckpt`` files (sd-v1-4.ckpt) name (``TRAINING_CALLBACK_GLOBALS``, exact names only).
- ``build_on_meta(make, tensors=, elements=)``: a module built on the meta device, stopped once it
  outgrows the file's tensors (a config from metadata or key names can declare any size); every
  ``build_module`` goes through it, the upscaler loader too.

Untrusted files: headers, metadata and folder configs are parsed by ``detect.read_json_text`` and
type-checked; a shard index names only plain files in its own folder (``nodegraph.paths.confine``);
a recorded training schedule is checked for a usable ᾱ table when read.

Memory: each module is built on the ``meta`` device, then its tensors are read, cast and
assigned one module at a time, so at most one copy of a component is ever in RAM.
Dtype: ``dtype=None`` keeps the file's floating dtype (the most common one if it mixes);
otherwise floating tensors are cast while loading. A float8 dtype (or ``precision.WeightStorage``)
keeps Linear / Conv weights in FP8 and computes in a wider dtype (precision.py); FP8 files loaded
with ``dtype=None`` are kept that way too.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from nodegraph.model_paths import PICKLE_SUFFIXES     # the suffixes `nodegraph models` marks as pickles

from .clip import CLIPTextModel, PromptEncoder, TextEncoderConfig
from .controlnet import ControlNet
from .convert import (
    ConversionError,
    KeyMap,
    clip_from_hf,
    clip_from_openclip,
    clip_to_openclip,
    controlnet_from_diffusers,
    from_prefix,
    unet_from_diffusers,
    vae_from_diffusers,
    vae_from_ldm,
)
from .detect import (
    CHOOSE_FAMILY,
    ENCODER_ROLES,
    METADATA_KEY,
    PREVIEW_MAP_SIGNED,
    POOLED_FROM,
    STANDARD_UNETS,
    UNET_PREFIX,
    VAE_PREFIX,
    CheckpointInfo,
    Family,
    ModelLoadError,
    TextEncoderSpec,
    apply_fields,
    converted_shape,
    decide_family,
    decide_prediction,
    check_heads,
    describe_file_kind,
    detect_checkpoint,
    detect_controlnet_config,
    detect_text_encoder_config,
    detect_unet_config,
    detect_vae_config,
    parse_config_override,
    read_json_text,
    unpickling_refusal,
)
from .precision import default_compute_dtype, is_float8, narrow_weight_names, split_precision, store_weights, to_float8
from .unet import UNetConfig, UNetModel
from .vae import SD_VAE, SDXL_VAE, AutoencoderKL, VAEConfig

__all__ = [
    "Checkpoint",
    "ModelLoadError",
    "StateDictFile",
    "load_checkpoint",
    "load_text_encoder",
    "load_unet",
    "load_vae",
    "open_state_dict",
    "save_checkpoint",
]

Component = Literal["unet", "vae", "text_encoder"]
_SAFETENSORS_DTYPES = {  # header dtype -> (bytes per element, torch dtype)
    "F64": (8, torch.float64),
    "F32": (4, torch.float32),
    "F16": (2, torch.float16),
    "BF16": (2, torch.bfloat16),
    "I64": (8, torch.int64),
    "I32": (4, torch.int32),
    "I16": (2, torch.int16),
    "I8": (1, torch.int8),
    "U8": (1, torch.uint8),
    "BOOL": (1, torch.bool),
    "U16": (2, None),
    "U32": (4, None),
    "U64": (8, None),
    "F8_E4M3": (1, getattr(torch, "float8_e4m3fn", None)),
    "F8_E5M2": (1, getattr(torch, "float8_e5m2", None)),
}
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
# Training state some released VAE files still carry (the fine-tuned SD VAE's EMA counters, the LDM
# autoencoder's loss: discriminator and LPIPS weights); no module needs them. Other keys stay errors.
TRAINING_LEFTOVER = re.compile(r"^(first_stage_model\.)?(model_ema\.(decay|num_updates)$|loss\.)")


# --- reading files ------------------------------------------------------------------------------


class StateDictFile(Mapping[str, torch.Tensor]):
    """A read-only, lazy tensor mapping over one or more files; ``shapes`` / ``metadata`` need no reads."""

    def __init__(
        self,
        path: Path,
        shapes: dict[str, tuple[int, ...]],
        dtypes: dict[str, torch.dtype | None],
        metadata: dict[str, str],
        read: Callable[[str], torch.Tensor],
        release: Callable[[str], None] | None = None,
    ):
        self.path = path
        self.shapes = shapes
        self.dtypes = dtypes  # None for dtypes torch cannot represent
        self.metadata = metadata
        self._read = read
        self._release = release

    def release(self, key: str) -> None:
        """Unmap `key`'s pages of a memory-mapped file from this process (they stay in the page cache).

        For after a copy of the tensor was made (a cast, a move to the GPU): without it every page
        read stays in the process's resident memory until the file is closed, next to the copy.
        """
        if self._release is not None:
            self._release(key)

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.shapes:
            raise KeyError(key)
        return self._read(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


ALLOW_PICKLE_ENV = "NODEGRAPH_ALLOW_PICKLE"


def pickle_allowed_by_environment() -> bool:
    """True when the machine's owner set NODEGRAPH_ALLOW_PICKLE to 1 / true / yes."""
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


class TrainingCallbackState:
    """What a training checkpoint saved for a PyTorch Lightning callback, read without Lightning.

    Lightning 1.x (the CompVis sd-v1-4.ckpt and most .ckpt files of that era) keyed each callback's saved state by
    the callback's class, so the pickle names `pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint`, a
    global torch.load(weights_only=True) refuses. Exactly the names in TRAINING_CALLBACK_GLOBALS are allowed, each
    as a subclass of this one: it does nothing but hold what the pickle hands it (never code, never a weight).
    """

    def __init__(self, *args) -> None:
        self.args = args

    def __setstate__(self, state) -> None:
        self.state = state


TRAINING_CALLBACK_GLOBALS = (       # Lightning 1.x wrote the class (later versions write a string key)
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint",
)


def training_callback_stand_in(full_name: str) -> type[TrainingCallbackState]:
    """A TrainingCallbackState subclass that torch's weights-only unpickler finds under `full_name`."""
    module, _, name = full_name.rpartition(".")
    return type(name, (TrainingCallbackState,), {"__module__": module, "__qualname__": name,
                                                 "__doc__": f"Stand-in for {full_name} (holds its saved state)."})


_TRAINING_CALLBACK_STAND_INS = tuple(training_callback_stand_in(name) for name in TRAINING_CALLBACK_GLOBALS)


def allow_training_callback_globals() -> None:
    """Let torch.load(weights_only=True) read Lightning callback names as inert stand-ins (idempotent; torch >= 2.4
    has the allowlist, older versions keep refusing such files)."""
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:
        add_safe_globals(list(_TRAINING_CALLBACK_STAND_INS))


def open_state_dict(path: str | os.PathLike, *, allow_pickle: bool = False) -> StateDictFile:
    """Open a weights file lazily (see the module docstring); refuse pickles unless `allow_pickle`."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError("no such file" if not path.exists() else "expected a weights file, found a folder", path)
    if path.name.endswith(".safetensors.index.json"):
        return _open_sharded(path)
    with path.open("rb") as handle:
        head = handle.read(8)
    # A pickle starts with b"\x80" (protocol 2+) or is a zip ("PK"); a safetensors file starts with its
    # header length, whose low byte is 0x80 in 1 of 32 files (headers are 8-byte aligned): trust the suffix.
    pickle_magic = head[:2] == b"PK" or (head[:1] == b"\x80" and path.suffix.lower() != ".safetensors")
    if path.suffix.lower() in PICKLE_SUFFIXES or pickle_magic:
        return _open_pickle(path, allow_pickle)
    return _open_safetensors(path)


def _read_safetensors_header(
    path: Path,
) -> tuple[dict[str, tuple[int, ...]], dict[str, torch.dtype | None], dict[str, str]]:
    """Parse and check a safetensors header: shapes and dtypes by name, and the ``__metadata__``."""
    size = path.stat().st_size
    fix = "the file is damaged or incomplete: download or copy it again"
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ModelLoadError(f"expected a safetensors file, found only {size} bytes; {fix}", path)
        (header_length,) = struct.unpack("<Q", prefix)
        if header_length > _MAX_HEADER:
            raise ModelLoadError(
                f"expected a safetensors file, but its first 8 bytes give a header of {header_length} bytes; "
                f"this is not a safetensors file (or it is corrupt)",
                path,
            )
        if 8 + header_length > size:
            raise ModelLoadError(
                f"truncated safetensors file: the header needs {header_length} bytes but the file has {size}; {fix}",
                path,
            )
        raw = handle.read(header_length)
    header = read_json_text(raw, "corrupt safetensors header", path)
    if not isinstance(header, dict):
        raise ModelLoadError(f"corrupt safetensors header (not a JSON object); {fix}", path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelLoadError(f"corrupt safetensors header: __metadata__ must map names to strings; {fix}", path)
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, torch.dtype | None] = {}
    data_end = 0
    for name, entry in header.items():
        dtype, shape, begin, end = _header_entry(name, entry, path)
        item_size, torch_dtype = _SAFETENSORS_DTYPES.get(dtype, (0, None))
        expected = math.prod(shape) * item_size
        if item_size and end - begin != expected:
            raise ModelLoadError(
                f"corrupt safetensors header: {name!r} {dtype}{list(shape)} needs {expected} bytes, "
                f"the header gives it {end - begin}; {fix}",
                path,
            )
        shapes[name] = shape
        dtypes[name] = torch_dtype
        data_end = max(data_end, end)
    if 8 + header_length + data_end > size:
        raise ModelLoadError(
            f"truncated safetensors file: its tensors need {8 + header_length + data_end} bytes "
            f"but the file has {size}; {fix}",
            path,
        )
    return shapes, dtypes, dict(metadata)


def _header_entry(name: str, entry: object, path: Path) -> tuple[str, tuple[int, ...], int, int]:
    """(dtype, shape, begin, end) of one header entry, every part of the right JSON type, or a ModelLoadError."""

    def whole(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    dtype = entry.get("dtype") if isinstance(entry, dict) else None
    shape = entry.get("shape") if isinstance(entry, dict) else None
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if (not isinstance(dtype, str) or not isinstance(shape, list) or not all(whole(d) for d in shape)
            or not isinstance(offsets, list) or len(offsets) != 2 or not all(whole(o) for o in offsets)
            or offsets[0] > offsets[1]):
        shown = name if len(name) <= 100 else name[:100] + "..."
        raise ModelLoadError(f"corrupt safetensors header entry for {shown!r} (expected a dtype name, a list of sizes "
                             f"and two byte offsets); the file is damaged or incomplete: download or copy it again",
                             path)
    return dtype, tuple(shape), offsets[0], offsets[1]


def _open_safetensors(path: Path) -> StateDictFile:
    from safetensors import SafetensorError, safe_open

    shapes, dtypes, metadata = _read_safetensors_header(path)
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")  # memory-maps the file
    except (SafetensorError, OSError) as error:
        raise ModelLoadError(
            f"safetensors could not open the file ({error}); it is damaged: copy it again", path
        ) from None
    release = (lambda key: _release_pages(handle.get_tensor(key))) if _MADVISE is not None else None
    return StateDictFile(path, shapes, dtypes, metadata, handle.get_tensor, release)


def _load_madvise():
    """libc's ``madvise`` where it and ``MADV_DONTNEED`` exist (Linux, macOS), else None."""
    import ctypes
    import mmap

    if not hasattr(mmap, "MADV_DONTNEED"):
        return None
    try:
        madvise = ctypes.CDLL(None).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


_MADVISE = _load_madvise()


def _release_pages(mapped: torch.Tensor) -> None:
    """``madvise(MADV_DONTNEED)`` on the whole pages inside a file-mapped tensor (read-only: reloads from the file)."""
    import mmap

    page = mmap.PAGESIZE
    begin = -(-mapped.data_ptr() // page) * page  # round inwards: never touch a neighbour's page
    end = (mapped.data_ptr() + mapped.nbytes) // page * page
    if end > begin:
        _MADVISE(begin, end - begin, mmap.MADV_DONTNEED)  # a failure only means the pages stay resident


def _open_sharded(index_path: Path) -> StateDictFile:
    """A ``*.safetensors.index.json`` (diffusers / transformers shards) as one mapping."""
    index = read_json_text(index_path.read_bytes(), "this shard index", index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelLoadError("expected a shard index with a 'weight_map' object (tensor name -> shard file name)",
                             index_path)
    shards = {name: _open_safetensors(_shard_path(index_path, name)) for name in sorted(set(weight_map.values()))}
    shapes = {key: shards[name].shapes[key] for key, name in weight_map.items()}
    dtypes = {key: shards[name].dtypes[key] for key, name in weight_map.items()}
    metadata = next(iter(shards.values())).metadata if shards else {}
    return StateDictFile(
        index_path,
        shapes,
        dtypes,
        metadata,
        lambda key: shards[weight_map[key]][key],
        lambda key: shards[weight_map[key]].release(key),
    )


def _shard_path(index_path: Path, name: str) -> Path:
    """A shard named by an index: a plain file name in the index's own folder (no '..', '/', or symlink out)."""
    from nodegraph.paths import PathConfinementError, confine

    try:
        path = confine(index_path.parent, name, what="shard file name")
    except PathConfinementError as error:
        raise ModelLoadError(f"{error.message}; a shard index may only name files in its own folder",
                             index_path) from None
    if not path.is_file():
        raise ModelLoadError(f"the index names shard {name!r}, which is not a file in its folder; copy the "
                             f"missing shard there", index_path)
    return path


def _open_pickle(path: Path, allow_pickle: bool) -> StateDictFile:
    if not allow_pickle:
        raise ModelLoadError(
            "this is a pickle checkpoint (.ckpt / .pt), which can run arbitrary code when opened, so it is refused; "
            "convert it to .safetensors, or, if you trust where it came from, let the server's owner opt in "
            f"(allow_pickle=True in Python, {ALLOW_PICKLE_ENV}=1 for the nodes; it is then read with "
            "torch.load(weights_only=True), which only rebuilds tensors)",
            path,
        )
    allow_training_callback_globals()
    try:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelLoadError(
            f"torch.load(weights_only=True) refused this file: it holds Python objects besides tensors "
            f"({unpickling_refusal(error)}); do not load it otherwise unless you trust where it came from: such a "
            f"file can run code when opened; get a .safetensors version of it (most model pages offer one) or convert "
            f"it with the tool that made it",
            path,
        ) from None
    except (EOFError, RuntimeError, OSError) as error:
        raise ModelLoadError(
            f"could not read this pickle checkpoint ({error}); it is damaged or truncated", path
        ) from None
    state = loaded if isinstance(loaded, dict) else None
    for wrapper in ("params_ema", "params", "state_dict"):   # BasicSR (EMA weights first), Lightning / LDM
        if state is not None and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict):
        raise ModelLoadError(f"expected a state dict in the pickle, found {type(loaded).__name__}", path)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    return StateDictFile(path, shapes, {k: v.dtype for k, v in tensors.items()}, {}, tensors.__getitem__)


# --- building modules ---------------------------------------------------------------------------


def build_module(
    module_class: Callable[[object], nn.Module],
    config: object,
    key_map: KeyMap,
    tensors: StateDictFile,
    *,
    what: str,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Build ``module_class(config)`` on the meta device and fill it from ``tensors`` through ``key_map``."""
    file_elements = sum(math.prod(converted_shape(source, tensors.shapes[source.key])) for source in key_map.values())
    module = build_on_meta(lambda: module_class(config), tensors=len(key_map), elements=file_elements,
                           what=what, path=tensors.path)
    expected = module.state_dict()
    missing = [k for k in expected if k not in key_map]
    unexpected = [k for k in key_map if k not in expected]
    if missing or unexpected:
        raise ModelLoadError(
            f"the {what} tensors do not fit the detected config {config}: "
            f"{_sample('missing', missing)}{_sample('unexpected', unexpected)}"
            f'if the detection is wrong, give the config in the "{METADATA_KEY}" safetensors metadata',
            tensors.path,
        )
    for name, meta in expected.items():
        shape = converted_shape(key_map[name], tensors.shapes[key_map[name].key])
        if shape != tuple(meta.shape):
            raise ModelLoadError(
                f"{what} tensor {key_map[name].key} has shape {list(shape)}, the detected config needs "
                f"{list(meta.shape)} for {name}; the file mixes models, or its config needs the metadata override",
                tensors.path,
            )
    _check_floating(expected, key_map, tensors, what)
    storage, dtype = split_precision(dtype, device)  # FP8 storage: precision.py
    if dtype is None:
        dtype = _dominant_dtype(tensors, key_map, list(expected))
    if storage is None and is_float8(dtype):  # an FP8 file kept as it is: compute wider
        storage, dtype = dtype, default_compute_dtype(device)
    narrow = narrow_weight_names(module) if storage is not None else set()
    loaded = {}
    for name in expected:
        source = key_map[name]
        tensor = source.read(tensors)
        if name in narrow:
            loaded[name] = to_float8(tensor.to(device=device), storage)
        else:
            loaded[name] = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else tensor.dtype)
        if not _same_memory(loaded[name], tensor):  # a copy: the file's pages are no longer needed
            tensors.release(source.key)
    module.load_state_dict(loaded, strict=True, assign=True)
    if storage is not None:
        store_weights(module, storage, dtype)
    return module.eval().requires_grad_(False)


def build_on_meta(make: Callable[[], nn.Module], *, tensors: int, elements: int, what: str, path=None) -> nn.Module:
    """``make()`` on the meta device (no initialisation), stopped once it creates far more than the file holds.

    A config read from metadata, key names or one tensor's shape can declare any size; the module's tensors
    must then all come from the file. So building stops with a ModelLoadError as soon as it has created more
    than twice the file's `tensors` (plus a few buffers) or `elements`, long before its Python objects or a
    later materialisation could take gigabytes. The exact shapes are compared by the caller.
    """
    budget = _CreationBudget(file_tensors=tensors, file_elements=elements, what=what, path=path)
    with torch.device("meta"), _SkipInitialisation(), budget:
        return make()


class _CreationBudget(torch.overrides.TorchFunctionMode):
    """Count the tensors and elements factory functions create; past twice the file's (plus slack), refuse it."""

    FACTORIES = frozenset({"empty", "zeros", "ones", "full", "rand", "randn", "arange", "linspace", "eye", "tensor",
                           "empty_strided", "empty_like", "zeros_like", "ones_like", "full_like", "randn_like"})

    def __init__(self, *, file_tensors: int, file_elements: int, what: str, path):
        super().__init__()
        self.file = (file_tensors, file_elements)
        self.limits = (2 * file_tensors + 64, 2 * file_elements + 2**24)   # slack: buffers, temporaries
        self.created, self.what, self.path = [0, 0], what, path

    def __torch_function__(self, func, types, args=(), kwargs=None):
        factory = getattr(func, "__name__", None) in self.FACTORIES
        try:
            result = func(*args, **(kwargs or {}))
        except RuntimeError as error:   # a size past what torch can count ("Storage size calculation overflowed")
            if not factory:
                raise
            raise self._too_large(f" (torch: {str(error).splitlines()[0][:200]})") from None
        if factory and isinstance(result, torch.Tensor):
            self.created[0] += 1
            self.created[1] += result.numel()
            if self.created[0] > self.limits[0] or self.created[1] > self.limits[1]:
                raise self._too_large(", already exceeded")
        return result

    def _too_large(self, how: str) -> ModelLoadError:
        return ModelLoadError(
            f"the {self.what} its metadata or key names declare is far larger than the file: it holds only "
            f"{self.file[0]} tensors ({self.file[1]} parameters) for it{how}; the file is damaged or crafted: fix "
            f"or remove its metadata, or copy it again",
            self.path,
        )


def _check_floating(expected: Mapping[str, torch.Tensor], key_map: KeyMap, tensors: StateDictFile, what: str) -> None:
    """Refuse integer or boolean tensors where the module holds floating-point weights (a quantised file)."""
    for name, meta in expected.items():
        dtype = tensors.dtypes.get(key_map[name].key)
        if meta.is_floating_point() and (dtype is None or not (dtype.is_floating_point or dtype.is_complex)):
            stored = dtype or "an unsupported type"
            raise ModelLoadError(f"{what} tensor {key_map[name].key} is stored as {stored}, not floating point: "
                                 f"quantised (int8, GGUF...) files are not read; use a float16 / bfloat16 / float32 "
                                 f"file", tensors.path)


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.device == b.device and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


class _SkipInitialisation(torch.overrides.TorchFunctionMode):
    """Make weight initialisation a no-op on meta tensors while a module is built to be filled from a file.

    Initialising meta tensors computes nothing, but the first ``normal_`` on one imports torch's
    Python decompositions (sympy included), about 2 s once per process. Torch function modes are
    thread-local: other threads initialise as usual.
    """

    SKIPPED = frozenset(
        {"normal_", "uniform_", "trunc_normal_", "kaiming_normal_", "kaiming_uniform_", "xavier_normal_"}
        | {"xavier_uniform_", "zeros_", "ones_", "constant_", "fill_", "zero_"}
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensor = args[0] if args else kwargs.get("tensor")
        if getattr(func, "__name__", None) in self.SKIPPED and isinstance(tensor, torch.Tensor) and tensor.is_meta:
            return tensor
        return func(*args, **kwargs)


def _sample(label: str, keys: list[str]) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    return f"{label} {keys[:5]}{more}; "


def _dominant_dtype(tensors: StateDictFile, key_map: KeyMap, names: list[str]) -> torch.dtype:
    """The floating dtype holding most elements among a module's tensors (from the header)."""
    counts: dict[torch.dtype, int] = {}
    for name in names:
        source = key_map[name].key
        dtype = tensors.dtypes.get(source)
        if dtype is not None and dtype.is_floating_point:
            counts[dtype] = counts.get(dtype, 0) + math.prod(tensors.shapes[source])
    return max(counts, key=counts.get) if counts else torch.float32


# --- the checkpoint bundle ----------------------------------------------------------------------


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns; components not requested (or not in the file) are None."""

    info: CheckpointInfo
    unet: UNetModel | None
    vae: AutoencoderKL | None
    text_encoder: PromptEncoder | None
    schedule: dict | None = None   # the training noise schedule recorded by save_checkpoint (None: the family's)

    @property
    def family(self) -> Family:
        return self.info.family

    @property
    def prediction(self) -> str:
        return self.info.prediction


_ALL: tuple[Component, ...] = ("unet", "vae", "text_encoder")


def load_checkpoint(
    path: str | os.PathLike,
    *,
    components: Sequence[Component] = _ALL,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    prediction: Literal["eps", "v"] | None = None,
    allow_pickle: bool = False,
) -> Checkpoint:
    """Load a full Stable Diffusion checkpoint: a single file (LDM / SGM layout) or a diffusers folder.

    Args:
        path: ``.safetensors`` (or, with ``allow_pickle``, ``.ckpt``) file, or a diffusers
            pipeline folder (``model_index.json``, ``unet/``, ``vae/``, ``text_encoder*/``).
        components: which parts to build; the others are None (their tensors are never read).
        dtype: cast floating weights (e.g. ``torch.float16``); None keeps the file's dtype.
        device: where the weights go.
        prediction: ``"eps"`` / ``"v"``; overrides what the file says (needed for SD 2.x 768-v
            single files, which do not record it).
        allow_pickle: accept pickle checkpoints (read with ``torch.load(weights_only=True)``).

    Raises:
        ModelLoadError: the file is missing, damaged, not a full checkpoint (e.g. a VAE), or of
            an architecture this loader does not know.
    """
    _check_components(components)
    path = Path(path)
    from .sd3 import is_sd3_checkpoint, is_sd3_folder, load_sd3_checkpoint, load_sd3_diffusers  # SD3 / SD3.5 (MMDiT)

    if path.is_dir():
        if is_sd3_folder(path):
            return load_sd3_diffusers(path, components=components, dtype=dtype, device=device)
        return _load_diffusers_pipeline(path, components, dtype, device, prediction)
    tensors = open_state_dict(path, allow_pickle=allow_pickle)
    if is_sd3_checkpoint(tensors.shapes):
        return load_sd3_checkpoint(path, components=components, dtype=dtype, device=device, allow_pickle=allow_pickle)
    info = detect_checkpoint(tensors.shapes, tensors.metadata, prediction=prediction, path=path)
    schedule = read_schedule(parse_config_override(tensors.metadata, path), path)   # checked before any build
    unet = vae = text_encoder = None
    if "unet" in components:
        key_map = from_prefix(tensors.shapes, info.unet_prefix)
        unet = build_module(UNetModel, info.unet, key_map, tensors, what="UNet", dtype=dtype, device=device)
    if "vae" in components and info.vae is not None:
        key_map = vae_from_ldm(tensors.shapes, info.vae_prefix)
        vae = build_module(AutoencoderKL, info.vae, key_map, tensors, what="VAE", dtype=dtype, device=device)
    if "text_encoder" in components and info.text_encoders:
        text_encoder = _build_prompt_encoder(info.text_encoders, info.pooled_from, tensors, dtype, device)
        text_encoder.vocabulary = vocabulary_of(tensors.metadata)
    return Checkpoint(info=info, unet=unet, vae=vae, text_encoder=text_encoder, schedule=schedule)


TINY_WORLD_DESCRIPTION = "nodegraph tiny-world"    # how the training graphs describe the shipped models


def vocabulary_of(metadata: dict[str, str]) -> str | None:
    """"tiny_world" for a checkpoint trained on the tiny world's captions (its `nodegraph.description` says so),
    else None: EncodeText then warns about prompt words that world never uses."""
    description = metadata.get("nodegraph.description", "") if isinstance(metadata, dict) else ""
    return "tiny_world" if isinstance(description, str) and description.startswith(TINY_WORLD_DESCRIPTION) else None


def _check_components(components: Sequence[str]) -> None:
    unknown = set(components) - set(_ALL)
    if unknown:
        raise ValueError(f"components {sorted(unknown)} are not among {list(_ALL)}")


def _build_prompt_encoder(
    specs: Sequence[TextEncoderSpec], pooled_from: str | None, tensors: StateDictFile, dtype, device
) -> PromptEncoder:
    encoders = {}
    for spec in specs:
        convert = clip_from_openclip if spec.layout == "openclip" else clip_from_hf
        key_map = convert(tensors.shapes, spec.prefix)
        encoders[spec.name] = build_module(
            CLIPTextModel,
            spec.config,
            key_map,
            tensors,
            what=f"text encoder {spec.name}",
            dtype=dtype,
            device=device,
        )
    return PromptEncoder(encoders, pooled_from=pooled_from)


# --- single components --------------------------------------------------------------------------


def load_unet(
    path: str | os.PathLike,
    *,
    family: Family | None = None,
    prediction: Literal["eps", "v"] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    allow_pickle: bool = False,
) -> UNetModel:
    """The UNet of a full checkpoint, of a diffusers folder, or of a UNet-only file (LDM or diffusers keys).

    ``family`` fixes the attention-head convention for UNet-only files that a context width
    cannot place (e.g. small custom models); metadata (``nodegraph.config``) also works.
    The module's ``family`` attribute is the family it was loaded as (given, recorded or detected; ``"sd3"``
    for an MMDiT; None for a diffusers folder, which is not placed in one): LoadUNet's latent space.
    """
    path = Path(path)
    if path.is_dir():
        folder = path / "unet" if (path / "unet").is_dir() else path
        return _load_diffusers_unet(folder, prediction, dtype, device)
    tensors = open_state_dict(path, allow_pickle=allow_pickle)
    keys = tensors.shapes
    from .sd3 import is_sd3_checkpoint, load_sd3_checkpoint

    if is_sd3_checkpoint(keys):  # an SD3 / SD3.5 MMDiT (alone or in a full file)
        return _loaded_as(load_sd3_checkpoint(path, components=("unet",), dtype=dtype, device=device,
                                              allow_pickle=allow_pickle).unet, "sd3")
    if f"{UNET_PREFIX}input_blocks.0.0.weight" in keys:
        key_map = from_prefix(keys, UNET_PREFIX)
        if family is None:      # a full checkpoint's layout: its text encoders help tell the family
            info = detect_checkpoint(keys, tensors.metadata, prediction=prediction, path=path,
                                     choose_family=CHOOSE_FAMILY["unet"])
            return _loaded_as(build_module(UNetModel, info.unet, key_map, tensors, what="UNet", dtype=dtype,
                                           device=device), info.family)
        config, family = _bare_unet_config(key_map, tensors, family, prediction)     # the family the user chose
        return _loaded_as(build_module(UNetModel, config, key_map, tensors, what="UNet", dtype=dtype,
                                       device=device), family)
    if "input_blocks.0.0.weight" in keys:
        key_map = from_prefix(keys, "")
    elif "conv_in.weight" in keys and any(k.startswith("down_blocks.") for k in keys):
        key_map = _convert(unet_from_diffusers, keys, "", path)
        config_json = path.parent / "config.json"
        if config_json.is_file():
            return _build_diffusers_unet(key_map, tensors, _read_json(config_json), prediction, dtype, device)
    else:
        raise ModelLoadError(f"expected a UNet, found {describe_file_kind(keys)}", path)
    config, family = _bare_unet_config(key_map, tensors, family, prediction)
    return _loaded_as(build_module(UNetModel, config, key_map, tensors, what="UNet", dtype=dtype, device=device),
                      family)


def _loaded_as(unet: torch.nn.Module, family: str | None) -> torch.nn.Module:
    """`unet` marked with the family it was loaded as (`load_unet`: its latent space, for LoadUNet)."""
    unet.family = family
    return unet


def _bare_unet_config(key_map: KeyMap, tensors: StateDictFile, family, prediction) -> tuple[UNetConfig, Family]:
    """Config of a UNet-only file (shapes, the family's head convention, the metadata override), and the family
    it was placed in (given, in the metadata, or detected)."""
    shapes = {target: converted_shape(source, tensors.shapes[source.key]) for target, source in key_map.items()}
    override = parse_config_override(tensors.metadata, tensors.path)
    config = _detected("UNet", tensors.path, detect_unet_config, shapes)
    family = family or override.get("family") or decide_family(config, [], tensors.path, CHOOSE_FAMILY["unet"])
    config = detect_unet_config(shapes, family=family)
    config = apply_fields(config, override.get("unet"), "UNet", tensors.path)
    pred, _ = _detected(
        "prediction type", tensors.path, decide_prediction, prediction, override, tensors.metadata, tensors.shapes
    )
    return replace(config, prediction=pred), family


def load_vae(
    path: str | os.PathLike,
    *,
    family: Family | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    allow_pickle: bool = False,
) -> AutoencoderKL:
    """The VAE of a full checkpoint, a diffusers folder, or a VAE-only file (LDM or diffusers keys).

    The scale factor (and shift) of its latent space come from what the file records, else ``family``:
    the ``"vae"`` fields of its "nodegraph.config" metadata; else a diffusers ``AutoencoderKL``
    config.json beside it (``scaling_factor`` / ``shift_factor``: a file inside a diffusers ``vae/``
    folder, or copied with its config); else ``family`` (the checkpoint's, e.g. ``"sdxl-base"``: 0.13025;
    None: SD 1.x / 2.x's 0.18215; 16 latent channels: SD3's unless ``"flux"``), which also picks the
    preview factors. A bare SDXL VAE file records nothing: its ``scale_guessed`` is then True, and VAEDecode
    decodes a latent that records its model's latent space in that space. The module's ``scale_source`` says
    which decided (for messages such as VAEDecode's).
    """
    path = Path(path)
    if path.is_dir():
        folder = path / "vae" if (path / "vae").is_dir() else path
        vae = _load_diffusers_vae(folder, family, dtype, device)
        vae.scale_source = _scale_source(vae.config, family, folder / "config.json")
        return vae
    tensors = open_state_dict(path, allow_pickle=allow_pickle)
    keys = {k: v for k, v in tensors.shapes.items() if not TRAINING_LEFTOVER.match(k)}  # EMA counters, loss nets
    if f"{UNET_PREFIX}input_blocks.0.0.weight" in keys:
        info = detect_checkpoint(keys, tensors.metadata, path=path, choose_family="")
        if info.vae is None:
            raise ModelLoadError(
                f"expected a VAE, but this checkpoint has no {VAE_PREFIX}* keys; load a separate VAE file", path
            )
        key_map = vae_from_ldm(keys, VAE_PREFIX)
        vae = build_module(AutoencoderKL, info.vae, key_map, tensors, what="VAE", dtype=dtype, device=device)
        vae.scale_source = f"the checkpoint's family {info.family} ({info.vae.scale_factor:g})"
        return vae
    prefix = VAE_PREFIX if f"{VAE_PREFIX}encoder.conv_in.weight" in keys else ""
    if f"{prefix}encoder.conv_in.weight" in keys and f"{prefix}encoder.down.0.block.0.conv1.weight" in keys:
        key_map = vae_from_ldm(keys, prefix)
    elif "encoder.conv_in.weight" in keys and "encoder.down_blocks.0.resnets.0.conv1.weight" in keys:
        key_map = _convert(vae_from_diffusers, keys, "", path)
    else:
        raise ModelLoadError(f"expected a VAE, found {describe_file_kind(keys)}", path)
    shapes = {target: converted_shape(source, keys[source.key]) for target, source in key_map.items()}
    config = _family_vae(_detected("VAE", path, detect_vae_config, shapes), family)
    beside = path.parent / "config.json"
    if beside.is_file() and _read_json(beside).get("_class_name") == "AutoencoderKL":   # a diffusers vae/ folder
        config = _vae_scale_from_config_json(config, beside)
    else:
        beside = None
    override = parse_config_override(tensors.metadata, path)
    config = apply_fields(config, override.get("vae"), "VAE", path)
    vae = build_module(AutoencoderKL, config, key_map, tensors, what="VAE", dtype=dtype, device=device)
    recorded = {"scale_factor", "shift_factor"} & set(override.get("vae") or {})
    vae.scale_source = (f'the file\'s "{METADATA_KEY}" metadata' if recorded
                        else _scale_source(config, family, beside))
    # nothing chose the scale — no metadata, no config.json, no family: VAEDecode then decodes a latent that
    # records its model's latent space in that space (a bare SDXL VAE file swapped into an SDXL graph)
    vae.scale_guessed = not recorded and beside is None and not family and config.z_channels != 16
    return vae


def _scale_source(config: VAEConfig, family: str | None, config_json: Path | None) -> str:
    """Where a loaded VAE's scale factor came from, in words: a config.json that records it, or the family."""
    if config_json is not None and config_json.is_file() and "scaling_factor" in _read_json(config_json):
        return f"the config.json beside it (scaling_factor {config.scale_factor:g})"
    if config.z_channels == 16 or family:
        return f"the family it was loaded as, {family or 'sd3'} ({config.scale_factor:g})"
    return f"the SD 1.x / 2.x default {config.scale_factor:g}: nothing in the file records its scale"


def _vae_scale_from_config_json(config: VAEConfig, config_path: Path) -> VAEConfig:
    """`config` with the ``scaling_factor`` / ``shift_factor`` a diffusers config.json records (absent: kept)."""
    config_json = _read_json(config_path) if config_path.is_file() else {}
    numbers = {field: _config_number(config_json, key, config_path)
               for field, key in (("scale_factor", "scaling_factor"), ("shift_factor", "shift_factor"))}
    try:
        return replace(config, **{field: value for field, value in numbers.items() if value is not None})
    except ValueError as error:
        raise ModelLoadError(f"{error}; fix scaling_factor / shift_factor", config_path) from None


def _family_vae(config: VAEConfig, family: str | None) -> VAEConfig:
    """Scale factor and preview factors of the family's latent space (16 latent channels: SD3's)."""
    reference = SDXL_VAE if family and family.startswith("sdxl") else SD_VAE
    if family == "sd3" or config.z_channels == 16:
        from .vae import SD3_VAE

        reference = SD3_VAE
    if family == "flux":   # same autoencoder shape as SD3's, other latent statistics
        from .flux import FLUX_VAE

        reference = FLUX_VAE
    return replace(config, scale_factor=reference.scale_factor, shift_factor=reference.shift_factor,
                   latent_rgb_factors=reference.latent_rgb_factors)


def load_text_encoder(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    allow_pickle: bool = False,
) -> PromptEncoder:
    """The text encoder(s) of a full checkpoint or a diffusers pipeline folder, ready to encode prompts."""
    path = Path(path)
    if path.is_dir():
        return _load_diffusers_pipeline(path, ("text_encoder",), dtype, device, None).text_encoder
    tensors = open_state_dict(path, allow_pickle=allow_pickle)
    info = detect_checkpoint(tensors.shapes, tensors.metadata, path=path)
    if not info.text_encoders:
        raise ModelLoadError(
            "expected a checkpoint with text encoders, found none (cond_stage_model.* / conditioner.*)", path
        )
    return _build_prompt_encoder(info.text_encoders, info.pooled_from, tensors, dtype, device)


def _detected(what: str, path, detect: Callable, *args, **kwargs):
    """Run a detect_* function, turning its ValueError / KeyError into a ModelLoadError naming the file."""
    try:
        return detect(*args, **kwargs)
    except ModelLoadError:
        raise
    except (ValueError, KeyError) as error:
        raise ModelLoadError(f"{what} not recognised ({error}); is it an SD 1.x / 2.x / XL model?", path) from None


def _convert(converter, keys, prefix: str, path) -> KeyMap:
    try:
        return converter(keys, prefix)
    except ConversionError as error:
        raise ModelLoadError(f"{error}; is this file of another architecture?", path) from None


# --- diffusers folders --------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    """A folder's JSON config (config.json, scheduler_config.json): a JSON object, or a ModelLoadError naming it."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"could not read this JSON config ({error})", path) from None
    config = read_json_text(raw, "this JSON config", path)
    if not isinstance(config, dict):
        raise ModelLoadError(f"this JSON config must be a JSON object, found {type(config).__name__}", path)
    return config


def _config_number(config: Mapping, key: str, path: Path, kind: type = float):
    """``config[key]`` as a finite `kind` (float, or int for counts), None when absent; else a ModelLoadError."""
    value = config.get(key)
    if value is None:
        return None
    allowed = (int, float) if kind is float else int
    if isinstance(value, bool) or not isinstance(value, allowed) or not math.isfinite(value):
        raise ModelLoadError(f"{key} must be a finite {'number' if kind is float else 'whole number'}, found "
                             f"{value!r}; fix it", path)
    return kind(value)


def _weights_in(folder: Path) -> StateDictFile:
    """The weights file of a diffusers / transformers component folder (plain before fp16 variant)."""
    candidates = [
        "diffusion_pytorch_model.safetensors",
        "model.safetensors",
        "diffusion_pytorch_model.safetensors.index.json",
        "model.safetensors.index.json",
        "diffusion_pytorch_model.fp16.safetensors",
        "model.fp16.safetensors",
    ]
    for name in candidates:
        if (folder / name).is_file():
            return open_state_dict(folder / name)
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise ModelLoadError(
        f"expected one of {candidates[:2]} (safetensors) in this diffusers folder, found {found or 'nothing'}; "
        "pickle .bin weights are not read from folders: convert them to safetensors",
        folder,
    )


def _load_diffusers_unet(folder: Path, prediction, dtype, device) -> UNetModel:
    tensors = _weights_in(folder)
    key_map = _convert(unet_from_diffusers, tensors.shapes, "", tensors.path)
    config_json = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    scheduler = folder.parent / "scheduler" / "scheduler_config.json"
    if prediction is None and scheduler.is_file():
        prediction = _read_json(scheduler).get("prediction_type")
    return _build_diffusers_unet(key_map, tensors, config_json, prediction, dtype, device)


def _diffusers_unet_config(key_map: KeyMap, tensors: StateDictFile, config_json: dict, prediction) -> UNetConfig:
    shapes = {target: converted_shape(source, tensors.shapes[source.key]) for target, source in key_map.items()}
    config = _detected("UNet", tensors.path, detect_unet_config, shapes)
    heads = config_json.get("num_attention_heads")
    if heads is None:       # diffusers names the head count attention_head_dim in SD 1.x/2.x configs
        heads = config_json.get("attention_head_dim", 8)
    if isinstance(heads, bool) or not (isinstance(heads, int) and heads >= 1 or isinstance(heads, list) and all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in heads)):
        raise ModelLoadError(f"attention_head_dim / num_attention_heads must be a positive whole number or a list "
                             f"of them, found {heads!r}; fix the folder's unet config.json", tensors.path)
    if isinstance(heads, int):
        config = replace(config, num_heads=heads, num_head_channels=-1)
    else:
        widths = [config.model_channels * m for m in config.channel_mult]
        used = [(w, h) for w, h, d in zip(widths, heads, config.transformer_depth) if d]
        head_widths = {w // h for w, h in used}
        if len(head_widths) == 1:
            config = replace(config, num_heads=-1, num_head_channels=head_widths.pop())
        elif len({h for _, h in used}) == 1:
            config = replace(config, num_heads=used[0][1], num_head_channels=-1)
        else:
            raise ModelLoadError(
                f"attention heads {heads} fit neither a fixed head count nor a fixed head width", tensors.path
            )
    for level, mult in enumerate(config.channel_mult):     # heads that do not divide a width: the config's fault
        if config.transformer_depth[level]:
            try:
                config.heads_for(config.model_channels * mult)
            except (ValueError, ArithmeticError) as error:
                raise ModelLoadError(f"{error}: the attention heads in the folder's unet config.json ({heads!r}) do "
                                     f"not divide the UNet's widths; fix that config.json", tensors.path) from None
    pred, _ = _detected("prediction type", tensors.path, decide_prediction, prediction, {}, {}, [])
    return replace(config, prediction=pred)


def _build_diffusers_unet(key_map, tensors, config_json, prediction, dtype, device) -> UNetModel:
    config = _diffusers_unet_config(key_map, tensors, config_json, prediction)
    return build_module(UNetModel, config, key_map, tensors, what="UNet", dtype=dtype, device=device)


def _diffusers_vae(folder: Path, family) -> tuple[StateDictFile, KeyMap, VAEConfig]:
    """Weights, key map and config of a diffusers ``AutoencoderKL`` folder (scale from config.json)."""
    tensors = _weights_in(folder)
    key_map = _convert(vae_from_diffusers, tensors.shapes, "", tensors.path)
    shapes = {target: converted_shape(source, tensors.shapes[source.key]) for target, source in key_map.items()}
    config = _family_vae(_detected("VAE", tensors.path, detect_vae_config, shapes), family)
    return tensors, key_map, _vae_scale_from_config_json(config, folder / "config.json")


def _load_diffusers_vae(folder: Path, family, dtype, device) -> AutoencoderKL:
    tensors, key_map, config = _diffusers_vae(folder, family)
    return build_module(AutoencoderKL, config, key_map, tensors, what="VAE", dtype=dtype, device=device)


def _diffusers_text_encoder(folder: Path, family: Family, name: str) -> tuple[StateDictFile, KeyMap, TextEncoderConfig]:
    """Weights, key map and config of a transformers CLIP text-model folder in the role `name`."""
    tensors = _weights_in(folder)
    key_map = clip_from_hf(tensors.shapes)
    config_json = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    shapes = {target: tensors.shapes[source.key] for target, source in key_map.items()}
    role = ENCODER_ROLES[(family, name)]
    heads = _config_number(config_json, "num_attention_heads", folder / "config.json", int)
    config = _detected(f"text encoder {name}", tensors.path, detect_text_encoder_config, shapes, role, heads=heads)
    if config_json.get("hidden_act") in ("gelu", "quick_gelu"):
        config = replace(config, activation=config_json["hidden_act"])
    layer_norm_eps = _config_number(config_json, "layer_norm_eps", folder / "config.json")
    if layer_norm_eps:
        config = _detected(f"text encoder {name}", folder / "config.json", replace, config,
                           layer_norm_eps=layer_norm_eps)
    if family == "sd2":  # diffusers ships SD 2.x's encoder without its unused last block and uses the last one
        config = replace(config, output_layer=-1)
    return tensors, key_map, config


def _load_diffusers_pipeline(folder: Path, components, dtype, device, prediction) -> Checkpoint:
    """A diffusers pipeline folder: family from its text encoders and UNet, prediction from the scheduler."""
    _check_components(components)
    if not (folder / "unet").is_dir() and not (folder / "model_index.json").is_file():
        raise ModelLoadError(
            "expected a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/), "
            f"found {sorted(p.name for p in folder.iterdir())[:10]}",
            folder,
        )
    unet_tensors = _weights_in(folder / "unet")
    unet_map = _convert(unet_from_diffusers, unet_tensors.shapes, "", unet_tensors.path)
    unet_json = _read_json(folder / "unet" / "config.json") if (folder / "unet" / "config.json").is_file() else {}
    scheduler = folder / "scheduler" / "scheduler_config.json"
    prediction_note = "prediction from the argument" if prediction else "prediction 'eps' (no scheduler config)"
    if prediction is None and scheduler.is_file():
        prediction = _read_json(scheduler).get("prediction_type")
        prediction_note = f"prediction {prediction!r} from scheduler/scheduler_config.json"
    unet_config = _diffusers_unet_config(unet_map, unet_tensors, unet_json, prediction)

    slots = []  # (role name, sub-folder)
    if (folder / "text_encoder").is_dir():
        te_json = folder / "text_encoder" / "config.json"
        te_config = _read_json(te_json) if te_json.is_file() else {}
        # OpenCLIP-H (SD 2.x) was trained with GELU, OpenAI's CLIP-L (SD 1.x, SDXL) with quick-GELU
        open_clip = te_config.get("hidden_act") == "gelu" or te_config.get("hidden_size") == 1024
        sdxl = (folder / "text_encoder_2").is_dir()
        slots.append(("clip_h" if open_clip and not sdxl else "clip_l", "text_encoder"))
    if (folder / "text_encoder_2").is_dir():
        slots.append(("clip_g", "text_encoder_2"))
    family = decide_family(unet_config, [name for name, _ in slots], folder)
    vae_parts = _diffusers_vae(folder / "vae", family) if (folder / "vae").is_dir() else None
    encoder_parts = {name: (sub, *_diffusers_text_encoder(folder / sub, family, name)) for name, sub in slots}

    unet = vae = text_encoder = None
    if "unet" in components:
        unet = build_module(UNetModel, unet_config, unet_map, unet_tensors, what="UNet", dtype=dtype, device=device)
    if "vae" in components and vae_parts is not None:
        tensors, key_map, config = vae_parts
        vae = build_module(AutoencoderKL, config, key_map, tensors, what="VAE", dtype=dtype, device=device)
    if "text_encoder" in components and encoder_parts:
        encoders = {
            name: build_module(
                CLIPTextModel,
                config,
                key_map,
                tensors,
                what=f"text encoder {name}",
                dtype=dtype,
                device=device,
            )
            for name, (_, tensors, key_map, config) in encoder_parts.items()
        }
        pooled_from = POOLED_FROM[family] if POOLED_FROM[family] in encoders else None
        text_encoder = PromptEncoder(encoders, pooled_from=pooled_from)
    standard = STANDARD_UNETS[family]
    info = CheckpointInfo(
        family=family,
        prediction=unet_config.prediction,
        unet=unet_config,
        vae=vae_parts[2] if vae_parts else None,
        text_encoders=tuple(
            TextEncoderSpec(name, f"{sub}/", "hf", config) for name, (sub, _, _, config) in encoder_parts.items()
        ),
        pooled_from=POOLED_FROM[family] if POOLED_FROM[family] in encoder_parts else None,
        custom=replace(unet_config, in_channels=standard.in_channels, prediction=standard.prediction) != standard,
        inpainting=unet_config.in_channels == 9,
        notes=(
            f"family {family} from the folder's text encoders {[name for name, _ in slots]} and UNet",
            prediction_note,
        ),
        unet_prefix="unet/",
        vae_prefix="vae/",
    )
    return Checkpoint(info=info, unet=unet, vae=vae, text_encoder=text_encoder)


# --- writing ------------------------------------------------------------------------------------

# Where each family's single files keep their text encoders, and in which key layout.
_ENCODER_SLOTS: dict[str, dict[str, tuple[str, str]]] = {
    "sd1": {"clip_l": ("cond_stage_model.transformer.", "hf")},
    "sd2": {"clip_h": ("cond_stage_model.model.", "openclip")},
    "sdxl-base": {
        "clip_l": ("conditioner.embedders.0.transformer.", "hf"),
        "clip_g": ("conditioner.embedders.1.model.", "openclip"),
    },
    "sdxl-refiner": {"clip_g": ("conditioner.embedders.0.model.", "openclip")},
}


def save_checkpoint(
    path: str | os.PathLike,
    *,
    family: Family,
    unet: UNetModel | None = None,
    vae: AutoencoderKL | None = None,
    text_encoder: PromptEncoder | None = None,
    dtype: torch.dtype | None = None,
    metadata: Mapping[str, str] | None = None,
    schedule: Mapping | None = None,
) -> None:
    """Write modules as one LDM-layout ``.safetensors`` file with their exact configs in the metadata.

    ``schedule`` (see ``describe_schedule``) records the noise schedule the UNet was trained
    with; ``load_checkpoint`` returns it so the model is sampled on the same schedule.
    """
    tensors: dict[str, torch.Tensor] = {}
    override: dict = {"family": family}
    if schedule is not None:
        override["schedule"] = read_schedule({"schedule": dict(schedule)}, path)

    def add(prefix: str, state: Mapping[str, torch.Tensor]) -> None:
        for key, tensor in state.items():
            tensor = tensor.detach().to("cpu")
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors[prefix + key] = tensor.contiguous()

    if unet is not None:
        add(UNET_PREFIX, unet.state_dict())
        override["prediction"] = unet.config.prediction
        override["unet"] = {k: v for k, v in asdict(unet.config).items() if k != "prediction"}
    if vae is not None:
        add(VAE_PREFIX, vae.state_dict())
        override["vae"] = asdict(vae.config)
        override["preview_map"] = PREVIEW_MAP_SIGNED  # its latent_rgb_* map to [-1, 1] (detect.signed_preview_map)
    if text_encoder is not None:
        slots = _ENCODER_SLOTS[family]
        override["text_encoders"] = {}
        for name, encoder in text_encoder.encoders.items():
            if name not in slots:
                raise ValueError(
                    f"a {family} checkpoint has no place for text encoder {name!r} (expected {sorted(slots)})"
                )
            prefix, layout = slots[name]
            state = encoder.state_dict()
            add(prefix, clip_to_openclip(state) if layout == "openclip" else state)
            override["text_encoders"][name] = asdict(encoder.config)
    from safetensors.torch import save_file

    save_file(tensors, os.fspath(path), metadata={**(metadata or {}), METADATA_KEY: json.dumps(override)})


# --- the training noise schedule ------------------------------------------------------------------
#
# A checkpoint's metadata records the schedule its UNet was trained on, as
#   {"schedule": {"betas": "scaled_linear" | "linear" | "cosine", "timesteps": 1000, "zero_terminal_snr": false}}
# or, for a table no name describes, {"schedule": {"alphas_cumprod": [...]}}. Files without it
# (every SD file) use their family's scaled-linear 1000-step schedule.

SCHEDULE_BETAS = ("scaled_linear", "linear", "cosine")
TERMINAL_ALPHA_CUMPROD = 1e-8   # ᾱ_T of a zero-terminal-SNR schedule is 0 (sigma = ∞); sampling starts here instead


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Betas whose last ᾱ is exactly 0, keeping ᾱ_0 (Lin et al. 2024, "Common Diffusion Noise Schedules and
    Sample Steps are Flawed", Algorithm 1: shift and scale sqrt(ᾱ) so its last value is 0)."""
    root = torch.cumprod(1 - betas.to(torch.float64), dim=0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    alphas_cumprod = root**2
    alphas = torch.cat([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])
    return 1 - alphas


def training_betas(betas: str = "scaled_linear", timesteps: int = 1000, zero_terminal_snr: bool = False) -> torch.Tensor:
    """The betas of a named training schedule (float64, ``timesteps`` long)."""
    from nodes.sampling.schedules import cosine_betas, linear_betas, scaled_linear_betas

    make = {"scaled_linear": scaled_linear_betas, "linear": linear_betas, "cosine": cosine_betas}[betas]
    values = make(timesteps)
    return rescale_zero_terminal_snr(values) if zero_terminal_snr else values


def schedule_alphas_cumprod(schedule: Mapping) -> torch.Tensor:
    """ᾱ_t (float64) of a recorded schedule; a zero terminal ᾱ becomes ``TERMINAL_ALPHA_CUMPROD``."""
    if "alphas_cumprod" in schedule:
        alphas_cumprod = torch.tensor(schedule["alphas_cumprod"], dtype=torch.float64)
    else:
        betas = training_betas(schedule.get("betas", "scaled_linear"), int(schedule.get("timesteps", 1000)),
                               bool(schedule.get("zero_terminal_snr", False)))
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    return alphas_cumprod.clamp(min=TERMINAL_ALPHA_CUMPROD)


def read_schedule(override: Mapping, path=None) -> dict | None:
    """The checked ``"schedule"`` entry of a ``nodegraph.config`` override (None when absent)."""
    schedule = override.get("schedule")
    if schedule is None:
        return None
    fix = ('write {"betas": one of ' + ", ".join(SCHEDULE_BETAS) +
           ', "timesteps": N, "zero_terminal_snr": true|false} or {"alphas_cumprod": [...]}')
    if not isinstance(schedule, Mapping):
        raise ModelLoadError(f'metadata "{METADATA_KEY}" schedule must be a JSON object; {fix}', path)
    if "alphas_cumprod" in schedule:
        table = schedule["alphas_cumprod"]
        if (set(schedule) != {"alphas_cumprod"} or not isinstance(table, list) or not 2 <= len(table) <= 100_000
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in table)
                or any(b >= a for a, b in zip(table, table[1:]))):
            raise ModelLoadError(f'metadata "{METADATA_KEY}" schedule alphas_cumprod must be a decreasing list of '
                                 f'2 to 100000 numbers in [0, 1] (and nothing else); {fix}', path)
        checked = {"alphas_cumprod": [float(v) for v in table]}
    else:
        unknown = sorted(set(schedule) - {"betas", "timesteps", "zero_terminal_snr"})
        betas, timesteps = schedule.get("betas", "scaled_linear"), schedule.get("timesteps", 1000)
        zero = schedule.get("zero_terminal_snr", False)
        if (unknown or betas not in SCHEDULE_BETAS or not isinstance(timesteps, int) or isinstance(timesteps, bool)
                or not 2 <= timesteps <= 100_000 or not isinstance(zero, bool)):
            raise ModelLoadError(f'metadata "{METADATA_KEY}" schedule {_shown_schedule(schedule)} is not understood; '
                                 f'{fix}', path)
        checked = {"betas": betas, "timesteps": timesteps, "zero_terminal_snr": zero}
    _check_usable_schedule(checked, path)
    return checked


def _check_usable_schedule(schedule: dict, path) -> None:
    """Refuse a schedule whose ᾱ table (as sampling uses it, clamped) is not strictly decreasing inside (0, 1)."""
    alphas_cumprod = schedule_alphas_cumprod(schedule)
    steps = alphas_cumprod[1:] < alphas_cumprod[:-1]
    if not bool(torch.isfinite(alphas_cumprod).all()) or not bool(steps.all()) or not float(alphas_cumprod[0]) < 1:
        raise ModelLoadError(
            f'metadata "{METADATA_KEY}" schedule {_shown_schedule(schedule)} gives noise levels sampling cannot use: '
            f"ᾱ_t must fall strictly from below 1 and stay above {TERMINAL_ALPHA_CUMPROD} until its last step (too "
            f"many timesteps for this schedule, or a table with equal or zero values); fix or remove the schedule",
            path,
        )


def _shown_schedule(schedule: Mapping) -> str:
    text = json.dumps(schedule, default=str) if isinstance(schedule, Mapping) else repr(schedule)
    return text if len(text) <= 120 else text[:120] + "..."


def describe_schedule(alphas_cumprod: torch.Tensor) -> dict:
    """The record of a ᾱ table: its name when a named schedule matches (to 1e-6), else the table itself."""
    alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
    for betas in SCHEDULE_BETAS:
        for zero in (False, True):
            spec = {"betas": betas, "timesteps": len(alphas_cumprod), "zero_terminal_snr": zero}
            if torch.allclose(schedule_alphas_cumprod(spec), alphas_cumprod, rtol=1e-6, atol=1e-9):
                return spec
    return {"alphas_cumprod": alphas_cumprod.tolist()}


# --- ControlNet ------------------------------------------------------------------------------------

CONTROLNET_PREFIXES = ("control_model.", "")   # original .pth / .safetensors files; ComfyUI-style stripped files


def load_controlnet(
    path: str | os.PathLike,
    *,
    family: Family | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    allow_pickle: bool = False,
) -> ControlNet:
    """A ControlNet from an original-layout file (``control_model.`` prefix or none), a diffusers
    ``ControlNetModel`` file or folder; the layout is told by the keys.

    Sizes come from the tensor shapes. Attention heads (not visible in shapes) come from, in
    order of precedence: the ``nodegraph.config`` metadata (``{"controlnet": {...}}``, which
    ``save_controlnet`` writes), the head count in a diffusers ``config.json`` beside the
    weights, and the family convention (SD 1.x 8 heads, SD 2.x / XL 64-wide heads) of
    ``family``, the metadata's ``"family"``, or the context width (768 / 1024 / 2048).
    """
    path = Path(path)
    config_json: dict = {}
    if path.is_dir():
        if (path / "config.json").is_file():
            config_json = _read_json(path / "config.json")
        tensors = _weights_in(path)
    else:
        tensors = open_state_dict(path, allow_pickle=allow_pickle)
        if (path.parent / "config.json").is_file():
            candidate = _read_json(path.parent / "config.json")
            if candidate.get("_class_name") == "ControlNetModel":
                config_json = candidate
    keys = tensors.shapes
    if "controlnet_cond_embedding.conv_in.weight" in keys:
        key_map = _convert(controlnet_from_diffusers, keys, "", tensors.path)
    else:
        prefix = next((p for p in CONTROLNET_PREFIXES if f"{p}input_hint_block.0.weight" in keys), None)
        if prefix is None:
            raise ModelLoadError(f"expected a ControlNet, found {describe_file_kind(keys)}", tensors.path)
        key_map = from_prefix(keys, prefix)
    shapes = {target: converted_shape(source, tensors.shapes[source.key]) for target, source in key_map.items()}
    override = parse_config_override(tensors.metadata, tensors.path)
    config = _detected("ControlNet", tensors.path, detect_controlnet_config, shapes)
    heads = config_json.get("num_attention_heads") or config_json.get("attention_head_dim")
    exact = (override.get("controlnet") or {}).get("unet") or {}
    family = family or override.get("family")
    if family is None:   # heads given explicitly (an int head count, or the metadata) need no family convention
        explicit = isinstance(heads, int) or "num_heads" in exact
        family = "sd1" if explicit else decide_family(config.unet, [], tensors.path, CHOOSE_FAMILY["controlnet"])
    config = detect_controlnet_config(shapes, family=family)
    if isinstance(heads, int) and family == "sd1":
        config = replace(config, unet=replace(config.unet, num_heads=heads, num_head_channels=-1))
    fields = override.get("controlnet") or {}
    unet = apply_fields(config.unet, fields.get("unet"), "ControlNet", tensors.path)
    config = apply_fields(replace(config, unet=unet), {k: v for k, v in fields.items() if k != "unet"},
                          "ControlNet", tensors.path)
    check_heads(config.unet, tensors.path)
    return build_module(ControlNet, config, key_map, tensors, what="ControlNet", dtype=dtype, device=device)


def save_controlnet(path: str | os.PathLike, net: ControlNet, *, family: Family | None = None,
                    dtype: torch.dtype | None = None, metadata: Mapping[str, str] | None = None) -> None:
    """Write a ControlNet in the original key layout (no prefix) with its exact config in the metadata."""
    from safetensors.torch import save_file

    tensors = {key: (t.detach().to("cpu").to(dtype) if dtype is not None and t.is_floating_point()
                     else t.detach().to("cpu")).contiguous() for key, t in net.state_dict().items()}
    config = asdict(net.config)
    override = {"controlnet": {**config, "unet": {k: v for k, v in config["unet"].items() if k != "prediction"}}}
    if family:
        override["family"] = family
    save_file(tensors, os.fspath(path), metadata={**(metadata or {}), METADATA_KEY: json.dumps(override)})
