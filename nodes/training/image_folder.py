"""A dataset over a folder of the user's own captioned images.

Layout: any tree of images, each with a caption in a same-stem ``.txt`` file beside it
(``cats/tabby.png`` + ``cats/tabby.txt``), the convention of most LoRA trainers, or a ``.caption``
file (sd-scripts' default ``--caption_extension``; a ``.txt`` beside it wins, and a different text
in the two is reported). Files are found recursively and ordered by their path relative to the
root, so the order is the same on every machine.

kohya's folders are read as kohya reads them: an image inside a folder named ``N_name``
(``10_zorbchar/``) is drawn N times as often as one of a ``1_`` folder (``repeats``: a sampling
weight, never copies in memory), and ``name`` (the class token) captions an image of it that has
no caption. Images in no such folder have 1 repeat. kohya's regularisation folders (``reg/`` beside
``img/``, or a ``reg/`` holding ``N_name`` folders) are left out and reported: prior preservation
is not supported, and training them as instance images would teach the model the class images.

The scan never follows a symlinked folder, and a file whose real path (symlinks resolved) is
outside the root is left out and counted, so a dataset only ever reads what is inside its folder.

Unusable files never stop a run: images that cannot be decoded, images without a
caption file and images whose caption is empty are left out and counted in an
``ImageFolderReport``. Every image is decoded once while scanning, so a corrupt file is
found then, not halfway through training.

Main objects: ``ImageFolderDataset`` (``dataset[i] -> (image (3, S, S) float in [-1, 1],
caption)``; ``dataset.report``; ``dataset.repeats`` and ``dataset.item_folders`` per item),
``ImageFolderReport`` (its ``dataset_dirs`` is kohya's ``ss_dataset_dirs``), ``repeat_folder``
(``"10_zorbchar"`` -> ``(10, "zorbchar")``), ``load_square_image`` (resize the shorter side to S,
centre-crop), ``IMAGE_EXTENSIONS``, ``CAPTION_EXTENSIONS``, ``DatasetError(ValueError)``,
``folder_fingerprint`` (what the node's cache key reads: every file's path, size and time).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["CAPTION_EXTENSIONS", "IMAGE_EXTENSIONS", "DatasetError", "ImageFolderDataset", "ImageFolderReport",
           "folder_fingerprint", "load_square_image", "repeat_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CAPTION_EXTENSIONS = (".txt", ".caption")   # in order of preference: most trainers' .txt, then sd-scripts' default
REPEAT_FOLDER = re.compile(r"(\d+)_(.+)")   # kohya's "10_zorbchar": 10 repeats, class token "zorbchar"
REGULARISATION_FOLDERS = ("reg", "regularization", "regularisation")    # kohya_ss's project layout: img/ reg/


def repeat_folder(name: str) -> tuple[int, str] | None:
    """kohya's image-folder name ``N_name`` -> (N repeats, class token ``name``), as sd-scripts splits it
    (everything after the first underscore, so "10_sks dog" -> "sks dog"); None for a folder named otherwise."""
    match = REPEAT_FOLDER.fullmatch(name)
    return (int(match.group(1)), match.group(2).strip()) if match else None


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
        missing_caption: images without a same-stem ``.txt`` or ``.caption`` file (and no folder class token or
            default caption to take instead).
        empty_caption: images whose caption file is empty or whitespace.
        outside_root: images (or their captions) that are symlinks leading outside the root.
        unreadable_caption: images whose caption is not UTF-8 text (path -> what is wrong).
        no_repeats: images in a ``0_name`` folder (0 repeats: kohya never draws them).
        caption_files: image -> the caption file read for it (a ``.txt``, else a ``.caption``).
        caption_conflicts: images with both a ``.txt`` and a ``.caption`` of different text (the ``.txt`` is used).
        dataset_dirs: kohya's ``ss_dataset_dirs``: each folder of used images -> {"n_repeats", "img_count"}, keyed
            by the ``N_name`` folder (its path under the root) or, for images in none, by the root's own name.
        regularisation_folders: kohya regularisation folders (``reg/``) left out.
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
    no_repeats: list[Path] = field(default_factory=list)
    caption_files: dict[Path, Path] = field(default_factory=dict)
    caption_conflicts: list[Path] = field(default_factory=list)
    class_captioned: int = 0       # used images captioned by their N_name folder's class token
    dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)
    regularisation_folders: list[Path] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Number of images left out, for any reason."""
        return (len(self.corrupt) + len(self.missing_caption) + len(self.empty_caption) + len(self.outside_root)
                + len(self.unreadable_caption) + len(self.no_repeats))

    def summary(self) -> str:
        """One line for logs: ``12 images used, 3 skipped (1 corrupt, 1 missing caption, 1 empty caption)``; with
        kohya repeat folders the images, repeats and share of the draws of each (``12 images used (10_zorbchar: 8
        × 10 repeats, 91 % of draws; 2_stripes: 4 × 2 repeats, 9 % of draws), ...``)."""
        return (
            f"{len(self.used)} image{'s' if len(self.used) != 1 else ''} used{self.repeats_text()}, "
            f"{self.skipped} skipped ({len(self.corrupt)} corrupt, "
            f"{len(self.missing_caption)} missing caption, {len(self.empty_caption)} empty caption"
            + (f", {len(self.unreadable_caption)} caption not UTF-8" if self.unreadable_caption else "")
            + (f", {len(self.outside_root)} outside the folder" if self.outside_root else "")
            + (f", {len(self.no_repeats)} in a 0_ folder (0 repeats)" if self.no_repeats else "") + ")"
            + (f"; {len(self.linked_folders)} linked folder(s) not entered" if self.linked_folders else "")
            + (f"; {self.class_captioned} captioned by their folder's class token" if self.class_captioned else "")
            + (f"; {self.default_captioned} with the default caption" if self.default_captioned else "")
            + (f"; {len(self.regularisation_folders)} regularisation folder(s) left out"
               if self.regularisation_folders else "")
        )

    def repeats_text(self) -> str:
        """`` (10_zorbchar: 8 × 10 repeats, 91 % of draws; ...)`` when a kohya ``N_name`` folder gave images, else ""
        (a plain folder: every image is drawn alike, as before repeats were read)."""
        if not any(key != _loose_key(self.root) and repeat_folder(Path(key).name) for key in self.dataset_dirs):
            return ""
        draws = sum(row["img_count"] * row["n_repeats"] for row in self.dataset_dirs.values()) or 1
        return " (" + "; ".join(f"{key}: {row['img_count']} × {row['n_repeats']} repeat"
                                f"{'s' if row['n_repeats'] != 1 else ''}, "
                                f"{round(100 * row['img_count'] * row['n_repeats'] / draws)} % of draws"
                                for key, row in self.dataset_dirs.items()) + ")"

    def notes(self) -> list[str]:
        """What the scan chose on its own and a user should hear once (a node warns each): regularisation folders
        left out, and .txt captions used over a different .caption."""
        notes = []
        if self.regularisation_folders:
            names = ", ".join(self._name(path) + "/" for path in self.regularisation_folders)
            notes.append(f"{names}: kohya regularisation images (reg/ beside img/) are not supported and were left "
                         f"out, not trained as your images; choose the img folder (or one holding only your "
                         f"images) as the dataset folder")
        if self.caption_conflicts:
            first = self.caption_conflicts[0]
            notes.append(f"{len(self.caption_conflicts)} image(s) have both a .txt and a .caption file that differ; "
                         f"the .txt is used (e.g. {self._name(first.with_suffix('.txt'))} over "
                         f"{self._name(first.with_suffix('.caption'))}): delete the one you do not mean")
        return notes

    def _name(self, path: Path) -> str:
        """`path` relative to the scanned folder (never the server's absolute path), else its file name."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    def skipped_files(self, limit: int = 10) -> list[str]:
        """The skipped images by name (relative to the folder) with why, the first `limit` of them."""
        name = self._name

        def caption(path: Path) -> str:
            found = self.caption_files.get(path)
            return f"caption {name(found)}" if found else "caption"

        rows = ([f"{name(p)} (cannot be decoded: {why})" for p, why in self.corrupt.items()]
                + [f"{name(p)} (no caption: add {name(p.with_suffix('.txt'))} (or .caption), or set default_caption)"
                   for p in self.missing_caption]
                + [f"{name(p)} (its {caption(p)} is empty)" for p in self.empty_caption]
                + [f"{name(p)} ({caption(p)} {why})" for p, why in self.unreadable_caption.items()]
                + [f"{name(p)} (a symbolic link leading out of the folder)" for p in self.outside_root]
                + [f"{name(p)} (in a 0_ folder: 0 repeats, never drawn; rename the folder 1_...)"
                   for p in self.no_repeats])
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


def _loose_key(root: Path) -> str:
    """The report.dataset_dirs key of images in no ``N_name`` folder: the data folder's own name (its own name is
    never read as ``N_name``: kohya reads the folders inside its train_data_dir, and a root named "2024_trip"
    must not caption every uncaptioned image "trip")."""
    return root.name or "dataset"


def _same_caption(path: Path, text: str) -> bool:
    """Whether the caption file `path` reads as `text` (an unreadable one does not)."""
    try:
        return _read_caption(path) == text
    except (OSError, UnicodeDecodeError):
        return False


def _caption_index(folder: Path, files: list[str]) -> dict[tuple[Path, str, str], Path]:
    """The caption files among one folder's `files`: (folder, stem, ".txt" or ".caption") -> file, any case of the
    extension (``NAME.TXT``), the lower-case one first when both are there. Built once per folder while walking
    (a look-up per image scanned the folder again for each image without a caption: quadratic)."""
    index: dict[tuple[Path, str, str], Path] = {}
    for name in sorted(files, key=lambda name: (Path(name).suffix != Path(name).suffix.lower(), name)):
        suffix = Path(name).suffix.lower()
        if suffix in CAPTION_EXTENSIONS:
            index.setdefault((folder, Path(name).stem, suffix), folder / name)
    return index


def _regularisation_folders(folder: Path, subfolders: list[str]) -> list[str]:
    """The kohya regularisation folders among `folder`'s `subfolders`: a ``reg`` (``regularization``, any case)
    beside an ``img``, or one holding ``N_name`` folders (kohya_ss's project: img/10_zorb, reg/1_person)."""
    beside_img = "img" in {name.lower() for name in subfolders}
    found = []
    for name in subfolders:
        if name.lower() not in REGULARISATION_FOLDERS:
            continue
        try:
            with os.scandir(folder / name) as entries:
                holds_repeats = any(entry.is_dir(follow_symlinks=False) and repeat_folder(entry.name)
                                    for entry in entries)
        except OSError:
            holds_repeats = False
        if beside_img or holds_repeats:
            found.append(name)
    return found


class ImageFolderDataset:
    """Images + same-stem ``.txt`` (or ``.caption``) captions under ``root`` (recursive), as square tensors.

    Args:
        root: folder to scan.
        size: output side in px (shorter side resized to it, then centre-cropped).
        extensions: image file suffixes to consider (case-insensitive).
        shown_as: how error messages name the folder (default: its path).
        default_caption: the caption of an image without a caption file, or with an empty one, outside a kohya
            ``N_name`` folder (whose class token captions it instead) — DreamBooth's instance prompt, "a photo
            of zorb"; empty: such images are skipped and counted.

    ``dataset[i]`` -> ``(image, caption)`` with image a float32 tensor (3, size, size) in
    [-1, 1]; ``dataset.example(i)`` gives uint8 (size, size, 3). ``dataset.repeats[i]`` is how often item i
    is drawn relative to the others (its ``N_name`` folder's N, else 1) and ``dataset.item_folders[i]`` the
    folder it counts under (``report.dataset_dirs``'s key). ``dataset.report`` says what was used and
    skipped. Raises ``DatasetError`` if ``root`` is not a folder or nothing is usable.
    """

    def __init__(self, root: str | Path, size: int = 64, extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
                 shown_as: str | None = None, default_caption: str = ""):
        self.root = Path(root)
        self.default_caption = default_caption.strip()
        self._captions: dict[Path, str] = {}
        self._folders: dict[Path, tuple[str, int]] = {}      # image -> (its report.dataset_dirs key, repeats)
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
                                       f".txt (or .caption) file beside it (cats/tabby.png + cats/tabby.txt)"
                                       f"{or_default}")
        self.paths = list(self.report.used)
        self.captions = [self._captions[path] for path in self.paths]
        self.item_folders = [self._folders[path][0] for path in self.paths]
        self.repeats = [self._folders[path][1] for path in self.paths]

    def _repeat_folder_of(self, path: Path) -> tuple[str, int, str]:
        """(report.dataset_dirs key, repeats, class token) of the image `path`: its nearest enclosing ``N_name``
        folder under the root (the folder's path there: "10_zorbchar"), else (the root's name, 1, "") — the root's
        own name is not read (``_loose_key``)."""
        parts = path.parent.relative_to(self.root).parts
        for end in range(len(parts), 0, -1):
            parsed = repeat_folder(parts[end - 1])
            if parsed is not None:
                return "/".join(parts[:end]), parsed[0], parsed[1]
        return _loose_key(self.root), 1, ""

    def _scan(self, extensions: tuple[str, ...]) -> ImageFolderReport:
        from PIL import Image

        report = ImageFolderReport(self.root)
        real_root = os.path.realpath(self.root)
        found = []
        caption_files: dict[tuple[Path, str, str], Path] = {}
        for folder, folders, files in os.walk(self.root):     # never follows folder links: they are counted
            report.linked_folders += [Path(folder) / name for name in folders if (Path(folder) / name).is_symlink()]
            left_out = _regularisation_folders(Path(folder), folders)
            report.regularisation_folders += [Path(folder) / name for name in sorted(left_out)]
            folders[:] = [name for name in folders if name not in left_out]     # os.walk does not enter them
            found += [Path(folder) / name for name in files if Path(name).suffix.lower() in extensions]
            caption_files.update(_caption_index(Path(folder), files))
        candidates = sorted((path for path in found if path.is_file()),
                            key=lambda path: path.relative_to(self.root).as_posix())
        for path in candidates:
            text_file, caption_file = (caption_files.get((path.parent, path.stem, suffix))
                                       for suffix in CAPTION_EXTENSIONS)
            caption_path = text_file or caption_file
            sidecars = [sidecar for sidecar in (text_file, caption_file) if sidecar is not None]
            if not all(os.path.realpath(p).startswith(real_root + os.sep) for p in (path, *sidecars)):
                report.outside_root.append(path)
                continue
            folder_key, repeats, class_token = self._repeat_folder_of(path)
            if repeats == 0:
                report.no_repeats.append(path)
                continue
            fallback = class_token or self.default_caption
            if caption_path is None and not fallback:
                report.missing_caption.append(path)
                continue
            if caption_path is not None:
                report.caption_files[path] = caption_path
            try:
                caption = _read_caption(caption_path) if caption_path is not None else ""
            except UnicodeDecodeError:
                report.unreadable_caption[path] = "is not UTF-8 text: save it as UTF-8"
                continue
            except OSError as error:
                report.unreadable_caption[path] = f"cannot be read: {error.strerror or type(error).__name__}"
                continue
            if text_file is not None and caption_file is not None and not _same_caption(caption_file, caption):
                report.caption_conflicts.append(path)
            took_class = not caption and bool(class_token)
            took_default = not caption and not class_token and bool(self.default_caption)
            caption = caption or fallback
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
            self._folders[path] = (folder_key, repeats)
            report.class_captioned += took_class
            report.default_captioned += took_default
            row = report.dataset_dirs.setdefault(folder_key, {"n_repeats": repeats, "img_count": 0})
            row["img_count"] += 1
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
