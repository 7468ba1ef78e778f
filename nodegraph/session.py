"""The Python API: a Session owns the plugins, the cache and the run loop.

    from nodegraph import Session
    session = Session()
    result = session.run("graphs/arithmetic.json", overrides={"width.value": 1024})
    result.outputs["show"]["value"], result.executed, result.cached

A Session loads plugins once (see plugins.py), keeps one OutputCache shared by
every run and graph, runs one graph at a time (a lock; `interrupt()` may be
called from any thread; `run()` from the thread already running one, an event
sink's or a node's, is a RuntimeError, not a wait for itself), and offers the
services nodes ask their context for: `output_dir`, `input_dir`, `model_paths`,
`memory` (the model memory manager, memory.py) and `registry`. The CLI and the
server are thin layers over it.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Iterable

from . import events as ev
from .cache import DEFAULT_BUDGET_BYTES, CachePolicy, OutputCache
from .errors import GraphError, GraphValidationError, NodeExecutionError, RunInterrupted
from .effective_graph import effective_graph, requested_targets
from .executor import ListingResolver, RunResult, compile_graph, run_plan
from .graph import Graph, load_graph, parse_graph, with_renamed_inputs
from .interrupts import NodeChecks
from .memory import ModelMemoryManager
from .model_paths import ModelPaths
from .plugins import load_plugins, plugin_warnings
from .prefix_tokens import expand_graph
from .validation import literal_check_errors, model_file_error, model_write_errors, output_errors, validate

GraphSource = Graph | dict | str | bytes | os.PathLike


class Session:
    """Plugins, cache and services for running graphs.

    Args:
        plugins: extra plugin objects (modules with hookimpls), e.g. in tests.
        builtins: load the built-in node packs.
        autoload: load installed plugins (default: unless NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD).
        allow, deny: plugin names (default from NODEGRAPH_PLUGINS_ALLOW / _DENY).
        prefer: bare node type → plugin whose node that name means when several plugins
            provide it (default from NODEGRAPH_PLUGINS_PREFER, `Type=plugin,Other=plugin2`).
        cache_policy, cache_budget_bytes: see cache.py.
        model_paths: where model files are found (default: ./models, the project's models/ and
            the extra paths of the NODEGRAPH_MODEL_PATHS config file).
        output_dir, input_dir: where nodes write results and read uploads.
        memory: the model memory manager (default: best device, budget from free memory).
    """

    # how long `run` waits in all for a plugin's choice list still being read (`Registry.CHOICES_WAIT` is the
    # editor's and a server submit's quick wait): a one-shot `nodegraph run` always failed on a list slower than
    # that, with nobody's editor to keep responsive; a list slower than this still fails with its delay named
    RUN_CHOICES_WAIT = 30.0

    def __init__(
        self,
        *,
        plugins: Iterable[Any] = (),
        builtins: bool = True,
        autoload: bool | None = None,
        allow: list[str] | None = None,
        deny: list[str] | None = None,
        prefer: dict[str, str] | None = None,
        cache_policy: CachePolicy = "lru",
        cache_budget_bytes: int = DEFAULT_BUDGET_BYTES,
        model_paths: ModelPaths | None = None,
        output_dir: str | os.PathLike = "output",
        input_dir: str | os.PathLike = "input",
        memory: ModelMemoryManager | None = None,
    ):
        self.plugin_manager, self.registry, self.plugin_report = load_plugins(
            builtins=builtins, autoload=autoload, plugins=plugins, allow=allow, deny=deny,
            prefer=prefer)
        self.cache = OutputCache(cache_policy, cache_budget_bytes)
        if model_paths is not None and not isinstance(model_paths, ModelPaths):
            raise TypeError(f"Session(model_paths=...) takes a ModelPaths, found {type(model_paths).__name__} "
                            f"{model_paths!r:.60}: ModelPaths.from_config('extra_model_paths.yaml') reads a config "
                            f"file, ModelPaths.default() the project's models/ folder (docs/models.md)")
        self.model_paths = model_paths or ModelPaths.default()
        for folder, exts in (self.registry.extensions.get("model_folders") or {}).items():
            self.model_paths.extensions.setdefault(folder, tuple(exts))
        for plugin_dirs in (self.registry.extensions.get("model_dirs") or {}).values():   # searched last
            for folder, dirs in plugin_dirs.items():
                known = self.model_paths.extra.setdefault(folder, [])
                known.extend(Path(d) for d in dirs if Path(d) not in known)
        self.output_dir = Path(output_dir)
        self.input_dir = Path(input_dir)
        self.memory = memory or ModelMemoryManager()
        self.services: dict[str, Any] = {
            "memory": self.memory,
            "output_dir": self.output_dir,
            "input_dir": self.input_dir,
            "model_paths": self.model_paths,
            "resolve_file": self.resolve_file,
            "free_memory": self.free_memory,
            "registry": self.registry,
            "plugin_versions": {p.name: p.version for p in self.plugin_report.loaded if p.source != "builtin"},
        }
        self._subscribers: list[ev.EventSink] = []
        self._interrupt = threading.Event()
        # run ids asked to stop before they started (oldest first; at most MAX_INTERRUPT_REQUESTS kept), the id of
        # the run executing now, and a lock so that interrupt() and a run starting see the same pair
        self._interrupt_requests: dict[str, None] = {}
        self._finished_ids: dict[str, None] = {}       # the last MAX_INTERRUPT_REQUESTS runs that ended
        self._running_id: str | None = None
        self._node_checks = NodeChecks()     # the executing run's: how often its running node checked for interrupts
        self._starting: dict[str, None] = {}      # runs in run() that do not execute yet (validated, or waiting)
        self._interrupt_lock = threading.Lock()
        self._run_lock = threading.Lock()
        # cache scope → keys of the entries only that scope can hit, recorded as its runs start (`run(
        # free_shared_memory=False)`): what its FreeMemory drops (`_free_scope_memory`)
        self._scope_keys: dict[str, set[str]] = {}
        self._scope_keys_lock = threading.Lock()

    # --- plugins --------------------------------------------------------------

    def model_path_warnings(self) -> list[str]:
        """Folder names in the model path config (--model-paths, NODEGRAPH_MODEL_PATHS) that are no model
        folder (the standard ones and those plugins register), each with the closest name; directories it lists
        that are not directories here."""
        from .model_paths import STANDARD_FOLDERS

        known = set(STANDARD_FOLDERS) | set(self.registry.extensions.get("model_folders") or {})
        return self.model_paths.unknown_folder_warnings(known) + self.model_paths.missing_directory_warnings()

    def plugin_warnings(self) -> list[dict[str, Any]]:
        """Plugin failures, node-name clashes, skipped plugins and unused preferences, as plain dicts.

        Each entry: `{"kind": "failed"|"clash"|"skipped"|"unknown_name"|"no_nodes"|"preference", "level":
        "error"|"warning"|"info", "plugin": name, "message": ..., "fix": ..., ...}`
        (see `nodegraph.plugins.plugin_warnings`); "info" entries are the user's
        own choices (a denied plugin, a clash settled by a preference).
        """
        return plugin_warnings(self.plugin_report, self.registry)

    # --- graphs ---------------------------------------------------------------

    def load(self, source: GraphSource) -> Graph:
        """Parse a graph from a path, JSON text/bytes, dict or Graph (no semantic checks); inputs a node class
        renamed (`Node.renamed_inputs`) take their new names. A bytearray or memoryview is bytes (a buffer read
        from a socket or a file: "found a bytearray" before)."""
        if isinstance(source, (bytearray, memoryview)):
            source = bytes(source)
        if isinstance(source, os.PathLike) or (isinstance(source, str) and (
                not source.lstrip().startswith("{")
                or (not source.rstrip().endswith("}") and "\n" not in source and os.path.isfile(source)))):
            graph = load_graph(source)      # a path (one named "{x}.json" too), else JSON text
        else:
            graph = parse_graph(source)
        return self.renamed(graph)

    def renamed(self, graph: Graph) -> Graph:
        """`graph` with the inputs node classes renamed (`Node.renamed_inputs`) under their new names (the same
        object when none applies); `load` does it."""
        renames = self.registry.input_renames()
        return with_renamed_inputs(graph, renames) if renames else graph

    def import_comfyui(self, source: dict | str | bytes | os.PathLike) -> Graph:
        """A ComfyUI graph as a Graph of this session: an API-format prompt or a UI workflow, given as a dict, its
        JSON text, or a file ComfyUI wrote (a .json export or save, or a PNG with the prompt in it).

        What `nodegraph run` and the editor do with such files (`graph.import_foreign`): classes with an
        equivalent here become our nodes (CheckpointLoaderSimple → LoadCheckpoint, KSampler → KSampler, ...),
        others keep their ComfyUI type, so `validate` names them; the graph's `metadata` says what was
        translated (`comfyui_types`, `translated_values`, `comfyui_subgraphs`). Raises GraphValidationError
        (`invalid_format`) for anything that is not a ComfyUI graph.
        """
        import json

        from .graph import MAX_FILE_BYTES, PNG_SIGNATURE, foreign_prompt, foreign_prompt_from_bytes, import_foreign

        if isinstance(source, (bytearray, memoryview)):
            source = bytes(source)
        if isinstance(source, bytes) and (source.startswith((PNG_SIGNATURE, b"\xff\xd8\xff"))
                                          or source[8:12] == b"WEBP"):     # an image in memory (ComfyUI's, A1111's)
            data = foreign_prompt_from_bytes(source)
            if data is None:
                raise GraphValidationError([GraphError(
                    "invalid_format", "the image holds no ComfyUI prompt or workflow (a PNG's 'prompt' / 'workflow' "
                                      "text chunk) nor AUTOMATIC1111's parameters")])
        elif isinstance(source, bytes) or (isinstance(source, str) and not _names_a_file(source) and (
                source.lstrip()[:1] in ("{", "[") or len(source) > 4096)):
            if len(source) > MAX_FILE_BYTES:        # as for a file
                raise GraphValidationError([GraphError(
                    "invalid_format", f"the text is {len(source)} long; a graph is at most {MAX_FILE_BYTES} bytes")])
            try:
                data = json.loads(source)
            except RecursionError:
                raise GraphValidationError([GraphError("invalid_format", "the JSON is nested too deeply")]) from None
            except ValueError as exc:
                named = isinstance(source, str) and "\n" not in source and source.rstrip().lower().endswith(
                    (".json", ".png", ".jpg", ".jpeg", ".webp"))      # "[2] missing.json": a file that is not there
                raise GraphValidationError([GraphError("invalid_format", f"no file {source[:200]!r} (and as text it is "
                                                       f"not JSON)" if named else f"not JSON: {exc}")]) from None
        elif isinstance(source, (str, os.PathLike)):
            data = foreign_prompt(source)
            if data is None:
                raise GraphValidationError([GraphError(
                    "invalid_format", f"{os.fspath(source)[:200]!r} holds no ComfyUI prompt or workflow (a .json export "
                                      f"or save, or a PNG ComfyUI wrote), or cannot be read")])
        else:
            data = source
        return self.load(import_foreign(data, self.output_names, self.widget_names, self.comfyui_classes(),
                                        self.model_paths.list))

    def comfyui_classes(self) -> dict[str, Any]:
        """The ComfyUI classes the loaded plugins import as their nodes (`register_comfyui_classes`): class name →
        `api.ComfyUIClass`, given to `graph.import_foreign` with the built-in table."""
        return dict(self.registry.extensions.get("comfyui_classes", {}))

    def widget_names(self, node_type: Any) -> tuple[str | None, ...] | None:
        """ComfyUI's widget order for a node type this session has (None for one it lacks): its inputs that take a
        value (not link-only ports) in declared order, with None after a seed — an input declared `seed=True`
        (ComfyUI's `control_after_generate`: a `detail_seed` got no slot, and every later value shifted by one), or
        an INT named `seed` / `noise_seed` — where ComfyUI adds its "control after generate" widget — how a UI
        workflow's `widgets_values` name a plugin's port of a ComfyUI pack that kept the pack's input order
        (docs/plugins.md, "Porting a ComfyUI node")."""
        cls = self.registry.nodes.get(node_type) if isinstance(node_type, str) else None
        if cls is None:
            return None
        names: list[str | None] = []
        for name, spec in cls.spec.inputs.items():
            if spec.adapter is None:          # a link-only port (IMAGE, MODEL, ...): no widget
                continue
            names.append(name)
            if spec.widget.get("seed") or (name in ("seed", "noise_seed") and spec.port == "INT"):
                names.append(None)
        return tuple(names)

    def output_names(self, node_type: Any) -> list[str] | None:
        """The output names of a node type this session has, in order (None for a type it lacks)."""
        cls = self.registry.nodes.get(node_type) if isinstance(node_type, str) else None
        return [o.name for o in cls.spec.outputs] if cls is not None else None

    def with_overrides(self, graph: Graph, overrides: dict[str, Any]) -> Graph:
        """`graph.with_overrides(overrides)`, an override that names a renamed input by its old name setting it
        under its new name (`renamed_overrides`), and numpy scalars taken as the Python numbers they hold
        (`{"ks.seed": np.int64(5)}` from a diffusers script was a type_mismatch)."""
        if not isinstance(overrides, Mapping):      # a list of pairs failed with "'list' object has no attribute 'items'"
            raise TypeError(f"overrides must be a mapping {{'node_id.input': value}}, found "
                            f"{type(overrides).__name__}" + (" (a list of pairs: wrap it in dict(...))"
                                                              if isinstance(overrides, (list, tuple)) else ""))
        plain = {key: _plain_scalar(value) for key, value in resolve_bare_overrides(graph, overrides,
                                                                                    self.registry).items()}
        return graph.with_overrides(self.renamed_overrides(graph, plain))

    def with_usable_overrides(self, graph: Graph, overrides: dict[str, Any]) -> tuple[Graph, list[GraphError]]:
        """The graph with the overrides that name its nodes applied, and the errors of those that do not, so one
        misspelt node id does not hide the other overrides' problems (`validate` and `run` report them together,
        as `nodegraph validate --set` does)."""
        if not isinstance(overrides, Mapping):
            return self.with_overrides(graph, overrides), []     # its TypeError
        overrides, bare_errors = bare_override_keys(graph, overrides, self.registry)
        try:
            return self.with_overrides(graph, overrides), bare_errors
        except GraphValidationError:
            # one at a time: each bad one is said and left out, the others are applied and checked (a link
            # replaced by one override hid the seeds and sampler names of every other before)
            errors = list(bare_errors)
            for key, value in overrides.items():
                try:
                    graph = self.with_overrides(graph, {key: value})
                except GraphValidationError as exc:
                    errors += [e for e in exc.errors if e not in errors]
            return graph, errors

    def renamed_overrides(self, graph: Graph, overrides: dict[str, Any]) -> dict[str, Any]:
        """`{"node.input": value}` overrides with each renamed input (`Node.renamed_inputs`) under its new name."""
        renames = self.registry.input_renames()
        if not renames:
            return overrides

        def new_key(key: Any) -> Any:
            node_id, dot, name = str(key).rpartition(".")
            node = graph.nodes.get(node_id) if dot else None
            mapping = renames.get(node.type, {}) if node is not None else {}
            return f"{node_id}.{mapping[name]}" if name in mapping else key
        return {new_key(key): value for key, value in overrides.items()}

    def validate(self, source: GraphSource, outputs: Iterable[str] | None = None, *,
                 model_writes: bool = True, input_dir: str | os.PathLike | None = None,
                 overrides: dict[str, Any] | None = None) -> list[GraphError]:
        """Every problem in the graph (empty list = valid); never raises for bad graphs.

        `overrides` are applied first, as `run` applies them (`validate --set`).
        `model_writes=False` (a server's plain users) adds a `model_write_forbidden` error for each
        node that writes into a model folder (see `run`). Files named in the input folder (uploads,
        datasets) must be in `input_dir` (default: the session's input folder)."""
        override_errors: list[GraphError] = []
        try:
            graph = self.load(source)
            if overrides:
                graph, override_errors = self.with_usable_overrides(graph, overrides)
        except GraphValidationError as exc:
            return exc.errors
        outputs = _output_ids(outputs)
        graph, token_errors = expand_graph(graph, self.registry)     # ComfyUI's %date:…% / %KSampler.seed%
        token_errors = override_errors + token_errors
        if outputs is not None:           # chosen outputs: only what they need is checked (as `run` runs it)
            outputs = list(outputs)
            if unknown := _unknown_outputs(graph, outputs):
                return unknown
            graph = graph.upstream_of(outputs)
        errors = token_errors + validate(graph, self.registry, outputs, self.model_paths.list,
                                         input_dir if input_dir is not None else self.input_dir)
        if not errors:   # a superset of the checks `run` memoises: running this Graph object skips them
            graph.compiled[("validated", id(self.registry))] = (self.registry, True)
            if not model_writes:
                errors = model_write_errors(compile_graph(graph, self.registry))
        return errors

    def _checked_plan(self, graph: Graph, outputs: tuple[str, ...] | None, input_dir: Path | None = None):
        """Validate (memoised per graph; model files re-checked every run) and compile."""
        memo_key = ("validated", id(self.registry))
        memo = graph.compiled.get(memo_key)
        if memo is None or memo[0] is not self.registry:
            errors = [e for e in validate(graph, self.registry, outputs=(), list_model_files=None,
                                          input_dir=input_dir or self.input_dir, choices_wait=self.RUN_CHOICES_WAIT)
                      if e.code != "no_outputs"]
            if errors:     # with the model-file checks too, so `run` lists what `validate` lists
                errors = [e for e in validate(graph, self.registry, (), self.model_paths.list,
                                              input_dir or self.input_dir, choices_wait=self.RUN_CHOICES_WAIT)
                          if e.code != "no_outputs"]
            if errors:     # none on the second look (a slow choice list answered meanwhile, a file appeared): valid
                raise GraphValidationError(errors)
            graph.compiled[memo_key] = (self.registry, True)
        plan = compile_graph(graph, self.registry)
        errors = output_errors(plan.nodes, bool(plan.output_nodes), outputs)
        for node_id in plan.literal_checks:     # nodes' own checks of their literals, every run (files change)
            node_plan = plan.nodes[node_id]
            errors.extend(literal_check_errors(node_id, node_plan.cls, node_plan.literals, self.model_paths.list))
        if plan.model_file_inputs:
            listings: dict[str, tuple[list[str], list[str]]] = {}
            for node_id, name, folder, file in plan.model_file_inputs:
                if folder not in listings:
                    listings[folder] = self.model_paths.list(folder)
                available, searched = listings[folder]
                if file not in available:
                    errors.append(model_file_error(node_id, name, folder, file, available, searched))
        if errors:     # said of the file the user wrote (muted outputs named, inner ids with their path)
            annotated = errors if graph.is_plain else effective_graph(graph, self.registry).annotate(errors)
            raise GraphValidationError(annotated)
        return plan

    def run(
        self,
        source: GraphSource,
        *,
        overrides: dict[str, Any] | None = None,
        outputs: Iterable[str] | None = None,
        on_event: ev.EventSink | None = None,
        run_id: str | None = None,
        input_dir: str | os.PathLike | None = None,
        output_dir: str | os.PathLike | None = None,
        model_writes: bool = True,
        output_budget: Any = None,
        cache_scope: str | None = None,
        free_shared_memory: bool = True,
    ) -> RunResult:
        """Validate and run a graph; returns outputs and which nodes executed or came from cache.

        Args:
            source: path, JSON text/bytes, dict or Graph. Re-running the same
                Graph object skips parsing, validation and compilation.
            overrides: `{"node_id.input": value}` literals replacing the file's; a bare input name (`{"seed": 4}`)
                means the one node that has that input, as `nodegraph run --set seed=4` does.
            outputs: node ids to produce (default: every output node). Only what they need is
                checked and run: a broken node elsewhere in the graph does not stop them.
            on_event: a sink for this run's events (in addition to subscribers), called as `on_event(event)`;
                anything else is a TypeError here.
            run_id: an id (a str) for the run's events (default: a new uuid). `interrupt(run_id)`
                called before the run starts (e.g. while it is validated) stops it at once.
            input_dir, output_dir: folders for this run only (a server gives each user
                their own); output nodes' cache keys include the output folder, so a
                cached result never points into another run's folder, and the keys of nodes
                that read the input folder include it, so one user's file never answers
                for another's.
            cache_scope: whose cache entries the run reads and writes (a server's user name): runs of other
                scopes share only the outputs of nodes that declare `shared_cache` (model loaders). None:
                one cache for every run.
            free_shared_memory: False (a server's plain user, whose runs have a `cache_scope`): the run's
                `free_memory` service (a FreeMemory node) drops only the cache entries that scope alone can hit
                and returns how many; the models and every other user's results stay. True: it drops every
                cached output and offloads every model (`free_memory()`), as on a machine of one's own.
            output_budget: a `files.OutputBudget`: what the run's files may take in all (`api.save_files` refuses
                the file that passes it); a server gives a user with a storage limit one.
            model_writes: False refuses the graph (`model_write_forbidden`, before anything
                runs) when a node in it writes into a model folder — a save node, whose
                file-name input declares a model folder (`Input(file_name_in="loras")`). A
                server runs its plain users' graphs so: a model folder is shared by everyone.

        Returns:
            A RunResult. Its `outputs` are the caller's own dicts and lists (replacing `out["image"]` by a PNG's
            text, or `latent["samples"]` by another tensor, changes nothing a later run gets), holding the nodes'
            tensors themselves, shared with the cache (not copies): `.clone()` a tensor before changing it in
            place (a cached entry whose tensor was changed so is noticed and run again; a write through a numpy
            view is not).

        Raises:
            GraphValidationError: the graph is invalid (every error listed).
            NodeExecutionError: a node failed (node id, type, exception, traceback).
            RunInterrupted: `interrupt()` was called.
            RuntimeError: called on the thread that is running a graph of this session (from an event sink or a
                node), which would wait for itself forever; another thread's `run` waits its turn.
            NodeExecutionError and RunInterrupted carry `files_written`: {node id: {"files": [...]}}, what the
            run's nodes saved before it stopped (a server records them with the run, so deleting the run deletes
            them).
        """
        self._refuse_reentrant_run()
        if run_id is not None and not isinstance(run_id, str):     # interrupt(run_id) takes a str only
            raise TypeError(f"run_id must be a str (e.g. uuid.uuid4().hex), the id interrupt(run_id) is then given; "
                            f"found {type(run_id).__name__} {run_id!r:.60}")
        if on_event is not None:
            _check_sink(on_event, "run(on_event=...)")
        run_id = run_id if run_id is not None else uuid.uuid4().hex
        with self._interrupt_lock:
            self._starting[run_id] = None       # an interrupt() without an id while it is validated reaches it
        try:
            return self._run(source, overrides, outputs, on_event, run_id, input_dir, output_dir, model_writes,
                             output_budget, cache_scope, free_shared_memory)
        finally:
            with self._interrupt_lock:
                if self._starting.pop(run_id, 0) is None:      # it never executed (invalid): its request is done
                    self._interrupt_requests.pop(run_id, None)

    def _run(self, source: GraphSource, overrides: dict[str, Any] | None, outputs: Iterable[str] | None,
             on_event: ev.EventSink | None, run_id: str, input_dir: str | os.PathLike | None,
             output_dir: str | os.PathLike | None, model_writes: bool, output_budget: Any,
             cache_scope: str | None, free_shared_memory: bool = True) -> RunResult:
        graph = self.load(source)
        if overrides:
            graph, override_errors = self.with_usable_overrides(graph, overrides)
            if override_errors:     # with the other overrides' and the graph's problems, as validate lists them
                rest = self.validate(graph, outputs, input_dir=input_dir)
                raise GraphValidationError(override_errors + [e for e in rest if e not in override_errors])
        outputs = _output_ids(outputs)
        requested = tuple(outputs) if outputs is not None else None
        # ComfyUI's file-name tokens (%date:…%, %KSampler.seed%) expanded now, into the names the cache keys see;
        # the nodes are given the graph as written (what a saved image embeds)
        expanded, token_errors = expand_graph(graph, self.registry)
        if token_errors:
            raise GraphValidationError(token_errors)
        if requested is not None and (unknown := _unknown_outputs(expanded, requested)):
            raise GraphValidationError(unknown)
        checked = expanded if requested is None else expanded.upstream_of(requested)   # chosen: what they need
        if requested is not None and not checked.is_plain:     # a subgraph node stands for its inner output nodes
            requested = tuple(requested_targets(checked, self.registry, requested))
        plan = self._checked_plan(checked, requested, Path(input_dir) if input_dir is not None else None)
        if not model_writes and (refused := model_write_errors(plan)):
            raise GraphValidationError(refused)
        targets = requested if requested is not None else plan.output_nodes
        sinks = list(self._subscribers) + ([on_event] if on_event else [])
        services, resolve_file, scope, input_scope = self.services, self.resolve_file, b"", b""
        if input_dir is not None or output_dir is not None:
            run_input = Path(input_dir) if input_dir is not None else self.input_dir
            run_output = Path(output_dir) if output_dir is not None else self.output_dir
            resolve_file = lambda folder, name: self._resolve_file_in(run_input, folder, name)  # noqa: E731
            services = {**self.services, "input_dir": run_input, "output_dir": run_output,
                        "resolve_file": resolve_file}
            scope = str(run_output.resolve()).encode()
            input_scope = str(run_input.resolve()).encode()
        resolve_file = ListingResolver(resolve_file, self.model_paths.list)   # keys find files as loaders do
        if output_budget is not None:
            services = {**services, "output_budget": output_budget}
        if not free_shared_memory:      # a plain user's FreeMemory: their entries only (it freed every user's models)
            own_scope = cache_scope or ""
            self._remember_scope_keys(own_scope, _scope_only_keys(
                plan, targets, resolve_file, scope, input_scope, cache_scope.encode() if cache_scope else b""))
            services = {**services, "free_memory": lambda: self._free_scope_memory(own_scope)}
        written: list[tuple[str, list]] = []      # (node id, file results) of each `api.save_files` call
        services = {**services, "written_files": written}
        with self._run_lock:
            with self._interrupt_lock:
                self._interrupt.clear()
                self._running_id = run_id
                self._node_checks = node_checks = NodeChecks()
                self._starting.pop(run_id, None)
                if run_id in self._interrupt_requests:        # asked to stop while it waited or was validated
                    del self._interrupt_requests[run_id]
                    self._interrupt.set()
            self._running_thread = threading.get_ident()
            try:
                return run_plan(plan, targets, self.cache, ev.fan_out(sinks), self._interrupt,
                                services, resolve_file, run_id, graph, output_scope=scope, input_scope=input_scope,
                                private_scope=cache_scope.encode() if cache_scope else b"", checks=node_checks)
            except (NodeExecutionError, RunInterrupted) as exc:
                exc.files_written = {}          # what nodes had saved, by node: the run's, though it failed
                for node_id, results in written:
                    exc.files_written.setdefault(node_id, {"files": []})["files"].extend(results)
                raise
            finally:
                self._running_thread = None
                with self._interrupt_lock:
                    self._running_id = None
                    self._finished_ids[run_id] = None
                    while len(self._finished_ids) > self.MAX_INTERRUPT_REQUESTS:
                        del self._finished_ids[next(iter(self._finished_ids))]

    _running_thread: int | None = None     # the thread executing a graph now (it holds _run_lock), or None

    def _refuse_reentrant_run(self) -> None:
        """Raise RuntimeError when this thread is executing a graph of this session already: `run()` from an event
        callback (a `run_finished` sink chaining the next run) or from a node waited for its own lock forever."""
        if self._running_thread == threading.get_ident():
            raise RuntimeError(
                "Session.run() was called on the thread that is running a graph of this session (from an event "
                "callback or a node); it would wait for itself forever. Start the next run after run() returns, "
                "from another thread (it waits for this run), or on another Session")

    def map(self, source: GraphSource, variants: Iterable[dict[str, Any]], *, outputs: Iterable[str] | None = None,
            output_dir: str | os.PathLike | None = None, pool: Any = None,
            on_item: Callable[[Any], None] | None = None, on_event: Callable[[Any], None] | None = None,
            stop: threading.Event | None = None) -> list:
        """Run a graph once per variant (a dict of overrides), here in order or across a Ray pool.

        Args:
            source: the graph (as for `run`).
            variants: `{"node_id.input": value}` dicts, e.g. `nodegraph.distributed.sweep.parse_sweep(
                ["sampler.seed=0..99"])`.
            outputs: node ids to produce (default: every output node).
            output_dir: one folder for every variant's files and `index.json` (default: the session's).
            pool: a started `nodegraph.distributed.pool.WorkerPool`, or None to run in this process.
            on_item: called with each finished `BatchItem`; on_event: every run's events.
            stop: set it (from any thread) to stop the batch: variants not started are not run, running
                ones are interrupted. Ctrl+C does the same (then raises KeyboardInterrupt), and so does
                `interrupt()` while a variant runs in this process.

        Returns the `BatchItem`s (status, files, outputs, error, worker) in variant order, of the variants
        that ran; a failing variant never stops the others. An item's `outputs` are what its record and
        `index.json` hold, JSON values: numbers and text as they are, a tensor described by type, shape and dtype
        (a batch may run on other machines, and its index must be readable by any tool) — for the tensors
        themselves, loop over `run` (its cache makes only what a variant changes run again). See
        nodegraph/distributed/batch.py and docs/distributed.md.
        """
        from .distributed.batch import run_batch

        return run_batch(self, source, list(variants), outputs=list(outputs) if outputs is not None else None,
                         output_dir=output_dir, pool=pool, on_item=on_item, on_event=on_event, stop=stop)

    def save_input_image(self, image: Any, *, input_dir: str | os.PathLike | None = None) -> str:
        """Write an image held in memory into the input folder and return the name LoadImage takes for it:
        `session.run(graph, overrides={"load.image": session.save_input_image(pil)})` — what a diffusers user
        passes as `image=` to a pipeline.

        `image`: a PIL image, a numpy array (H, W), (H, W, 3) or (H, W, 4), uint8, uint16 or float in [0, 1], or a
        tensor: an IMAGE (1, H, W, 3) / (H, W, 3) in [0, 1], or pixels laid out as the array is (channels last).
        Tones are kept: float grey (PIL "F", a depth or mask map) in [0, 1] is scaled to 8 bits as a float array
        is, 16-bit grey (PIL "I;16" / "I", uint16 (H, W)) stays 16-bit (LoadImage scales it), uint16 colour is
        scaled to 8 bits; out-of-range values are refused, not clipped. It is written losslessly (PNG, alpha kept:
        LoadImage's mask) as `memory/<first 16 hex digits of its SHA-256>.png` under `input_dir` (default: the
        session's input folder).
        **Decision:** a file, not a value passed around it — the run's record names it and its hash like any
        input, a later run of the same graph finds it, and the same pixels give the same name, so the cache
        answers for them. Raises TypeError / ValueError naming what was given and what is taken.
        """
        import hashlib
        import io

        pil = _as_pil_image(image)
        buffer = io.BytesIO()
        pil.save(buffer, format="PNG")
        data = buffer.getvalue()
        name = f"memory/{hashlib.sha256(data).hexdigest()[:16]}.png"
        path = Path(input_dir if input_dir is not None else self.input_dir) / name
        if not (path.is_file() and path.read_bytes() == data):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")     # a reader never sees half a file
            try:
                partial.write_bytes(data)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
        return name

    def resolve_file(self, folder: str, name: str) -> Path:
        """A file by folder and name: `"input"` is the input folder, anything else a model folder
        (`"input/"`: a folder inside the input folder, for nodes that read a whole folder)."""
        return self._resolve_file_in(self.input_dir, folder, name)

    def _resolve_file_in(self, input_dir: Path, folder: str, name: str) -> Path:
        if folder == "input/":
            from .paths import PathConfinementError, confine
            from .validation import INPUT_FOLDER_ITSELF

            if name == INPUT_FOLDER_ITSELF:     # the input folder itself (on a server: the user's own, `input_dir`)
                if not input_dir.is_dir():
                    raise LookupError("the input folder does not exist yet (nothing was uploaded or put there)")
                return input_dir
            try:
                path = confine(input_dir, name, what="input folder name", subfolders=True)
            except PathConfinementError as exc:
                raise LookupError(exc.message) from None
            if not path.is_dir():
                raise LookupError(f"no folder {name!r} in the input folder")
            return path
        if folder == "input":
            from .paths import PathConfinementError, confine

            try:     # subfolders: whether an input may name one is its declaration's rule, checked at validation
                path = confine(input_dir, name, what="input file name", subfolders=True)
            except PathConfinementError as exc:
                raise LookupError(exc.message) from None
            if not path.is_file():     # no absolute path in the message: on a server it goes to the client
                from .results import MIME_TYPES
                from .validation import missing_input_message

                kinds = MIME_TYPES.get(os.path.splitext(name)[1].lower())      # x.png: offer images, not a .wav
                raise LookupError(missing_input_message(input_dir, name, kind=kinds[0][0] if kinds else None))
            return path
        return self.model_paths.resolve(folder, name)

    MAX_INTERRUPT_REQUESTS = 1024       # requests for runs that have not started; the oldest are dropped

    def interrupt(self, run_id: str | None = None) -> None:
        """Ask a run to stop at its next check; safe from any thread.

        Without `run_id`: the run executing now — or, when none executes yet, the runs that `run()` is still
        starting (loading and validating), so a Cancel right after a run was started from another thread is
        not lost; runs waiting behind an executing one go on, as queued prompts do after ComfyUI's Cancel.
        With `run_id` (the one given to `run`): only that run — now if it is the one executing, else as soon
        as it starts (it is waiting for the run before it, or still being validated); another run executing
        meanwhile goes on. A run that has already ended is not stopped again should its id be used once more.
        """
        if run_id is not None and not isinstance(run_id, str):
            raise TypeError(f"run_id must be the str given to run(), found {type(run_id).__name__}")
        with self._interrupt_lock:
            if run_id is None and self._running_id is None:
                for starting in self._starting:
                    self._interrupt_requests[starting] = None
                return
            if run_id is None or run_id == self._running_id:
                self._interrupt.set()
                return
            if run_id in self._finished_ids:         # it has ended: nothing to stop (a reused id is a new run)
                return
            self._interrupt_requests[run_id] = None
            while len(self._interrupt_requests) > self.MAX_INTERRUPT_REQUESTS:
                del self._interrupt_requests[next(iter(self._interrupt_requests))]

    def running_node_checks(self, run_id: str) -> tuple[str, int] | None:
        """(node id, interrupt checks since it started) of the node run `run_id` is executing now; safe from any
        thread. A node stops at its next check (`context.check_interrupted`, `progress`, `interrupt_point`), so
        one with 0 runs on past an interrupt until it ends — a server says so to whoever interrupts it. None when
        that run is not executing in this session (waiting, validating, ended) or is between nodes."""
        with self._interrupt_lock:
            if run_id != self._running_id:
                return None
            return self._node_checks.running()

    # --- events and cache ---------------------------------------------------

    def subscribe(self, sink: ev.EventSink) -> Callable[[], None]:
        """Receive every run's events (`sink(event)`); returns a function that unsubscribes. A sink that is not
        a function of one event is a TypeError here (it was logged once per event of every later run)."""
        _check_sink(sink, "subscribe()")
        self._subscribers.append(sink)
        return lambda: self._subscribers.remove(sink) if sink in self._subscribers else None

    def set_cache_policy(self, policy: CachePolicy, budget_bytes: int | None = None) -> None:
        """Switch the cache policy ("lru", "all", "none") and optionally its byte budget; what it evicts goes
        back to the system."""
        before = self.cache.total_bytes
        self.cache.set_policy(policy, budget_bytes)
        if self.cache.total_bytes < before:
            import gc

            from .memory import return_freed_memory

            gc.collect()
            return_freed_memory()

    def clear_cache(self) -> None:
        """Drop every cached node output (the next run computes everything again). The process keeps the freed
        pages for its next allocations, so its memory (RSS) barely falls: `free_memory()` gives them back."""
        self.cache.clear()

    def free_memory(self) -> None:
        """Drop cached outputs (loaded models among them), offload/forget every model and give the freed memory
        back to the system (a server's `free_memory` message)."""
        self.cache.clear()
        self.memory.free()

    MAX_FORGOTTEN_SCOPE_KEYS = 10_000     # keys of evicted entries a scope's set may hold before they are forgotten

    def _remember_scope_keys(self, scope: str, keys: set[str]) -> None:
        """Add `keys` to what `_free_scope_memory(scope)` drops (forgetting those of entries evicted since, once
        there are many: a server runs for months)."""
        with self._scope_keys_lock:
            known = self._scope_keys.setdefault(scope, set())
            known |= keys
            if len(known) > 2 * len(self.cache) + self.MAX_FORGOTTEN_SCOPE_KEYS:
                known.intersection_update([key for key in known if key in self.cache])

    def _free_scope_memory(self, scope: str) -> int:
        """A plain user's `free_memory` service: drop the cached outputs only `scope` can hit and give their
        memory back; the models and other scopes' entries stay (they are everyone's: a user's FreeMemory node
        made every user reload them, which the admin-only `free_memory` message forbids). Returns how many
        entries were dropped."""
        import gc

        from .memory import return_freed_memory

        with self._scope_keys_lock:
            keys = [key for key in self._scope_keys.get(scope, ()) if key in self.cache]
        for key in keys:
            self.cache.discard(key)
        gc.collect()
        return_freed_memory()
        return len(keys)

    def node_schemas(self) -> list[dict]:
        """JSON schemas of every registered node; a node that ComfyUI classes import as (`register_comfyui_classes`)
        lists their names in `comfyui_classes`, so the editor's search finds a ported pack's node by its old name."""
        return with_comfyui_classes(self.registry.node_schemas(), self.comfyui_classes(), self.registry.resolve)


def with_comfyui_classes(schemas: list[dict], classes: Mapping[str, Any],
                         resolve: Callable[[str], str | None]) -> list[dict]:
    """`schemas` with each node's ComfyUI class names (`classes`: class name → `api.ComfyUIClass`, whose `type` may
    be bare or qualified; `resolve` gives the qualified name) added as a sorted `comfyui_classes` list: the editor
    searches them as synonyms ("FaceDetailer" finds the plugin's Object Detailer). Schemas of other nodes are
    returned as they are (the registry's memoised dicts are not changed)."""
    names: dict[str, list[str]] = {}
    for class_name, equivalent in classes.items():
        target = getattr(equivalent, "type", None)
        qualified = resolve(target) if isinstance(target, str) else None
        if qualified is not None:
            names.setdefault(qualified, []).append(class_name)
    if not names:
        return schemas
    return [{**schema, "comfyui_classes": sorted(names[schema["qualified_type"]])}
            if schema.get("qualified_type") in names else schema for schema in schemas]


def _scope_only_keys(plan: Any, targets: tuple[str, ...], resolve_file: Callable[[str, str], Any],
                     output_scope: bytes, input_scope: bytes, private_scope: bytes) -> set[str]:
    """The cache keys a run's nodes get (the executor's own `compute_keys`) whose entries only its cache scope can
    hit: every node's but a `shared_cache` node's (a model loader's) fed by such nodes alone. A node keyed afresh
    in every run (its file name made by a link, a fingerprint that failed) gets another key there: its entry is
    not listed, and is left to the cache's LRU."""
    from .executor import RunState, compute_keys, needed_nodes

    order = needed_nodes(plan, targets)
    state = RunState("", plan, tuple(targets))
    compute_keys(state, order, resolve_file, output_scope, input_scope, private_scope)
    own: set[str] = set()       # node ids whose key holds the scope (theirs, or that of a node they are fed by)
    for node_id in order:
        node = plan.nodes[node_id]
        if not node.cls.shared_cache or any(link.source in own for link in node.links):
            own.add(node_id)
    return {state.keys[node_id] for node_id in own}


def _output_ids(outputs: Any) -> list[str] | None:
    """`outputs` as a list of node ids: one id given as a str is that id (not its letters: "show" is not s, h,
    o, w); anything but ids is a TypeError saying what is expected ([None] was "'NoneType' object is not
    iterable")."""
    if outputs is None:
        return None
    ids = [outputs] if isinstance(outputs, str) else list(outputs) if isinstance(outputs, Iterable) else None
    if ids is None or not all(isinstance(node_id, str) for node_id in ids):
        raise TypeError(f"outputs must be node ids (str), e.g. ['save'] or 'save'; found {outputs!r:.100}")
    return ids


def _as_pil_image(image: Any) -> Any:
    """`Session.save_input_image`'s argument as a PIL image a PNG holds as it is (RGB, RGBA, L, LA or 16-bit grey
    I;16), or TypeError / ValueError naming save_input_image, what was given and what it takes."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return _pil_for_png(image)
    if type(image).__module__.startswith("torch"):
        return _tensor_as_pil(image)
    import numpy as np

    if isinstance(image, np.ndarray):
        return _array_as_pil(image)
    raise TypeError(f"save_input_image takes a PIL image, a numpy array or an IMAGE tensor; found "
                    f"{type(image).__name__}")


def _pil_for_png(image: Any) -> Any:
    """A PIL image with its tones kept in a mode PNG stores: float grey ("F", a depth or mask map) in [0, 1] scaled
    to 8 bits as a numpy float array is, 16-bit grey ("I;16*", "I" in 0..65535) kept at 16 bits (LoadImage scales it,
    files.eight_bit); any other mode through Pillow's convert. Pillow's own convert clipped instead of scaling: "F"
    0.5 came out black and "I;16" 40000 white."""
    import numpy as np
    from PIL import Image

    if not image.width or not image.height:
        raise ValueError(f"save_input_image: the image is empty ({image.width}x{image.height}): no pixels to save")
    if image.mode in ("RGB", "RGBA", "L", "LA", "I;16"):
        return image
    if image.mode == "F":
        return _array_as_pil(np.asarray(image))
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"save_input_image takes a mode-{image.mode} image with values in 0..65535 (16-bit "
                             f"grey); found values from {values.min()} to {values.max()}: scale it into that range "
                             f"first")
        return Image.fromarray(values.astype(np.uint16))
    if image.mode == "1":
        return image.convert("L")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _tensor_as_pil(image: Any) -> Any:
    """An IMAGE tensor (1, H, W, 3) / (H, W, 3) in [0, 1] through api.to_pil (which forgives values a hair outside
    [0, 1]); any other tensor (uint8 pixels, (H, W) grey, (H, W, 4)) as the numpy array it holds."""
    if image.ndim == 4 and image.shape[0] != 1:
        raise ValueError(f"save_input_image takes one image; this IMAGE batch holds {image.shape[0]}: save "
                         f"each (image[i:i + 1]) and give each LoadImage its own")
    plain = image.detach().cpu()
    if plain.ndim == 4:
        plain = plain[0]
    if plain.is_floating_point() and plain.ndim == 3 and plain.shape[-1] == 3:
        from . import api

        try:
            return api.to_pil(plain)[0]
        except api.ApiArgumentError as exc:      # named as the caller's call, not as a function it never called
            raise ValueError(f"save_input_image: {exc.problem}") from None
    if plain.is_floating_point():
        plain = plain.float()               # bfloat16 / float16: numpy holds neither as torch does
    return _array_as_pil(plain.numpy(), channels_first_hint=plain.ndim == 3 and plain.shape[0] in (1, 3, 4))


def _array_as_pil(array: Any, channels_first_hint: bool = False) -> Any:
    """A numpy array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) as a PIL image: uint8 as it is, floats in [0, 1]
    scaled to 8 bits, uint16 grey kept at 16 bits and uint16 colour scaled to 8 bits (a PNG of Pillow's holds no
    16-bit colour); anything else refused, naming the dtype and the range found."""
    import numpy as np
    from PIL import Image

    given = array.shape
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))) or not array.size:
        layout = (" (a channels-first (C, H, W) tensor: give image.permute(1, 2, 0), or an IMAGE (1, H, W, 3))"
                  if channels_first_hint and array.size else "")
        raise ValueError(f"save_input_image takes pixels laid out (H, W), (H, W, 3) or (H, W, 4), channels last; "
                         f"found shape {tuple(given)}{layout}")
    if array.dtype == np.uint8:
        return Image.fromarray(array)
    if array.dtype == np.uint16:
        if array.ndim == 2:
            return Image.fromarray(array)
        return Image.fromarray(np.rint(array * (255.0 / 65535.0)).astype(np.uint8))
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all() or array.min() < 0 \
            or array.max() > 1:
        raise ValueError(f"save_input_image takes uint8 or uint16 pixels or floats in [0, 1]; found {array.dtype} "
                         f"values from {array.min()} to {array.max()}")
    return Image.fromarray(np.round(array.astype(np.float64) * 255.0).astype(np.uint8))


def _check_sink(sink: Any, where: str) -> None:
    """Raise TypeError unless `sink` can be called with one event: a str or a function of no arguments given as
    an event sink was accepted, and every event then logged a traceback while the run "succeeded"."""
    if not callable(sink):
        raise TypeError(f"{where}: an event sink is a function called with each event, fn(event); found "
                        f"{type(sink).__name__} {sink!r:.60}")
    import inspect

    try:
        signature = inspect.signature(sink)
    except (TypeError, ValueError):        # a builtin or C callable without a signature: taken on trust
        return
    try:
        signature.bind(object())
    except TypeError as exc:
        name = getattr(sink, "__qualname__", None) or repr(sink)
        raise TypeError(f"{where}: an event sink is called with one argument, the event, as fn(event); "
                        f"{name:.80} cannot take it ({exc})") from None


def _unknown_outputs(graph: Graph, outputs: Iterable[str]) -> list[GraphError]:
    """`unknown_node` errors (with the closest ids) for chosen outputs that are neither a node of `graph` nor an
    inner node `outer/inner` of one of its subgraph nodes: said first and alone, not under the rest of the
    file's errors (the whole file was checked, and its other branches' errors hid the mistyped id)."""
    missing = [node_id for node_id in outputs
               if node_id not in graph.nodes and str(node_id).split("/", 1)[0] not in graph.nodes]
    return output_errors(graph.nodes, True, missing) if missing else []


def _names_a_file(text: str) -> bool:
    """Whether `text` is the name of an existing file ("[v2] workflow.json" is one, not JSON text)."""
    if len(text) > 4096 or "\n" in text or "\0" in text:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _plain_scalar(value: Any) -> Any:
    """A numpy scalar (np.int64, np.float32, np.bool_) as the Python value it holds, a Decimal or Fraction as the
    float it is closest to (one validated and then failed at run time); anything else as it is."""
    import decimal
    import fractions

    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, (decimal.Decimal, fractions.Fraction)):
        return float(value)
    return value


def bare_override_keys(graph: Graph, overrides: Mapping[str, Any], registry: Any = None,
                       spell: Callable[[str], str] = lambda key: f"override {key!r}") -> tuple[dict, list[GraphError]]:
    """Overrides with each key without a node (`seed`) as NODE.INPUT: the one node of the graph with an input of
    that name written in the file, as --sweep reads them (`sweep.resolve_key`), else the one whose node type
    declares it (`denoise` where the file leaves it at its default). Returns (the overrides, with the keys that
    could not be resolved left out; an `unknown_input` error for each of those, worded with `spell(key)`)."""
    if all("." in str(key) for key in overrides):
        return dict(overrides), []
    from .distributed.sweep import SweepError, declared_inputs, resolve_key

    declared_by = declared_inputs(graph, registry) if registry is not None else None
    resolved, given_as, errors = {}, {}, []
    as_dict = None
    for key, value in overrides.items():
        key = str(key)
        if "." in key:
            full = key
        else:
            try:
                as_dict = as_dict if as_dict is not None else graph.to_dict()
                full = resolve_key(key, as_dict, spell(key), declared_by=declared_by)
            except SweepError as exc:
                errors.append(GraphError("unknown_input", f"{spell(key)}: {exc.problem}; {exc.fix}", input=key))
                continue
        if full in resolved:
            errors.append(GraphError("unknown_input", f"{spell(given_as[full])} and {spell(key)} set one input "
                                                      f"({full}) twice; keep one", input=key))
            continue
        resolved[full], given_as[full] = value, key
    return resolved, errors


def resolve_bare_overrides(graph: Graph, overrides: Mapping[str, Any], registry: Any = None,
                           spell: Callable[[str], str] = lambda key: f"override {key!r}") -> dict[str, Any]:
    """`bare_override_keys`, raising GraphValidationError when a key cannot be resolved."""
    resolved, errors = bare_override_keys(graph, overrides, registry, spell)
    if errors:
        raise GraphValidationError(errors)
    return resolved
