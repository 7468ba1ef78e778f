"""What a saved result records besides its graph, so that a stranger can run it again and check it.

`run_record(context)` is the dict that SaveImage writes next to the graph (PNG text chunk
`nodegraph_run`; JPEG/WebP EXIF ImageDescription (tag 270), see nodes/image): the versions that produced the
result and the SHA-256 of every model file the run read:

    {"nodegraph": "0.1.0", "torch": "2.13.0", "python": "3.11.7", "device": "cpu", "threads": 2,
     "models": {"load.ckpt_name": {"folder": "checkpoints", "name": "tiny_world_v4.safetensors",
                                   "sha256": "9f2c…"}}}

A model *folder* (a diffusers pipeline chosen as `ckpt_name`) adds `"files": {"unet/config.json": sha256, …}`,
every file in it but hidden ones, and its `sha256` is that of the lines "<sha256>  <path>" sorted by path
(`folder_sha256`: what `sha256sum` prints for them).

A model file named inside another input (a prompt's `embedding:NAME`, `Node.named_model_files`) is keyed
`"node.input:FILE"`: `"prompt.text:thing.safetensors": {"folder": "embeddings", "name": ..., "sha256": ...}`.

It also holds `"inputs": {"node.input": {"name", "sha256"}}` for the files of the input folder the graph
reads (an img2img's source image), as `input_files` finds them, and — when the graph uses an installed
plugin's nodes — `"plugins": {"video": {"version": "0.1.0", "nodes": {"video.SaveVideo": "1.0.0"}}}`
(`plugin_nodes`).

`"nodes": {"KSampler": "1.1.1", "RandomInt": "1.0.0", ...}` names the `version` of every node type that ran,
built-in and plugin alike (`node_versions`): nodegraph's own version is not bumped when a built-in node's
result changes, the node's version is. When nodegraph runs from a git checkout, `"nodegraph_commit"` is the
commit its `.git/HEAD` named when this process first asked (`source_commit`, read from the files, no `git`
subprocess; an edited working tree is not marked); absent otherwise (an installed wheel).

The graph itself (overrides applied) is what makes the result again; the record is what tells
a different result apart: another model file under the same name, another torch, on the CPU another
number of threads (torch splits sums across them, and the last bits of a result follow). Model files
are found through the effective graph (subgraphs expanded, muted nodes left out), by the
inputs declared `model_folder=...`.

`file_sha256(path)` hashes a file once per (real path, size, modification and change time): remembered in
memory and in `<cache dir>/sha256.json` (`$NODEGRAPH_CACHE_DIR`, else `$XDG_CACHE_HOME/nodegraph`,
else `~/.cache/nodegraph`), as A1111 does for its model hashes — a 6 GB checkpoint takes seconds
once, not on every save. A cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

_lock = threading.Lock()
_memory: dict[str, str] = {}
MAX_CACHED_HASHES = 10_000


def cache_dir() -> Path:
    """Where nodegraph keeps what it can compute again (file hashes)."""
    configured = os.environ.get("NODEGRAPH_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nodegraph"


def _key(path: Path) -> str:
    real = os.path.realpath(path)
    stat = os.stat(real)
    # the change time too: writing a file and then setting its old mtime back (os.utime, `touch -r`) keeps size and
    # mtime, and the old hash was recorded for new content; the system sets ctime on any change
    return f"{real}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"


def _read_cache(file: Path) -> dict[str, str]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) \
        else {}


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file, remembered per real path, size, modification and change time."""
    key = _key(Path(path))
    with _lock:
        known = _memory.get(key)
    if known is not None:
        return known
    file = cache_dir() / "sha256.json"
    stored = _read_cache(file)
    digest = stored.get(key)
    if digest is None:
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        digest = hasher.hexdigest()
        stored[key] = digest
        if len(stored) > MAX_CACHED_HASHES:
            stored = dict(list(stored.items())[-MAX_CACHED_HASHES:])
        try:
            from .files import replace_file

            file.parent.mkdir(parents=True, exist_ok=True)
            replace_file(file, json.dumps(stored))
        except OSError:
            pass          # a read-only home: hashed again next time, nothing else changes
    with _lock:
        _memory[key] = digest
    return digest


MAX_FOLDER_FILES = 1000     # files of one model folder (a diffusers pipeline) hashed for a record; more: none


def folder_sha256(folder: str | os.PathLike) -> dict[str, Any]:
    """A model folder (a diffusers pipeline: model_index.json, unet/, vae/ …) as `{"sha256", "files"}`: `files`
    maps each file's path inside the folder ("/"-separated; hidden files and folders left out) to its SHA-256,
    and `sha256` is the SHA-256 of the lines "<sha256>  <path>\n" sorted by path — what `sha256sum` prints
    there — so one value tells two folders apart and `files` says which file differs. Each file is hashed
    once per version (`file_sha256`). OSError when the folder cannot be read or holds over MAX_FOLDER_FILES."""
    root = Path(folder)
    files: dict[str, str] = {}
    seen: set[str] = set()       # real folders walked: a link back up must not loop
    for directory, subfolders, names in os.walk(root, followlinks=True):
        if os.path.realpath(directory) in seen:
            subfolders[:] = []
            continue
        seen.add(os.path.realpath(directory))
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for file_name in sorted(n for n in names if not n.startswith(".")):
            path = Path(directory, file_name)
            if path.is_file():
                files[path.relative_to(root).as_posix()] = file_sha256(path)
                if len(files) > MAX_FOLDER_FILES:
                    raise OSError(f"{root} holds over {MAX_FOLDER_FILES} files: not hashed for the run record")
    if not files:
        raise OSError(f"{root} holds no files")
    manifest = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
    return {"sha256": hashlib.sha256(manifest.encode("utf-8")).hexdigest(), "files": dict(sorted(files.items()))}


def _running_nodes(context: Any) -> Iterator[tuple[str, Any, Any, Any]]:
    """(node id, node, node class, all nodes) for each node of the running graph (subgraphs expanded, muted nodes
    left out) whose type is registered; nothing without a graph and a registry."""
    graph = getattr(context, "graph", None)
    registry = (getattr(context, "services", {}) or {}).get("registry")
    if graph is None or registry is None:
        return
    from .effective_graph import effective_graph

    nodes = effective_graph(graph, registry).graph.nodes
    for node_id, node in nodes.items():
        cls = registry.nodes.get(node.type)
        if cls is not None:
            yield node_id, node, cls, nodes


def _text_inputs(context: Any, wanted: Callable[[Any], bool]) -> Iterator[tuple[str, str, Any, str]]:
    """(node id, input name, input spec, text) for each input of the running graph (subgraphs expanded) that
    `wanted(spec)` picks and that holds text (its literal, its default, or the literal of a primitive linked to it
    — a name computed by another node is not known here)."""
    from .graph import primitive_value

    for node_id, node, cls, nodes in _running_nodes(context):
        for name, spec in cls.spec.inputs.items():
            value = primitive_value(nodes, node.inputs.get(name, spec.default))   # a name a String box gives too
            if wanted(spec) and isinstance(value, str):
                yield node_id, name, spec, value


def model_files(context: Any) -> dict[str, dict[str, Any]]:
    """`{"node.input": {"folder", "name", "sha256"}}` for the model files the running graph names (a model
    folder: `"files"` too, `folder_sha256`)."""
    resolve = (getattr(context, "services", {}) or {}).get("resolve_file")
    if resolve is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for node_id, name, spec, value in _text_inputs(context, lambda spec: spec.model_folder is not None):
        try:
            path = Path(resolve(spec.model_folder, value))
            entry = folder_sha256(path) if path.is_dir() else {"sha256": file_sha256(path)}
        except (LookupError, OSError):
            continue      # a built-in name or a file gone since: nothing to record
        out[f"{node_id}.{name}"] = {"folder": spec.model_folder, "name": value, **entry}
    for node_id, name, folder, file_name, path in _named_files(context, resolve):
        try:
            digest = file_sha256(path)
        except OSError:
            continue
        out[f"{node_id}.{name}:{file_name}"] = {"folder": folder, "name": file_name, "sha256": digest}
    return out


def _named_files(context: Any, resolve: Callable[[str, str], Any]) -> Iterator[tuple[str, str, str, str, Any]]:
    """(node id, input, folder, file name, path) of the files the running graph's nodes name inside other inputs
    (`Node.named_model_files`: a prompt's `embedding:NAME`) that exist, found as the cache key finds them
    (`node.first_existing_file`: the exact name, else the one file in another case the loader reads)."""
    from .graph import Link, primitive_value
    from .node import Node, first_existing_file

    model_paths = (getattr(context, "services", {}) or {}).get("model_paths")
    listing = model_paths.list if model_paths is not None else None    # cached: the loader's case-blind match too
    for node_id, node, cls, nodes in _running_nodes(context):
        if cls.named_model_files.__func__ is Node.named_model_files.__func__:
            continue
        literals = {name: value for name, spec in cls.spec.inputs.items()
                    if not isinstance(value := primitive_value(nodes, node.inputs.get(name, spec.default)), Link)}
        for name, folder, candidates in well_formed_named_files(cls, literals):
            found = first_existing_file(resolve, folder, candidates, listing)
            if found is not None:
                yield node_id, name, folder, found[0], found[1]


def well_formed_named_files(cls: Any, literals: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    """`cls.named_model_files(literals)`, keeping the entries of the documented shape (input, folder, candidate
    names); a plugin's bug there — raising, a 2-tuple — is logged once and gives nothing (it crashed the CLI's
    record after the run, and made a SaveImage beside it fail in the node's place)."""
    import logging

    try:
        named = list(cls.named_model_files(literals))
        good = [(entry[0], entry[1], tuple(entry[2])) for entry in named
                if isinstance(entry, (tuple, list)) and len(entry) == 3 and isinstance(entry[0], str)
                and isinstance(entry[1], str) and isinstance(entry[2], (tuple, list))
                and all(isinstance(c, str) for c in entry[2])]
    except Exception as exc:  # noqa: BLE001 — a plugin's parsing bug must not lose the run's record
        named, good, problem = [], [], f"raised {type(exc).__name__}: {exc}"
    else:
        problem = None if len(good) == len(named) else "returned entries that are not (input, folder, (names, ...))"
    if problem is not None and cls not in _NAMED_FILES_WARNED:
        _NAMED_FILES_WARNED.add(cls)
        logging.getLogger("nodegraph.provenance").warning(
            "%s.named_model_files (module %s) %s; those files are not fingerprinted or recorded", cls.__name__,
            getattr(cls, "__module__", "?"), problem)
    return good


_NAMED_FILES_WARNED: set[type] = set()


def input_files(context: Any) -> dict[str, dict[str, str]]:
    """`{"node.input": {"name", "sha256"}}` for the files of the input folder the running graph reads (an
    img2img's source image): the same name with other content makes another result, and this tells it apart.
    Folders (datasets) and files that are gone are left out."""
    input_dir = (getattr(context, "services", {}) or {}).get("input_dir")
    if input_dir is None:
        return {}
    from .paths import PathConfinementError, confine

    out: dict[str, dict[str, str]] = {}
    for node_id, name, spec, value in _text_inputs(context, lambda spec: spec.file_name_in == "input"):
        try:
            path = confine(Path(input_dir), value, input_name=name, subfolders=bool(spec.subfolders))
            if path.is_file():
                out[f"{node_id}.{name}"] = {"name": value, "sha256": file_sha256(path)}
        except (PathConfinementError, OSError):
            continue
    return out


def plugin_nodes(context: Any) -> dict[str, dict[str, Any]]:
    """`{plugin: {"version", "nodes": {qualified type: node version}}}` for the installed plugins (not the
    built-in packs, which have no version of their own: `node_versions` names their nodes') whose nodes the
    running graph uses: a plugin upgrade that changes a result is told apart by its version."""
    services = getattr(context, "services", {}) or {}
    graph, registry = getattr(context, "graph", None), services.get("registry")
    versions = services.get("plugin_versions") or {}
    if graph is None or registry is None or not versions:
        return {}
    from .effective_graph import effective_graph

    out: dict[str, dict[str, Any]] = {}
    for node in effective_graph(graph, registry).graph.nodes.values():
        cls = registry.nodes.get(node.type)
        plugin = registry.plugin_of(cls) if cls is not None else None
        if plugin in versions:
            entry = out.setdefault(plugin, {"version": versions[plugin], "nodes": {}})
            entry["nodes"][registry.qualified_name(cls)] = cls.version
    return out


def node_versions(context: Any) -> dict[str, str]:
    """`{node type: version}` for every registered node type the running graph runs (subgraphs expanded, muted
    nodes left out), built-in and plugin alike, sorted by type: a node whose result changed bumps its version
    (KSampler 1.1.1) while nodegraph's own stays, so two records of different results tell it apart."""
    return dict(sorted({node.type: cls.version for _, node, cls, _ in _running_nodes(context)}.items()))


_SOURCE_ROOT = Path(__file__).resolve().parent.parent      # the folder holding the `nodegraph` package
_COMMIT_CHARS = frozenset("0123456789abcdef")


def _git_dir(root: Path) -> Path | None:
    """The git directory of a checkout at `root`: `root/.git`, or the folder a `.git` file names (a worktree,
    a submodule: "gitdir: PATH"); None when `root` is not a checkout."""
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    try:
        first = dot_git.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    if not first.startswith("gitdir:"):
        return None
    target = Path(first[len("gitdir:"):].strip())
    return target if target.is_absolute() else (root / target)


def _commit_or_none(text: str) -> str | None:
    """`text` stripped when it is a full commit id (40 hex digits, 64 in a SHA-256 repository), else None."""
    text = text.strip()
    return text if len(text) in (40, 64) and set(text) <= _COMMIT_CHARS else None


def _ref_commit(git_dir: Path, ref: str) -> str | None:
    """The commit a ref (`refs/heads/main`) names: its loose file, else its line in `packed-refs`; a worktree's
    shared refs are in the folder its `commondir` file names."""
    folders = [git_dir]
    try:
        common = Path(git_dir, "commondir").read_text(encoding="utf-8").strip()
        folders.append(Path(common) if Path(common).is_absolute() else git_dir / common)
    except (OSError, UnicodeDecodeError):
        pass
    for folder in folders:
        try:
            found = _commit_or_none(Path(folder, ref).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            found = None
        if found is not None:
            return found
        try:
            packed = Path(folder, "packed-refs").read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in packed:
            commit, _, name = line.partition(" ")
            if name.strip() == ref and _commit_or_none(commit) is not None:
                return commit
    return None


def checkout_commit(root: Path) -> str | None:
    """The commit checked out at `root` (what `git rev-parse HEAD` prints), read from `.git/HEAD` and the ref
    file it names, without running git; None when `root` is no checkout or its files cannot be read."""
    git_dir = _git_dir(root)
    if git_dir is None:
        return None
    try:
        head = Path(git_dir, "HEAD").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if head.startswith("ref:"):
        return _ref_commit(git_dir, head[len("ref:"):].strip())
    return _commit_or_none(head)         # a detached HEAD holds the commit itself


_source_commit: list[str | None] = []      # read once: the code this process loaded, not a later `git pull`'s


def source_commit() -> str | None:
    """The commit of the checkout nodegraph runs from, read once per process (`checkout_commit`); None for an
    installed copy."""
    with _lock:
        if not _source_commit:
            _source_commit.append(checkout_commit(_SOURCE_ROOT))
        return _source_commit[0]


def float_literals_as_floats(data: dict[str, Any], registry: Any) -> dict[str, Any]:
    """A graph file (dict) whose integer literals in inputs declared FLOAT (a KSampler's `cfg: 5`) are written as
    floats (`5.0`), in its nodes and its subgraph definitions' nodes; nothing else changes. The node receives
    the same number either way, so this is the form a saved result embeds (`RunContext.graph_as_run`): a graph
    passed through a tool that rewrites `5.0` as `5` (jq 1.6) embeds the same text, and its files the same
    bytes, as the original run's."""

    def nodes_with_floats(nodes: Any) -> Any:
        if not isinstance(nodes, dict):
            return nodes
        out = {}
        for node_id, node in nodes.items():
            cls = registry.nodes.get(node.get("type")) if isinstance(node, dict) else None
            inputs = node.get("inputs") if cls is not None else None
            if isinstance(inputs, dict):
                floats = {name: float(value) for name, value in inputs.items()
                          if type(value) is int and name in cls.spec.inputs
                          and cls.spec.inputs[name].port == "FLOAT"}
                node = {**node, "inputs": {**inputs, **floats}} if floats else node
            out[node_id] = node
        return out

    if registry is None:
        return data
    out = {**data, "nodes": nodes_with_floats(data.get("nodes"))} if "nodes" in data else dict(data)
    if isinstance(data.get("subgraphs"), dict):
        out["subgraphs"] = {name: {**definition, "nodes": nodes_with_floats(definition.get("nodes"))}
                            if isinstance(definition, dict) and "nodes" in definition else definition
                            for name, definition in data["subgraphs"].items()}
    return out


def run_record(context: Any) -> dict[str, Any]:
    """Versions, device and model file hashes of the running graph (see the module docstring)."""
    from . import __version__

    torch = sys.modules.get("torch")
    memory = (getattr(context, "services", {}) or {}).get("memory")
    device = str(getattr(memory, "compute_device", "cpu"))
    if device.startswith("cuda") and torch is not None and torch.cuda.is_available():
        device = f"{device} ({torch.cuda.get_device_name(0)})"
    commit = source_commit()
    record = {"nodegraph": __version__, **({"nodegraph_commit": commit} if commit is not None else {}),
              "torch": getattr(torch, "__version__", None), "python": platform.python_version(), "device": device}
    if device.startswith("cpu") and torch is not None:    # CPU sums split across threads round differently
        record["threads"] = torch.get_num_threads()
    record = {**record, "models": model_files(context), "inputs": input_files(context),
              "nodes": node_versions(context)}
    plugins = plugin_nodes(context)
    return {**record, "plugins": plugins} if plugins else record
