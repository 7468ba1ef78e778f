"""The `nodegraph` command: run, validate, list nodes and plugins, print the file schema.

    nodegraph run GRAPH.json [--set node.input=value ...] [--output-dir DIR] [--events FILE|-]
    nodegraph validate GRAPH.json [--json]
    nodegraph nodes [TYPE ...] [--json]
    nodegraph plugins [--json]
    nodegraph schema
    nodegraph serve [--host H] [--port P] ...   (see server.py)

Exit codes: 0 success; 1 invalid graph; 2 bad command line; 3 a node failed;
130 interrupted. A thin layer over `nodegraph.Session`; it imports nothing
heavy itself, so `--help` and `validate` start fast (no torch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _plugin_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("plugins")
    group.add_argument("--allow-plugin", action="append", metavar="NAME",
                       help="load only these installed plugins (repeatable; env NODEGRAPH_PLUGINS_ALLOW)")
    group.add_argument("--deny-plugin", action="append", metavar="NAME",
                       help="never load this plugin (repeatable; env NODEGRAPH_PLUGINS_DENY)")
    group.add_argument("--no-plugins", action="store_true",
                       help="load only the built-in nodes (env NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD=1)")
    parent.add_argument("--model-paths", metavar="FILE",
                        help="JSON file of extra model folders, e.g. an A1111/ComfyUI install (env NODEGRAPH_MODEL_PATHS)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="nodegraph", description="Run and inspect nodegraph graphs (typed node graphs for diffusion models).")
    parser.add_argument("--version", action="version", version=f"nodegraph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins = _plugin_options()

    run = sub.add_parser("run", parents=[plugins], help="run a graph file")
    run.add_argument("graph", help="path to a graph .json file")
    run.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", dest="overrides",
                     help="override a literal input (VALUE is JSON, or else a string); repeatable")
    run.add_argument("--output", action="append", metavar="NODE", dest="outputs",
                     help="run only what this node needs (repeatable; default: every output node)")
    run.add_argument("--output-dir", default="output", help="where output nodes write files (default: ./output)")
    run.add_argument("--input-dir", default="input", help="where input files are read from (default: ./input)")
    run.add_argument("--events", metavar="FILE|-", help="write the event stream as JSON lines ('-' = stdout)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--traceback", action="store_true", help="print the full traceback when a node fails")

    validate = sub.add_parser("validate", parents=[plugins], help="check a graph file without running it")
    validate.add_argument("graph", help="path to a graph .json file")
    validate.add_argument("--json", action="store_true", help="print errors as structured JSON")

    nodes = sub.add_parser("nodes", parents=[plugins], help="list node types and their schemas")
    nodes.add_argument("types", nargs="*", help="only these node types")
    nodes.add_argument("--json", action="store_true", help="print full JSON schemas")
    nodes.add_argument("--markdown", action="store_true", help="print the node reference (docs/nodes.md)")

    plugin_cmd = sub.add_parser("plugins", parents=[plugins], help="list loaded, failed and skipped plugins")
    plugin_cmd.add_argument("--json", action="store_true")

    sub.add_parser("schema", help="print the JSON Schema of the graph file format")
    sub.add_parser("serve", help="serve the editor and the websocket API (see `nodegraph serve --help`)",
                   add_help=False)
    return parser


def _session(args: argparse.Namespace, **kwargs: Any):
    from .model_paths import ModelPaths
    from .session import Session

    return Session(autoload=False if args.no_plugins else None, allow=args.allow_plugin,
                   deny=args.deny_plugin, model_paths=ModelPaths.default(args.model_paths), **kwargs)


def _print_errors(errors: list, stream: TextIO) -> None:
    print(f"graph is invalid ({len(errors)} error{'s' if len(errors) != 1 else ''}):", file=stream)
    for error in errors:
        print(f"  - {error}", file=stream)


def _parse_override(text: str) -> tuple[str, Any]:
    key, eq, raw = text.partition("=")
    if not eq or "." not in key:
        raise ValueError(f"--set {text!r}: write it as NODE.INPUT=VALUE, e.g. --set seed.value=42")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


class _Progress:
    """Event sink that drives a tqdm bar over the run's nodes (on stderr)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        kind = event.type
        if kind == "run_started":
            from tqdm import tqdm

            self.bar = tqdm(total=event.total, unit="node", file=sys.stderr, leave=False, dynamic_ncols=True,
                            disable=None)  # None: off when stderr is not a terminal
        elif self.bar is None:
            return
        elif kind in ("node_cached", "node_finished"):
            self.bar.update(1)
        elif kind == "node_started":
            self.bar.set_description(f"{event.node_type} ({event.node_id})")
        elif kind == "node_progress":
            self.bar.set_postfix_str(f"{event.value}/{event.total}")
        elif kind in ("run_finished", "run_failed", "run_interrupted"):
            self.bar.close()
            self.bar = None


def cmd_run(args: argparse.Namespace) -> int:
    from .errors import GraphValidationError, NodeExecutionError, RunInterrupted
    from .results import jsonable

    try:
        overrides = dict(_parse_override(item) for item in args.overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    session = _session(args, output_dir=args.output_dir, input_dir=args.input_dir)
    _report_plugin_failures(session)
    events_out: TextIO | None = None
    if args.events == "-":
        events_out = sys.stdout
    elif args.events:
        events_out = open(args.events, "w", encoding="utf-8")  # noqa: SIM115 — closed in finally
    summary = sys.stderr if events_out is sys.stdout else sys.stdout

    def write_event(event: Any) -> None:
        try:
            events_out.write(json.dumps(event.to_dict(), default=str) + "\n")
            events_out.flush()
        except BrokenPipeError:  # the reader went away (e.g. `| head`): stop writing events
            sinks.remove(write_event)

    sinks: list[Any] = [_Progress(enabled=not args.no_progress and events_out is not sys.stdout)]
    if events_out is not None:
        sinks.append(write_event)
    try:
        result = session.run(Path(args.graph), overrides=overrides, outputs=args.outputs,
                             on_event=lambda e: [sink(e) for sink in list(sinks)])
    except GraphValidationError as exc:
        _print_errors(exc.errors, sys.stderr)
        return EXIT_INVALID
    except NodeExecutionError as exc:
        print(f"error: node {exc.node_id!r} ({exc.node_type}) failed: {exc.exception_type}: {exc.exception}",
              file=sys.stderr)
        if args.traceback:
            print(exc.traceback, file=sys.stderr)
        else:
            print("(run again with --traceback for the full traceback)", file=sys.stderr)
        return EXIT_FAILED
    except (RunInterrupted, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if events_out is not None and events_out is not sys.stdout:
            events_out.close()
    outputs = {node_id: jsonable(values) for node_id, values in result.outputs.items()}
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    summary_path = Path(args.output_dir) / f"{Path(args.graph).stem}.outputs.json"
    summary_path.write_text(json.dumps({"run_id": result.run_id, "outputs": outputs}, indent=2) + "\n")
    for node_id, values in result.outputs.items():
        shown = values.get("text", jsonable(values.get("value", values)))
        print(f"{node_id}: {shown}", file=summary)
    print(f"ran {len(result.executed)} node(s), {len(result.cached)} from cache, in {result.seconds:.3f} s; "
          f"outputs in {summary_path}", file=summary)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    session = _session(args)
    errors = session.validate(Path(args.graph))
    if args.json:
        print(json.dumps({"valid": not errors, "errors": [e.to_dict() for e in errors]}, indent=2))
    elif errors:
        _print_errors(errors, sys.stdout)
    else:
        print(f"{args.graph}: valid")
    return EXIT_INVALID if errors else EXIT_OK


def cmd_nodes(args: argparse.Namespace) -> int:
    session = _session(args)
    schemas = session.node_schemas()
    if args.types:
        unknown = [t for t in args.types if t not in session.registry.nodes]
        if unknown:
            print(f"error: unknown node type(s): {', '.join(unknown)}", file=sys.stderr)
            return EXIT_USAGE
        schemas = [s for s in schemas if s["type"] in args.types]
    if args.json:
        print(json.dumps({"schema_hash": session.registry.schema_hash(), "nodes": schemas,
                          "types": session.registry.types.to_dict()}, indent=2, default=str))
        return EXIT_OK
    if args.markdown:
        print(nodes_markdown(schemas), end="")
        return EXIT_OK
    for schema in schemas:
        ins = ", ".join(f"{n}: {i['port']}" + ("" if i["required"] else "?") for n, i in schema["inputs"].items())
        outs = ", ".join(f"{o['name']}: {o['port']}" for o in schema["outputs"])
        print(f"{schema['type']:<24} [{schema['category']}] ({ins}) -> ({outs})")
    return EXIT_OK


def nodes_markdown(schemas: list[dict]) -> str:
    """The node reference page, generated from node schemas (docs/nodes.md)."""
    lines = ["# Node reference", "",
             "Generated by `nodegraph nodes --markdown --no-plugins` from the node declarations; do not edit.", ""]
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
                    if "minimum" in field or "maximum" in field:
                        rules.append(f"{field.get('minimum', '-inf')} … {field.get('maximum', 'inf')}")
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
    return "\n".join(lines)


def cmd_plugins(args: argparse.Namespace) -> int:
    session = _session(args)
    report = session.plugin_report.to_dict(session.registry)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return EXIT_OK
    for p in report["loaded"]:
        print(f"loaded   {p['name']:<20} {p['source']:<12} {p['version'] or '':<10} {len(p['nodes'])} node(s)")
    for f in report["failed"]:
        print(f"FAILED   {f['name']:<20} {f['source']:<12} {f['error']}")
    for s in report["skipped"]:
        print(f"skipped  {s['name']:<20} {s['reason']}")
    for c in report["conflicts"]:
        print(f"conflict {c['message']}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .graph import graph_file_schema

    print(json.dumps(graph_file_schema(), indent=2))
    return EXIT_OK


def _report_plugin_failures(session: Any) -> None:
    for failure in session.plugin_report.failed:
        print(f"warning: plugin {failure.name!r} was skipped: {failure.error}", file=sys.stderr)
    for conflict in session.registry.conflicts:
        print(f"warning: {conflict}", file=sys.stderr)


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "nodes": cmd_nodes, "plugins": cmd_plugins,
            "schema": cmd_schema}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from .server import main as serve_main

        return serve_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
