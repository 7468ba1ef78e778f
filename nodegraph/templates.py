"""Workflow templates: the saved graphs a user can start from, and reading one of them safely.

Templates are the `*.json` graph files (subfolders included) of:
- the project's `graphs/` folder (source `"project"`), and
- each loaded plugin's `graphs/` folder (source = the plugin's name): the folder
  inside the plugin's package (`<package>/graphs`, for wheels that ship it as
  package data) or, for a source checkout / editable install, beside the package
  (`plugins/<name>/graphs` next to `plugins/<name>/<package>`, recognised by the
  `pyproject.toml` there).

A template's id is `<source>/<path inside that folder>` (e.g. `project/txt2img.json`,
`safety/safe_txt2img.json`); `TemplateLibrary.read(id)` resolves it only inside
those folders (no `..`, no absolute paths, no links out, `.json` only), so a
client can never read anything else. Titles and descriptions come from each
file's `metadata`; a file that is not a readable graph is listed with its
`error` rather than hidden, so a plugin author sees the problem.

Main objects: `TemplateLibrary` (`list()`, `read(id)`), `TemplateError`,
`plugin_graph_folders(report)`; `is_training_template(id)` and `summary(description)` for
listings a person skims (`nodegraph templates`: demos first, training graphs after).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PROJECT_SOURCE = "project"      # the source name of the project's own graphs/ ("project/txt2img.json")

MAX_TEMPLATE_BYTES = 4 * 1024 * 1024     # a saved graph is a few KB; the graph format's own cap is larger


SUMMARY_CHARS = 120      # one line of a terminal listing; the description's first sentence when it fits


def is_training_template(template_id: str) -> bool:
    """Whether a template trains a model (minutes to hours) rather than shows something: its file sits in a
    `train/` folder or is named `train_*.json` (the editor's Templates menu groups them by the same rule)."""
    parts = str(template_id).split("/")[1:]       # the id is <source>/<path inside graphs/>
    return any(part == "train" for part in parts[:-1]) or bool(parts) and parts[-1].startswith("train_")


def summary(description: str, limit: int = SUMMARY_CHARS) -> str:
    """The first sentence of `description`, cut at a word with "…" past `limit` characters: some descriptions
    run to 1,000 characters, which made a listing impossible to skim."""
    import re

    text = " ".join(description.split())
    end = re.search(r"[.!?](?=\s+[A-Z(\"`]|$)", text)
    sentence = text[: end.end()] if end else text
    if len(sentence) <= limit:
        return sentence
    return sentence[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:—-–") + "…"


class TemplateError(Exception):
    """A template id that names nothing readable; `code` is `not_found` or `invalid_template`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def plugin_graph_folders(report: Any) -> dict[str, Path]:
    """Plugin name → its graphs folder, for every loaded non-builtin plugin that has one."""
    folders: dict[str, Path] = {}
    for info in getattr(report, "loaded", ()):
        if info.source == "builtin":
            continue
        module = sys.modules.get(info.module)
        file = getattr(module, "__file__", None)
        if not file:
            continue
        package_dir = Path(file).resolve().parent
        single_file = Path(file).name != "__init__.py"      # a one-module plugin: its folder is site-packages
        for candidate in (package_dir / "graphs", package_dir.parent / "graphs"):
            # a graphs folder beside the package counts only in a project checkout (a pyproject.toml there); for a
            # one-module plugin the module's own folder is such a place too (else site-packages/graphs, another
            # package's folder, was listed as the plugin's templates)
            project = candidate.parent
            if (candidate == package_dir.parent / "graphs" or single_file) and not (project / "pyproject.toml").is_file():
                continue
            if candidate.is_dir():
                folders[info.name] = candidate
                break
    return folders


class TemplateLibrary:
    """The template folders of one server: `{source: folder}` (source "project" and plugin names)."""

    def __init__(self, folders: dict[str, Path]):
        self.folders = {source: Path(folder).resolve() for source, folder in folders.items()}

    @classmethod
    def for_session(cls, session: Any, project_graphs: Path | None) -> TemplateLibrary:
        """The project's graphs folder (if it exists) and every loaded plugin's."""
        folders: dict[str, Path] = {}
        for name, folder in plugin_graph_folders(getattr(session, "plugin_report", None)).items():
            if name == PROJECT_SOURCE:      # a plugin named "project" hid every project template (`plugin new`
                log.warning("the templates of plugin %r are not listed: %r is the project's own templates' "
                            "source name; rename the plugin", name, PROJECT_SOURCE)     # refuses the name now)
                continue
            folders[name] = folder
        if project_graphs is not None and Path(project_graphs).is_dir():
            folders = {PROJECT_SOURCE: Path(project_graphs), **folders}
        return cls(folders)

    def list(self) -> list[dict[str, Any]]:
        """Every template: id, source, file, folder (subfolder or ""), title, description, node count."""
        out = []
        for source, root in self.folders.items():
            for path in sorted(root.rglob("*.json")):
                if not self._inside(root, path) or not path.is_file():     # a FIFO named x.json blocked the listing
                    continue
                rel = path.relative_to(root).as_posix()
                entry: dict[str, Any] = {"id": f"{source}/{rel}", "source": source, "file": rel,
                                         "folder": rel.rpartition("/")[0]}
                try:
                    data = self._load(path)
                    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
                    nodes = data.get("nodes")
                    entry.update(title=str(metadata.get("title") or path.stem.replace("_", " ")),
                                 description=str(metadata.get("description") or ""),
                                 nodes=len(nodes) if isinstance(nodes, (dict, list)) else 0)
                except TemplateError as exc:
                    entry.update(title=path.stem, description="", nodes=0, error=exc.message)
                out.append(entry)
        return out

    def read(self, template_id: str) -> dict[str, Any]:
        """The graph JSON of template `template_id`; TemplateError when it names nothing readable."""
        source, _, rel = str(template_id).partition("/")
        root = self.folders.get(source)
        if root is None or not rel:
            raise TemplateError("not_found", f"no template {template_id[:200]!r}; template ids look like "
                                             f"'<source>/<file>.json' with source one of: "
                                             f"{', '.join(self.folders) or '(none)'} (list_templates lists them)")
        parts = rel.split("/")
        if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts) or not rel.endswith(".json"):
            raise TemplateError("not_found", f"no template {template_id[:200]!r}: a template id is a .json file "
                                             f"path inside its folder, without '..' or absolute parts")
        path = root / rel
        try:
            found = "\0" not in rel and path.is_file() and self._inside(root, path)
        except (OSError, ValueError):       # a name the file system refuses (a part over 255 bytes)
            found = False
        if not found:
            raise TemplateError("not_found", f"no template {template_id[:200]!r} (list_templates lists them)")
        return self._load(path)

    @staticmethod
    def _inside(root: Path, path: Path) -> bool:
        """True when `path` (links resolved) is inside `root`."""
        try:
            return root in path.resolve().parents
        except OSError:
            return False

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        try:
            if path.stat().st_size > MAX_TEMPLATE_BYTES:
                raise TemplateError("invalid_template", f"{path.name} is over {MAX_TEMPLATE_BYTES} bytes")
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise TemplateError("invalid_template", f"{path.name} is not a readable JSON graph: {exc}") from None
        if not isinstance(data, dict):
            raise TemplateError("invalid_template", f"{path.name} is not a graph (a JSON object)")
        return data
