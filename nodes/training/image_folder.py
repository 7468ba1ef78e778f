"""A dataset over a folder of the user's own captioned images.

Layout: any tree of images, each with a caption in a same-stem ``.txt`` file beside it
(``cats/tabby.png`` + ``cats/tabby.txt``), the convention of most LoRA trainers. Files are
found recursively and ordered by their path relative to the root, so the order is the
same on every machine. The scan never follows a symlinked folder, and a file whose real
path (symlinks resolved) is outside the root is left out and counted, so a dataset only
ever reads what is inside its folder.

Unusable files never stop a run: images that cannot be decoded, images without a
caption file and images whose caption is empty are left out and counted in an
``ImageFolderReport``. Every image is decoded once while scanning, so a corrupt file is
found then, not halfway through training.

Main objects: ``ImageFolderDataset`` (``dataset[i] -> (image (3, S, S) float in [-1, 1],
caption)``; ``dataset.report``), ``ImageFolderReport``, ``load_square_image`` (resize the
shorter side to S, centre-crop), ``IMAGE_EXTENSIONS``, ``DatasetError(ValueError)``,
``folder_fingerprint`` (what the node's cache key reads: every file's path, size and time).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "DatasetError", "ImageFolderDataset", "ImageFolderReport", "folder_fingerprint",
           "load_square_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class DatasetError(ValueError):
    """An argument that makes the dataset unusable (missing root, bad size, nothing usable).

    ``argument`` names it ("root", "size", "index"); ``reason`` is the message without that name
    (what a node shows under its own input name); str() is "argument: reason".
    """

    def __init__(self, argument: str, reason: str):
        super().__init__(f"{argument}: {reason}")
        self.argument, self.reason = argument, reason


@dataclass
class ImageFolderReport:
    """What the scan of a folder found.

    Attributes:
        root: the scanned folder.
        used: images with a decodable file and a non-empty caption, in dataset order.
        corrupt: images that could not be decoded (path -> error message).
        missing_caption: images without a same-stem ``.txt`` file.
        empty_caption: images whose ``.txt`` file is empty or whitespace.
        outside_root: images (or their captions) that are symlinks leading outside the root.
        unreadable_caption: images whose caption is not UTF-8 text (path -> what is wrong).
    """

    root: Path
    used: list[Path] = field(default_factory=list)
    corrupt: dict[Path, str] = field(default_factory=dict)
    missing_caption: list[Path] = field(default_factory=list)
    empty_caption: list[Path] = field(default_factory=list)
    outside_root: list[Path] = field(default_factory=list)
    unreadable_caption: dict[Path, str] = field(default_factory=dict)
    default_captioned: int = 0     # used images that took the default caption (no or an empty caption file)
    linked_folders: list[Path] = field(default_factory=list)    # folder links: not entered (they may lead out)

    @property
    def skipped(self) -> int:
        """Number of images left out, for any reason."""
        return (len(self.corrupt) + len(self.missing_caption) + len(self.empty_caption) + len(self.outside_root)
                + len(self.unreadable_caption))

    def summary(self) -> str:
        """One line for logs: ``12 images used, 3 skipped (1 corrupt, 1 missing caption, 1 empty caption)``."""
        return (
            f"{len(self.used)} image{'s' if len(self.used) != 1 else ''} used, {self.skipped} skipped "
            f"({len(self.corrupt)} corrupt, "
            f"{len(self.missing_caption)} missing caption, {len(self.empty_caption)} empty caption"
            + (f", {len(self.unreadable_caption)} caption not UTF-8" if self.unreadable_caption else "")
            + (f", {len(self.outside_root)} outside the folder" if self.outside_root else "") + ")"
            + (f"; {len(self.linked_folders)} linked folder(s) not entered" if self.linked_folders else "")
            + (f"; {self.default_captioned} with the default caption" if self.default_captioned else "")
        )

    def skipped_files(self, limit: int = 10) -> list[str]:
        """The skipped images by name (relative to the folder) with why, the first `limit` of them."""
        def name(path: Path) -> str:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                return path.name

        rows = ([f"{name(p)} (cannot be decoded: {why})" for p, why in self.corrupt.items()]
                + [f"{name(p)} (no caption: add {name(p.with_suffix('.txt'))}, or set default_caption)"
                   for p in self.missing_caption]
                + [f"{name(p)} (its caption is empty)" for p in self.empty_caption]
                + [f"{name(p)} (caption {why})" for p, why in self.unreadable_caption.items()]
                + [f"{name(p)} (a symbolic link leading out of the folder)" for p in self.outside_root])
        return rows[:limit] + ([f"... and {len(rows) - limit} more"] if len(rows) > limit else [])


def folder_fingerprint(root: str | Path) -> str:
    """A digest of every file under `root` (relative path, size, modification time, inode), walked as the
    scan walks it: adding, removing, renaming or rewriting an image or a caption changes it."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    root = Path(root)
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = Path(folder) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\0"
                          f"{stat.st_ctime_ns}\0{stat.st_ino}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def load_square_image(path: Path, size: int) -> np.ndarray:
    """Decode an image file -> uint8 (size, size, 3): EXIF rotation applied, transparency
    composited on white, shorter side resized to ``size`` (bicubic, antialiased), centre-cropped."""
    from PIL import Image, ImageOps

    from nodegraph.files import eight_bit, image_opacity

    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    if image.mode == "P" and isinstance(image.info.get("transparency"), bytes):
        # a palette's alpha table, read as LoadImage reads it (one longer than the palette made convert("RGBA")
        # raise "palette index out of range")
        alpha = image_opacity(image)[..., None]
        colours = np.asarray(eight_bit(image).convert("RGB"), dtype=np.float32)
        image = Image.fromarray(np.round(colours * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8))
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        flat = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(flat, image)
    image = eight_bit(image).convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    resized = (max(size, round(width * scale)), max(size, round(height * scale)))
    if resized[0] * resized[1] > MAX_ENLARGED_SQUARES * size * size:
        # a strip (5000×20 at size 2048 would be enlarged to 1 Gpixel, 4 GB, before the crop): resample only
        # the centre square of the source (the same picture, within rounding)
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        square = image.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0)
        return np.array(square, dtype=np.uint8)
    image = image.resize(resized, Image.BICUBIC, reducing_gap=3.0)
    left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
    return np.array(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


MAX_ENLARGED_SQUARES = 16   # images up to 16:1 are resized whole, then cropped (as always; results unchanged)


def _read_caption(path: Path) -> str:
    """The caption text: UTF-8 (a byte-order mark dropped); UnicodeDecodeError for other encodings."""
    return path.read_text(encoding="utf-8-sig").strip()


def _caption_path(path: Path) -> Path:
    """The same-stem caption of an image: ``NAME.txt``, else ``NAME.TXT`` (any case) beside it."""
    exact = path.with_suffix(".txt")
    if exact.is_file():
        return exact
    try:
        for entry in os.scandir(path.parent):
            candidate = Path(entry.path)
            if candidate.stem == path.stem and candidate.suffix.lower() == ".txt" and entry.is_file():
                return candidate
    except OSError:
        pass
    return exact


class ImageFolderDataset:
    """Images + same-stem ``.txt`` captions under ``root`` (recursive), as square tensors.

    Args:
        root: folder to scan.
        size: output side in px (shorter side resized to it, then centre-cropped).
        extensions: image file suffixes to consider (case-insensitive).
        shown_as: how error messages name the folder (default: its path).
        default_caption: the caption of an image without a caption file, or with an empty one (DreamBooth's
            instance prompt, "a photo of zorb"); empty: such images are skipped and counted.

    ``dataset[i]`` -> ``(image, caption)`` with image a float32 tensor (3, size, size) in
    [-1, 1]; ``dataset.example(i)`` gives uint8 (size, size, 3). ``dataset.report`` says what
    was used and skipped. Raises ``DatasetError`` if ``root`` is not a folder or nothing is usable.
    """

    def __init__(self, root: str | Path, size: int = 64, extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
                 shown_as: str | None = None, default_caption: str = ""):
        self.root = Path(root)
        self.default_caption = default_caption.strip()
        self._captions: dict[Path, str] = {}
        shown = shown_as or str(self.root)       # the node passes the name the user gave: no server path
        if not self.root.is_dir():
            raise DatasetError("root", f"expected a folder of images with .txt captions; {shown} is not a folder. "
                                       f"Fix: create it (or upload your images into it) and put a same-name .txt "
                                       f"caption beside each image, or name an existing folder")
        if size < 8:
            raise DatasetError("size", f"expected an image side of at least 8 px; found {size}. Fix: set 8 or more")
        self.size = int(size)
        self.report = self._scan(tuple(suffix.lower() for suffix in extensions))
        if not self.report.used:
            uncaptioned = self.report.missing_caption or self.report.empty_caption
            blank = (" (default_caption is blank: only spaces, so it captions nothing)"
                     if default_caption and not self.default_caption else "")
            or_default = (f", or set default_caption to the caption every uncaptioned image gets (e.g. 'a photo of "
                          f"zorb'){blank}" if uncaptioned else "")
            raise DatasetError("root", f"no usable image in {shown}: {self.report.summary()}. Fix: add images "
                                       f"({', '.join(IMAGE_EXTENSIONS)}) each with a non-empty caption in a same-name "
                                       f".txt file beside it (cats/tabby.png + cats/tabby.txt){or_default}")
        self.paths = list(self.report.used)
        self.captions = [self._captions[path] for path in self.paths]

    def _scan(self, extensions: tuple[str, ...]) -> ImageFolderReport:
        from PIL import Image

        report = ImageFolderReport(self.root)
        real_root = os.path.realpath(self.root)
        found = []
        for folder, folders, files in os.walk(self.root):     # never follows folder links: they are counted
            report.linked_folders += [Path(folder) / name for name in folders if (Path(folder) / name).is_symlink()]
            found += [Path(folder) / name for name in files if Path(name).suffix.lower() in extensions]
        candidates = sorted((path for path in found if path.is_file()),
                            key=lambda path: path.relative_to(self.root).as_posix())
        for path in candidates:
            caption_path = _caption_path(path)
            if not all(os.path.realpath(p).startswith(real_root + os.sep) for p in (path, caption_path)):
                report.outside_root.append(path)
                continue
            has_file = caption_path.is_file()
            if not has_file and not self.default_caption:
                report.missing_caption.append(path)
                continue
            try:
                caption = _read_caption(caption_path) if has_file else ""
            except UnicodeDecodeError:
                report.unreadable_caption[path] = "is not UTF-8 text: save it as UTF-8"
                continue
            except OSError as error:
                report.unreadable_caption[path] = f"cannot be read: {error.strerror or type(error).__name__}"
                continue
            took_default = not caption and bool(self.default_caption)
            caption = caption or self.default_caption
            if not caption:
                report.empty_caption.append(path)
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # big, but under the limit
                    with Image.open(path) as image:
                        image.load()
            except Exception as error:  # noqa: BLE001 -- PIL raises OSError, SyntaxError, ValueError, ... for broken files
                # PIL's messages hold the file's absolute path ("cannot identify image file '/srv/…'"): the
                # report names files relative to the dataset folder, never where the server keeps it
                why = str(error).replace(str(path), path.name).replace(str(self.root), "")
                report.corrupt[path] = f"{type(error).__name__}: {why}"
                continue
            report.used.append(path)
            self._captions[path] = caption
            report.default_captioned += took_default
        return report

    def __len__(self) -> int:
        return len(self.paths)

    def example(self, index: int) -> tuple[np.ndarray, str]:
        """Item ``index`` as (uint8 (size, size, 3), caption)."""
        path = self.paths[index]
        try:
            image = load_square_image(path, self.size)
        except Exception as error:
            raise DatasetError("index", f"image {index} ({path}) decoded during the scan but not now ({error}); was "
                                        f"it changed? Fix: run the dataset node again so it scans the folder anew") \
                from error
        return image, self.captions[index]

    def __getitem__(self, index: int):
        import torch

        image, caption = self.example(index)
        return torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0, caption  # (3, S, S)
