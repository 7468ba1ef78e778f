"""What output nodes report, and turning a run's outputs into JSON (for the CLI, server and history).

The media result contract (part of the plugin API, docs/plugins.md "Output files"):
an output node that writes files returns them under the key `files`, a list of
file results, one per file::

    {"path": "output/cat_00001.png", "name": "cat_00001.png", "kind": "image",
     "mime": "image/png", "format": "png", "width": 64, "height": 64}

Main objects:

    FILE_KINDS      the kinds front ends render: image, video, audio, mesh, pointcloud, text, and file (any
                    other media: a download tile with name, size and MIME type)
    MIME_TYPES      known extensions → (kinds they may hold, default MIME type)
    OutputFile      the pydantic model of one file result (its JSON Schema: `results_schema()`)
    file_result     build a validated file result for a file inside the output folder
    collect_files   every file result of a run, validated, with the node id and index
    describe_file   one line per file for people (the CLI prints it)
    jsonable        any node output rendered JSON-ready (tensors become {type, shape, dtype})
    ResultFileError a file result broke the contract; names the node, the entry and the fix

Rules: `kind` is one of FILE_KINDS; `mime` is `type/subtype`; a known extension
must suit the kind (a `.mp4` is not an image); a `text` result's MIME type is text
(`audio/midi` shown as text was binary noise: such a file is kind `file`); with an
output folder given, the real path (symlinks resolved) must lie inside it and the
file must exist (a hand-made result naming a missing file became a 404 later). `nodegraph.api.save_files`
produces conforming entries; the executor checks every output node's `files`
with `collect_files` as soon as the node returns (a bad entry fails that node).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import NodegraphError

FileKind = Literal["image", "video", "audio", "mesh", "pointcloud", "text", "file"]
# "file" is the generic kind: any MIME type, shown as a download (name, size, MIME type) — how a plugin reports
# media no other kind renders (MIDI, a .safetensors it trained, a zip) without a kind of its own
FILE_KINDS: tuple[str, ...] = ("image", "video", "audio", "mesh", "pointcloud", "text", "file")

#: MIME types of kind "text" besides text/*: what a front end may show as text
TEXT_MIMES = frozenset({"application/json", "application/x-subrip", "application/xml", "application/yaml",
                        "application/x-yaml", "application/x-ndjson", "application/javascript", "application/toml"})

#: extension (lower case, with the dot) → (kinds a file of that type may be reported as, default MIME type)
MIME_TYPES: dict[str, tuple[tuple[str, ...], str]] = {
    ".png": (("image",), "image/png"),
    ".jpg": (("image",), "image/jpeg"),
    ".jpeg": (("image",), "image/jpeg"),
    ".webp": (("image", "video"), "image/webp"),      # animated WebP is a video
    ".gif": (("image", "video"), "image/gif"),        # animated GIF is a video
    ".bmp": (("image",), "image/bmp"),
    ".tif": (("image",), "image/tiff"),
    ".tiff": (("image",), "image/tiff"),
    ".mp4": (("video",), "video/mp4"),
    ".webm": (("video", "audio"), "video/webm"),
    ".mov": (("video",), "video/quicktime"),
    ".mkv": (("video",), "video/x-matroska"),
    ".wav": (("audio",), "audio/wav"),
    ".flac": (("audio",), "audio/flac"),
    ".ogg": (("audio",), "audio/ogg"),
    ".opus": (("audio",), "audio/ogg"),
    ".mp3": (("audio",), "audio/mpeg"),
    ".m4a": (("audio",), "audio/mp4"),
    ".glb": (("mesh", "pointcloud"), "model/gltf-binary"),
    ".gltf": (("mesh", "pointcloud"), "model/gltf+json"),
    ".obj": (("mesh",), "model/obj"),
    ".stl": (("mesh",), "model/stl"),
    ".off": (("mesh",), "model/off"),
    ".ply": (("mesh", "pointcloud"), "model/ply"),
    ".pcd": (("pointcloud",), "application/x-pcd"),
    ".xyz": (("pointcloud",), "text/plain"),
    ".txt": (("text",), "text/plain"),
    ".md": (("text",), "text/markdown"),
    ".json": (("text",), "application/json"),
    ".csv": (("text",), "text/csv"),
    ".srt": (("text",), "application/x-subrip"),
    ".vtt": (("text",), "text/vtt"),
}

_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


class ResultFileError(NodegraphError, ValueError):
    """A file result broke the output-file contract; names the node, the entry and the fix."""

    def __init__(self, message: str, node_id: str | None = None, index: int | None = None):
        self.node_id = node_id
        self.index = index
        where = f"node {node_id!r}, files[{index}]: " if node_id is not None else ""
        super().__init__(where + message)


class OutputFile(BaseModel):
    """One file an output node wrote: where it is, what kind of media it is, and how to show it."""

    model_config = ConfigDict(extra="forbid", title="OutputFile")

    path: str = Field(min_length=1, description="the file as written, inside the session's output folder")
    name: str | None = Field(None, min_length=1,
                             description="path relative to the output folder, '/'-separated; "
                                         "the server's file id is 'output/<name>'")
    kind: FileKind = Field(description="how front ends render it: image, video, audio, mesh, pointcloud, text, "
                                       "or file (any other media: a download)")
    mime: str = Field(description="MIME type, e.g. image/png, video/mp4, audio/wav, model/gltf-binary")
    format: str | None = Field(None, pattern=r"^[a-z0-9]+$", description="file format: the extension without its dot")
    width: int | None = Field(None, ge=1, description="pixels (image, video)")
    height: int | None = Field(None, ge=1, description="pixels (image, video)")
    frames: int | None = Field(None, ge=1, description="frame count (video, animated image)")
    fps: float | None = Field(None, gt=0, description="frames per second (video)")
    duration: float | None = Field(None, ge=0, description="seconds (video, audio)")
    sample_rate: int | None = Field(None, ge=1, description="samples per second (audio)")
    channels: int | None = Field(None, ge=1, description="audio channels")
    points: int | None = Field(None, ge=0, description="point count (pointcloud)")
    vertices: int | None = Field(None, ge=0, description="vertex count (mesh)")
    faces: int | None = Field(None, ge=0, description="face count (mesh)")
    info: dict[str, Any] | None = Field(None, description="anything else, JSON-able")

    @model_validator(mode="after")
    def _consistent(self) -> OutputFile:
        if not _MIME.match(self.mime):
            raise ValueError(f"mime {self.mime!r} is not a MIME type; use type/subtype such as 'video/mp4'")
        extension = os.path.splitext(self.path)[1].lower()
        known = MIME_TYPES.get(extension)
        if known is not None and self.kind not in known[0]:
            raise ValueError(f"a {extension} file cannot be reported as kind {self.kind!r}; "
                             f"it is {' or '.join(known[0])} (or save it with a suffix that suits {self.kind!r})")
        media = ("image", "video", "audio", "model", "text")
        said, usual = self.mime.split("/")[0], (known[1].split("/")[0] if known is not None else None)
        if usual is not None and said != usual and said in media and usual in media:
            raise ValueError(f"mime {self.mime!r} does not fit a {extension} file ({known[1]}): front ends would "
                             f"show it as the wrong media; leave mime out (it follows the extension) or save with "
                             f"a suffix that suits {self.mime!r}")
        if self.kind == "text" and not is_text_mime(self.mime):
            raise ValueError(f"kind 'text' shows the file as text, but mime {self.mime!r} is not text (binary bytes "
                             f"would be shown as characters); report it as kind 'file' (a download) or as the kind "
                             f"of that media")
        if self.name is not None and (self.name.startswith("/") or ".." in self.name.split("/")):
            raise ValueError(f"name {self.name!r} must be relative to the output folder, without '..'")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field that is set."""
        return self.model_dump(exclude_none=True)


def results_schema() -> dict[str, Any]:
    """JSON Schema of an output node's `files` list (for docs/protocol.md and other front ends)."""
    item = OutputFile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "nodegraph output files",
        "description": "What an output node returns under the key 'files': one entry per file it wrote.",
        "type": "array",
        "items": {"$ref": "#/$defs/OutputFile"},
        "$defs": {"OutputFile": item},
    }


def is_text_mime(mime: str) -> bool:
    """Whether a front end may show a file of MIME type `mime` as text: text/*, JSON, XML, YAML, subtitles."""
    mime = mime.split(";")[0].strip().lower()
    return mime.startswith("text/") or mime in TEXT_MIMES or mime.endswith(("+json", "+xml"))


def unknown_kind_message(kind: Any) -> str:
    """The error for a kind no front end knows: the kinds, and `file` for any other media."""
    return (f"kind {kind!r} is not a result kind; use one of {', '.join(FILE_KINDS)}: kind 'file' reports any other "
            f"media (any mime, shown as a download with its name, size and MIME type); put details under 'info'")


def default_mime(suffix: str) -> str | None:
    """The MIME type nodegraph knows for a file extension (with its dot), or None."""
    known = MIME_TYPES.get(suffix.lower())
    return known[1] if known else None


def _relative_name(path: str | os.PathLike, output_dir: str | os.PathLike) -> str:
    """`path` relative to the real output folder, '/'-separated; ResultFileError if it lies outside."""
    root = os.path.realpath(output_dir)
    real = os.path.realpath(path)
    if real == root or not real.startswith(root.rstrip(os.sep) + os.sep):
        raise ResultFileError(f"the file {os.fspath(path)!r} is not inside the output folder "
                              f"{os.fspath(output_dir)!r}; write output files with nodegraph.api.save_files")
    return Path(os.path.relpath(real, root)).as_posix()


def file_result(path: str | os.PathLike, output_dir: str | os.PathLike, kind: str, mime: str | None = None,
                **fields: Any) -> dict[str, Any]:
    """A validated file result for a file inside `output_dir` (`name`, `format` and a default `mime` filled in)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    mime = mime or default_mime(suffix)
    if mime is None:
        raise ResultFileError(f"nodegraph does not know the MIME type of {suffix or 'extension-less'!r} files; "
                              f"pass mime='type/subtype'")
    entry = {"path": os.fspath(path), "name": _relative_name(path, output_dir), "kind": kind, "mime": mime,
             "format": suffix.lstrip(".") or None, **fields}
    return validate_file(entry)


def validate_file(entry: Any, node_id: str | None = None, index: int | None = None) -> dict[str, Any]:
    """Check one file result against the contract; returns its JSON form or raises ResultFileError."""
    if not isinstance(entry, dict):
        raise ResultFileError(f"expected a dict like {{'path', 'kind', 'mime'}}, found {type(entry).__name__}",
                              node_id, index)
    try:
        return OutputFile.model_validate(entry).to_dict()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: "
            + ("not a field of the contract; put extra data under 'info'" if e["type"] == "extra_forbidden"
               else unknown_kind_message(entry.get("kind")) if e["loc"] == ("kind",) and e["type"] == "literal_error"
               else e["msg"]) for e in exc.errors())
        kinds = ", ".join(FILE_KINDS)
        raise ResultFileError(f"{problems} (kinds: {kinds}; see docs/plugins.md 'Output files')",
                              node_id, index) from None


def describe_file(entry: dict[str, Any]) -> str:
    """One line for people: kind, path, MIME type and the size fields that are set (what the CLI prints)."""
    details = [entry["mime"]]
    if entry.get("width") and entry.get("height"):
        details.append(f"{entry['width']}×{entry['height']}")
    for key, unit in (("frames", " frames"), ("fps", " fps"), ("duration", " s"), ("sample_rate", " Hz"),
                      ("points", " points"), ("vertices", " vertices"), ("faces", " faces")):
        if entry.get(key) is not None:
            if entry[key] == 1 and unit.endswith("s") and key in ("frames", "points", "vertices", "faces"):
                unit = unit[:-1]        # "1 frame", not "1 frames"
            details.append(f"{_plain(entry[key])}{unit}" if isinstance(entry[key], float) else f"{entry[key]}{unit}")
    return f"{entry['kind']} {entry['path']} ({', '.join(details)})"


def _plain(value: float) -> str:
    """A float for people: at most 4 decimals, no exponent ("8", "8.3333", "0.0001"; never "6.3e-05")."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "< 0.0001" if text in ("0", "-0") and value > 0 else text


def collect_files(outputs: dict[str, dict[str, Any]],
                  output_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every file result output nodes reported, validated, each with `node_id` and `index` added.

    With `output_dir`, each file must lie inside it (symlinks resolved) and `name`
    is recomputed from the path. Raises ResultFileError naming the node and entry.
    """
    found = []
    for node_id, values in outputs.items():
        files = values.get("files") if isinstance(values, dict) else None
        if files is None:
            continue
        if not isinstance(files, list):
            raise ResultFileError(f"'files' must be a list of file results, found {type(files).__name__}", node_id)
        for index, item in enumerate(files):
            entry = validate_file(item, node_id, index)
            if output_dir is not None:
                try:
                    entry["name"] = _relative_name(entry["path"], output_dir)
                except ResultFileError as exc:
                    raise ResultFileError(str(exc), node_id, index) from None
                if not os.path.isfile(entry["path"]):
                    raise ResultFileError(f"the file {entry['path']!r} does not exist (or is not a file): a result "
                                          f"names a file the node has written; write it before returning it (e.g. "
                                          f"with nodegraph.api.save_files)", node_id, index)
            found.append({**entry, "node_id": node_id, "index": index})
    return found


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-ready rendering of a node output (large values summarised, never serialised whole)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 16:
        return repr(value)[:200]
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value[:1000]]
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in list(value.items())[:1000]}
    shape = getattr(value, "shape", None)
    if shape is not None:
        return {"type": type(value).__name__, "shape": list(shape), "dtype": str(getattr(value, "dtype", ""))}
    if hasattr(value, "size") and hasattr(value, "mode"):   # PIL image
        return {"type": "Image", "size": list(value.size), "mode": value.mode}
    return repr(value)[:200]
