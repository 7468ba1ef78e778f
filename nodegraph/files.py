"""Input and output files the server exposes: uploads in, results out, only by id.

A file id is `input/<name>` or `output/<relative path>`. `resolve` accepts an id
only if it names a regular file whose real path (symlinks resolved) lies inside
the matching folder, so `../`, absolute paths, NUL bytes, backslashes and
symlinks pointing outside are all refused with `FileAccessError`. Ids are
plain text (the server percent-decodes a URL once before asking), so `%` is an
ordinary character in a name.
Upload names are sanitised to a plain file name (letters, digits, `._-`) and
never overwrite: a numeric suffix is added instead. An upload goes into the input folder, or into
a `subfolder` of it that it names (`FileStore.upload_folder`: "img/10_zorb", each folder checked by
the confinement rule, none hidden, at most MAX_UPLOAD_DEPTH deep; created, and counted in the quota
like any file there; at most MAX_UPLOAD_FOLDERS folders in all, and deleting a folder's last upload removes the
folders it leaves empty): how a remote user builds a training dataset. A `caption` upload is a caption
sidecar (NAME.txt / NAME.caption: UTF-8 text of at most MAX_CAPTION_BYTES). Any other upload has a
kind (`UPLOAD_KINDS`):
`image` and `mask` uploads must decode as an image of at most `MAX_UPLOAD_PIXELS` (a
60-byte PNG can declare 20000×20000: its header is read, not its pixels, before that
check); `audio`, `video`, `mesh` and `pointcloud` uploads must start like a file of one
of the formats the loaders read (`media_format`: the format's signature, or for OBJ
text with vertex lines) and are stored with that format's extension; the loader
node decodes them, and says what is wrong, when a graph runs. Any OS error while
resolving (a name too long for the file system, a permission error) is a
`FileAccessError`, never a traceback.

On a server with users, each user gets `FileStore.for_user(name)`: the same
ids (`input/x.png`, `output/...`), rooted in `input/<name>/` and
`output/<name>/`, so one user can neither name nor reach another's files.
`folder_bytes` measures what a store holds (for per-user quotas; None past MAX_COUNTED_FILES files and folders);
`list_files` lists it, newest first, in pages (what fills a quota, pruned runs' files included).
`remove_unfinished_files` deletes what a killed save or upload left half-written (the server, at start).

`content_fingerprint(path)` is what the loaders of input files key the cache by: the
file's bytes (hashed) when it is at most `HASHED_FILE_BYTES`, else size, modification
time and inode — so a file replaced by another of the same size and time is read again.
`model_file_stamp(path)` is what a `model_folder` input adds to its node's cache key: a file's size and
times, a folder's (a diffusers pipeline) `folder_fingerprint` — its files' names, sizes and times.

`append_record(path, line)` adds one line to a record log (`<graph>.outputs.jsonl`, `index.jsonl`): one
O_APPEND write, a symlink at the name refused, never followed.
`replace_file(path, text)` writes a small text file (a run summary, the users file) by
renaming a new file onto the name: a symlink planted at the name is replaced, never
followed, and a reader never sees half a file.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import tempfile
import threading
import unicodedata
from pathlib import Path
from typing import Any, Callable

from .errors import NodegraphError
from .paths import DEVICE_NAMES

_SAFE_CHARS = re.compile(r"[^\w.-]+")      # letters and digits of any script, '_', '.', '-'
MAX_NAME = 120                              # characters of a stored upload's name ...
MAX_NAME_BYTES = 200                        # ... and its UTF-8 bytes (file systems allow 255)
MAX_ID_LENGTH = 1024
MAX_UPLOAD_PIXELS = 64 * 1024 * 1024     # 8192 × 8192; larger uploads are refused, not decoded
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}
IMAGE_EXTENSIONS = {**{ext: fmt for fmt, ext in IMAGE_FORMATS.items()}, ".jpeg": "JPEG", ".tiff": "TIFF"}


HASHED_FILE_BYTES = 256 * 1024 * 1024
MAX_STAMPED_FILES = 10_000     # entries (files and folders) of one model folder stamped for a cache key; a
#                                diffusers pipeline holds ~20-60, so a walk past this is not a model's layout
MAX_STAMPED_DEPTH = 8          # folder levels below a model folder stamped (model_paths searches as deep)

UPLOAD_KINDS = ("image", "mask", "audio", "video", "mesh", "pointcloud")
CAPTION_KIND = "caption"       # an upload frame's kind for a training caption sidecar (not a widget's upload kind)
CAPTION_EXTENSIONS = ("txt", "caption")    # what ImageFolderDataset reads beside an image (NAME.txt, NAME.caption)
MAX_CAPTION_BYTES = 64 * 1024  # a caption is a line or a paragraph; kohya's are well under 1 KB
MAX_UPLOAD_DEPTH = 4           # folders of an upload's `subfolder` ("img/10_zorb" is 2; kohya needs at most 2)
# folders one input folder (a user's) may hold: a dataset has a few (kohya: one per concept), an ImageFolder one per
# class (ImageNet: 1,000); an upload and a delete per folder made a plain user 100 empty folders a second, uncharged
MAX_UPLOAD_FOLDERS = 10_000
# Per media kind, the formats its loaders read: extension → the format's name (what `media_format` reports).
MEDIA_FORMATS: dict[str, dict[str, str]] = {
    # a sound track in a video container too (an .m4a is MP4): LoadAudio reads it, and the Upload button refused it
    # (.weba: WebM audio, .avi: a RIFF AVI — LoadAudio / LoadVideo read them; the Upload button refused them)
    "audio": {".wav": "WAV", ".flac": "FLAC", ".ogg": "Ogg", ".opus": "Ogg", ".mp3": "MP3", ".m4a": "MP4",
              ".mp4": "MP4", ".mka": "Matroska", ".mkv": "Matroska", ".webm": "Matroska", ".weba": "Matroska",
              ".avi": "AVI"},
    "video": {".mp4": "MP4", ".m4v": "MP4", ".mov": "MP4", ".webm": "Matroska", ".mkv": "Matroska", ".gif": "GIF",
              ".webp": "WebP", ".avi": "AVI"},
    "mesh": {".glb": "glTF", ".ply": "PLY", ".obj": "OBJ"},
    "pointcloud": {".ply": "PLY", ".glb": "glTF", ".obj": "OBJ"},
}


def media_format(data: bytes) -> str | None:
    """The format a file's first bytes show (one of MEDIA_FORMATS' names), or None. Signatures only:
    the loader node decodes the file when a graph runs."""
    head = data[:64]
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"WEBP", b"AVI "):
        return {b"WAVE": "WAV", b"WEBP": "WebP", b"AVI ": "AVI"}[head[8:12]]
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:3] == b"ID3" or (len(head) > 2 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2
                              and head[2] >> 4 != 0xF and (head[2] >> 2) & 3 != 3):
        return "MP3"      # an ID3 tag, or an MPEG frame header: sync, layer III, a valid bitrate and sample rate
    if head[4:8] == b"ftyp":
        return "MP4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"glTF":
        return "glTF"
    if head[:4] == b"ply\n" or head[:5] == b"ply\r\n":
        return "PLY"
    head_text = data[:65536]
    try:
        text = head_text.decode("utf-8")
    except UnicodeDecodeError as exc:     # a character cut at the 64 KiB mark is no reason to refuse
        if len(head_text) < 65536 or exc.start < len(head_text) - 3:
            return None
        text = head_text[:exc.start].decode("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return "OBJ" if any(line.startswith("v ") for line in lines) else None


def eight_bit(image):
    """A PIL image whose `convert("RGB")` keeps its tones: 16-bit and 32-bit grey ("I;16", "I") scaled from
    0-65535, float grey ("F") from 0-1, to 8-bit "L"; any other mode unchanged. (Pillow's own conversion
    clips those values at 255, so a 16-bit grey PNG loaded as pure white.) A palette image with an alpha table
    (a PNG's tRNS read as bytes) comes without the table, its colours the same: Pillow's own conversion warns
    on stderr for every such file, and the alpha is read apart (`image_opacity`)."""
    if image.mode == "P" and isinstance(image.info.get("transparency"), bytes):
        colours = image.copy()          # one byte a pixel; the caller's image keeps its table
        del colours.info["transparency"]
        return colours
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        import numpy as np
        from PIL import Image

        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if image.mode == "F" else 255.0 / 65535.0
        return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), mode="L")
    return image


def stored_mode(opened: Any) -> str | None:
    """A just-opened (not yet loaded) PIL image's raw mode as the file stores it ("L;2", "1", "RGB;16B"), or None:
    what `image_opacity` needs to compare a PNG colour key with the pixels as Pillow loads them."""
    tile = getattr(opened, "tile", None)
    return tile[0][3] if tile and len(tile[0]) > 3 and isinstance(tile[0][3], str) else None


def _key_as_loaded(key: Any, stored: str | None) -> Any:
    """A PNG colour key (tRNS) in the values Pillow gives the pixels of an image stored as `stored` (its raw mode):
    1-, 2- and 4-bit grey are widened to 0..255 (a 2-bit key 3 is pixel 255) and 1-bit is a bool. 16-bit RGB is
    narrowed to 8 bits a channel, where the key no longer tells pixels apart (0xFFFF and 0xFF00 both read 255):
    None, no key — such an image is read as opaque (the browser, at 16 bits, honours it: a known difference).
    Other forms: the key as it is."""
    import re

    low = re.fullmatch(r"L;([124])", stored or "")
    if low and isinstance(key, int):
        depth = int(low.group(1))
        return key * 255 // (2 ** depth - 1)
    if stored == "1" and isinstance(key, int):
        return bool(key)
    if stored and stored.startswith("RGB;16"):
        return None
    return key


def _palette_alpha(pil: Any, table: bytes) -> Any:
    """A palette image's alpha as float32 (H, W) in [0, 1], from its alpha table (a PNG's tRNS): entry i is the
    alpha of palette colour i, colours past the table keep the palette's own alpha (opaque for a PNG). A table
    longer than the palette is a benign error to libpng and the browsers, which use only the palette's entries:
    so does this (Pillow's conversion to RGBA raised "palette index out of range" and LoadImage failed)."""
    import numpy as np

    rgba = pil.getpalette("RGBA") or []
    alphas = np.full(256, 255, dtype=np.uint8)               # a pixel past the palette: opaque, as Pillow reads it
    alphas[:len(rgba) // 4] = rgba[3::4]
    used = min(len(table), len(rgba) // 4, 256)
    alphas[:used] = np.frombuffer(table[:used], dtype=np.uint8)
    return alphas[np.asarray(pil)].astype(np.float32) / 255.0


def image_opacity(pil: Any, stored: str | None = None) -> Any:
    """An image's alpha as float32 (H, W) in [0, 1], or None when it has none (every pixel opaque).

    The alpha is an A band, or a PNG's colour key (its `transparency`, the tRNS chunk): a palette's alpha
    table, or one grey or RGB value that is fully transparent. A browser (the mask editor) and ComfyUI honour
    the key, so LoadImage must too, or the same file is "no mask" here and "mask the white" there. The key is
    compared at the pixels' own precision: a 16-bit grey key is a 16-bit value (Pillow's conversion to RGBA
    gets those wrong), and at 1, 2, 4 bits or 16-bit RGB as Pillow widened or narrowed the pixels (`stored`, the
    file's raw mode: `_key_as_loaded`). A palette's alpha table is read as libpng and browsers read it
    (`_palette_alpha`: entries past the palette are ignored)."""
    import numpy as np

    key = pil.info.get("transparency")
    if pil.mode == "P" and isinstance(key, bytes):
        return _palette_alpha(pil, key)
    if "A" in pil.getbands() or (key is not None and (pil.mode == "P" or not isinstance(key, (int, tuple)))):
        return np.asarray(pil.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
    if key is None:
        return None
    key = _key_as_loaded(key, stored)
    if key is None:
        return None
    values = np.asarray(pil)
    keyed = (values == np.asarray(key)).all(axis=-1) if values.ndim == 3 else values == key
    return (~keyed).astype(np.float32)


def amount_text(size: int) -> str:
    """Bytes as the users file's limits are written (binary units: `--max-bytes 2M` is 2 MiB)."""
    if size < 100 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 2**20:.2f} MiB" if size < 10 * 2**20 else f"{size / 2**20:.1f} MiB"     # 0.15, not 0.1


class OutputBudget:
    """Bytes a user's running runs may still write into their output folder: on a server with users, their
    `max_bytes` less what they store when the first of those runs starts (their limit was checked only before a
    run, and one run of a user with 2 MiB wrote 190 MB). `api.save_files` spends it per file written and refuses
    the file that passes it; the server's uploads and submits meanwhile take from it, deletions give back."""

    def __init__(self, limit: int, owner: str):
        self.left, self.owner, self._lock = int(limit), owner, threading.Lock()

    def spend(self, size: int) -> str | None:
        """Take `size` bytes; a message saying why not (nothing taken) when they are more than what is left."""
        with self._lock:
            if size > self.left:
                return (f"this file ({amount_text(size)}) would pass user {self.owner}'s storage limit "
                        f"({amount_text(max(self.left, 0))} left for this run's files); it was not kept. Free space "
                        f"(delete old runs with their files) or write smaller / fewer files")
            self.left -= size
            return None

    def take(self, size: int) -> None:
        """Take `size` bytes stored beside the runs (an upload, a submitted graph), even past what is left; a
        negative size gives back what was freed meanwhile (a file deleted)."""
        with self._lock:
            self.left -= size


def content_fingerprint(path: str | os.PathLike) -> str:
    """A text that changes when the file's content does (see the module map); "missing" when unreadable."""
    import hashlib

    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            if stat.st_size > HASHED_FILE_BYTES:
                return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"
            return hashlib.file_digest(handle, "blake2b").hexdigest()[:32]
    except OSError:
        return "missing"


def model_file_stamp(path: str | os.PathLike) -> str:
    """What a `model_folder` input's file adds to its node's cache key (`Node.fingerprint`): a file's size,
    modification and change time (ctime: the system sets it on any write, so new bytes whose mtime was put back
    are seen); a folder's `folder_fingerprint` — a diffusers pipeline's own times do not change when a weight
    file inside it is rewritten, so its stamp served results of the old weights; "missing" when unreadable."""
    try:
        info = os.stat(path)
    except OSError:
        return "missing"
    if stat.S_ISDIR(info.st_mode):
        return folder_fingerprint(path)
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A text that changes when a file a model folder holds does; "missing" when the folder cannot be listed.

    A blake2b over one line per file, in sorted "/"-separated names inside the folder: the name, size,
    modification and change time — the rule a single model file is keyed by, so a weight file rewritten in place
    (the system sets its ctime on any write, even when the mtime is put back), renamed, added or removed gives
    another stamp. No file is read: hashing the weights under HASHED_FILE_BYTES took ~0.5 s on every run (cached
    ones too) for an SD 1.5 fp16 pipeline, against a few hundred stat calls now. Hidden files and folders
    (download locks, `.cache/`) are left out, as the run record leaves them out. Links are followed (a Hugging
    Face snapshot links its files to blobs), each real folder once, so a link loop ends; a dangling link or an
    unreadable subfolder is a "missing" line. Bounded: at most MAX_STAMPED_FILES entries and MAX_STAMPED_DEPTH
    levels are walked, then one line says so and a change further in is not seen (no loader reads a model laid
    out so); a folder of 100,000 empty files took ~0.8 s (all listed and sorted, 10,000 stamped)."""
    import hashlib

    lines: list[str] = []
    if not _stamp_folder_files(Path(folder), "", lines, set(), [MAX_STAMPED_FILES], 0):
        return "missing"
    return hashlib.blake2b("\n".join(lines).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _stamp_folder_files(directory: Path, prefix: str, lines: list[str], visited: set[tuple[int, int]],
                        budget: list[int], depth: int) -> bool:
    """Append `folder_fingerprint`'s lines for `directory` (names after `prefix`); False when it cannot be
    listed. `visited`: (device, inode) of the folders walked; `budget`: entries left to walk."""
    try:
        info = directory.stat()
        entries = sorted((e for e in os.scandir(directory) if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        return False
    visited.add((info.st_dev, info.st_ino))
    for entry in entries:
        budget[0] -= 1
        if budget[0] < 0:
            if budget[0] == -1:
                lines.append(f"over {MAX_STAMPED_FILES} entries: the rest is not stamped")
            return True
        name = prefix + entry.name
        try:
            info = os.stat(entry.path)         # follows a link
        except OSError:
            lines.append(f"{name}\0missing")
            continue
        if stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) in visited:
                lines.append(f"{name}/\0walked already")          # a link back up (a loop) or to a sibling
            elif depth + 1 > MAX_STAMPED_DEPTH:
                lines.append(f"{name}/\0deeper than {MAX_STAMPED_DEPTH} levels: not stamped")
            elif not _stamp_folder_files(Path(entry.path), f"{name}/", lines, visited, budget, depth + 1):
                lines.append(f"{name}/\0missing")
        elif stat.S_ISREG(info.st_mode):
            lines.append(f"{name}\0{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}")
    return True


def replace_file(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    """Write `text` (UTF-8) to `path` through a new file in the same folder renamed onto it."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class UploadStorageError(OSError):
    """An upload that could not be written (disk full, read-only folder): the server's problem, not the file's."""


class FileAccessError(NodegraphError):
    """A file id or upload was refused; the message says why."""


class StorageQuotaError(NodegraphError):
    """An upload whose new bytes would pass its user's storage limit (`save_upload(check=)`); the message says so."""


def append_record(path: str | Path, line: str) -> None:
    """Append `line` and a newline to `path` (created if missing): one write on an O_APPEND file, so
    records of runs that finish together do not interleave; a symlink at `path` is refused (OSError),
    never followed."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view):]
    finally:
        os.close(handle)


def sanitise_name(name: str) -> str:
    """A safe plain file name from a client-supplied one (directories and odd characters removed)."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _SAFE_CHARS.sub("_", unicodedata.normalize("NFC", base)).lstrip("._")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = ext[:16]
    stem = stem[: MAX_NAME - len(ext) - 1]
    while len(stem.encode("utf-8")) + len(ext.encode("utf-8")) + 1 > MAX_NAME_BYTES:
        stem = stem[:-1]
    stem = stem or "upload"
    if stem.split(".")[0].strip().upper() in DEVICE_NAMES:     # CON, nul.png: device names on Windows
        stem = f"upload_{stem}"
    return f"{stem}.{ext}" if ext else stem


def claim_name(tmp: Path, target: Path) -> bool:
    """Put the finished file `tmp` at `target` unless that name exists (then False, `tmp` left as it is): a hard
    link, which fails when the name is taken, so two writers never share a name and no reader sees a half-written
    file under it; without hard links (some network or FAT file systems) the name is claimed with an exclusive
    create, then replaced. The caller removes `tmp`."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError:
        try:
            with open(target, "xb"):
                pass
        except FileExistsError:
            return False
        os.replace(tmp, target)
        return True


def _same_bytes(path: Path, data: bytes) -> bool:
    """Whether `path` is a regular file (not a link) that holds exactly `data`: read only when the size matches."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


# What a writer leaves when it is killed mid-write: a result being saved (`api.save_files`) and an upload being
# stored (`FileStore._store_upload`). Hidden from `list_files`, yet counted by `folder_bytes` (a user's quota).
UNFINISHED_FILE = re.compile(r"\.partial-[0-9a-f]{12}(\.[^/]*)?|\.upload-\d+-[0-9a-f]{12}\.tmp")


def count_folders(root: Path, limit: int) -> int:
    """How many folders `root` holds at any depth (links not followed), counted up to `limit` + 1 (then the walk
    stops: only "past the limit" matters)."""
    seen = 0
    for _dirpath, dirnames, _files in os.walk(root):
        seen += len(dirnames)
        if seen > limit:
            break
    return seen


def remove_empty_folders(folder: Path, root: Path) -> None:
    """Remove `folder` and then each parent of it while it is empty, stopping below `root` (never `root` itself)
    or at the first folder that holds anything (`rmdir` refuses a folder that is not empty, so a file another
    upload wrote meanwhile keeps its folder)."""
    while root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def remove_unfinished_files(*folders: str | os.PathLike) -> tuple[int, int]:
    """Delete the half-written files (`UNFINISHED_FILE`) under `folders`; returns (files removed, their bytes).
    Only safe while no writer can be at work: the server calls it at start, holding the data folder's lock
    (kill -9 or a SIGTERM during a long save left 38 MB files that only a name the user could not list freed).
    Links are neither followed nor removed."""
    count, size = 0, 0
    for folder in folders:
        for dirpath, _dirnames, files in os.walk(folder):
            for name in files:
                if not UNFINISHED_FILE.fullmatch(name):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    info = os.lstat(path)
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    os.unlink(path)
                except OSError:       # gone already, or not ours to remove: left as it is
                    continue
                count, size = count + 1, size + info.st_size
    return count, size


def _caption_extension(name: str, data: bytes) -> str:
    """The extension a caption upload is stored with (its own when .txt or .caption, else txt), or FileAccessError
    unless `data` is a caption ImageFolderDataset reads: UTF-8 text (a byte-order mark allowed) of at most
    MAX_CAPTION_BYTES, without NUL."""
    if len(data) > MAX_CAPTION_BYTES:
        raise FileAccessError(f"the caption upload {name!r} holds {len(data)} bytes; a caption is at most "
                              f"{MAX_CAPTION_BYTES} bytes (a line or a paragraph of text)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileAccessError(f"the caption upload {name!r} is not UTF-8 text (byte {exc.start} is not); save it as "
                              f"UTF-8, which ImageFolderDataset reads") from None
    if "\0" in text:
        raise FileAccessError(f"the caption upload {name!r} holds a NUL character: it is not text")
    safe = sanitise_name(name)
    ext = safe.rpartition(".")[2].lower() if "." in safe else ""
    return ext if ext in CAPTION_EXTENSIONS else CAPTION_EXTENSIONS[0]


class FileStore:
    """The input folder (uploads) and output folder (results) of a server."""

    def __init__(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike):
        self.folders = {"input": Path(input_dir), "output": Path(output_dir)}

    def for_user(self, name: str) -> FileStore:
        """The store of one user: `input/<name>/` and `output/<name>/` (name checked by users.py)."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise FileAccessError(f"invalid user folder name {name!r}")
        return FileStore(self.folders["input"] / name, self.folders["output"] / name)

    MAX_COUNTED_FILES = 100_000     # a quota walk stops here (its time is the server's): see `folder_bytes`

    def folder_bytes(self, which: str | None = None, limit_entries: int | None = None) -> int | None:
        """Bytes of the files in both folders, or in `which` ("input", "output") alone (symlinks not followed);
        None when there are more than `limit_entries` (MAX_COUNTED_FILES) entries, files and folders — not counted
        to the end, so a quota must not take the part counted for the whole (102,400 small files hid 130 MB of
        runs). Folders count as entries: empty ones cost no bytes, yet each is an inode and slows every walk."""
        limit = self.MAX_COUNTED_FILES if limit_entries is None else limit_entries
        total, seen = 0, 0
        for name, folder in self.folders.items():
            if which is not None and name != which:
                continue
            for dirpath, dirnames, files in os.walk(folder):
                seen += len(dirnames)
                if seen > limit:
                    return None
                for file in files:
                    seen += 1
                    if seen > limit:
                        return None
                    try:
                        total += os.lstat(os.path.join(dirpath, file)).st_size
                    except OSError:
                        continue
        return total

    MAX_LISTED_FILES = 1000       # files one `list_files` page holds

    def list_files(self, which: str | None = None, offset: int = 0,
                   limit: int = MAX_LISTED_FILES) -> tuple[list[dict[str, object]], int, bool]:
        """The regular files of both folders, or of `which`, newest first: a page of `limit` from `offset` as
        `{file_id, bytes, modified, mime}`, the number found, and whether the walk saw every file (it stops
        after MAX_COUNTED_FILES, as `folder_bytes` does). What a user looks at when their `max_bytes` is
        spent by files no run in the history names any more (pruned runs keep their files).

        Entries whose names start with '.' (an upload being written) and links are left out."""
        from .results import default_mime

        found: list[tuple[float, str, int]] = []
        complete = True
        for name, folder in self.folders.items():
            if which is not None and name != which:
                continue
            for dirpath, dirnames, files in os.walk(folder):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for file in files:
                    if len(found) >= self.MAX_COUNTED_FILES:
                        complete = False
                        break
                    if file.startswith("."):
                        continue
                    path = os.path.join(dirpath, file)
                    try:
                        info = os.lstat(path)
                    except OSError:
                        continue
                    if stat.S_ISREG(info.st_mode):
                        rel = Path(os.path.relpath(path, folder)).as_posix()
                        found.append((info.st_mtime, f"{name}/{rel}", info.st_size))
                if not complete:
                    break
        found.sort(key=lambda entry: (-entry[0], entry[1]))
        page = [{"file_id": file_id, "bytes": size, "modified": round(modified, 3),
                 "mime": default_mime(os.path.splitext(file_id)[1])}
                for modified, file_id, size in found[offset:offset + limit]]
        return page, len(found), complete

    def save_upload(self, name: str, data: bytes, kind: str = "image",
                    check: Callable[[int], str | None] | None = None, subfolder: str = "") -> str:
        """Check that `data` is a file of `kind` (module docstring), store it under a sanitised unique name in the
        input folder, or in its `subfolder` (created; `upload_folder` says the rules); returns its file id
        (`input/<subfolder>/<name>`). `check(size)` is asked before new bytes are written (not for the very bytes
        of a file already stored, which is reused): a message is a StorageQuotaError and nothing is written."""
        if kind not in (*UPLOAD_KINDS, CAPTION_KIND):
            raise FileAccessError(f"upload kind must be one of {', '.join((*UPLOAD_KINDS, CAPTION_KIND))}; got "
                                  f"{kind!r}")
        folder = self.upload_folder(subfolder)
        if not data:
            raise FileAccessError(f"the upload is empty; send the {'image' if kind == 'mask' else kind} file's bytes "
                                  f"in the binary frame")
        if kind == CAPTION_KIND:
            return self._store_upload(name, data, _caption_extension(name, data), check, folder)
        if kind in MEDIA_FORMATS:
            return self._store_upload(name, data, self._media_extension(name, data, kind), check, folder)
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_UPLOAD_PIXELS:
                    raise FileAccessError(
                        f"the upload {name!r} declares {width}×{height} pixels; the limit is "
                        f"{MAX_UPLOAD_PIXELS} pixels (e.g. 8192×8192): scale it down before uploading")
                image.verify()          # the chunks' checksums ...
                fmt = image.format
            with Image.open(io.BytesIO(data)) as image:
                image.load()            # ... and the pixels: a truncated file passed verify()
        except FileAccessError:
            raise
        except Image.DecompressionBombError:
            raise FileAccessError(f"the upload {name!r} declares more pixels than the limit of {MAX_UPLOAD_PIXELS} "
                                  f"(e.g. 8192×8192); scale it down before uploading") from None
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError,
                EOFError, MemoryError) as exc:
            detail = "not an image format Pillow knows" if isinstance(exc, UnidentifiedImageError) else \
                f"{type(exc).__name__}: {exc}"       # (Pillow's own message names an in-memory object)
            raise FileAccessError(f"the upload {name!r} is not a readable image ({detail}); "
                                  f"send PNG, JPEG or WebP bytes") from None
        ext = sanitise_name(name).rpartition(".")[2] if "." in sanitise_name(name) else ""
        if IMAGE_EXTENSIONS.get("." + ext.lower()) != fmt:   # TIFF bytes named .png are stored as .tif
            ext = IMAGE_FORMATS.get(fmt or "", ".png").lstrip(".")
        return self._store_upload(name, data, ext, check, folder)

    def upload_folder(self, subfolder: str = "") -> Path:
        """The folder an upload goes into: the input folder, or its `subfolder` — "/"-separated folders ("img/
        10_zorb": a kohya dataset), each named by the confinement rule (nodegraph/paths.py: no "..", not absolute,
        no device names, no control or invisible characters, no look-alikes of ".."), not hidden (".x": the names
        unfinished uploads use), written in their plain form (NFKC: "e" + a combining accent and "é" were two
        folders that look the same; fullwidth letters) without a leading or trailing space, at most
        MAX_UPLOAD_DEPTH deep; else FileAccessError saying which rule and the fix. Not created here."""
        from .paths import MAX_COMPONENT_BYTES, PathConfinementError, confine

        root = self.folders["input"]
        if subfolder == "":
            return root
        try:
            folder = confine(root, subfolder, what="upload subfolder", input_name="subfolder", subfolders=True)
        except PathConfinementError as exc:
            raise FileAccessError(exc.message) from None
        parts = subfolder.split("/")
        hidden = next((part for part in parts if part.startswith(".")), None)
        if hidden is not None:
            raise FileAccessError(f"upload subfolder {subfolder!r}: {hidden!r} starts with '.', which marks hidden "
                                  f"and unfinished files here; name the folder without it")
        spaced = next((part for part in parts if part != part.strip()), None)
        if spaced is not None:
            raise FileAccessError(f"upload subfolder {subfolder!r}: {spaced!r} starts or ends with a space, which a "
                                  f"listing does not show; name the folder {spaced.strip()!r}")
        unplain = next((part for part in parts if unicodedata.normalize("NFKC", part) != part), None)
        if unplain is not None:
            raise FileAccessError(f"upload subfolder {subfolder!r}: {unplain!r} is written with characters that "
                                  f"have a plainer form (it looks like another folder's name); name it "
                                  f"{unicodedata.normalize('NFKC', unplain)!r}")
        if len(parts) > MAX_UPLOAD_DEPTH:
            raise FileAccessError(f"upload subfolder {subfolder!r} is {len(parts)} folders deep; at most "
                                  f"{MAX_UPLOAD_DEPTH} (e.g. 'img/10_zorb')")
        if any(len(part.encode("utf-8")) > min(MAX_NAME_BYTES, MAX_COMPONENT_BYTES) for part in parts):
            raise FileAccessError(f"upload subfolder {subfolder[:100]!r}: a folder name is longer than "
                                  f"{MAX_NAME_BYTES} bytes; shorten it")
        return folder

    @staticmethod
    def _media_extension(name: str, data: bytes, kind: str) -> str:
        """The extension an upload of a media `kind` is stored with: its own, when that is a format of the kind
        and the bytes show that format; else the first extension of the format the bytes show."""
        formats = MEDIA_FORMATS[kind]
        found = media_format(data)
        accepted = sorted(set(formats.values()))
        if found not in accepted:
            what = f"{'an' if found and found[0] in 'AEFHILMNORSX' else 'a'} {found} file" if found \
                else "no format the loaders read"
            article = "an" if kind[0] in "aeiou" else "a"
            raise FileAccessError(f"the upload {name!r} is not {article} {kind} file of a format the loaders read "
                                  f"({what}); send {', '.join(formats)}")
        safe = sanitise_name(name)
        ext = "." + safe.rpartition(".")[2].lower() if "." in safe else ""
        if formats.get(ext) == found:
            return ext.lstrip(".")
        return next(e for e, f in formats.items() if f == found).lstrip(".")

    MAX_SAME_BYTES_CHECKS = 32     # numbered names whose bytes an upload is compared with (then: a new name)

    def _store_upload(self, name: str, data: bytes, ext: str,
                      check: Callable[[int], str | None] | None = None, folder: Path | None = None) -> str:
        """Write an upload into `folder` (the input folder, or a subfolder of it: `upload_folder`) under its
        sanitised name with `ext`, never over another file; the very bytes of a file already there under that
        name (or a numbered one) are that file. `check`: as for `save_upload`.

        The bytes go to a temporary file first, which then takes the first free name with a hard link (that
        fails when the name exists): two uploads at once never get the same name, and no reader ever sees a
        half-written file under it."""
        safe = sanitise_name(name)
        stem = safe.rpartition(".")[0] if "." in safe else safe
        folder = self.folders["input"] if folder is None else folder
        if check is not None:
            stored = self._stored_copy(folder, stem, ext, data)
            if stored is not None:              # nothing new is written: no storage is taken
                return stored
            problem = check(len(data))
            if problem:
                raise StorageQuotaError(problem)
        self._make_upload_folder(folder)
        tmp = folder / f".upload-{os.getpid()}-{os.urandom(6).hex()}.tmp"
        try:
            try:
                tmp.write_bytes(data)
            except OSError as exc:      # a full disk or a read-only folder: no half-written file stays behind
                why = {errno.ENOSPC: "the disk is full", errno.EROFS: "the input folder is read-only",
                       errno.EACCES: "the server may not write the input folder",
                       errno.EDQUOT: "the disk quota is used up"}.get(exc.errno, exc.strerror or type(exc).__name__)
                raise UploadStorageError(f"the server could not store the upload {name!r}: {why}; nothing was "
                                         f"saved (the server's admin can free space or fix the folder)") from None
            for counter in range(0, 1_000_000):
                candidate = folder / (f"{stem}.{ext}" if counter == 0 else f"{stem}_{counter}.{ext}")
                if os.path.lexists(candidate):   # any entry, a symlink too (even one leading out): the next name
                    if counter < self.MAX_SAME_BYTES_CHECKS and _same_bytes(candidate, data):
                        return self._upload_id(candidate)     # the same file uploaded again (a re-run): reuse it
                    continue
                candidate = self._confined(folder, candidate.name)
                if claim_name(tmp, candidate):   # else another upload took the name just now: the next one
                    return self._upload_id(candidate)
            raise UploadStorageError(f"the upload {name!r}: a million files of that name exist; rename it")
        finally:
            tmp.unlink(missing_ok=True)

    def _stored_copy(self, folder: Path, stem: str, ext: str, data: bytes) -> str | None:
        """The id of the file `_store_upload` would reuse for these very bytes (the name, or a numbered one
        among the first MAX_SAME_BYTES_CHECKS), or None."""
        for counter in range(self.MAX_SAME_BYTES_CHECKS):
            candidate = folder / (f"{stem}.{ext}" if counter == 0 else f"{stem}_{counter}.{ext}")
            if not os.path.lexists(candidate):
                return None
            if _same_bytes(candidate, data):
                return self._upload_id(candidate)
        return None

    def _upload_id(self, path: Path) -> str:
        """The id of a stored upload: `input/<name>`, or `input/<subfolder>/<name>`."""
        return f"input/{path.relative_to(self.folders['input']).as_posix()}"

    def _make_upload_folder(self, folder: Path) -> None:
        """Create an upload's folder (and its parents), or FileAccessError when a file holds one of its names or
        when the input folder would hold more than MAX_UPLOAD_FOLDERS folders."""
        if not folder.is_dir():
            root = self.folders["input"]
            missing = sum(1 for parent in (folder, *folder.parents)
                          if root in parent.parents and not parent.is_dir())
            if count_folders(root, MAX_UPLOAD_FOLDERS) + missing > MAX_UPLOAD_FOLDERS:
                shown = folder.relative_to(root).as_posix()
                raise FileAccessError(f"upload subfolder {shown!r}: your input folder would hold more than "
                                      f"{MAX_UPLOAD_FOLDERS:,} folders, the limit; upload into a folder you already "
                                      f"have, or delete files you no longer need (list_files, then delete_file: a "
                                      f"folder goes with its last file)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            shown = folder.relative_to(self.folders["input"]).as_posix()
            raise FileAccessError(f"upload subfolder {shown!r}: a file in your input folder already has that name "
                                  f"(or one of its folders'); choose another subfolder") from None

    @staticmethod
    def _confined(folder: Path, name: str) -> Path:
        """The one confinement rule (nodegraph/paths.py), as a FileAccessError."""
        from .paths import PathConfinementError, confine

        try:
            return confine(folder, name, what="upload name", input_name="name")
        except PathConfinementError as exc:
            raise FileAccessError(str(exc)) from None

    def file_id(self, path: str | os.PathLike) -> str:
        """The id of a file inside the output folder (what output nodes report)."""
        real = Path(os.path.realpath(path))
        root = Path(os.path.realpath(self.folders["output"]))
        return f"output/{real.relative_to(root).as_posix()}"

    def resolve(self, file_id: str) -> Path:
        """The path behind a file id, or FileAccessError (never a path outside the folders)."""
        if not isinstance(file_id, str) or "\x00" in file_id or "\\" in file_id:    # decoded ids: '%' is a letter
            raise FileAccessError(f"invalid file id {file_id[:100]!r}")
        if len(file_id) > MAX_ID_LENGTH:
            raise FileAccessError(f"file id too long ({len(file_id)} characters; ids are at most {MAX_ID_LENGTH})")
        kind, sep, rel = file_id.partition("/")
        if not sep or kind not in self.folders:
            raise FileAccessError(f"file id {file_id!r} must start with 'input/' or 'output/'")
        if not rel:
            raise FileAccessError(f"file id {file_id!r} names no file (nothing after '{kind}/')")
        segments = rel.split("/")
        if ".." in segments:
            raise FileAccessError(f"file id {file_id!r} must not leave its folder")
        if "" in segments or "." in segments:    # one id per file: write it as listed (no '//', no '/./')
            raise FileAccessError(f"file id {file_id!r} has an empty or '.' segment; write the id as the server "
                                  f"listed it")
        try:
            root = Path(os.path.realpath(self.folders[kind]))
            real = Path(os.path.realpath(root / rel))
            if root not in real.parents:
                raise FileAccessError(f"file id {file_id!r} points outside the {kind} folder")
            if not real.is_file():
                raise FileAccessError(f"no file {file_id!r}")
        except OSError as exc:    # e.g. ENAMETOOLONG, EACCES
            raise FileAccessError(f"no file {file_id[:100]!r} ({exc.strerror or type(exc).__name__})") from None
        return real

    def delete(self, file_id: str) -> None:
        """Delete the file an id names (FileAccessError as `resolve` checks it; OSError when it cannot be removed).
        The entry itself goes: an id naming a link inside the folder removes the link, never the file it points
        to (which another id, or a run, may still name). Deleting an upload removes the folders it leaves empty,
        up to the input folder (an upload and a delete per folder left a user unlimited empty folders)."""
        self.resolve(file_id)
        kind, _, rel = file_id.partition("/")
        root = Path(os.path.realpath(self.folders[kind]))
        (root / rel).unlink()
        if kind == "input":
            remove_empty_folders((root / rel).parent, root)
