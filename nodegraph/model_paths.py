"""Model folders: where model files of each kind are found, by name.

Folders follow the ComfyUI / A1111 convention (`checkpoints`, `vae`, `loras`,
`controlnet`, `upscale_models`, `embeddings`, ...). Each folder name maps to
one or more directories: `<root>/<folder>` for every root (the NODEGRAPH_MODELS_DIR
environment variable, else `./models` and the project's own `models/`), plus
extra directories from a JSON config file (`ModelPaths.from_config`; the file
named by NODEGRAPH_MODEL_PATHS or `--model-paths` is read by default), e.g. to
use an existing ComfyUI or A1111 installation's folders:

    {"checkpoints": ["~/ComfyUI/models/checkpoints", "~/sd-webui/models/Stable-diffusion"],
     "loras": ["~/sd-webui/models/Lora"], "vae": ["~/sd-webui/models/VAE"]}

A config file that cannot be used (missing, unreadable, not JSON, or not that shape)
raises `ModelPathsError`, a ValueError whose message names the file, the problem and
the expected format; relative directories in it are resolved against the file's folder.
docs/models.md ("Where model files are found") is the user-facing description.

A model file is addressed by its name relative to the folder (forward slashes,
e.g. `sd15/dreamshaper.safetensors`); a diffusers pipeline folder (one with a
`model_index.json`) is listed and addressed like a file, by its folder name; `resolve` only returns files that
`list` shows, so names like `../../etc/passwd` or absolute paths never resolve.
"""

from __future__ import annotations

import functools
import json
import os
import reprlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NodegraphError

DEFAULT_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf", ".json")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")     # pickles: loaded only with the owner's opt-in (docs/models.md)
STANDARD_FOLDERS = ("checkpoints", "vae", "text_encoders", "unet", "loras", "controlnet",
                    "upscale_models", "embeddings")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_DEPTH = 8            # folder levels below a model folder that are searched
MAX_ENTRIES = 20_000     # directory entries looked at per listing, at most
LISTING_TTL = 2.0        # seconds a listing is reused (a file copied in shows up within this)
MAX_CONFIG_DIRECTORIES = 1_000   # directories a config file lists in all (each is searched at every listing)
MAX_DIRECTORY_CHARS = 4_096      # characters in one of them (Linux's PATH_MAX)
MAX_CONFIG_TEXT = MAX_CONFIG_DIRECTORIES * (MAX_DIRECTORY_CHARS + 1)   # characters of YAML entries read in all
CONFIG_FORMAT = ('a JSON object mapping model folder names to lists of directories, e.g. '
                 '{"checkpoints": ["/data/sd/models", "~/ComfyUI/models/checkpoints"], "loras": ["loras"]} '
                 "(relative directories are resolved against the file's folder)")


class ModelPathsError(NodegraphError, ValueError):
    """A model path config file that cannot be used; the message names the file, the problem and the format."""

    def __init__(self, path: str | os.PathLike, problem: str, source: str = "model path config"):
        self.path = os.fspath(path)
        self.problem = problem
        if problem == MISSING_CONFIG_FILE:      # the path is wrong, not the file's contents: no format lecture
            super().__init__(f"{source} {self.path!r}: {problem}; check the path (a JSON file, or ComfyUI's "
                             f"extra_model_paths.yaml for a .yaml / .yml name)")
        else:
            super().__init__(f"{source} {self.path!r}: {problem}; it should be {CONFIG_FORMAT}")


MISSING_CONFIG_FILE = "the file does not exist"


def read_config_text(path: Path) -> str:
    """The config file's text; the OSError / UnicodeDecodeError turned into a one-phrase problem (ValueError)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(MISSING_CONFIG_FILE) from None
    except IsADirectoryError:
        raise ValueError("it is a folder, not a file") from None
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r})") \
            from None


def described(value: Any) -> str:
    """A short repr of a value read from a config file, for a message, built without formatting the whole value:
    YAML aliases share one list many times over, so a 422-byte file can hold a list whose full repr is gigabytes
    (reprlib looks at a few items of a few levels only)."""
    shown = reprlib.Repr()
    shown.maxlevel, shown.maxlist, shown.maxtuple, shown.maxset, shown.maxdict = 2, 3, 3, 3, 3
    shown.maxstring = shown.maxother = shown.maxlong = 60
    text = shown.repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def config_shape_problem(data: Any) -> str | None:
    """Why parsed config JSON is not `{folder: [directory, ...], ...}`, or None."""
    if not isinstance(data, dict):
        return f"it holds a JSON {type(data).__name__}, not an object"
    count = 0
    for folder, dirs in data.items():
        if not folder.strip():
            return "a folder name is empty"
        if isinstance(dirs, str):
            example = json.dumps(dirs) if len(dirs) <= 200 else '"DIRECTORY"'
            return f"folder {described(folder)} maps to the text {described(dirs)}, not a list; write [{example}]"
        if not isinstance(dirs, list):
            return f"folder {described(folder)} maps to a JSON {type(dirs).__name__}, not a list of directories"
        for directory in dirs:
            if not isinstance(directory, str) or not directory.strip():
                scalar = isinstance(directory, (int, float, type(None)))       # spelt as JSON: null, 3, true
                shown = json.dumps(directory) if scalar else described(directory)
                return f"folder {described(folder)} lists {shown}, not a directory path (a non-empty text)"
            if len(directory) > MAX_DIRECTORY_CHARS:
                return (f"folder {described(folder)} lists a directory of {len(directory):,} characters (at most "
                        f"{MAX_DIRECTORY_CHARS:,}): {described(directory)}")
        count += len(dirs)
        if count > MAX_CONFIG_DIRECTORIES:
            return f"it lists more than {MAX_CONFIG_DIRECTORIES:,} directories; every one is searched at each listing"
    return None


# ComfyUI's names for our folders (its extra_model_paths.yaml and folder_paths use both spellings)
FOLDER_ALIASES = {"clip": "text_encoders", "diffusion_models": "unet"}
# ComfyUI folders no node here reads: in a ComfyUI extra_model_paths.yaml they are passed over without a warning
COMFYUI_ONLY_FOLDERS = frozenset({"configs", "hypernetworks", "clip_vision", "style_models", "gligen", "photomaker",
                                  "vae_approx", "classifiers", "custom_nodes", "diffusers", "model_patches",
                                  "audio_encoders", "animatediff_models", "animatediff_motion_lora", "ipadapter",
                                  "t2i_adapter", "hypertile", "sams", "ultralytics", "facerestore_models",
                                  "insightface", "onnx", "LLM", "inpaint", "mmdets"})
# A1111's directory names, written as folder names: the folder they hold ("Stable-diffusion" holds checkpoints)
A1111_FOLDER_NAMES = {"stable-diffusion": "checkpoints", "lora": "loras", "lycoris": "loras", "esrgan":
                      "upscale_models", "realesrgan": "upscale_models", "swinir": "upscale_models", "ldsr":
                      "upscale_models", "scunet": "upscale_models", "textual_inversion": "embeddings"}


def directory_lines(value: str, section: Any, folder: str, budget: list[int]) -> list[str]:
    """The directories of one YAML entry (a `|` block holds one a line), with the reader's bounds checked first:
    `budget` is `[characters left to read]`, shared by the whole file, so an alias used many times (each use is
    read again) cannot make a small file cost gigabytes."""
    budget[0] -= len(value) + 1
    if budget[0] < 0:
        raise ValueError(f"its directory entries add up to more than {MAX_CONFIG_TEXT:,} characters (a YAML alias "
                         f"counts each time it is used); a model path config lists at most "
                         f"{MAX_CONFIG_DIRECTORIES:,} directories")
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    for line in lines:
        if len(line) > MAX_DIRECTORY_CHARS:
            raise ValueError(f"section {described(section)}: {described(folder)} lists a directory of {len(line):,} "
                             f"characters (at most {MAX_DIRECTORY_CHARS:,}): {described(line)}")
    return lines


def read_comfyui_yaml(path: Path) -> dict[str, list[str]]:
    """ComfyUI's extra_model_paths.yaml as `{folder: [directory, ...]}`: sections (`a111:`, `comfyui:`, …) each with
    an optional `base_path` that the others are relative to, a folder per key, several directories in a `|` block
    (one a line); `is_default` is ComfyUI's own. Needs PyYAML (the project's JSON form does not).

    Bounded whatever the file holds: at most MAX_CONFIG_DIRECTORIES directories of MAX_DIRECTORY_CHARS characters,
    MAX_CONFIG_TEXT characters of entries read in all, and messages that show a few items of a bad value."""
    try:
        import yaml
    except ImportError:
        raise ValueError("reading ComfyUI's YAML form needs PyYAML (pip install pyyaml); or write the JSON form "
                         + CONFIG_FORMAT) from None
    text = read_config_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"it is not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise ValueError("it is not valid YAML (nested too deeply)") from None
    except ValueError as exc:        # an integer of thousands of digits: Python refuses to convert it
        raise ValueError(f"it is not valid YAML ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise ValueError("it holds no sections; ComfyUI's form is `name:` sections of `folder: directory` entries")
    out: dict[str, list[str]] = {}
    budget = [MAX_CONFIG_TEXT]
    count = 0
    for section, entries in data.items():
        if entries is None:
            continue
        if not isinstance(entries, dict):
            raise ValueError(f"section {described(section)} is not a mapping of folder names to directories")
        base = entries.get("base_path")
        if base is not None and (not isinstance(base, str) or len(base) > MAX_DIRECTORY_CHARS):
            raise ValueError(f"section {described(section)}: base_path {described(base)} is not a directory path "
                             f"(a text of at most {MAX_DIRECTORY_CHARS:,} characters)")
        for folder, value in entries.items():
            if folder in ("base_path", "is_default"):
                continue
            if not isinstance(folder, str) or not isinstance(value, str):
                raise ValueError(f"section {described(section)}: {described(folder)} maps to {described(value)}, not "
                                 f"a directory (or a `|` block of directories, one a line)")
            lines = directory_lines(value, section, folder, budget)
            count += max(len(lines), 1)      # an empty entry counts as one: aliases of it cost a loop each
            if count > MAX_CONFIG_DIRECTORIES:
                raise ValueError(f"it lists more than {MAX_CONFIG_DIRECTORIES:,} directories (a YAML alias counts "
                                 f"each time it is used); every one is searched at each listing")
            for line in lines:
                directory = os.path.expanduser(line)
                out.setdefault(folder, []).append(os.path.join(os.path.expanduser(base), directory) if base
                                                  else directory)
    return out


def read_config(path: str | os.PathLike) -> dict[str, list[str]]:
    """The `{folder: [directory, ...]}` of a config file (JSON, or ComfyUI's extra_model_paths.yaml for a .yaml /
    .yml file); ValueError with a one-phrase problem otherwise."""
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        return read_comfyui_yaml(Path(path))
    text = read_config_text(Path(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"it is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise ValueError("it is not valid JSON (nested too deeply)") from None
    problem = config_shape_problem(data)
    if problem:
        raise ValueError(problem)
    return data


def _mtime(directory: Path) -> float | None:
    try:
        return directory.stat().st_mtime_ns
    except OSError:
        return None


def _walk_models(directory: Path, top: Path, exts: tuple[str, ...], names: list[str], seen: set[str],
                 visited: set[tuple[int, int]], budget: list[int], depth: int) -> None:
    """Add model files (and diffusers pipeline folders) under `directory` to `names`, bounded. A folder in
    `visited` is not walked again below the top (a link loop, or a link to another root: that root lists it)."""
    try:
        info = directory.stat()
    except OSError:
        return
    if ((info.st_dev, info.st_ino) in visited and depth > 0) or depth > MAX_DEPTH:
        return
    visited.add((info.st_dev, info.st_ino))
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    if depth > 0 and any(e.name == "model_index.json" for e in entries):    # a diffusers pipeline folder
        rel = directory.relative_to(top).as_posix()
        if rel not in seen:
            seen.add(rel)
            names.append(rel)
        return
    for entry in entries:
        budget[0] -= 1
        if budget[0] < 0:
            return
        try:
            is_dir = entry.is_dir()       # follows a symlink; loops end at `visited`
            is_file = not is_dir and entry.is_file()    # not a dangling link, FIFO or socket: `resolve` refuses those
        except OSError:
            continue
        if is_dir:
            _walk_models(Path(entry.path), top, exts, names, seen, visited, budget, depth + 1)
        elif is_file and entry.name.lower().endswith(exts):
            rel = Path(entry.path).relative_to(top).as_posix()
            if rel not in seen:
                seen.add(rel)
                names.append(rel)


def default_roots() -> list[Path]:
    env = os.environ.get("NODEGRAPH_MODELS_DIR")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    roots = [Path.cwd() / "models", PROJECT_ROOT / "models"]
    unique: list[Path] = []
    for root in roots:
        if root.resolve() not in [u.resolve() for u in unique]:
            unique.append(root)
    return unique


@functools.lru_cache(maxsize=4 * MAX_ENTRIES)
def loader_refusal(name: str) -> str | None:
    """Why no loader accepts the file name `name` (the model-name rule of nodegraph.paths that `resolve` applies:
    control characters, bidi overrides, `:` `?` and the other Windows-reserved characters, device names such as
    `aux.safetensors`), as a phrase; None for a name a loader accepts. Remembered: a folder is walked again every
    few seconds, and checking 20,000 names costs half a second."""
    from .paths import PathConfinementError, check_name

    if any("\udc80" <= ch <= "\udcff" for ch in name):     # os.fsdecode's stand-ins for bytes that are not UTF-8
        return "is not UTF-8 (a byte of another encoding), so no graph can spell it"
    try:
        check_name(name, what="model name", subfolders=True)
    except PathConfinementError as exc:
        problem = exc.message.split("; give ", 1)[0]        # the message is "model name 'NAME' PROBLEM; give ..."
        prefix = f"model name {name!r} "
        return problem[len(prefix):] if problem.startswith(prefix) else problem
    return None


@dataclass(frozen=True)
class FolderListing:
    """One walk of a model folder's directories: what `ModelPaths.list` answers, plus what `nodegraph models` says
    about the walk."""

    names: list[str]            # loadable names, sorted: the editor's choices and validation's
    searched: list[str]         # the directories, in search order
    refused: dict[str, str]     # a file found there whose name no loader accepts → why (`loader_refusal`)
    stopped: bool               # the walk reached MAX_ENTRIES entries: files after them are not listed


@dataclass
class ModelPaths:
    """Folder name → directories, and file listing / resolution inside them."""

    roots: list[Path] = field(default_factory=default_roots)
    extra: dict[str, list[Path]] = field(default_factory=dict)
    extensions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    configured: tuple[str, ...] = ()     # the folder names a config file gave (checked against known folders)
    config_source: str = ""              # where that config came from ("--model-paths", NODEGRAPH_MODEL_PATHS)
    _listings: dict[str, tuple[tuple, FolderListing]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, path: str | os.PathLike, roots: list[Path] | None = None,
                    source: str = "model path config") -> ModelPaths:
        """Read extra search paths: a JSON object `{"checkpoints": ["/data/sd/models/Stable-diffusion"], ...}`.

        Relative directories are resolved against the file's folder, `~` is expanded. Raises
        ModelPathsError (its message starts with `source`, e.g. "--model-paths") for a file that is
        missing, unreadable, not JSON or not of that shape.
        """
        try:
            data = read_config(path)
        except ValueError as exc:
            raise ModelPathsError(path, str(exc), source) from None
        base = Path(path).resolve().parent
        extra: dict[str, list[Path]] = {}
        for folder, dirs in data.items():       # ComfyUI's "clip" and "diffusion_models" are our folders
            extra.setdefault(FOLDER_ALIASES.get(folder, folder), []).extend(base / os.path.expanduser(p) for p in dirs)
        return cls(roots=roots if roots is not None else default_roots(), extra=extra, configured=tuple(data),
                   config_source=f"{source} {os.fspath(path)!r}")

    def unknown_folder_warnings(self, known: set[str]) -> list[str]:
        """One line per folder name of the config file that is not a model folder (a typo such as
        "checkpointz" was silently searched by no node), with the closest known name."""
        import difflib

        lines = []
        passed_over = []
        for folder in self.configured:
            if folder in known or FOLDER_ALIASES.get(folder) in known:
                continue
            if folder in COMFYUI_ONLY_FOLDERS:
                passed_over.append(folder)
                continue
            close = [A1111_FOLDER_NAMES[folder.lower()]] if folder.lower() in A1111_FOLDER_NAMES else \
                difflib.get_close_matches(folder, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            lines.append(f"{self.config_source}: {folder!r} is not a model folder, so no node reads the directories "
                         f"listed under it; {hint}the folders are: {', '.join(sorted(known))}")
        if passed_over:
            lines.append(f"{self.config_source}: ComfyUI folders no node here reads, passed over: "
                         f"{', '.join(passed_over)}")
        return lines

    def missing_directory_warnings(self) -> list[str]:
        """One line per directory the config file names that is not a directory here (a typo, an unmounted disk, a
        file, a device such as /dev/zero): it was searched in silence and only showed up in a later "looked in"
        list."""
        lines = []
        for folder, dirs in self.extra.items():
            for directory in dirs:
                if directory.is_dir():
                    continue
                what = "is a file, not a folder" if directory.is_file() else "does not exist" \
                    if not directory.exists() else "is not a folder (a device, a pipe or a socket)"
                lines.append(f"{self.config_source}: the {folder} directory {str(directory)!r} {what}; no model is "
                             f"found there")
        return lines

    def shadowed(self, folder: str) -> dict[str, list[Path]]:
        """Names found in more than one of `folder`'s directories → each directory holding one, in search order:
        the first answers for the name (`resolve`), the others can never be chosen (`nodegraph models` says so)."""
        exts = self.extensions.get(folder, DEFAULT_EXTENSIONS)
        where: dict[str, list[Path]] = {}
        for directory in self.directories(folder):
            names: list[str] = []
            if directory.is_dir():
                _walk_models(directory, directory, exts, names, set(), set(), [MAX_ENTRIES], 0)
            for name in names:
                where.setdefault(name, []).append(directory)
        return {name: dirs for name, dirs in where.items() if len(dirs) > 1}

    @classmethod
    def default(cls, config: str | os.PathLike | None = None, source: str = "model path config") -> ModelPaths:
        """Default roots, plus the extra paths of `config` (or of NODEGRAPH_MODEL_PATHS) when given.

        Raises ModelPathsError for a config file that cannot be used; `source` names where `config`
        came from in that message (the environment variable is named when it was the source).
        """
        if config:
            return cls.from_config(config, source=source)
        from_env = os.environ.get("NODEGRAPH_MODEL_PATHS")
        return cls.from_config(from_env, source="NODEGRAPH_MODEL_PATHS") if from_env else cls()

    def directories(self, folder: str) -> list[Path]:
        """Every directory searched for `folder`, in priority order, each once (a --model-paths entry that
        names a root's folder again is not searched, or listed in messages, twice)."""
        out: list[Path] = []
        seen: set[str] = set()
        for directory in [root / folder for root in self.roots] + list(self.extra.get(folder, [])):
            real = os.path.realpath(directory)
            if real not in seen:
                seen.add(real)
                out.append(directory)
        return out

    def list(self, folder: str) -> tuple[list[str], list[str]]:
        """(file names available in `folder`, directories searched): `listing(folder)`'s names and directories."""
        listing = self.listing(folder)
        return list(listing.names), list(listing.searched)

    def listing(self, folder: str) -> FolderListing:
        """One walk of `folder`'s directories: the names a loader accepts, the directories, the names found but
        refused (a name with a newline or a bidi override, `:`, `aux.safetensors`: `resolve` refuses them, so they
        are no choice), and whether the walk stopped at `MAX_ENTRIES`.

        A listing is reused for `LISTING_TTL` seconds unless a searched directory's mtime
        changed (a file added or removed at its top level shows up at once).

        The walk follows symlinked folders (people link model folders to other disks) but
        never enters the same directory twice (so a symlink loop ends), stops `MAX_DEPTH`
        levels down and after `MAX_ENTRIES` entries: a listing is always bounded.
        """
        now = time.monotonic()
        stamp = (now, tuple(_mtime(d) for d in self.directories(folder)))
        cached = self._listings.get(folder)
        if cached is not None and now - cached[0][0] < LISTING_TTL and cached[0][1] == stamp[1]:
            return cached[1]
        exts = self.extensions.get(folder, DEFAULT_EXTENSIONS)
        found: list[str] = []
        seen: set[str] = set()
        searched = []
        # every root counts as visited from the start: a link inside one root to another root (extra model
        # paths that cross-link) is that root's files under their plain names, not "alias/name" hiding them
        visited: set[tuple[int, int]] = set()
        for directory in self.directories(folder):
            try:
                info = directory.stat()
            except OSError:
                continue
            visited.add((info.st_dev, info.st_ino))
        budget = [MAX_ENTRIES]
        for directory in self.directories(folder):
            searched.append(str(directory))
            if directory.is_dir():
                _walk_models(directory, directory, exts, found, seen, visited, budget, 0)
        refused = {name: why for name in found if (why := loader_refusal(name)) is not None}
        names = sorted(name for name in found if name not in refused)
        listing = FolderListing(names, searched, dict(sorted(refused.items())), stopped=budget[0] < 0)
        self._listings[folder] = (stamp, listing)
        return listing

    def forget_listings(self) -> None:
        """Drop cached listings (the next `list` walks the folders again)."""
        self._listings.clear()

    def resolve(self, folder: str, name: str) -> Path:
        """The path of file `name` in `folder`; LookupError listing what exists otherwise.

        `name` passes nodegraph.paths.confine (subfolders allowed; a symlink the owner put in a
        model folder may lead elsewhere) and must end in one of the folder's extensions or be a
        diffusers pipeline folder, so only what `list` could show ever resolves.
        """
        from .paths import PathConfinementError, confine

        exts = self.extensions.get(folder, DEFAULT_EXTENSIONS)
        for directory in self.directories(folder):
            try:
                candidate = confine(directory, name, what="model name", subfolders=True, links_out=True)
            except PathConfinementError as exc:
                raise LookupError(exc.message) from None
            if (candidate.is_file() and name.lower().endswith(exts)) or (candidate / "model_index.json").is_file():
                return candidate
        from .validation import shown_folder     # clients of a server do not learn where it is installed

        available, searched = self.list(folder)
        raise LookupError(f"no file {name!r} in model folder {folder!r}; available: {available or 'none'}; "
                          f"looked in: {', '.join(shown_folder(f) for f in searched)}")
