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

A model file is addressed by its name relative to the folder (forward slashes,
e.g. `sd15/dreamshaper.safetensors`); a diffusers pipeline folder (one with a
`model_index.json`) is listed and addressed like a file, by its folder name; `resolve` only returns files that
`list` shows, so names like `../../etc/passwd` or absolute paths never resolve.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf", ".json")
STANDARD_FOLDERS = ("checkpoints", "vae", "text_encoders", "unet", "loras", "controlnet",
                    "upscale_models", "embeddings")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


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


@dataclass
class ModelPaths:
    """Folder name → directories, and file listing / resolution inside them."""

    roots: list[Path] = field(default_factory=default_roots)
    extra: dict[str, list[Path]] = field(default_factory=dict)
    extensions: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, path: str | os.PathLike, roots: list[Path] | None = None) -> ModelPaths:
        """Read extra search paths: a JSON object `{"checkpoints": ["/data/sd/models/Stable-diffusion"], ...}`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise ValueError(f"{path}: model path config must map folder names to lists of directories")
        base = Path(path).resolve().parent
        extra = {folder: [base / os.path.expanduser(p) for p in dirs] for folder, dirs in data.items()}
        return cls(roots=roots if roots is not None else default_roots(), extra=extra)

    @classmethod
    def default(cls, config: str | os.PathLike | None = None) -> ModelPaths:
        """Default roots, plus the extra paths of `config` (or of NODEGRAPH_MODEL_PATHS) when given."""
        config = config or os.environ.get("NODEGRAPH_MODEL_PATHS")
        return cls.from_config(config) if config else cls()

    def directories(self, folder: str) -> list[Path]:
        """Every directory searched for `folder`, in priority order."""
        return [root / folder for root in self.roots] + list(self.extra.get(folder, []))

    def list(self, folder: str) -> tuple[list[str], list[str]]:
        """(file names available in `folder`, directories searched)."""
        exts = self.extensions.get(folder, DEFAULT_EXTENSIONS)
        names: list[str] = []
        seen = set()
        searched = []
        for directory in self.directories(folder):
            searched.append(str(directory))
            if not directory.is_dir():
                continue
            for dirpath, dirnames, files in os.walk(directory, followlinks=True):
                if "model_index.json" in files and Path(dirpath) != directory:   # a diffusers pipeline folder
                    rel = Path(dirpath).relative_to(directory).as_posix()
                    if rel not in seen:
                        seen.add(rel)
                        names.append(rel)
                    dirnames.clear()
                    continue
                for file in files:
                    if file.lower().endswith(exts):
                        rel = (Path(dirpath) / file).relative_to(directory).as_posix()
                        if rel not in seen:
                            seen.add(rel)
                            names.append(rel)
        return sorted(names), searched

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
        available, searched = self.list(folder)
        raise LookupError(f"no file {name!r} in model folder {folder!r}; available: {available or 'none'}; "
                          f"looked in: {', '.join(searched)}")
