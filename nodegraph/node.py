"""Node declaration: how a node says what it takes, what it gives, and what it is.

A node is a class. Its inputs are a pydantic model (`Inputs`), its outputs a
tuple of `Output`, and a few class attributes describe it::

    class Add(Node):
        '''Add two numbers.'''
        category = "math"
        version = "1.0.0"

        class Inputs(NodeInputs):
            a: float = Input(0.0, ge=-1e9, le=1e9, step=0.5)
            b: float = Input(0.0)

        outputs = (Output("sum", "FLOAT"),)

        def run(self, a: float, b: float):
            return {"sum": a + b}

Inputs
    Declared with `Input(default, **constraints)`; the Python annotation gives
    the port type for primitives (int → INT, float → FLOAT, str → STRING,
    bool → BOOLEAN, `Literal[...]` → choices of that type); any other value names
    its port type explicitly: `latent: Any = Input(port="LATENT")`. Inputs with no
    default are required. Widgets and constraints: ranges (`ge`/`le`) with
    `step`, `multiline=True`, `seed=True`, `model_folder="checkpoints"` (a file
    name chosen from a model folder), `lazy=True` (the node asks for it only if
    it needs it — see `Node.lazy_inputs_needed`). Any input may be fed by a link
    or, when its port type has a JSON literal form, written as a literal.

Outputs
    `run` returns a dict keyed by output name (or a tuple in declared order, or
    a bare value for a single output). An output node (`output_node = True`)
    may return extra keys: they are its recorded result (`result.outputs`).

Flags
    `output_node` (a sink with side effects; what runs are asked for),
    `deterministic = False` (never cached; downstream keys change each run),
    `shared_cache = True` (its output depends only on files every user may load — a model
    loader —, so users of a server share it; every other node's cache entries are the user's own).

Main objects: `Node`, `NodeInputs`, `Input`, `Output`, `InputSpec`,
`NodeContext` (what a running node may call: progress, interruption, folders).
The executor reads only the derived `spec` (a `NodeSpec`), built once per class.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
import math
import re
import threading
import types as pytypes
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .errors import PluginError
from .files import UPLOAD_KINDS, model_file_stamp

_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
_PRIMITIVE_PORTS = {bool: "BOOLEAN", int: "INT", float: "FLOAT", str: "STRING"}
SEED_MAX = 2**64 - 1


_BASEMODEL_MEMBERS = frozenset(name for name in dir(BaseModel) if not name.startswith("_"))


if typing.TYPE_CHECKING:     # type checkers cannot use `type(BaseModel)` as a base: they need the class by name
    from pydantic._internal._model_construction import ModelMetaclass as _ModelMetaclass
else:
    _ModelMetaclass = type(BaseModel)     # pydantic's model metaclass, without importing its private module


class _InputsMeta(_ModelMetaclass):
    """Names the input when an input named like a member of pydantic's BaseModel breaks the class: `model_config`
    failed with "'FieldInfo' object is not iterable", `model_dump` with a protected-namespace error. Names that
    pydantic takes with a warning only (`json`, `copy`, `schema`, ...) keep working, as they always have."""

    def __new__(mcs, name: str, bases: tuple, namespace: dict[str, Any], **kwargs: Any) -> Any:
        if not any(isinstance(base, _InputsMeta) for base in bases):
            return super().__new__(mcs, name, bases, namespace, **kwargs)
        declared = set(namespace.get("__annotations__", {})) | {
            key for key, value in namespace.items() if isinstance(value, FieldInfo)}
        taken = sorted(declared & _BASEMODEL_MEMBERS)
        where = namespace.get("__qualname__", name)
        if "model_config" in declared:
            raise TypeError(_reserved_input(where, ["model_config"]))
        unannotated = sorted(key for key, value in namespace.items()
                             if isinstance(value, FieldInfo) and key not in namespace.get("__annotations__", {}))
        if unannotated:       # pydantic's own error named neither the node nor our fix, over several lines
            first = unannotated[0]
            default = namespace[first].default
            hint = type(default).__name__ if isinstance(default, (bool, int, float, str)) else "Any"
            raise TypeError(f"{where}: input(s) {', '.join(map(repr, unannotated))} need a type annotation; write "
                            f"e.g. `{first}: {hint} = Input(...)` (a port type: `{first}: Any = Input(port='IMAGE')`)")
        try:
            return super().__new__(mcs, name, bases, namespace, **kwargs)
        except (TypeError, ValueError, NameError) as exc:
            if taken:
                raise TypeError(_reserved_input(where, taken)) from exc
            raise


def _reserved_input(where: str, taken: list[str]) -> str:
    other = taken[0].removeprefix("model_") if taken[0].startswith("model_") else f"{taken[0]}_value"
    return (f"{where}: input name(s) {', '.join(map(repr, taken))} are reserved (members of pydantic's BaseModel, "
            f"which every Inputs class is); rename the input, e.g. {other!r}")


class NodeInputs(BaseModel, metaclass=_InputsMeta):
    """Base class of every node's `Inputs` model (arbitrary types allowed for tensors)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")


def Input(  # noqa: N802 — reads like a field declaration, as pydantic's Field does
    default: Any = PydanticUndefined,
    *,
    port: str | None = None,
    description: str = "",
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    multiple_of: int | None = None,
    step: float | None = None,
    multiline: bool = False,
    seed: bool = False,
    model_folder: str | None = None,
    lazy: bool = False,
    min_length: int | None = None,
    max_length: int | None = None,
    upload: str | None = None,
    choices_from: str | None = None,
    file_name_in: str | None = None,
    subfolders: bool = False,
    file_suffix: str | None = None,
    **unknown: Any,
) -> Any:
    """Declare a node input (a pydantic `Field` carrying nodegraph's widget metadata).

    Args:
        default: the value used when the graph gives neither literal nor link;
            leave it out to make the input required.
        port: the port type name; inferred from the annotation for primitives.
        description: shown in the editor and docs.
        ge, le: inclusive numeric range; gt, lt: exclusive bounds.
        multiple_of: the number must be a multiple of this (e.g. 8 for image sizes).
        step: the editor's increment (defaults to multiple_of).
        multiline: a text area rather than a one-line field.
        seed: an integer seed (0 … 2**64-1) with the editor's randomise control.
        model_folder: the value is a file name inside this model folder
            (`checkpoints`, `vae`, `loras`, ...); validated against the files present.
        lazy: evaluated only if `Node.lazy_inputs_needed` asks for it.
        min_length, max_length: string length bounds.
        upload: the value names a file in the input folder that the editor can
            upload: "image" or "mask" (checked to decode as an image), or "audio",
            "video", "mesh", "pointcloud" (checked to be a format the loaders read:
            files.MEDIA_FORMATS); the editor shows an upload button and a preview
            (an image, an audio or video player, the file name for 3D files).
        choices_from: the valid values are the names registered under this
            extension kind by plugins (e.g. "samplers", "schedules"); checked at
            validation and listed in the node's schema.
        file_name_in: the value names a file (or a file-name prefix) in this folder
            ("output", "input", ...; `upload` implies "input"): validation applies
            `nodegraph.paths.check_name` to a literal, so a name that would leave its
            folder is refused before the run starts; the node still calls `confine`.
        subfolders: with `file_name_in`, "/"-separated subfolders are allowed.
        file_suffix: with `file_name_in`, the name must end in this (".safetensors"), checked
            at validation too, so a training graph does not learn for an hour and then fail to save.
    """
    if unknown:
        raise TypeError(_unknown_input_keywords(unknown))
    if seed:
        ge = 0 if ge is None else ge
        le = SEED_MAX if le is None else le
    if step is None and multiple_of is not None:
        step = multiple_of
    extra = {
        "port": port,
        "step": step,
        "multiline": multiline,
        "seed": seed,
        "model_folder": model_folder,
        "lazy": lazy,
        "upload": upload,
        "choices_from": choices_from,
        "file_name_in": file_name_in,
        "subfolders": subfolders,
        "file_suffix": file_suffix,
    }
    return Field(
        default,
        description=description or None,
        ge=ge,
        le=le,
        gt=gt,
        lt=lt,
        multiple_of=multiple_of,
        min_length=min_length,
        max_length=max_length,
        json_schema_extra={"x-nodegraph": extra},
    )


# ComfyUI's INPUT_TYPES options → what a nodegraph Input says instead ("Porting a ComfyUI node" in docs/plugins.md)
_COMFYUI_KEYWORDS = {
    "min": "ge= (the smallest value allowed)", "max": "le= (the largest value allowed)",
    "tooltip": "description=", "default": "the first argument, Input(default, ...)",
    "display": "nothing: a number with ge= and le= gets a slider in the editor",
    "round": "multiple_of= (or nothing: the value is kept as given)",
    "forceInput": "port= with a non-primitive annotation, or link the input (there is no widget switch)",
    "image_upload": 'upload="image"', "dynamicPrompts": "nothing (no prompt syntax is expanded)",
}


def _unknown_input_keywords(unknown: dict[str, Any]) -> str:
    """The TypeError text for keywords Input() does not take, with ComfyUI's names mapped to ours."""
    names = ", ".join(sorted(unknown))
    mapped = [f"{name} → {_COMFYUI_KEYWORDS[name]}" for name in sorted(unknown) if name in _COMFYUI_KEYWORDS]
    close = [f"{name} → {match[0]}=" for name in sorted(unknown) if name not in _COMFYUI_KEYWORDS
             and (match := difflib.get_close_matches(name, list(inspect.signature(Input).parameters), n=1))]
    hints = "; ".join(mapped + close)
    return (f"Input() got unexpected keyword argument(s) {names}" + (f" ({hints})" if hints else "")
            + "; its keywords are listed in docs/plugins.md, section 1")


@dataclass(frozen=True)
class Output:
    """A named, typed output port."""

    name: str
    port: str
    description: str = ""


@dataclass(frozen=True)
class InputSpec:
    """Everything the engine knows about one declared input (derived from `Inputs`)."""

    name: str
    port: str
    required: bool
    default: Any
    lazy: bool
    description: str
    choices: tuple | None
    choices_from: str | None
    model_folder: str | None
    widget: dict[str, Any]
    adapter: TypeAdapter | None = field(repr=False, compare=False)  # None: link-only port
    file_name_in: str | None = None     # the folder a literal file name must stay in (checked at validation)
    subfolders: bool = False            # ... with "/"-separated subfolders
    file_suffix: str | None = None      # ... ending in this

    def as_literal(self, value: Any) -> Any:
        """A literal as the node receives it: a whole float written into an INT input (20.0, as Python's
        json.dumps and many tools write it) is that integer, as JSON Schema's "integer" reads it (up to 2**53,
        where floats stop being exact); anything else is left as written, for validation to judge."""
        if self.port == "INT" and type(value) is float and value.is_integer() and abs(value) < 2 ** 53:
            return int(value)
        return value

    def to_dict(self, field_schema: dict) -> dict[str, Any]:
        out = {
            "port": self.port,
            "required": self.required,
            "lazy": self.lazy,
            "description": self.description,
            "schema": field_schema,
            "widget": self.widget,
        }
        if not self.required:
            out["default"] = self.default
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.model_folder is not None:
            out["model_folder"] = self.model_folder
        return out


@dataclass(frozen=True)
class NodeSpec:
    """The derived, engine-facing description of a node class."""

    type: str
    version: str
    category: str
    display_name: str
    description: str
    output_node: bool
    deterministic: bool
    inputs: dict[str, InputSpec]
    outputs: tuple[Output, ...]
    output_index: dict[str, int]

    @functools.cached_property
    def seed_inputs(self) -> tuple[str, ...]:
        """The inputs declared `seed=True` (a run's history lists their values), in declaration order."""
        return tuple(name for name, spec in self.inputs.items() if spec.widget.get("seed"))

    def to_json_schema(self, node_class: type[Node]) -> dict[str, Any]:
        """The node's public schema: what the editor and docs are generated from."""
        model_schema = node_class.Inputs.model_json_schema()
        properties = model_schema.get("properties", {})
        return {
            "type": self.type,
            "version": self.version,
            "category": self.category,
            "display_name": self.display_name,
            "description": self.description,
            "output_node": self.output_node,
            "deterministic": self.deterministic,
            "inputs": {name: spec.to_dict(_strip_extra(properties.get(name, {})))
                       for name, spec in self.inputs.items()},
            "outputs": [{"name": o.name, "port": o.port, "description": o.description}
                        for o in self.outputs],
            "input_schema": model_schema,
        }


def _strip_extra(schema: dict) -> dict:
    return {k: v for k, v in schema.items() if k != "x-nodegraph"}


def _step_count(name: str, value: Any) -> int:
    """A progress `value`/`total` as an int: whole numbers of any numeric type; else TypeError/ValueError."""
    if isinstance(value, bool) or not hasattr(value, "__index__") and not isinstance(value, float):
        raise TypeError(f"progress {name} must be a whole number, got {type(value).__name__}; "
                        f"call context.progress(step, total) with ints")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"progress {name} must be a whole number, got {value!r}; round it (or report "
                         f"steps, not fractions)")
    number = int(value)
    if number < 0:
        raise ValueError(f"progress {name} must be 0 or more, got {number}")
    return number


def _checked_preview(preview: Any) -> Any:
    """A progress preview as the contract says (PIL image, or (H, W, C) / (B, H, W, C) with C in 1, 3, 4)."""
    if preview is None or type(preview).__module__.startswith("PIL."):
        return preview
    shape = tuple(getattr(preview, "shape", ()) or ())
    if len(shape) == 4 and shape[0] >= 1:      # a batch: the first image is shown
        shape = shape[1:]
    if len(shape) != 3 or shape[-1] not in (1, 3, 4) or min(shape[:2]) < 1:
        found = f"shape {tuple(getattr(preview, 'shape', ()))}" if hasattr(preview, "shape") \
            else type(preview).__name__
        raise TypeError(f"a progress preview must be a PIL image or an (H, W, C) image / (B, H, W, C) batch with "
                        f"C of 1, 3 or 4, values in [0, 1], got {found}")
    return preview


def _checked_info(info: Any, limit: int) -> dict | None:
    """A progress `info` that every client can decode: a dict of plain JSON, at most `limit` characters.

    numpy/torch scalars become Python numbers and NaN/±inf become null (a diverging loss is reported, not
    an error here: JSON has no NaN, and a browser's parser refuses it); anything else is a TypeError."""
    if info is None:
        return None
    if not isinstance(info, dict):
        raise TypeError(f"progress info must be a dict (e.g. {{'loss': 0.1}}), got {type(info).__name__}")
    import json

    plain = _plain_json(info, depth=0)
    text = json.dumps(plain)
    if len(text) > limit:
        raise ValueError(f"progress info is {len(text)} characters as JSON (at most {limit}); send a few "
                         f"numbers, not data")
    return plain


def _plain_json(value: Any, depth: int) -> Any:
    if depth > 8:
        raise ValueError("progress info is nested more than 8 levels deep; send a few numbers, not data")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): _plain_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v, depth + 1) for v in value]
    shape = getattr(value, "shape", None)       # a numpy or torch scalar, or a one-element array/tensor
    if shape is not None and callable(getattr(value, "item", None)) and math.prod(shape) == 1:
        return _plain_json(value.item(), depth + 1)
    raise TypeError(f"progress info must be plain JSON (str, numbers, bool, None, lists and dicts), got "
                    f"{type(value).__name__}; convert it first (e.g. float(x), x.tolist())")


class NodeContext:
    """What a running node may use: progress, interruption, folders, services.

    The executor makes one per node execution. Nodes call `progress(i, n)`
    inside long loops; it also checks for interruption. `warn(text)` tells the
    user something about a result that is not an error (words a model never
    learnt, a size it was not trained at). `run_id` and `graph` (the Graph
    being run, e.g. to embed in a saved image) describe the run; `drawn` holds what
    the run's non-deterministic nodes gave so far (`graph_as_run()` pins them in).
    """

    __slots__ = ("node_id", "node_type", "run_id", "graph", "_emit_progress", "_check_interrupted", "services",
                 "_emit_warning", "_warned", "drawn")

    MAX_WARNINGS = 20            # per node execution; more are dropped
    MAX_WARNING_CHARS = 1000

    def __init__(self, node_id: str, node_type: str,
                 emit_progress: Callable[[str, int, int, Any, dict | None], None],
                 check_interrupted: Callable[[str], None],
                 services: dict[str, Any], run_id: str = "", graph: Any = None,
                 emit_warning: Callable[[str, str], None] | None = None, drawn: dict | None = None):
        self.drawn = drawn if drawn is not None else {}
        self.node_id = node_id
        self.node_type = node_type
        self.run_id = run_id
        self.graph = graph
        self._emit_progress = emit_progress
        self._check_interrupted = check_interrupted
        self.services = services
        self._emit_warning = emit_warning
        self._warned = 0

    def graph_as_run(self) -> dict | None:
        """The running graph as a file (dict) with the values its non-deterministic nodes drew so far in place
        of their links (a RandomInt's seed): what a saved image embeds, so running it again repeats it. An
        integer written into a FLOAT input is embedded as a float (`cfg: 5` as `5.0`,
        `provenance.float_literals_as_floats`): the same graph read back through jq, which writes `5.0` as `5`,
        embeds the same text again, so its files repeat byte for byte."""
        if self.graph is None:
            return None
        from .graph import pin_values
        from .provenance import float_literals_as_floats

        registry = (self.services or {}).get("registry")
        pinned = pin_values(self.graph.to_dict(), self.drawn, registry.takes_literal if registry is not None else None)
        return float_literals_as_floats(pinned, registry)

    MAX_INFO_CHARS = 4096        # `info` of one progress report, as JSON

    def progress(self, value: int, total: int, preview: Any = None, info: dict | None = None) -> None:
        """Report step `value` of `total`, optionally with a preview image and small JSON-able `info`
        (e.g. a training loss); may raise RunInterrupted.

        `value` and `total` are whole numbers (numpy and torch scalars are taken); `preview` is a PIL
        image or an (H, W, C) array or tensor / (B, H, W, C) batch (the first is shown) in [0, 1] with C of
        1, 3 or 4; `info` a dict of JSON values (numpy/torch scalars are converted, NaN/inf sent as null)
        in at most MAX_INFO_CHARS. Anything else raises TypeError/ValueError naming the fix, so a plugin's
        mistake fails its node instead of every client's event stream."""
        self._check_interrupted(self.node_id)
        self._emit_progress(self.node_id, _step_count("value", value), _step_count("total", total),
                            _checked_preview(preview), _checked_info(info, self.MAX_INFO_CHARS))

    def check_interrupted(self) -> None:
        """Raise RunInterrupted if the session was asked to stop."""
        self._check_interrupted(self.node_id)

    def warn(self, message: str) -> None:
        """Tell the user something about this node's result that is not an error: it becomes a `node_warning`
        event (the CLI prints it, the editor shows it) and an entry of `RunResult.warnings`. Plain text, at
        most MAX_WARNING_CHARS; after MAX_WARNINGS in one execution the rest are dropped. A result served
        from the cache gives its warnings again (and those of the nodes it came from), marked cached."""
        self._warned += 1
        if self._warned > self.MAX_WARNINGS:
            return
        text = str(message)
        text = text if len(text) <= self.MAX_WARNING_CHARS else text[: self.MAX_WARNING_CHARS - 1] + "…"
        if self._emit_warning is None:
            logging.getLogger("nodegraph").warning("node %s (%s): %s", self.node_id, self.node_type, text)
        else:
            self._emit_warning(self.node_id, text)

    def service(self, name: str) -> Any:
        """A session service by name (`"output_dir"`, `"input_dir"`, `"model_paths"`, ...)."""
        try:
            return self.services[name]
        except KeyError:
            raise KeyError(f"no session service {name!r}; available: {sorted(self.services)}") from None


class Node:
    """Base class of every node. Subclasses declare `Inputs`, `outputs` and `run`."""

    type: ClassVar[str] = ""            # default: the class name
    version: ClassVar[str] = "1.0.0"    # semver; part of every cache key
    category: ClassVar[str] = "misc"    # slash-separated path in the editor's palette
    display_name: ClassVar[str] = ""    # default: the type split into words
    description: ClassVar[str] = ""     # default: the class docstring
    output_node: ClassVar[bool] = False
    deterministic: ClassVar[bool] = True
    shared_cache: ClassVar[bool] = False     # see "Flags" above: model loaders set it
    #: old input name → its name now, for inputs a new version renamed: saved graphs that still write the
    #: old name load with the new one (docs/plugins.md, "Versioning")
    renamed_inputs: ClassVar[dict[str, str]] = {}
    Inputs: ClassVar[type[NodeInputs]] = NodeInputs
    outputs: ClassVar[tuple[Output, ...]] = ()
    spec: ClassVar[NodeSpec]
    spec_error: ClassVar[PluginError | None] = None     # set instead of `spec` only inside deferred_spec_errors()

    context: NodeContext

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type" not in cls.__dict__:
            cls.type = cls.__name__
        try:
            cls.spec = build_spec(cls)
            cls.spec_error = None
        except PluginError as exc:
            if not getattr(_SPEC_ERRORS, "deferred", False):
                raise
            cls.spec, cls.spec_error = None, exc      # the plugin loader names it with the plugin's other problems

    if typing.TYPE_CHECKING:
        # each node's run takes its own inputs by name (`def run(self, image, strength)`): declared without a
        # signature, so that type checkers (mypy: "incompatible with supertype") accept every such override
        run: Callable[..., Any]
    else:
        def run(self, **inputs: Any) -> Any:
            raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def lazy_inputs_needed(self, available: dict[str, Any]) -> list[str]:
        """Names of lazy inputs still needed, given the values evaluated so far.

        Called with every non-lazy input evaluated and the lazy ones evaluated so
        far; called again until it returns no new name. Default: all lazy inputs.
        """
        return [name for name, spec in self.spec.inputs.items() if spec.lazy and name not in available]

    @classmethod
    def check_literals(cls, literals: dict[str, Any],
                       list_model_files: Callable[[str], tuple[list[str], list[str]]]) -> dict[str, str]:
        """Checks of literal inputs beyond their declared type, made before the run starts (API 1.4).

        `literals`: the node's literal inputs, defaults included (linked inputs are absent);
        `list_model_files(folder)`: (file names available in a model folder, directories searched).
        Return {input name: what is wrong and how to fix it}; {} when all is well. Validation
        (`nodegraph validate`, a server's submit) and every run call it, so a bad name fails before
        an hour of sampling instead of after. Default: no checks. Override for what `model_folder`
        cannot say — an input that names a model file *or* a built-in (an upscaler, a vocoder).
        Keep it quick (no file reads beyond listings); an exception is logged and ignored.
        """
        return {}

    @classmethod
    def named_model_files(cls, literals: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        """Model files named *inside* other inputs' values, which no `model_folder` input declares (API 1.9):
        `(input name, model folder, candidate file names)` — the first candidate that exists is the file read;
        e.g. a prompt's `embedding:NAME` (EncodeText: "embeddings", NAME.safetensors / .pt / …). The default
        `fingerprint` adds their size and times (a file replaced under the same name runs the node again), and a
        run's provenance their SHA-256, as for `model_folder` inputs. `literals` as for `fingerprint`. Keep it to
        parsing the values (no file reads). Default: none."""
        return []

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Callable[[str, str], Any]) -> str | None:
        """A string that changes when an external resource the node reads changes.

        Default: size, modification and change time of every `model_folder` file input (given literally or
        by a primitive node linked to it; a model folder, a diffusers pipeline, by its files:
        `files.model_file_stamp`) and of the files `named_model_files` names — found as the loader finds them
        (`first_existing_file`: when `resolve_file` offers `list_model_files`, as `executor.ListingResolver`
        does, a name in another case finds the one file differing only in case, so replacing
        EasyNegative.safetensors re-runs a prompt writing `embedding:easynegative`).
        Override for nodes that read other files or services. Bytes, a number (a file's mtime, as ComfyUI's
        IS_CHANGED returns) or a tuple / list of those work too; None adds nothing (cached by the inputs alone);
        NaN runs the node every time (IS_CHANGED's "always changed"), and so does any other value or an
        exception (named in the log once: `executor._fingerprint_bytes`).
        """
        parts = []
        for name, spec in cls.spec.inputs.items():
            if spec.model_folder is not None and isinstance(literals.get(name), str):
                try:       # a file: size, mtime, ctime; a folder (a diffusers pipeline): its files' stamps
                    parts.append(f"{name}:{model_file_stamp(resolve_file(spec.model_folder, literals[name]))}")
                except (OSError, LookupError):
                    parts.append(f"{name}:missing")
        from .provenance import well_formed_named_files

        listing = getattr(resolve_file, "list_model_files", None)   # `executor.ListingResolver`: the cached listing
        for name, folder, candidates in well_formed_named_files(cls, literals):
            found = first_existing_file(resolve_file, folder, candidates, listing)
            if found is None:
                parts.append(f"{name}:{folder}:{candidates[:1]}:missing")
            else:
                stat = found[1].stat()
                parts.append(f"{name}:{folder}/{found[0]}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}")
        return "|".join(parts) or None


def first_existing_file(resolve_file: Callable[[str, str], Any], folder: str, candidates: tuple[str, ...],
                        list_model_files: Callable[[str], tuple[list[str], list[str]]] | None = None,
                        ) -> tuple[str, Any] | None:
    """(name, path) of the file a node reads for `candidates` (`Node.named_model_files`): the first that
    `resolve_file(folder, name)` finds, else — given `list_model_files` (folder → (file names, directories
    searched): `ModelPaths.list`, a cached listing) — the one listed file differing from a candidate only in
    case (`_file_in_another_case`); else None.

    The cache key (`Node.fingerprint`) and the run record (`provenance.model_files`) both ask this, so they name
    the file the loader reads."""
    for candidate in candidates:
        try:
            path = resolve_file(folder, candidate)
            path.stat()
        except (OSError, LookupError):
            continue
        return candidate, path
    if list_model_files is None:
        return None
    return _file_in_another_case(resolve_file, list_model_files, folder, candidates)


def _file_in_another_case(resolve_file: Callable[[str, str], Any],
                          list_model_files: Callable[[str], tuple[list[str], list[str]]], folder: str,
                          candidates: tuple[str, ...]) -> tuple[str, Any] | None:
    """(name, path) of the one file of `folder`'s listing whose name differs from a candidate only in case, else
    None.

    The loader reads `embedding:easynegative` from EasyNegative.safetensors (A1111 users type names in any case;
    `prompt_syntax.find_embedding_file`). Found in the listing, not by reading folders (a fingerprint runs per
    node per run); several such files are no answer (the loader refuses them too)."""
    by_folded: dict[str, list[str]] = {}
    for file in list_model_files(folder)[0]:
        by_folded.setdefault(file.lower(), []).append(file)
    for candidate in candidates:
        same = by_folded.get(candidate.lower(), [])
        if len(same) > 1:
            return None
        if same:
            try:
                return same[0], resolve_file(folder, same[0])
            except LookupError:
                return None
    return None


# Names the field writes as one word, which splitting at case changes would cut ("Load Lo RA").
_WHOLE_WORDS = {"Lo RA": "LoRA", "U Net": "UNet", "K Sampler": "KSampler", "Control Net": "ControlNet"}


def _split_words(name: str) -> str:
    """A type name as words for display: "VAEDecode" → "VAE Decode", "LoadLoRA" → "Load LoRA"."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    for split, whole in _WHOLE_WORDS.items():
        words = re.sub(rf"\b{split}\b", whole, words)
    return words


def _port_from_annotation(annotation: Any) -> tuple[str | None, tuple | None]:
    """Infer (port type, choices) from a Python annotation; (None, None) if not a primitive."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        kinds = {_PRIMITIVE_PORTS.get(type(c)) for c in choices}
        if len(kinds) == 1 and None not in kinds:
            return kinds.pop(), choices
        return None, None
    if origin in (typing.Union, pytypes.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _port_from_annotation(args[0])
        return None, None
    if origin is typing.Annotated:
        return _port_from_annotation(typing.get_args(annotation)[0])
    return _PRIMITIVE_PORTS.get(annotation), None


_SPEC_ERRORS = threading.local()


@contextmanager
def deferred_spec_errors() -> Iterator[None]:
    """While a plugin's module is imported: a node class with an invalid declaration (a non-semver version,
    an input without a port type, ...) is still created, with `spec` None and the error in `spec_error`, so
    that the plugin loader reports every bad class of the plugin in one failure instead of the first one only.
    Outside the block such a class raises PluginError where it is defined, as before."""
    previous = getattr(_SPEC_ERRORS, "deferred", False)
    _SPEC_ERRORS.deferred = True
    try:
        yield
    finally:
        _SPEC_ERRORS.deferred = previous


def build_spec(cls: type[Node]) -> NodeSpec:
    """Derive and check the `NodeSpec` of a node class; raises PluginError naming the fix."""
    where = f"node class {cls.__module__}.{cls.__qualname__}"
    problems: list[str] = []       # every problem of the declaration, so an author fixes them in one go
    if not isinstance(cls.type, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]*", cls.type):
        problems.append(f"type {cls.type!r} must be an identifier-like string")
    if not isinstance(cls.version, str) or not _SEMVER.match(cls.version):
        problems.append(f"version {cls.version!r} must be semver, e.g. '1.0.0'")
    if inspect.iscoroutinefunction(getattr(cls, "run", None)) or inspect.isasyncgenfunction(getattr(cls, "run", None)):
        problems.append("run is `async def`: the executor calls run() on its own thread and takes what it returns; "
                        "write a plain `def run` (call asyncio.run(...) inside it for async libraries)")
    inputs: dict[str, InputSpec] = {}
    if not (isinstance(cls.Inputs, type) and issubclass(cls.Inputs, NodeInputs)):
        problems.append("Inputs must subclass nodegraph.NodeInputs")
    else:
        for name, info in cls.Inputs.model_fields.items():
            try:
                inputs[name] = _input_spec(where, name, info)
            except PluginError as exc:
                problems.append(str(exc).removeprefix(f"{where}: "))
    comfy = [name for name in ("RETURN_TYPES", "FUNCTION", "INPUT_TYPES", "RETURN_NAMES") if hasattr(cls, name)]
    if comfy and not cls.outputs:          # ported from ComfyUI: loaded with no outputs, it failed at its first run
        problems.append(f"it declares ComfyUI's {', '.join(comfy)}, which nodegraph does not read: declare "
                        f"`outputs = (Output('name', 'TYPE'), ...)`, an `Inputs(NodeInputs)` class and a `run(self, "
                        f"...)` that returns {{'name': value}} (docs/plugins.md, 'Porting a ComfyUI node')")
    if isinstance(cls.outputs, Output):    # `outputs = Output(...)`: the tuple's comma forgotten
        problems.append(f"outputs must be a tuple of Output(...) objects; found one Output: write `outputs = "
                        f"({cls.outputs!r},)` (the comma makes the tuple)")
        outputs: tuple = ()
    else:
        try:
            outputs = tuple(cls.outputs)
        except TypeError:
            problems.append(f"outputs must be a tuple of Output(...) objects; found {type(cls.outputs).__name__}")
            outputs = ()
    seen = set()
    for out in outputs:
        if not isinstance(out, Output):
            problems.append(f"outputs must be Output(...) objects, got {out!r}")
        elif out.name in seen:
            problems.append(f"output name {out.name!r} is declared twice")
        else:
            seen.add(out.name)
    if problems:
        raise PluginError(f"{where}: " + "; ".join(problems))
    description = cls.__dict__.get("description") or inspect.cleandoc(cls.__doc__ or "")
    return NodeSpec(
        type=cls.type,
        version=cls.version,
        category=cls.category,
        display_name=cls.__dict__.get("display_name") or _split_words(cls.type),
        description=description,
        output_node=bool(cls.output_node),
        deterministic=bool(cls.deterministic),
        inputs=inputs,
        outputs=outputs,
        output_index={o.name: i for i, o in enumerate(outputs)},
    )


_PORTS_BY_WORD = (("mask", "MASK"), ("image", "IMAGE"), ("pixels", "IMAGE"), ("audio", "AUDIO"),
                  ("mesh", "MESH"), ("points", "POINT_CLOUD"), ("model", "MODEL"), ("vae", "VAE"),
                  ("clip", "TEXT_ENCODER"), ("cond", "CONDITIONING"), ("positive", "CONDITIONING"),
                  ("negative", "CONDITIONING"), ("sigmas", "SIGMAS"), ("noise", "NOISE"), ("sampler", "SAMPLER"),
                  ("guider", "GUIDER"), ("control", "CONTROL_NET"))


def _port_named_like(name: str) -> str:
    """The built-in port an input's name suggests (for the example in an error), LATENT by default."""
    lowered = name.lower()
    return next((port for word, port in _PORTS_BY_WORD if word in lowered), "LATENT")


def _input_spec(where: str, name: str, info: FieldInfo) -> InputSpec:
    extra = {}
    if isinstance(info.json_schema_extra, dict):
        extra = info.json_schema_extra.get("x-nodegraph", {}) or {}
    inferred_port, choices = _port_from_annotation(info.annotation)
    port = extra.get("port") or inferred_port
    if port is None and typing.get_origin(info.annotation) in (list, tuple, set, frozenset, dict):
        raise PluginError(      # Input(port='LATENT') was suggested for `list[float]`: lists are no literal inputs
            f"{where}: input {name!r} has annotation {info.annotation!r}: lists (and tuples, sets, dicts) are not "
            f"literal inputs. Take it from another node's output through a port type (register one with "
            f"register_types, e.g. PortType('FLOAT_LIST'), and write Input(port='FLOAT_LIST')), or take a string "
            f"(`{name}: str = Input('1.0, 2.0')`) and parse it in run()")
    if port is None:
        guess = _port_named_like(name)
        raise PluginError(
            f"{where}: input {name!r} has annotation {info.annotation!r}, which is not a "
            f"primitive; declare its port type: Input(port={guess!r})"
            + ("" if guess != "LATENT" or "latent" in name.lower() else " (or IMAGE, MASK, ...: the type it takes)")
        )
    upload = extra.get("upload")
    if upload is not None and upload not in UPLOAD_KINDS:
        raise PluginError(f"{where}: input {name!r} declares upload={upload!r}; the upload kinds are "
                          f"{', '.join(UPLOAD_KINDS)}")
    required = info.is_required()
    default = None if required else info.get_default(call_default_factory=True)
    literal_ok = port in _PRIMITIVE_PORTS.values() or inferred_port is not None
    adapter = None
    if literal_ok:
        annotated = typing.Annotated[info.annotation, info]
        adapter = TypeAdapter(annotated)
    widget = {k: v for k, v in extra.items()
              if k not in ("port", "lazy", "file_name_in", "subfolders", "file_suffix") and v not in (None, False)}
    if choices is not None or extra.get("choices_from"):
        widget["kind"] = "choice"
    elif extra.get("upload"):
        widget["kind"] = "upload"
    elif extra.get("model_folder"):
        widget["kind"] = "model_file"
    elif extra.get("seed"):
        widget["kind"] = "seed"
    elif port in ("INT", "FLOAT"):
        widget["kind"] = "number"
    elif port == "STRING":
        widget["kind"] = "text"
    elif port == "BOOLEAN":
        widget["kind"] = "toggle"
    else:
        widget["kind"] = "link"
    return InputSpec(
        name=name,
        port=port,
        required=required,
        default=default,
        lazy=bool(extra.get("lazy")),
        description=info.description or "",
        choices=choices,
        choices_from=extra.get("choices_from"),
        model_folder=extra.get("model_folder"),
        widget=widget,
        adapter=adapter,
        file_name_in=extra.get("file_name_in") or ("input" if extra.get("upload") else None),
        subfolders=bool(extra.get("subfolders")),
        file_suffix=extra.get("file_suffix"),
    )
