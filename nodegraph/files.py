"""Input and output files the server exposes: uploads in, results out, only by id.

A file id is `input/<name>` or `output/<relative path>`. `resolve` accepts an id
only if it names a regular file whose real path (symlinks resolved) lies inside
the matching folder, so `../`, absolute paths, encoded separators, NUL bytes
and symlinks pointing outside are all refused with `FileAccessError`.
Upload names are sanitised to a plain file name (letters, digits, `._-`) and
never overwrite: a numeric suffix is added instead.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from .errors import NodegraphError

_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 120
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}


class FileAccessError(NodegraphError):
    """A file id or upload was refused; the message says why."""


def sanitise_name(name: str) -> str:
    """A safe plain file name from a client-supplied one (directories and odd characters removed)."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _SAFE_CHARS.sub("_", base).lstrip("._")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = stem[: MAX_NAME - len(ext) - 1] or "upload"
    return f"{stem}.{ext}" if ext else stem


class FileStore:
    """The input folder (uploads) and output folder (results) of a server."""

    def __init__(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike):
        self.folders = {"input": Path(input_dir), "output": Path(output_dir)}

    def save_upload(self, name: str, data: bytes, kind: str = "image") -> str:
        """Check that `data` is an image, store it under a sanitised unique name; returns its file id."""
        if kind not in ("image", "mask"):
            raise FileAccessError(f"upload kind must be 'image' or 'mask', got {kind!r}")
        if not data:
            raise FileAccessError("the upload is empty; send the image bytes in the binary frame")
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
                fmt = image.format
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise FileAccessError(f"the upload {name!r} is not a readable image ({exc}); "
                                  f"send PNG, JPEG or WebP bytes") from None
        safe = sanitise_name(name)
        stem, _, ext = safe.rpartition(".") if "." in safe else (safe, "", "")
        if ("." + ext.lower()) not in IMAGE_FORMATS.values():
            ext = IMAGE_FORMATS.get(fmt or "", ".png").lstrip(".")
        folder = self.folders["input"]
        folder.mkdir(parents=True, exist_ok=True)
        candidate = folder / f"{stem}.{ext}"
        counter = 1
        while candidate.exists():
            candidate = folder / f"{stem}_{counter}.{ext}"
            counter += 1
        candidate.write_bytes(data)
        return f"input/{candidate.name}"

    def file_id(self, path: str | os.PathLike) -> str:
        """The id of a file inside the output folder (what output nodes report)."""
        real = Path(os.path.realpath(path))
        root = Path(os.path.realpath(self.folders["output"]))
        return f"output/{real.relative_to(root).as_posix()}"

    def resolve(self, file_id: str) -> Path:
        """The path behind a file id, or FileAccessError (never a path outside the folders)."""
        if not isinstance(file_id, str) or "\x00" in file_id or "\\" in file_id or "%" in file_id:
            raise FileAccessError(f"invalid file id {file_id!r}")
        kind, sep, rel = file_id.partition("/")
        if not sep or kind not in self.folders or not rel:
            raise FileAccessError(f"file id {file_id!r} must start with 'input/' or 'output/'")
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or any(p.startswith("/") for p in parts):
            raise FileAccessError(f"file id {file_id!r} must not leave its folder")
        root = Path(os.path.realpath(self.folders[kind]))
        real = Path(os.path.realpath(root / rel))
        if root not in real.parents:
            raise FileAccessError(f"file id {file_id!r} points outside the {kind} folder")
        if not real.is_file():
            raise FileAccessError(f"no file {file_id!r}")
        return real
