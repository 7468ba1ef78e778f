"""The `nodegraph` command: run, validate, list nodes and plugins, print the file schema.

    nodegraph run GRAPH.json [--set node.input=value ...] [--output-dir DIR] [--events FILE|-]
    nodegraph run GRAPH.json [--ray [ADDRESS]] [--workers N] [--sweep seed=0..99 ...]   (docs/distributed.md)
    nodegraph run GRAPH.json [--cache lru|all|none] [--cache-budget 4GiB]          (docs/executor.md)
    nodegraph validate GRAPH.json [--set node.input=value ...] [--json]
    nodegraph nodes [TYPE ...] [--json]
    nodegraph plugins [--json]
    nodegraph models [FOLDER ...] [--json]      (docs/models.md)
    nodegraph plugin new NAME [--dir DIR]
    nodegraph schema
    nodegraph serve [--host H] [--port P] ...   (see server.py)
    nodegraph users add|set|list|remove ...     (see users.py)

Every command that loads plugins takes --allow-plugin, --deny-plugin,
--prefer-plugin TYPE=PLUGIN and --no-plugins (`plugins.add_plugin_arguments`);
`run` and `validate` print plugin failures and clashes to stderr.

Exit codes: 0 success; 1 invalid graph; 2 bad command line (a flag, a --set value, an unusable
--model-paths / NODEGRAPH_MODEL_PATHS file: one `error:` line; with `validate --json` a JSON object
with `usage_error`); 3 a node failed; 4 a plugin failed to load (`nodegraph plugins`); 130 interrupted.
A thin layer over `nodegraph.Session`; it imports nothing heavy itself, so `--help` and `validate`
start fast (no torch).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_PLUGIN_FAILED = 4


def _plugin_options() -> argparse.ArgumentParser:
    from .plugins import add_plugin_arguments

    parent = add_plugin_arguments(argparse.ArgumentParser(add_help=False))
    parent.add_argument("--model-paths", metavar="FILE",
                        help='JSON file of extra model folders, e.g. an A1111/ComfyUI install: '
                             '{"checkpoints": ["/path", ...], "loras": [...]}, relative paths from the file\'s '
                             "folder, or ComfyUI's extra_model_paths.yaml (env NODEGRAPH_MODEL_PATHS; search "
                             "order: docs/models.md; `nodegraph models` lists what is found)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="nodegraph", description="Run and inspect nodegraph graphs (typed node graphs for diffusion models).")
    parser.add_argument("--version", action="version", version=f"nodegraph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins = _plugin_options()

    run = sub.add_parser("run", parents=[plugins], help="run a graph file",
                         epilog="exit codes: 0 succeeded, 1 invalid graph (or not a graph file), 2 bad command line, "
                                "3 a node failed, 130 interrupted (Ctrl+C or SIGTERM); a sweep: 0 only if every "
                                "variant succeeded")
    run.add_argument("graph", help="path to a graph .json file (or a PNG / JPEG / WebP holding one; - reads it from "
                                   "standard input)")
    run.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", dest="overrides",
                     help="override a literal input (VALUE is read as JSON, else as text; a text input takes "
                          "it as typed, so --set prompt.text=123 is the text '123'); INPUT=VALUE alone sets the one "
                          "node input of that name (--set seed=42); repeatable")
    run.add_argument("--output", action="append", metavar="NODE", dest="outputs",
                     help="run only what this node needs (repeatable; default: every output node); only that "
                          "part of the graph is checked, so a broken node elsewhere does not stop it")
    run.add_argument("--output-dir", default="output", help="where output nodes write files (default: ./output)")
    run.add_argument("--input-dir", default="input", help="where input files are read from (default: ./input)")
    run.add_argument("--events", metavar="FILE|-", help="write the event stream as JSON lines ('-' = stdout)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--traceback", action="store_true", help="print the full traceback when a node fails")
    run.add_argument("--sweep", action="append", metavar="KEY=VALUES|FILE",
                     help="run many variants: seed=0..99, sampler.cfg=3,5,7 or a .csv/.jsonl of overrides "
                          "(repeatable: a product); files + index.json in --output-dir (docs/distributed.md)")
    from .distributed.options import add_cache_arguments, add_ray_arguments

    add_cache_arguments(run)
    add_ray_arguments(run)

    validate = sub.add_parser("validate", parents=[plugins], help="check a graph file without running it")
    validate.add_argument("graph", help="path to a graph .json file (or an image holding one; - reads standard "
                                        "input)")
    validate.add_argument("--json", action="store_true", help="print errors as structured JSON")
    validate.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", dest="overrides",
                          help="check the graph with this literal input overridden, as `run --set` would run it")
    validate.add_argument("--output", action="append", metavar="NODE", dest="outputs",
                          help="check that this node can be produced, as `run --output` would (repeatable)")
    validate.add_argument("--input-dir", default="input",
                          help="where input files are looked for, as `run --input-dir` (default: ./input)")
    validate.add_argument("--output-dir", default="output",
                          help="accepted so a `run` command line validates as it is (nothing is written)")

    nodes = sub.add_parser("nodes", parents=[plugins], help="list node types and their schemas")
    nodes.add_argument("types", nargs="*", help="only these node types")
    nodes.add_argument("--json", action="store_true", help="print full JSON schemas")
    nodes.add_argument("--markdown", action="store_true", help="print the node reference (docs/nodes.md)")

    plugin_cmd = sub.add_parser("plugins", parents=[plugins],
                                help="list loaded, failed, clashing and skipped plugins (exit 4 if any failed)")
    plugin_cmd.add_argument("--json", action="store_true")

    plugin_tools = sub.add_parser("plugin", help="plugin authoring tools (`nodegraph plugin new NAME`)")
    plugin_sub = plugin_tools.add_subparsers(dest="plugin_command", metavar="ACTION", required=True)
    new = plugin_sub.add_parser("new", help="write a ready-to-install plugin package (one node, a test, a graph)")
    new.add_argument("name", help="the plugin's name: a Python identifier, e.g. my_filters")
    new.add_argument("--dir", default=".", help="the folder to create the package in (default: .)")

    templates = sub.add_parser("templates", parents=[plugins],
                               help="list the saved graphs to start from: the project's graphs/ and each plugin's "
                                    "(the editor's Templates menu), demos first, then the training graphs, one line "
                                    "each; `nodegraph run <id>` runs one")
    templates.add_argument("--json", action="store_true", help="print them as JSON, with the full descriptions")

    models = sub.add_parser("models", parents=[plugins],
                            help="list the model files each model folder offers, where they are searched for, "
                                 "pickles and names hidden by a file of the same name earlier in the search")
    models.add_argument("folders", nargs="*", help="only these folders (checkpoints, loras, …)")
    models.add_argument("--json", action="store_true", help="print them as JSON")

    schema = sub.add_parser("schema", help="print the JSON Schema of the graph file format")
    schema.add_argument("--results", action="store_true", help="print the schema of output nodes' files instead")
    sub.add_parser("serve", help="serve the editor and the websocket API (see `nodegraph serve --help`)",
                   add_help=False)
    sub.add_parser("users", help="add, list or remove the users of a shared server (see `nodegraph users --help`)",
                   add_help=False)
    return parser


def _session(args: argparse.Namespace, **kwargs: Any):
    from .model_paths import ModelPaths
    from .session import Session

    from .distributed.options import cache_options
    from .plugins import plugin_options

    model_paths = ModelPaths.default(args.model_paths, source="--model-paths")   # ModelPathsError: a usage error
    return Session(**plugin_options(args), model_paths=model_paths, **cache_options(args), **kwargs)


def _load(session: Any, path: str) -> Any:
    """The Graph in a file, with a note on stderr for each input written under a name its node renamed; a
    ComfyUI API prompt (its .json export, or a PNG ComfyUI saved) is imported (`graph.import_foreign`:
    classes with an equivalent become our nodes) with a note on stderr."""
    from .errors import GraphValidationError
    from .graph import foreign_prompt, import_foreign, load_graph, renamed_input_uses

    try:
        template = _template_named(session, path)
        graph = load_graph(Path(path)) if template is None else session.load(template)
        for node_id, node_type, old, new in renamed_input_uses(graph, session.registry.input_renames()):
            print(f"note: node {node_id!r} ({node_type}) writes input {old!r}, which is now {new!r}: read as {new!r}; "
                  f"save the graph with the new name (the editor does when it saves)", file=sys.stderr)
        return session.renamed(graph)
    except GraphValidationError as exc:
        prompt = foreign_prompt(path) if [e.code for e in exc.errors] == ["foreign_format"] else None
        if prompt is None:
            raise
    data = import_foreign(prompt, session.output_names, session.widget_names, session.comfyui_classes(),
                          session.model_paths.list)
    if data["metadata"].get("imported_from") == "a1111-parameters":
        left = data["metadata"]["a1111_untranslated"]
        made = data["metadata"].get("a1111_translated") or []       # LoRA tags, the VAE, embeddings by file name
        print(f"note: {_shown(path)} carries AUTOMATIC1111's generation parameters; made a text-to-image graph of "
              f"them" + (f" (also: {_terminal_safe('; '.join(made))[:600]})" if made else "")
              + (f" (not translated: {_terminal_safe('; '.join(left))[:600]})" if left else ""), file=sys.stderr)
        return session.load(data)
    translated, total = len(data["metadata"]["comfyui_types"]), len(data["nodes"])
    what = "UI workflow" if data["metadata"]["imported_from"] == "comfyui-workflow" else "API prompt"
    rest = "" if translated == total else "; the others keep their ComfyUI types"
    notes = len((data.get("ui") or {}).get("notes") or [])      # ComfyUI's Note / MarkdownNote: ui.notes
    kept = f"; {notes} note{'' if notes == 1 else 's'} kept as notes on the canvas (ui.notes)" if notes else ""
    print(f"note: {_shown(path)} is a ComfyUI {what}; imported it ({translated} of {total} node(s) have an equivalent "
          f"here{rest}{kept})", file=sys.stderr)
    subgraphs = data["metadata"].get("comfyui_subgraphs", [])
    for sub in subgraphs[:20]:
        print(f"note: subgraph {_terminal_safe(sub['subgraph'])!r} (node {_terminal_safe(sub['node'])!r}) is "
              f"expanded into its {sub['nodes']} node(s), ids {_terminal_safe(sub['node'])}:…", file=sys.stderr)
    if len(subgraphs) > 20:
        print(f"note: and {len(subgraphs) - 20} more subgraph instances expanded", file=sys.stderr)
    for left in data["metadata"].get("comfyui_bypassed_left_out", []):
        print(f"note: node {_terminal_safe(left['node'])!r} ({_terminal_safe(left['type'])}) is bypassed and of a "
              f"type nodegraph lacks: left out, its links passed through, as ComfyUI does", file=sys.stderr)
    for change in data["metadata"].get("translated_values", []):
        print(f"note: node {change['node']!r}: {change['input']} {change['from']!r} is {change['to']!r} here",
              file=sys.stderr)
    return session.load(data)


def _template_named(session: Any, path: str) -> dict | None:
    """The graph of template `path` (`nodegraph templates` lists the ids: `project/txt2img.json`,
    `my_pack/posterize.json`) when no file of that name exists here, with a note saying so; else None."""
    if path == "-" or "/" not in path or not path.endswith(".json") or Path(path).exists():
        return None
    from .templates import TemplateError

    try:
        graph = _templates(session).read(path)
    except TemplateError as exc:
        if exc.code != "invalid_template":
            return None
        from .errors import GraphError, GraphValidationError

        # the template exists but is not a readable graph: its parse error, not "No such file or directory"
        raise GraphValidationError([GraphError(
            "unreadable_file", f"template {_shown(path)}: {exc.message}; fix the file (`nodegraph templates` lists "
                               f"it with this error)", details={"template": path})]) from None
    print(f"note: no file {_shown(path)} here: using the template of that id", file=sys.stderr)
    return graph


def _print_errors(errors: list, stream: TextIO) -> None:
    print(f"graph is invalid ({len(errors)} error{'s' if len(errors) != 1 else ''}):", file=stream)
    for error in errors:
        print(f"  - {_terminal_safe(str(error))}", file=stream)


def _parse_override(text: str) -> tuple[str, Any]:
    """`NODE.INPUT=VALUE`: the value read as JSON (42, 1.5, true, "text", [1, 2]), else as plain text."""
    key, eq, raw = text.partition("=")
    node_id, dot, input_name = key.rpartition(".")
    if not eq or not key.strip() or (dot and (not node_id or not input_name)):
        raise ValueError(f"--set {text!r}: write it as NODE.INPUT=VALUE, e.g. --set sampler.seed=42 (or INPUT=VALUE "
                         f"when one node of the graph has that input: --set seed=42)")

    shown = text if len(text) <= 80 else text[:77] + "..."

    try:      # NaN, Infinity and 1e400 (inf) read as floats: a text input takes them as typed, any other input
        value = json.loads(raw)               # refuses them by name (validation's invalid_value, with the rest)
    except json.JSONDecodeError:
        value = raw
    except RecursionError:
        raise ValueError(f"--set {key}: the value is nested too deeply; a graph literal is a few levels at most") \
            from None
    except ValueError as exc:               # e.g. a number of thousands of digits: said as the graph loader says it
        from .graph import json_value_problem

        raise ValueError(f"--set {key}: {json_value_problem(exc)}") from None
    return key, _RawText(raw, value) if not isinstance(value, str) else value


def _resolve_bare_overrides(graph: Any, overrides: dict[str, Any], registry: Any = None) -> dict[str, Any]:
    """--set keys without a node (`seed=42`) as NODE.INPUT (`session.resolve_bare_overrides`, worded for --set).
    A key that names a node (`--set prompt=...`) gets the NODE.INPUT it most likely meant (`prompt.text`)."""
    from dataclasses import replace

    from .errors import GraphValidationError
    from .session import resolve_bare_overrides

    try:
        return resolve_bare_overrides(graph, overrides, registry, spell=lambda key: f"--set {key}=...")
    except GraphValidationError as exc:
        nodes = graph.to_dict().get("nodes", {})
        raise GraphValidationError([replace(error, message=f"{error.message}. {hint}")
                                    if (hint := _node_input_hint(nodes, error.input)) else error
                                    for error in exc.errors]) from None


def _node_input_hint(nodes: dict[str, Any], key: str | None) -> str:
    """For a --set key that is a node's id, not an input's name: which NODE.INPUT to write, its text inputs first
    (`--set prompt=...` meant `prompt.text`), "" when `key` names no node."""
    node = nodes.get(key) if isinstance(key, str) else None
    if not isinstance(node, dict):
        return ""
    literals = {name: value for name, value in (node.get("inputs") or {}).items() if not isinstance(value, dict)}
    texts = [name for name, value in literals.items() if isinstance(value, str)]
    names = texts or list(literals)
    if not names:
        return f"'{key}' is a node, and it has no input written in the file: write --set {key}.INPUT=VALUE"
    shown = " or ".join(f"--set {key}.{name}=..." for name in names[:3])
    return f"'{key}' is a node, not an input: did you mean {shown}?"


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    """Every --set, each key once (a repeated key is an error: which value was meant?)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, value = _parse_override(item)
        if key in overrides:
            raise ValueError(f"--set {key} is given twice; keep one")
        overrides[key] = value
    return overrides


class _RawText:
    """A --set value that read as JSON but not as text (123, true, null): kept with the text as typed, so
    a STRING input gets "123" — what someone who types `--set prompt.text=123` means (`_typed_overrides`)."""

    def __init__(self, raw: str, value: Any):
        self.raw, self.value = raw, value


def _typed_overrides(registry: Any, graph: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """--set values for `graph` (None: not read): the typed text for a STRING input — a node's, or a subgraph
    node's exposed input that feeds one — else the JSON value."""
    typed = {}
    for key, value in overrides.items():
        if isinstance(value, _RawText):
            node_id, _, input_name = key.rpartition(".")
            port = _input_port(registry, graph, node_id, input_name)
            value = value.raw if port == "STRING" else value.value
        typed[key] = value
    return typed


def _input_port(registry: Any, graph: Any, node_id: str, input_name: str) -> str | None:
    """The port type of input `input_name` of node `node_id` (None when there is no such input)."""
    from .effective_graph import subgraph_interface
    from .graph import SUBGRAPH_TYPE_PREFIX

    node = graph.nodes.get(node_id) if graph is not None else None
    if node is None or not isinstance(node.type, str):
        return None
    if node.type.startswith(SUBGRAPH_TYPE_PREFIX):
        try:
            return subgraph_interface(graph, node.type[len(SUBGRAPH_TYPE_PREFIX):], registry).input_port(input_name)
        except KeyError:         # not defined: validation says so
            return None
    cls = registry.nodes.get(node.type)
    spec = cls.spec.inputs.get(input_name) if cls is not None else None
    return spec.port if spec is not None else None


def _progress_text(event: Any, average_loss: float | None = None) -> str:
    """A node_progress event as the bar's postfix: "200/600", with a training step's loss and lr when it has them
    ("200/600 loss 0.0411 lr 1.0e-04", as kohya's and diffusers' bars show), the mean of the recent losses when
    given ("loss 0.0411 (avg 0.0502)": one step's loss jumps with its timesteps, kohya shows avr_loss) and the
    stage a node names before its steps ("encoding images 2560/24000")."""
    info = event.info if isinstance(getattr(event, "info", None), dict) else {}
    stage = info.get("stage")
    text = (f"{_terminal_safe(stage[:40])} " if isinstance(stage, str) and stage else "") + f"{event.value}/{event.total}"
    for key, shown in (("loss", "{:.4g}"), ("lr", "{:.1e}")):
        value = _finite(info.get(key))
        if value is not None:
            text += f" {key} {shown.format(value)}"
            if key == "loss" and average_loss is not None:
                text += f" (avg {average_loss:.4g})"
    return text


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _timing_text(elapsed: float, value: int, total: int, since: tuple[float, int] = (0.0, 0)) -> str:
    """How long a node has run and, at the pace of the steps it took since `since`, about how long it has left:
    "2:05 elapsed, ~8:20 left" (a training node's own ETA; the bar's counts nodes). `since` is (elapsed, value) at
    the first progress this run saw from the node: a training run resumed or trained longer from step 300
    reports 301 first, and the 300 steps an earlier run took must not count as done in this one's time (they
    made "352/600 · 0:30 elapsed, ~0:21 left" of 2:24). "" before a step past `since`, or once done."""
    start_elapsed, start_value = since
    if value <= start_value or total <= value:
        return ""
    pace = (elapsed - start_elapsed) / (value - start_value)
    return f"{_clock(elapsed)} elapsed, ~{_clock(pace * (total - value))} left"


class _Progress:
    """Event sink that drives a tqdm bar over the run's nodes (on stderr). When stderr is not a terminal (a log
    file, `nohup`), a node that has been running for LOG_EVERY seconds gets a progress line that often instead.
    A node's progress carries its own elapsed time and time left (`_timing_text`) from its first second on; the
    bar shows no node-count rate or ETA (it counted a 4,000-step training node as one node of six: "3 s left")."""

    LOG_EVERY = 30.0
    LOSS_WINDOW = 100       # training steps whose mean loss is shown beside the last one's

    def __init__(self, enabled: bool, stream: TextIO | None = None):
        self.enabled = enabled
        self.bar = None
        self.stream = stream or sys.stderr
        self.log_mode = not self.stream.isatty()     # a log file or pipe: timed lines instead of a bar
        self.last_line = 0.0            # when a progress line was last written (log mode)
        self.node = ""
        self.node_started = 0.0         # when the running node started (monotonic)
        self.recent_losses: collections.deque[float] = collections.deque(maxlen=self.LOSS_WINDOW)   # its steps'
        self.pace_start: tuple[float, int] | None = None   # (elapsed, value) at the node's first step seen (`since`)
        self.pace_of: tuple = ()        # the (stage, total) that start belongs to: a new stage starts anew

    def _progress(self, event: Any) -> str:
        import time

        losses = self.recent_losses
        average = sum(losses) / len(losses) if len(losses) > 1 else None
        text = _progress_text(event, average)
        elapsed = time.monotonic() - self.node_started
        timing = _timing_text(elapsed, event.value, event.total, self.pace_start or (0.0, 0)) if elapsed >= 1.0 else ""
        return f"{text} · {timing}" if timing else text

    def _log_line(self, event: Any) -> None:
        import time

        now = time.monotonic()
        if event.type == "node_started":
            self.last_line, self.node, self.node_started = now, f"{event.node_type} ({event.node_id})", now
            self.recent_losses.clear()
        elif event.type == "node_progress" and now - self.last_line >= self.LOG_EVERY:
            self.last_line = now
            stamp = time.strftime("%H:%M:%S")
            print(f"[{stamp}] {_terminal_safe(self.node)}: {self._progress(event)}", file=self.stream, flush=True)

    def _note_pace_start(self, event: Any) -> None:
        """Remember (elapsed, value) of the node's first progress event, again when its stage or total changes
        ("encoding images 2560/24000" before the steps) or its count goes back: the time left comes from the steps
        taken since then, never from steps an earlier, resumed run took."""
        import time

        info = event.info if isinstance(getattr(event, "info", None), dict) else {}
        of = (info.get("stage"), event.total)
        if self.pace_start is None or of != self.pace_of or event.value < self.pace_start[1]:
            self.pace_start, self.pace_of = (time.monotonic() - self.node_started, event.value), of

    def write(self, line: str) -> None:
        """A line on the stream, above the bar when one is shown (a plain print would break it)."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        kind = event.type
        if kind == "node_progress":         # every step's loss counts in the mean, shown or not
            loss = _finite(event.info.get("loss")) if isinstance(getattr(event, "info", None), dict) else None
            if loss is not None:
                self.recent_losses.append(loss)
            self._note_pace_start(event)
        elif kind == "node_started":
            self.pace_start, self.pace_of = None, ()
        if self.log_mode:
            self._log_line(event)
            return
        if kind == "run_started":
            from tqdm import tqdm

            self.bar = tqdm(total=event.total, unit="node", file=self.stream, leave=False, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} nodes [{elapsed}{postfix}]")
        elif self.bar is None:
            return
        elif kind in ("node_cached", "node_finished"):
            self.bar.update(1)
        elif kind == "node_started":
            import time

            self.node_started = time.monotonic()
            self.recent_losses.clear()
            self.bar.set_description(f"{event.node_type} ({event.node_id})")
        elif kind == "node_progress":
            self.bar.set_postfix_str(self._progress(event))
        elif kind in ("run_finished", "run_failed", "run_interrupted"):
            self.bar.close()
            self.bar = None


def _usable_output_dir(text: str) -> str | None:
    """Why `--output-dir` cannot hold the run's files (None: it can; the folder now exists) — checked
    before the run, so a typo does not cost a whole generation."""
    if not text.strip():
        return "--output-dir is empty; give a folder (e.g. --output-dir output), or leave the flag out for ./output"
    if Path(text).exists() and not Path(text).is_dir():
        return f"--output-dir {text!r} is a file, not a folder; choose a folder"
    try:
        Path(text).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--output-dir {text!r} cannot be used as a folder: {exc.strerror or exc}; choose another folder"
    return None


def _record_not_started(args: argparse.Namespace, status: str, error: dict) -> None:
    """`<graph>.outputs.json` for a run that ended before it started (stopped, or a file that does not load as
    a graph): its status and why — never an earlier run's record left standing as the latest — and the same
    line in `<graph>.outputs.jsonl`. A `run_failed` / `run_interrupted` line goes to `--events` too, so a
    reader of the event stream learns why it is empty."""
    record = {"run_id": None, "status": status, "outputs": {}, "error": error}
    path = Path(args.output_dir) / f"{Path(args.graph).stem}.outputs.json"
    if path.parent.is_dir():
        _write_record(path, record)
    if getattr(args, "events", None):
        event = {"type": "run_failed" if status == "failed" else "run_interrupted", "run_id": None,
                 "node_id": None, "message": error.get("message", ""), **({"errors": error["errors"]}
                                                                        if "errors" in error else {})}
        try:
            if args.events == "-":
                print(json.dumps(event, default=str), flush=True)
            else:
                with open(args.events, "w", encoding="utf-8") as out:
                    out.write(json.dumps(event, default=str) + "\n")
        except OSError as exc:
            print(f"warning: the events were not written to {args.events!r}: {exc.strerror or exc}", file=sys.stderr)


def _write_record(path: Path, record: dict) -> None:
    """`<graph>.outputs.json` (replaced: a link there is replaced, not followed) and a line appended to
    `<graph>.outputs.jsonl`; a file that cannot be written is a warning, never a traceback that loses the
    run's exit code (a graph name too long for the file system, a read-only folder)."""
    from .files import append_record, replace_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, json.dumps(record, indent=2, default=str) + "\n")
    except OSError as exc:
        print(f"warning: the run's record was not written to {str(path)!r}: {exc.strerror or exc}"
              f"{'; give the graph file a shorter name' if getattr(exc, 'errno', None) == 36 else ''}",
              file=sys.stderr)
        return
    try:                         # every run's record, one line each (the .json above is the latest run)
        append_record(path.with_suffix(".jsonl"), json.dumps(record, default=str))
    except OSError as exc:
        print(f"warning: the run's record was not appended to {str(path.with_suffix('.jsonl'))!r}: "
              f"{exc.strerror or exc}", file=sys.stderr)


def _stop_on_sigterm_as_on_ctrl_c() -> Any:
    """`timeout`, `kill` and `docker stop` send SIGTERM, which ended a run at once: no record of it, the previous
    run's outputs.json left as the latest, a training run's last steps unsaved. Now it stops the run as Ctrl+C
    does (a KeyboardInterrupt on the main thread: the run is recorded interrupted, a trainer keeps its state).
    Returns the handler it replaced (None when it could not set one), for `cmd_run` to put back."""
    import signal

    from .interrupts import note_stop_signal

    def terminated(signum: int, frame: object) -> None:
        note_stop_signal()        # a stop, not the running node's failure (interrupts.py)
        raise KeyboardInterrupt("terminated (SIGTERM)")

    try:
        return signal.signal(signal.SIGTERM, terminated)
    except ValueError:       # not on the main thread (an embedding app calling main()): leave its handler
        return None


def cmd_run(args: argparse.Namespace) -> int:
    """`nodegraph run`: SIGTERM stops it as Ctrl+C does while it runs (the caller's handler is put back)."""
    import signal

    previous = _stop_on_sigterm_as_on_ctrl_c()
    try:
        return _cmd_run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _cmd_run(args: argparse.Namespace) -> int:
    from .distributed.options import cache_budget_warning, cache_options, ray_flags_problem

    try:
        cache_options(args)
    except ValueError as exc:
        return _usage_error(str(exc))
    from .distributed.options import apply_memory_reserve

    try:
        apply_memory_reserve(args)      # before the budget's check, which measures against the reserve
    except ValueError as exc:
        return _usage_error(str(exc))
    if (too_big := cache_budget_warning(args)) is not None:
        print(f"warning: {too_big}", file=sys.stderr)
    if ray_flags_problem(args):
        return _usage_error(ray_flags_problem(args))
    problem = _usable_output_dir(args.output_dir)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from .distributed.options import apply_cpu_threads

    apply_cpu_threads(args)
    if args.sweep or args.ray is not None:
        from .distributed.batch import cmd_batch

        return cmd_batch(args, _session)
    from .errors import GraphValidationError, NodeExecutionError, NodeInputError, RunInterrupted
    from .results import jsonable

    try:
        overrides = _parse_overrides(args.overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        session = _session(args, output_dir=args.output_dir, input_dir=args.input_dir)
        warnings = _print_plugin_warnings(session)
        graph = _load(session, args.graph)       # read once: the --set values' types, then the run
        overrides = _resolve_bare_overrides(graph, overrides, session.registry)
        overrides = _typed_overrides(session.registry, graph, session.renamed_overrides(graph, overrides))
        usable, override_errors = session.with_usable_overrides(graph, overrides) if overrides else (graph, [])
        if override_errors:         # every problem at once, as `validate` reports them
            raise GraphValidationError(override_errors + session.validate(usable, args.outputs,
                                                                          input_dir=args.input_dir))
    except GraphValidationError as exc:
        _print_errors(exc.errors, sys.stderr)
        _record_not_started(args, "failed", {"message": str(exc), "errors": exc.to_list()})
        return EXIT_INVALID
    except KeyboardInterrupt as exc:      # before the run: the latest record says so, not an earlier run's
        _record_not_started(args, "interrupted", {"message": f"{str(exc) or 'interrupted (Ctrl+C)'}, before the run "
                                                             f"started"})
        raise
    events_out: TextIO | None = None
    if args.events == "-":
        events_out = sys.stdout
    elif args.events:
        try:
            events_out = open(args.events, "w", encoding="utf-8")  # noqa: SIM115 — closed in finally
        except OSError as exc:
            print(f"error: cannot write the events to {args.events!r}: {exc.strerror or exc}; give a file in an "
                  f"existing folder, or '-' for stdout", file=sys.stderr)
            return EXIT_USAGE
    summary = sys.stderr if events_out is sys.stdout else sys.stdout

    def write_event(event: Any) -> None:
        try:
            events_out.write(json.dumps(event.to_dict(), default=str) + "\n")
            events_out.flush()
        except BrokenPipeError:  # the reader went away (e.g. `| head`): stop writing events
            sinks.remove(write_event)

    # the run's id and the node that was running, for the record of a run that failed or was interrupted
    running: dict[str, Any] = {"node_id": None, "run_id": None}

    def track_running(event: Any) -> None:
        if event.type == "run_started":
            running["run_id"] = event.run_id
        if event.type == "node_started" or (event.type == "run_interrupted" and event.node_id):
            running["node_id"] = event.node_id
        elif event.type == "node_finished" and event.node_id == running["node_id"]:
            running["node_id"] = None

    progress = _Progress(enabled=not args.no_progress and events_out is not sys.stdout)
    warned: list[dict[str, Any]] = []      # node warnings as they came: printed then, and kept for any record

    def print_warning(event: Any) -> None:
        """A node's warning when it is given (before the node's work, for one that warns first — a size the model
        was not trained at — so Ctrl+C can save the wait), not after the run."""
        if event.type != "node_warning":
            return
        warned.append({"node_id": event.node_id, "node_type": event.node_type, "message": event.message,
                       **({"cached": True} if event.cached else {})})
        again = " (its result came from the cache)" if event.cached else ""
        progress.write(f"warning: node {event.node_id!r} ({event.node_type}){again}: {_terminal_safe(event.message)}")

    sinks: list[Any] = [progress, track_running, print_warning]
    if events_out is not None:
        sinks.append(write_event)
    def record_run(status: str, outputs: dict, error: dict | None = None, run_id: str | None = None,
                   run_warnings: list | None = None, drawn: dict | None = None) -> None:
        """`<graph>.outputs.json` (the latest run, failed ones included: never an earlier run's outputs left
        standing) and one line of `<graph>.outputs.jsonl`."""
        from .graph import pin_values
        from .provenance import run_record

        try:
            ran = session.with_overrides(graph, overrides) if overrides else graph     # `jq .graph` re-runs it
        except GraphValidationError:      # an override the run refused: the file as it is, with the error
            ran = graph
        summary_path = Path(args.output_dir) / f"{Path(args.graph).stem}.outputs.json"
        record = {"run_id": run_id or running["run_id"], "status": status, "outputs": outputs, "error": error,
                  "plugin_warnings": warnings, "warnings": run_warnings or [],
                  # a RandomInt's value pinned: `jq .graph` repeats the run
                  "graph": pin_values(ran.to_dict(), drawn or {}, session.registry.takes_literal),
                  "provenance": run_record(SimpleNamespace(graph=ran, services=session.services))}
        _write_record(summary_path, record)

    try:
        result = session.run(graph, overrides=overrides, outputs=args.outputs,
                             on_event=lambda e: [sink(e) for sink in list(sinks)])
    except GraphValidationError as exc:     # refused before it started: no run events, so say it here
        _print_errors(exc.errors, sys.stderr)
        record_run("failed", {}, {"message": str(exc), "errors": exc.to_list()})
        if events_out is not None:
            write_event(SimpleNamespace(to_dict=lambda: {"type": "run_failed", "run_id": None, "node_id": None,
                                                         "message": str(exc), "errors": exc.to_list()}))
        return EXIT_INVALID
    except NodeExecutionError as exc:
        record_run("failed", {}, {"node_id": exc.node_id, "node_type": exc.node_type, **(
            {"plugin": exc.plugin} if exc.plugin is not None and exc.plugin not in session.registry.builtin_plugins
            else {}), "exception_type": exc.exception_type, "message": str(exc.exception)}, run_warnings=warned)
        inside = (f" (inside subgraph node {exc.node_id.split('/')[0]!r}: its inner node "
                  f"{exc.node_id.split('/', 1)[1]!r})" if "/" in (exc.node_id or "") else "")
        print(f"error: node {exc.node_id!r} ({exc.node_type}){inside} failed: {exc.exception_type}: "
              f"{_terminal_safe(str(exc.exception))}",
              file=sys.stderr)
        sources = {p.name: p.source for p in session.plugin_report.loaded}
        if exc.plugin is not None and sources.get(exc.plugin) != "builtin" and not isinstance(exc.exception,
                                                                                               NodeInputError):
            print(f"(node type {exc.node_type} comes from plugin {exc.plugin!r}: check the node's inputs; if they "
                  f"are valid, report the error to the plugin's authors — `nodegraph plugins` shows its version)",
                  file=sys.stderr)
        if args.traceback:
            print(exc.traceback, file=sys.stderr)
        else:
            print("(run again with --traceback for the full traceback)", file=sys.stderr)
        return EXIT_FAILED
    except (RunInterrupted, KeyboardInterrupt) as exc:
        print("interrupted", file=sys.stderr)
        record_run("interrupted", {}, {"message": str(exc) or "interrupted (Ctrl+C)",
                                       "node_id": getattr(exc, "node_id", None) or running["node_id"]},
                   run_warnings=warned)
        return EXIT_INTERRUPTED
    finally:
        if events_out is not None and events_out is not sys.stdout:
            events_out.close()
    outputs = {node_id: jsonable(values) for node_id, values in result.outputs.items()}
    record_run("succeeded", outputs, run_id=result.run_id, run_warnings=result.warnings, drawn=result.drawn)
    from .results import ResultFileError, collect_files, describe_file

    try:
        files = collect_files(result.outputs, args.output_dir)
    except ResultFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for node_id, values in result.outputs.items():
        rest = {k: v for k, v in values.items() if k != "files"}
        if rest or "files" not in values:
            shown = values.get("text", jsonable(values.get("value", rest)))
            if not isinstance(shown, str):        # a node's outputs as JSON, not as Python writes a dict
                shown = json.dumps(shown, default=str)
            print(f"{_terminal_safe(node_id)}: {_terminal_safe(shown)}", file=summary)
    for item in files:   # every output file with its kind
        print(f"{_terminal_safe(item['node_id'])}: {describe_file(item)}", file=summary)
    drawn = [f"{node_id}.{name} = {value}" for node_id, values in sorted((result.drawn or {}).items())
             for name, value in values.items() if isinstance(value, (int, float, str)) and not isinstance(value, bool)]
    if drawn:     # a RandomInt's seed: the run's record keeps it, and A1111 shows the seed it drew too
        shown = _terminal_safe(", ".join(drawn[:10]))[:400] + (f" and {len(drawn) - 10} more" if len(drawn) > 10 else "")
        print(f"drawn: {shown} (pinned in the run's record and its saved images: their graph makes this result again)",
              file=summary)
    record_path = Path(args.output_dir) / (Path(args.graph).stem + ".outputs.json")
    if result.skipped:       # muted nodes and what depends on them: said, as ComfyUI names an output it did not make
        shown = ", ".join(repr(_terminal_safe(n)) for n in result.skipped[:20])
        more = f" and {len(result.skipped) - 20} more" if len(result.skipped) > 20 else ""
        print(f"skipped {len(result.skipped)} node(s), muted or fed by a muted node: {shown}{more}", file=summary)
    print(f"ran {len(result.executed)} node(s), {len(result.cached)} from cache, in {result.seconds:.3f} s"
          f"{f'; outputs in {record_path}' if record_path.is_file() else ''}", file=summary)
    return EXIT_OK


_TERMINAL_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# also escaped where one line is one item: a newline or tab, a line / paragraph separator, a bidi override or
# mark (U+202E shows "x\u202egnp.exe" as "xexe.png")
_LINE_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2028\u2029"
                          r"\u2066-\u2069]")


def _terminal_safe(text: str, one_line: bool = False) -> str:
    r"""`text` as a terminal shows it literally: control characters (an ESC that clears the screen or recolours
    it, a carriage return that writes over the line: a stranger's graph faked "all good" with them) and lone
    surrogates written as escapes (`\x1b`, `\x0d`, `\ud800`); newlines and tabs stay, unless `one_line` (a listing
    of one item a line, where a file named "evil\nFAKE LINE.safetensors" forged a line): then they, line separators
    and bidi overrides are escaped too (`\x0a`, `\u202e`)."""
    def escaped(match: re.Match) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return (_LINE_UNSAFE if one_line else _TERMINAL_UNSAFE).sub(escaped, text)


def _usage_error(message: str, as_json: bool = False) -> int:
    """Report a bad command line (exit 2): `error: ...` on stderr, or with --json a JSON object on stdout
    (`valid` false, the message as `usage_error`, no graph errors: the graph was not checked)."""
    if as_json:
        print(json.dumps({"valid": False, "usage_error": message, "errors": [], "plugin_warnings": []}, indent=2))
    else:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_validate(args: argparse.Namespace) -> int:
    from .errors import GraphValidationError

    try:
        overrides = _parse_overrides(args.overrides)
        session = _session(args)
    except ValueError as exc:          # a bad --set, --model-paths or plugin option
        return _usage_error(str(exc), as_json=args.json)
    warnings = _print_plugin_warnings(session)
    try:
        graph = _load(session, args.graph)
        override_errors: list = []
        if overrides:
            overrides = _resolve_bare_overrides(graph, overrides, session.registry)
            typed = _typed_overrides(session.registry, graph, session.renamed_overrides(graph, overrides))
            graph, override_errors = session.with_usable_overrides(graph, typed)
        errors = override_errors + session.validate(graph, args.outputs, input_dir=args.input_dir)
    except GraphValidationError as exc:
        errors = exc.errors
    if args.json:
        print(json.dumps({"valid": not errors, "errors": [e.to_dict() for e in errors],
                          "plugin_warnings": warnings}, indent=2, default=str))
    elif errors:
        _print_errors(errors, sys.stdout)
    else:
        print(f"{_shown(args.graph)}: valid")
    return EXIT_INVALID if errors else EXIT_OK


def cmd_nodes(args: argparse.Namespace) -> int:
    session = _session(args)
    schemas = session.node_schemas()
    if args.types:
        registry = session.registry
        wanted = {registry.resolve(t) for t in args.types}
        for name in args.types:
            if name in registry.ambiguous:
                print(f"error: node type {name!r} is ambiguous: provided as "
                      f"{', '.join(registry.ambiguous[name])}; ask for one of those", file=sys.stderr)
                return EXIT_USAGE
        unknown = [t for t in args.types if registry.resolve(t) is None]
        if unknown:
            from .validation import suggest

            by_lower = {name.lower(): name for name in registry.nodes}
            hints = "".join(f" {name!r}: did you mean {by_lower[name.lower()]!r}?" if name.lower() in by_lower
                            else suggest(name, registry.nodes) for name in unknown)
            print(f"error: unknown node type(s): {', '.join(unknown)}.{hints} (`nodegraph nodes` lists them all)",
                  file=sys.stderr)
            return EXIT_USAGE
        schemas = [s for s in schemas if s["qualified_type"] in wanted]
    if args.json:
        print(json.dumps({"schema_hash": session.registry.schema_hash(), "nodes": schemas,
                          "types": session.registry.types.to_dict()}, indent=2, default=str))
        return EXIT_OK
    if args.markdown:
        command = ("nodegraph nodes --markdown" + (" --no-plugins" if getattr(args, "no_plugins", False) else "")
                   + "".join(f" {shlex.quote(t)}" for t in args.types or ()))
        print(nodes_markdown(schemas, command), end="")
        return EXIT_OK
    builtin = session.registry.builtin_plugins
    for schema in schemas:
        ins = ", ".join(f"{n}: {i['port']}" + ("" if i["required"] else "?") for n, i in schema["inputs"].items())
        outs = ", ".join(f"{o['name']}: {o['port']}" for o in schema["outputs"])
        plugin = "" if schema.get("plugin") in builtin or not schema.get("plugin") else f" (plugin {schema['plugin']})"
        print(f"{schema['type']:<24} [{schema['category']}]{plugin} ({ins}) -> ({outs})")
    return EXIT_OK


def nodes_markdown(schemas: list[dict], command: str = "nodegraph nodes --markdown --no-plugins") -> str:
    """The node reference page, generated from node schemas (docs/nodes.md: `command` is what made it)."""
    lines = ["# Node reference", "", f"Generated by `{command}` from the node declarations; do not edit.", ""]
    if "--no-plugins" in command:      # a media user sent here found no LoadVideo / LoadAudio
        lines += ["Plugin nodes (LoadVideo, SaveVideo, LoadAudio, SaveMesh, ...) are not listed here: each plugin's "
                  "README (plugins/*/README.md) lists its nodes, and `nodegraph nodes --markdown` prints them all.", ""]
    by_category: dict[str, list[dict]] = {}
    for schema in schemas:
        by_category.setdefault(schema["category"], []).append(schema)
    for category in sorted(by_category):
        lines += [f"## {category}", ""]
        for schema in by_category[category]:
            flags = [f for f, on in (("output node", schema["output_node"]),
                                     ("never cached", not schema["deterministic"])) if on]
            lines += [f"### {schema['type']} (v{schema['version']})" + (f" — {', '.join(flags)}" if flags else ""),
                      "", schema["description"] or "(no description)", ""]
            if schema["inputs"]:
                lines += ["| input | type | default | constraints | description |", "| --- | --- | --- | --- | --- |"]
                for name, spec in schema["inputs"].items():
                    default = "required" if spec["required"] else f"`{json.dumps(spec.get('default'))}`"
                    field = spec["schema"]
                    rules = []
                    bounds = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
                    if any(bound in field for bound in bounds):     # "(0 … 1.0]": 0 excluded, 1.0 included
                        low = (f"[{field['minimum']}" if "minimum" in field else
                               f"({field['exclusiveMinimum']}" if "exclusiveMinimum" in field else "(-inf")
                        high = (f"{field['maximum']}]" if "maximum" in field else
                                f"{field['exclusiveMaximum']})" if "exclusiveMaximum" in field else "inf)")
                        rules.append(f"{low} … {high}")
                    if "multipleOf" in field:
                        rules.append(f"multiple of {field['multipleOf']}")
                    if spec.get("choices"):
                        rules.append("one of " + ", ".join(f"`{c}`" for c in spec["choices"]))
                    if spec.get("model_folder"):
                        rules.append(f"file in `{spec['model_folder']}`")
                    if spec["lazy"]:
                        rules.append("lazy")
                    text = spec["description"].replace("|", "\\|").replace("\n", " ")
                    lines.append(f"| `{name}` | {spec['port']} | {default} | {'; '.join(rules)} | {text} |")
                lines.append("")
            if schema["outputs"]:
                lines.append("Outputs: " + ", ".join(f"`{o['name']}` ({o['port']})" for o in schema["outputs"]))
                lines.append("")
            if schema.get("renamed_inputs"):       # saved graphs may still write the old names
                lines.append("Renamed inputs (old graphs still load): " + ", ".join(
                    f"`{old}` → `{new}`" for old, new in schema["renamed_inputs"].items()))
                lines.append("")
    return "\n".join(lines)


def _templates(session: Any) -> Any:
    from .model_paths import PROJECT_ROOT
    from .templates import TemplateLibrary

    return TemplateLibrary.for_session(session, PROJECT_ROOT / "graphs")


def cmd_templates(args: argparse.Namespace) -> int:
    """The templates of the project and of every loaded plugin, as the editor's Templates menu lists them: the
    demos first, then the training graphs under their own heading, one line each (the description's first sentence;
    `--json` gives every field in full)."""
    from .templates import is_training_template, summary

    listed = _templates(_session(args)).list()
    if args.json:
        print(json.dumps(listed, indent=2))
        return EXIT_OK
    demos = [entry for entry in listed if not is_training_template(entry["id"])]
    training = [entry for entry in listed if is_training_template(entry["id"])]
    for heading, group in (("", demos), ("Training graphs (they train a model: minutes to hours):", training)):
        if heading and group:
            print(("\n" if demos else "") + heading)
        for entry in group:
            about = entry.get("error") or summary(entry["description"])
            print(f"{_terminal_safe(entry['id'])}  {_terminal_safe(entry['title'])}"
                  + (f" — {_terminal_safe(about)}" if about else ""))
    if not listed:
        print("no templates: neither the project's graphs/ folder nor a loaded plugin has any", file=sys.stderr)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    """What the loader nodes can be given, folder by folder (the editor's file lists), as ComfyUI users read their
    models/ tree: each folder's directories in search order (missing ones said), its files with their sizes, pickles
    marked (refused without NODEGRAPH_ALLOW_PICKLE=1), names that a file earlier in the search hides, files whose
    names no loader accepts (with why), and a folder whose walk stopped at the entry limit. One line per file: a
    name's newline or bidi override is escaped (`\\x0a`, `\\u202e`), so no file name forges a line."""
    from .model_paths import MAX_ENTRIES, PICKLE_SUFFIXES, STANDARD_FOLDERS

    try:
        session = _session(args)
    except ValueError as exc:
        return _usage_error(str(exc))
    paths = session.model_paths
    known = list(STANDARD_FOLDERS) + sorted(set(session.registry.extensions.get("model_folders") or {})
                                            - set(STANDARD_FOLDERS))
    unknown = [f for f in args.folders if f not in known]
    if unknown:
        return _usage_error(f"no model folder {', '.join(map(repr, unknown))}; the folders are: {', '.join(known)}")
    report = []
    for folder in args.folders or known:
        listing = paths.listing(folder)
        hidden = paths.shadowed(folder)
        files = []
        for name in listing.names:
            try:
                path = paths.resolve(folder, name)
                size = path.stat().st_size if path.is_file() else sum(
                    f.stat().st_size for f in path.rglob("*") if f.is_file())
            except (LookupError, OSError):
                path, size = None, None
            files.append({"name": name, "bytes": size, "pickle": name.lower().endswith(PICKLE_SUFFIXES),
                          "path": str(path) if path else None, "cannot_load": None,
                          "hidden": [str(d / name) for d in hidden.get(name, [])[1:]]})
        for name, why in listing.refused.items():     # on disk, but `resolve` refuses the name: no choice
            path = next((Path(d) / name for d in listing.searched if (Path(d) / name).is_file()), None)
            try:
                size = path.stat().st_size if path else None
            except OSError:
                size = None
            files.append({"name": name, "bytes": size, "pickle": name.lower().endswith(PICKLE_SUFFIXES),
                          "path": str(path) if path else None, "cannot_load": why, "hidden": []})
        files.sort(key=lambda f: f["name"])
        report.append({"folder": folder, "directories": [{"path": d, "exists": Path(d).is_dir()}
                                                         for d in listing.searched],
                       "files": files, "stopped": listing.stopped})
    if args.json:
        print(json.dumps({"folders": report, "warnings": session.model_path_warnings()}, indent=2))
        return EXIT_OK
    for line in session.model_path_warnings():
        print(f"warning: {line}", file=sys.stderr)
    for entry in report:
        refused = sum(1 for f in entry["files"] if f["cannot_load"])
        print(f"{_terminal_safe(entry['folder'], one_line=True)} ({len(entry['files'])} "
              f"file{'' if len(entry['files']) == 1 else 's'}"
              + (f", {refused} of them cannot be loaded" if refused else "")
              + (f"; the first {MAX_ENTRIES:,} entries searched, files past them not shown: the listing stops there"
                 if entry["stopped"] else "")
              + ")")
        searched = [_terminal_safe(d["path"], one_line=True) + ("" if d["exists"] else " (missing)")
                    for d in entry["directories"]]
        print("  searched: " + ", ".join(searched))
        for f in entry["files"]:
            notes = []
            if f["cannot_load"]:
                notes.append(f"cannot be loaded: {_terminal_safe(f['cannot_load'], one_line=True)} (rename the file)")
            elif f["pickle"]:
                notes.append("pickle: loads only with NODEGRAPH_ALLOW_PICKLE=1 (docs/models.md)")
            if f["hidden"]:
                notes.append(f"also in {', '.join(_terminal_safe(h, one_line=True) for h in f['hidden'])}, never "
                             f"used: the first directory's file answers to the name")
            size = _size_text(f["bytes"]) if f["bytes"] is not None else "?"
            print(f"  {_terminal_safe(f['name'], one_line=True):<44} {size:>9}"
                  + (f"  {'; '.join(notes)}" if notes else ""))
    return EXIT_OK


def _size_text(size: float) -> str:
    """A file size for `nodegraph models`: B under 1 KB, else KB / MB / GB with one decimal."""
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def cmd_plugins(args: argparse.Namespace) -> int:
    session = _session(args)
    from .plugins import ALREADY_LOADED

    report = session.plugin_report.to_dict(session.registry)
    # a copy skipped because another distribution claims its name did not load either: the other one's nodes
    # answer to its qualified names (a plugin author's pass found `plugins` exiting 0 then)
    shadowed = [s for s in report["skipped"] if s["reason"].startswith(ALREADY_LOADED)]
    status = EXIT_PLUGIN_FAILED if report["failed"] or shadowed else EXIT_OK
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return status
    for p in report["loaded"]:
        print(f"loaded   {p['name']:<20} {p['source']:<12} {p['version'] or '':<10} {len(p['nodes'])} node(s)")
    for w in report["warnings"]:
        label = {"failed": "FAILED", "clash": "CLASH", "skipped": "skipped", "preference": "prefer",
                 "unknown_name": "unknown", "patched": "PATCHED", "shared_type": "SHARED",
                 "no_nodes": "NO NODES" if w["level"] != "info" else "no nodes"
                 }.get(w["kind"], w["kind"])
        who = " + ".join(w["plugins"]) if w["kind"] == "clash" else w["plugin"]     # a clash is both plugins'
        if len(who) > 20:        # three plugins' names: the message starts on the next line, in its column
            print(f"{label:<8} {who}\n{'':<8} {'':<20} {w['message']}")
        else:
            print(f"{label:<8} {who:<20} {w['message']}")
        if w["level"] != "info":
            print(f"{'':<8} {'':<20} fix: {w['fix']}")
    if report["failed"]:
        print(f"{len(report['failed'])} plugin(s) failed to load; see the fixes above "
              f"(`nodegraph plugins --json` has the tracebacks)", file=sys.stderr)
    if shadowed:
        print(f"{len(shadowed)} installed plugin(s) were not loaded because another distribution uses the same "
              f"plugin name; see the fixes above", file=sys.stderr)
    return status


def cmd_schema(args: argparse.Namespace) -> int:
    from .graph import graph_file_schema

    if getattr(args, "results", False):
        from .results import results_schema

        print(json.dumps(results_schema(), indent=2))
        return EXIT_OK
    print(json.dumps(graph_file_schema(), indent=2))
    return EXIT_OK


def cmd_plugin(args: argparse.Namespace) -> int:
    from .plugin_template import PluginTemplateError, package_name, write_plugin

    try:
        folder = write_plugin(args.name, args.dir)
    except PluginTemplateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    python = shlex.quote(sys.executable)      # the Python that runs nodegraph: a bare `pip` may be another one's
    print(f"wrote plugin {args.name!r} (Python package {package_name(args.name)}) in {folder}\n"
          f"next: {python} -m pip install -e {shlex.quote(str(folder))} && {python} -m pytest "
          f"{shlex.quote(str(folder / 'tests'))} && {python} -m nodegraph plugins")
    return EXIT_OK


def _print_plugin_warnings(session: Any) -> list[dict]:
    """Print plugin failures, clashes and unused preferences to stderr; return every warning (for --json)."""
    warnings = session.plugin_warnings()
    for w in warnings:
        if w["level"] != "info":
            print(f"warning: {w['message']}. Fix: {w['fix']}", file=sys.stderr)
    for line in session.model_path_warnings():      # not plugin warnings, but printed where they are
        print(f"warning: {line}", file=sys.stderr)
    return [{k: v for k, v in w.items() if k != "traceback"} for w in warnings]


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "nodes": cmd_nodes, "plugins": cmd_plugins,
            "plugin": cmd_plugin, "schema": cmd_schema, "templates": cmd_templates, "models": cmd_models}


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):      # a lone surrogate in a graph's text is printed escaped, never a
        if hasattr(stream, "reconfigure"):       # UnicodeEncodeError after the run succeeded (exit 1: "invalid")
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):        # a closed or detached stream (tests capture them)
                pass
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:      # `nodegraph nodes --json | head`: the reader has what it wanted
        try:                      # stdout's buffered rest would fail again at exit: send it nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt as exc:   # Ctrl+C or SIGTERM before a run started (loading plugins, the graph)
        print(f"interrupted{f' ({exc})' if str(exc) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        from .server import main as serve_main

        return serve_main(argv[1:])
    if argv[:1] == ["users"]:
        from .users import main as users_main

        return users_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .model_paths import ModelPathsError
    from .plugins import PluginOptionError

    try:
        if getattr(args, "graph", None) == "-":     # `… | nodegraph run -`: the graph (JSON or a PNG) from stdin
            from .errors import GraphValidationError

            with tempfile.TemporaryDirectory(prefix="nodegraph-stdin-") as folder:
                try:
                    args.graph = _stdin_graph(Path(folder))
                except GraphValidationError as exc:
                    _print_errors(exc.errors, sys.stderr)
                    return EXIT_INVALID
                return COMMANDS[args.command](args)
        return COMMANDS[args.command](args)
    except (PluginOptionError, ModelPathsError) as exc:
        return _usage_error(str(exc))


def _shown(path: str) -> str:
    """A graph file's name in messages: standard input's temporary file (`_stdin_graph`) is "<stdin>"."""
    name = Path(path)
    return "<stdin>" if name.parent.name.startswith("nodegraph-stdin-") and name.stem == "stdin" else str(path)


def _stdin_graph(folder: Path) -> str:
    """Standard input written to `folder/stdin.<json|png|jpg|webp>` (as its bytes show), read then as a file is:
    a graph, a ComfyUI prompt or workflow, an image holding one. Records and messages name it `stdin`."""
    from .graph import MAX_FILE_BYTES

    data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)     # more is not a graph: nothing more is read or kept
    if len(data) > MAX_FILE_BYTES:
        from .errors import GraphError, GraphValidationError

        raise GraphValidationError([GraphError("invalid_json", f"standard input holds more than {MAX_FILE_BYTES} "
                                                               f"bytes; the limit for a graph is {MAX_FILE_BYTES}")])
    suffix = (".png" if data.startswith(b"\x89PNG\r\n\x1a\n") else ".jpg" if data.startswith(b"\xff\xd8\xff")
              else ".webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else ".json")
    path = folder / f"stdin{suffix}"
    path.write_bytes(data)
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
