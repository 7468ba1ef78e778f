"""Finding, loading and isolating plugins (pluggy); naming their nodes; reporting what went wrong.

Order and rules (deterministic, documented in docs/plugins.md):

1. Built-in node packs: entry points of group `nodegraph.builtins`, by name.
2. Installed plugins: entry points of group `nodegraph`, by name — unless
   autoload is off (`autoload=False`, or NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD=1).
3. Plugin objects passed explicitly (tests, embedding apps), in the given order.

A name on the deny list (NODEGRAPH_PLUGINS_DENY, `--deny-plugin`) is never
loaded; when an allow list is given (NODEGRAPH_PLUGINS_ALLOW,
`--allow-plugin`), installed plugins not on it are skipped (built-ins and
explicit plugins are not affected by the allow list).

Each plugin is imported and its hooks are called one plugin at a time; a
plugin that fails to import, whose hook raises or returns something invalid,
or that declares a bad node (unknown port type, a `run` whose signature does
not take the declared inputs, two classes with one type) is recorded in
`PluginReport.failed` (name, error, traceback, fix), unregistered, and skipped
as a whole — start-up goes on.

Node types are registered as `<plugin>.<Type>`; the bare `<Type>` is an alias
when one plugin provides it (registry.py). Two plugins providing one bare name
is a clash: the bare name becomes ambiguous unless a preference
(NODEGRAPH_PLUGINS_PREFER=Type=plugin, `--prefer-plugin Type=plugin`) picks one
or one of them is a built-in pack, which keeps it (a warning names the plugin's
qualified name).

A plugin that loads but registers no node is reported too (`no_nodes`): as a
warning when it implements no hook at all — typically its module was imported
from a folder without `__init__.py` in the working folder (a namespace
package shadowing the installed plugin), or its entry point names the wrong
module — and as info when it only adds port types, samplers or the like.

Main objects: `load_plugins` (→ plugin manager, Registry, PluginReport),
`plugin_warnings` (failures, clashes, skipped plugins, plugins without nodes
and unused preferences as plain dicts: what the CLI prints and the server
sends), `builtin_plugin_names` / `installed_plugin_names` (entry-point names,
e.g. for `nodegraph plugin new` to refuse), and the shared command-line flags
`add_plugin_arguments` / `plugin_options`.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import inspect
import json
import os
import re
import sys
import time
import types
import traceback
import warnings
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .errors import PluginError
from .node import Node, deferred_spec_errors
from .registry import Registry
from .types import PortTypeClash

BUILTIN_GROUP = "nodegraph.builtins"
PLUGIN_GROUP = "nodegraph"
ENV_DISABLE_AUTOLOAD = "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD"
ENV_ALLOW = "NODEGRAPH_PLUGINS_ALLOW"
ENV_DENY = "NODEGRAPH_PLUGINS_DENY"
ENV_PREFER = "NODEGRAPH_PLUGINS_PREFER"
#: every hook name nodegraph calls (nodegraph.hookspecs)
HOOK_NAMES = tuple(sorted(name for name in dir(hookspecs) if name.startswith("register_")
                          and callable(getattr(hookspecs, name))))
EXTENSION_HOOKS = ("register_samplers", "register_schedules", "register_model_folders", "register_api",
                   "register_choice_lists", "register_comfyui_classes")
#: hooks whose dict is kept whole per plugin (registry.extensions[kind][plugin name] = the dict)
PER_PLUGIN_HOOKS = ("register_model_dirs",)
REPLACED_BY_CODE = "its installed copy is replaced by the plugin of that name given in code (Session(plugins=...))"
_SKIP_REASONS_BY_CHOICE = ("not on the allow list", "on the deny list", REPLACED_BY_CODE)


class PluginOptionError(PluginError, ValueError):
    """A plugin option (a preference, an allow/deny entry) is malformed; names the option and the fix."""


class PluginOptionTypeError(PluginOptionError, TypeError):
    """A plugin option of the wrong kind: `Session(deny="video")` (a str, read letter by letter), `plugins=module`."""


class PluginLoadWarning(UserWarning):
    """A plugin given in code (`Session(plugins=[...])`) did not load. Installed plugins that fail are reported
    (`plugin_warnings()`, `nodegraph plugins`); one a program names itself is a programming error it should see."""


@dataclass(frozen=True)
class PluginInfo:
    """A plugin that loaded: its name, where it came from, and what it registered."""

    name: str
    source: str                  # "builtin", "entry_point" or "explicit"
    module: str
    distribution: str | None
    version: str | None
    nodes: tuple[str, ...] = ()  # qualified names, `<plugin>.<Type>`
    hooks: tuple[str, ...] = ()  # the hooks it implements (register_nodes, ...)
    namespace_folder: str | None = None   # set when its module is a folder without __init__.py
    unknown_hooks: tuple[str, ...] = ()   # @hookimpl functions named as no hook (a misspelling): never called
    import_seconds: float = 0.0  # how long importing its module took
    hook_seconds: float = 0.0    # how long its hooks' calls took (a register_nodes importing its node modules); the
    #                              two together past SLOW_IMPORT_SECONDS give a `slow_import` warning
    imported_torch: bool = False  # torch was first imported while its module was: the first plugin to import torch
    #                               pays for it (the built-in packs import it only when a node runs)
    comfyui_pack: bool = False    # its module has ComfyUI's NODE_CLASS_MAPPINGS (a custom-node pack, not ported)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that was skipped because it failed to import or register."""

    name: str
    source: str
    error: str
    traceback: str
    fix: str = ""
    distribution: str | None = None   # the distribution that provides it and its version, when known: a bug report
    version: str | None = None        # then says which release failed (`plugins --json` lists them as `loaded` does)

    @property
    def message(self) -> str:
        return f"plugin {self.name!r} failed to load and was skipped: {self.error}"


@dataclass
class PluginReport:
    """What happened when plugins were loaded."""

    loaded: list[PluginInfo] = field(default_factory=list)
    failed: list[PluginFailure] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (name, reason)
    unknown: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)  # (name, option, known names)
    denied_builtins: list[str] = field(default_factory=list)   # built-in packs on the deny list
    # register_comfyui_classes entries left out, the plugin loaded: (plugin, class name, what is wrong, the fix)
    refused_comfyui_classes: list[tuple[str, Any, str, str]] = field(default_factory=list)
    # nodegraph.api functions a plugin replaced (`api.sample = mine`): (plugin, function name, undone: None while the
    # plugin is loaded, True when it failed and the change was undone, False when the original could not be found)
    api_patches: list[tuple[str, str, bool | None]] = field(default_factory=list)

    def to_dict(self, registry: Registry | None = None) -> dict[str, Any]:
        """Plain data for `nodegraph plugins --json`; with a registry, also clashes and warnings."""
        out: dict[str, Any] = {
            "loaded": [vars(p) | {"nodes": list(p.nodes)} for p in self.loaded],
            "failed": [vars(f) | {"message": f.message} for f in self.failed],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
        }
        if registry is not None:
            out["clashes"] = [{"type": c.type, "plugins": list(c.plugins), "qualified": c.qualified,
                               "preferred": c.preferred, "message": c.message, "fix": c.fix}
                              for c in registry.clashes]
            out["conflicts"] = [vars(c) | {"message": str(c), "fix": c.fix} for c in registry.conflicts]
            out["warnings"] = plugin_warnings(self, registry)
        return out


# --- options ---------------------------------------------------------------------

def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


def autoload_enabled() -> bool:
    return os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() not in ("1", "true", "yes")


def parse_preferences(items: Iterable[str], where: str = "--prefer-plugin") -> dict[str, str]:
    """`["Blur=fancy", ...]` → `{"Blur": "fancy"}`; raises PluginOptionError naming the bad item."""
    prefer: dict[str, str] = {}
    for item in items:
        bare, eq, plugin = (part.strip() for part in str(item).partition("="))
        if not eq or not bare or not plugin or "=" in plugin:
            example = f"{where} Blur=fancy_filters" if where.startswith("--") else f"{where}=Blur=fancy_filters"
            raise PluginOptionError(
                f"{where} {item!r}: write it as TYPE=PLUGIN, e.g. {example} "
                f"(the bare node type, then the plugin whose node it should mean)")
        if prefer.get(bare, plugin) != plugin:
            raise PluginOptionError(f"{where}: {bare!r} is preferred from both {prefer[bare]!r} and {plugin!r}; "
                                    f"keep one")
        prefer[bare] = plugin
    return prefer


ALREADY_LOADED = "a plugin with this name is already loaded"     # a skipped copy's reason starts so


def add_plugin_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --allow-plugin/--deny-plugin/--prefer-plugin/--no-plugins to a parser (run, validate, serve, ...)."""
    group = parser.add_argument_group("plugins")
    group.add_argument("--allow-plugin", action="append", metavar="NAME",
                       help=f"load only these installed plugins (repeatable; env {ENV_ALLOW}=a,b)")
    group.add_argument("--deny-plugin", action="append", metavar="NAME",
                       help=f"never load this plugin (repeatable; env {ENV_DENY}=a,b)")
    group.add_argument("--prefer-plugin", action="append", metavar="TYPE=PLUGIN",
                       help="when several plugins provide node type TYPE, the bare name means PLUGIN's "
                            f"(repeatable; env {ENV_PREFER}=Type=plugin,Other=plugin2)")
    group.add_argument("--no-plugins", action="store_true",
                       help=f"load only the built-in nodes (env {ENV_DISABLE_AUTOLOAD}=1)")
    return parser


def plugin_options(args: argparse.Namespace) -> dict[str, Any]:
    """Session keyword arguments from the flags of `add_plugin_arguments`; raises PluginOptionError."""
    prefer = getattr(args, "prefer_plugin", None)
    allow = getattr(args, "allow_plugin", None)
    if getattr(args, "no_plugins", False) and allow:     # two wishes that contradict: say so, do not pick one
        raise PluginOptionError(
            f"--allow-plugin {' '.join(allow)} has no effect with --no-plugins (which loads no installed plugin): "
            f"drop --no-plugins to load only the allowed plugins, or drop --allow-plugin")
    return {
        "autoload": False if getattr(args, "no_plugins", False) else None,
        "allow": allow,
        "deny": getattr(args, "deny_plugin", None),
        "prefer": parse_preferences(prefer) if prefer else None,
    }


# --- loading ----------------------------------------------------------------------

def _entry_points(group: str) -> list[metadata.EntryPoint]:
    """A group's entry points by name, then distribution (so which of two same-named plugins loads never
    depends on the working folder or the order of sys.path)."""
    return sorted(metadata.entry_points(group=group), key=lambda ep: (ep.name, _distribution_of(ep), ep.value))


def _distribution_of(ep: Any) -> str:
    """'name version' of the distribution that provides an entry point ('' for none)."""
    dist = getattr(ep, "dist", None) if ep is not None else None
    return f"{getattr(dist, 'name', '')} {getattr(dist, 'version', '')}".strip() if dist is not None else ""


def builtin_plugin_names() -> list[str]:
    """The built-in node packs' plugin names (`primitives`, `image`, `sampling`, ...)."""
    return [ep.name for ep in _entry_points(BUILTIN_GROUP)]


def installed_plugin_names() -> dict[str, str | None]:
    """Installed plugins' names (group `nodegraph`) → the distribution that provides each."""
    return {ep.name: getattr(getattr(ep, "dist", None), "name", None) for ep in _entry_points(PLUGIN_GROUP)}


def _namespace_folder(obj: Any) -> str | None:
    """The folder of a module that is a namespace package (a folder without __init__.py), else None."""
    if not inspect.ismodule(obj) or getattr(obj, "__file__", None) is not None or not hasattr(obj, "__path__"):
        return None
    return next(iter(obj.__path__), None)


def load_plugins(
    builtins: bool = True,
    autoload: bool | None = None,
    plugins: Iterable[Any] = (),
    allow: list[str] | None = None,
    deny: list[str] | None = None,
    prefer: dict[str, str] | None = None,
) -> tuple[pluggy.PluginManager, Registry, PluginReport]:
    """Load plugins in the documented order and build the Registry from their hooks.

    Args:
        builtins: load the built-in node packs (group `nodegraph.builtins`).
        autoload: load installed plugins (group `nodegraph`); default: on unless
            NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD is set.
        plugins: extra plugin objects (modules or instances with hookimpls),
            or (name, object) pairs.
        allow, deny: plugin names; default from NODEGRAPH_PLUGINS_ALLOW / _DENY.
        prefer: bare node type → plugin whose node the bare name means when
            several plugins provide it; default from NODEGRAPH_PLUGINS_PREFER
            (`Type=plugin,Other=plugin2`).
    """
    if autoload is None:
        autoload = autoload_enabled()
    allow = _plugin_names(allow, "allow") if allow is not None else _env_list(ENV_ALLOW)
    deny = set(_plugin_names(deny, "deny") if deny is not None else (_env_list(ENV_DENY) or []))
    if isinstance(plugins, (str, bytes, types.ModuleType)) or _is_node_class(plugins) or not isinstance(
            plugins, Iterable):
        raise PluginOptionTypeError(f"plugins= takes a list of plugins, found {type(plugins).__name__} "
                                    f"{plugins!r:.60}: write plugins=[module], plugins=[('name', module)] or, for "
                                    f"node classes of a script, plugins=[MyNode]")
    if prefer is None:
        prefer = parse_preferences(_env_list(ENV_PREFER) or [], where=ENV_PREFER)
    pm = pluggy.PluginManager("nodegraph")
    pm.add_hookspecs(hookspecs)
    report = PluginReport()
    candidates: list[tuple[str, str, Any, Any]] = []   # (name, source, entry point or None, object)
    if builtins:
        candidates += [(ep.name, "builtin", ep, None) for ep in _entry_points(BUILTIN_GROUP)]
    installed = _entry_points(PLUGIN_GROUP) if autoload else []
    explicit = [_explicit_plugin(obj, installed) for obj in _script_node_plugins(list(plugins))]
    given_in_code = {name for name, _ in explicit}
    for ep in installed:
        if ep.name in given_in_code:     # code names the plugin to use: an older installed copy must not win
            if ep.name not in deny:      # (denied, neither loads: the deny list says so once, below)
                report.skipped.append((ep.name, REPLACED_BY_CODE))
            continue                     # the allow list is for installed plugins: code chose this one
        if allow is not None and ep.name not in allow:
            report.skipped.append((ep.name, "not on the allow list"))
            continue
        candidates.append((ep.name, "entry_point", ep, None))
    candidates += [(name, "explicit", None, obj) for name, obj in explicit]

    if allow is not None or deny:         # a misspelt name would otherwise choose nothing, silently
        known = {name for name, _, _, _ in candidates} | {ep.name for ep in _entry_points(PLUGIN_GROUP)}
        for option, names in (("--allow-plugin", allow if autoload else None), ("--deny-plugin", deny)):
            report.unknown += [(name, option, tuple(sorted(known))) for name in sorted(names or ()) if name not in known]
    registry = Registry(prefer=dict(prefer),
                        builtin_plugins={name for name, source, _, _ in candidates if source == "builtin"})
    registered: list[tuple[str, str, Any, metadata.EntryPoint | None]] = []
    provided_by: dict[str, str] = {}        # plugin name → the distribution it was loaded from ('' if none)
    import_seconds: dict[str, float] = {}
    imported_torch: set[str] = set()     # plugins whose import was the first to import torch
    api_changed: dict[str, dict[str, tuple[Any, Any]]] = {}   # plugin → api name → (before, after) its import
    packages: dict[str, str] = {}        # plugin → the top-level package of its code (who replaced an api function)
    tried: dict[str, Any] = {}           # plugin → the entry point it was last loaded from (its failure's distribution)
    for name, source, ep, target in candidates:
        if name in deny:
            report.skipped.append((name, "on the deny list"))
            if source == "builtin":
                report.denied_builtins.append(name)
            continue
        if pm.has_plugin(name):
            this, first = _distribution_of(ep), provided_by.get(name, "")
            both = f" (loaded: {first or 'given in code'}; skipped: {this or 'given in code'})" if this or first \
                else ""
            report.skipped.append((name, f"{ALREADY_LOADED}{both}"))
            continue
        tried[name] = ep
        try:
            started, had_torch = time.perf_counter(), "torch" in sys.modules
            printed = _StderrTee(sys.stderr, name)    # what it prints while imported, for its failure if it exits
            api_before = _api_snapshot()
            if source != "builtin":          # a built-in pack's code is nodegraph's own
                packages[name] = _plugin_package(target, ep)
            try:     # its prints go to stderr: stdout carries `plugins --json` and `run --events -`
                with deferred_spec_errors(), contextlib.redirect_stderr(printed), contextlib.redirect_stdout(printed):
                    obj = ep.load() if ep is not None else target
                if source != "builtin":
                    packages[name] = _plugin_package(obj, ep)
            finally:
                printed.recording = False
                api_changed[name] = _api_changes(api_before)
            import_seconds[name] = time.perf_counter() - started
            if not had_torch and "torch" in sys.modules:
                imported_torch.add(name)
            pm.register(obj, name=name)
            provided_by[name] = _distribution_of(ep)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 — a broken plugin (even one calling sys.exit at
            # import, e.g. argparse at module level) must never stop start-up
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, SystemExit):
                said = " ".join(printed.recorded().split())[-300:]
                error += (" (the plugin exited while it was imported, e.g. argparse run at module level"
                          + (f"; it printed: {said!r}" if said else "") + ")")
            report.failed.append(PluginFailure(name, source, error, traceback.format_exc(),
                                               _failure_fix(name, exc, "import", ep)))
            continue
        registered.append((name, source, obj, ep))

    # Hooks are called per plugin so that a failure is attributed and isolated.
    sources = {name: source for name, source, _, _ in registered}
    hook_seconds: dict[str, float] = {}       # per plugin, all its hooks: a slow register_nodes delays start-up too
    types_by_plugin = _collect(pm, "register_types", report, list, sources, hook_seconds)
    with deferred_spec_errors():           # a hook that imports its node module: the same
        nodes_by_plugin = _collect(pm, "register_nodes", report, list, sources, hook_seconds)
    extensions_by_plugin = {hook: _collect(pm, hook, report, dict, sources, hook_seconds) for hook in EXTENSION_HOOKS}
    per_plugin = {hook: _collect(pm, hook, report, dict, sources, hook_seconds) for hook in PER_PLUGIN_HOOKS}

    def fail(name: str, exc: Exception, stage: str) -> None:
        report.failed.append(PluginFailure(name, sources[name], f"{type(exc).__name__}: {exc}",
                                           traceback.format_exc(), _failure_fix(name, exc, stage)))
        pm.unregister(name=name)

    # Pass 1: port types of every plugin, so that nodes may use types from any plugin.
    for name, _, _, _ in registered:
        if name in {f.name for f in report.failed}:
            continue
        try:
            for port_type in types_by_plugin.get(name, []):
                _check_literal_kind(name, port_type)
                registry.types.register(port_type, source=name)
        except Exception as exc:  # noqa: BLE001
            fail(name, exc, "register_types")
    # every plugin's choice lists, which any plugin's nodes may name (`choices_from`)
    choice_lists = frozenset(list_name for table in extensions_by_plugin["register_choice_lists"].values()
                             if isinstance(table, dict) for list_name in table)
    # every plugin's node type names, so that no plugin's ComfyUI class takes over another's (whichever loads first)
    plugin_types = _plugin_node_types(nodes_by_plugin, {f.name for f in report.failed})
    # Pass 2: nodes and extensions; a plugin registers all of its nodes or none.
    for name, source, obj, ep in registered:
        if name in {f.name for f in report.failed}:
            if pm.has_plugin(name):
                pm.unregister(name=name)
            continue
        node_classes = nodes_by_plugin.get(name, [])
        try:
            check_node_classes(registry, node_classes, choice_lists)
        except Exception as exc:  # noqa: BLE001
            fail(name, exc, "register_nodes")
            continue
        try:
            model_dirs = _check_model_dirs(per_plugin["register_model_dirs"].get(name) or {})
        except Exception as exc:  # noqa: BLE001
            fail(name, exc, "register_model_dirs")
            continue
        problems = [problem for hook, table in extensions_by_plugin.items()
                    for problem in _extension_problems(hook, table.get(name) or {}, source == "builtin")]
        if problems:
            fail(name, PluginError(problems[0] if len(problems) == 1 else f"{len(problems)} problems: "
                                   + " ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))), "register_nodes")
            continue
        qualified = tuple(registry.add_node(cls, name) for cls in node_classes)
        if model_dirs:
            registry.add_extension("model_dirs", name, model_dirs, name)
        for hook, table in extensions_by_plugin.items():
            entries = table.get(name) or {}
            if hook == "register_comfyui_classes":     # a bad entry is left out with a warning, not the plugin
                entries = _usable_comfyui_classes(name, entries, source == "builtin", registry, report,
                                                  plugin_types)
            for ext_name, value in entries.items():
                if hook == "register_model_folders" and _add_folder_extensions(registry, ext_name, value):
                    continue
                registry.add_extension(hook.removeprefix("register_"), ext_name, value, name)
        dist = getattr(ep, "dist", None) if ep is not None else None
        callers = pm.get_hookcallers(obj) or ()
        report.loaded.append(PluginInfo(
            name=name, source=source, module=getattr(obj, "__name__", type(obj).__name__),
            distribution=getattr(dist, "name", None), version=getattr(dist, "version", None),
            nodes=qualified, hooks=tuple(sorted(c.name for c in callers if c.name in HOOK_NAMES)),
            namespace_folder=_namespace_folder(obj),
            unknown_hooks=tuple(sorted(c.name for c in callers if c.name not in HOOK_NAMES)),
            import_seconds=round(import_seconds.get(name, 0.0), 3),
            hook_seconds=round(hook_seconds.get(name, 0.0), 3), imported_torch=name in imported_torch,
            comfyui_pack=isinstance(getattr(obj, "NODE_CLASS_MAPPINGS", None), dict)))
    loaded = {p.name for p in report.loaded}
    registry.unavailable = {name: reason for name, reason in report.skipped if name not in loaded}
    registry.shadowed = {name: reason for name, reason in report.skipped
                         if name in loaded and reason.startswith(ALREADY_LOADED)}
    if not autoload:      # installed, left out on purpose: a graph using one says so (not "not installed")
        registry.not_autoloaded = frozenset(ep.name for ep in _entry_points(PLUGIN_GROUP) if ep.name not in loaded)
    registry.unavailable.update({f.name: f"failed to load: {f.error}" for f in report.failed})
    report.api_patches = _api_patches(api_changed, packages, {f.name for f in report.failed})
    report.failed = [_with_distribution(f, tried.get(f.name)) for f in report.failed]
    for failure in report.failed:       # its saved graphs' bare names must not quietly mean another plugin's node
        for cls in nodes_by_plugin.get(failure.name, []):
            if isinstance(getattr(cls, "type", None), str) and cls.type:
                registry.add_failed_provider(cls.type, failure.name)
        if failure.source == "explicit":      # stacklevel 3: the line calling Session(...)
            warnings.warn(PluginLoadWarning(failure.message + (f" Fix: {failure.fix}" if failure.fix else "")),
                          stacklevel=3)
    for info in report.loaded:        # a ComfyUI pack given in code loads but adds nothing: as loud as a failure
        if info.source == "explicit" and info.comfyui_pack and not info.nodes:
            entry = _no_nodes_warning(info)
            warnings.warn(PluginLoadWarning(f"{entry['message']} Fix: {entry['fix']}"), stacklevel=3)
    return pm, registry, report


def _add_folder_extensions(registry: Registry, folder: str, extensions: list[str]) -> bool:
    """Add a plugin's file extensions to a model folder another pack registered first (`{"checkpoints":
    [".gguf"]}`, as ComfyUI's GGUF pack does); True when the folder was registered already. Extensions are only
    ever added, never removed: every plugin's files stay listed, so this is no clash."""
    table = registry.extensions.get("model_folders") or {}
    if folder not in table:
        return False
    known = list(table[folder])
    table[folder] = known + [ext for ext in extensions if ext not in known]     # a new list: the first's is its own
    return True


def _with_distribution(failure: PluginFailure, ep: Any) -> PluginFailure:
    """`failure` with the distribution (and version) of the entry point it was loaded from, when there is one."""
    dist = getattr(ep, "dist", None) if ep is not None else None
    if dist is None:
        return failure
    return replace(failure, distribution=getattr(dist, "name", None), version=getattr(dist, "version", None))


def _api_snapshot() -> dict[str, Any]:
    """nodegraph.api's public names (`__all__`) → what they are now."""
    from . import api

    return {name: getattr(api, name, None) for name in api.__all__}


def _api_changes(before: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The nodegraph.api names that are no longer what `before` holds → (before, now)."""
    now = _api_snapshot()
    return {name: (before.get(name), value) for name, value in now.items() if value is not before.get(name)}


def _defined_in(obj: Any) -> str | None:
    """The module a callable's code was written in: a function's globals (which `functools.wraps` does not copy,
    unlike `__module__`), else its `__module__`; None for a value that is no callable."""
    obj = getattr(obj, "__func__", obj)                # a bound method
    while isinstance(obj, functools.partial):
        obj = obj.func
    if inspect.isfunction(obj):
        return obj.__globals__.get("__name__")
    return getattr(obj, "__module__", None) if callable(obj) else None


def _plugin_package(obj: Any, ep: Any) -> str:
    """The top-level package of a plugin's code: its module's, its entry point's, or its object's class's."""
    module = getattr(obj, "__name__", None) if inspect.ismodule(obj) or isinstance(obj, _ScriptNodes) else None
    if module is None and obj is not None:
        module = type(obj).__module__ if not isinstance(obj, type) else obj.__module__
    if module is None and ep is not None:
        module = getattr(ep, "module", None) or str(getattr(ep, "value", "")).partition(":")[0]
    return str(module or "").partition(".")[0]


def _api_patches(changed: dict[str, dict[str, tuple[Any, Any]]], packages: dict[str, str],
                 failed: set[str]) -> list[tuple[str, str, bool | None]]:
    """Which plugin replaced which nodegraph.api function, undoing the replacements of plugins that failed.

    A change made while a plugin was imported is that plugin's; a function replaced before (a module the program
    imported itself, then gave as `plugins=[module]`) is the plugin's whose package wrote the replacement. A
    failed plugin's replacement is undone when it is still in place: back to what its import replaced, else the
    original it kept to call (`_original_api_function`); `undone` False when there is none. Python cannot stop a
    plugin from changing the API at import; the `patched` warning (`_api_patch_warnings`) makes it visible."""
    from . import api

    found: list[tuple[str, str, Any, Any]] = []         # (plugin, name, what it replaced or None, its replacement)
    seen = set()
    for plugin, names in changed.items():
        if plugin not in packages:                      # a built-in pack
            continue
        for name, (before, after) in names.items():
            found.append((plugin, name, before, after))
            seen.add(name)
    by_package = {package: plugin for plugin, package in reversed(list(packages.items())) if package}
    for name in api.__all__:
        current = getattr(api, name, None)
        origin = _defined_in(current) or ""
        plugin = by_package.get(origin.partition(".")[0]) if origin.partition(".")[0] != "nodegraph" else None
        if name not in seen and plugin is not None:
            found.append((plugin, name, None, current))
    out: list[tuple[str, str, bool | None]] = []
    for plugin, name, before, after in found:
        undone = None
        if plugin in failed:
            original = before if before is not None else _original_api_function(name, after)
            undone = original is not None and getattr(api, name, None) is after
            if undone:
                setattr(api, name, original)
        out.append((plugin, name, undone))
    return out


def _original_api_function(name: str, replacement: Any) -> Any:
    """nodegraph.api's own `name`, found where a replacement keeps it to call it (`functools.wraps`' __wrapped__,
    its closure, its module's globals: `_orig = api.sample`); None when it keeps none."""
    from . import api

    function = getattr(replacement, "__func__", replacement)
    candidates = [getattr(function, "__wrapped__", None)]
    candidates += [cell.cell_contents for cell in getattr(function, "__closure__", None) or ()
                   if _cell_filled(cell)]
    candidates += list(getattr(function, "__globals__", {}).values())
    return next((c for c in candidates if inspect.isfunction(c) and c.__globals__ is vars(api)
                 and c.__name__ == name), None)


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:          # an empty cell
        return False
    return True


def _plugin_names(value: Any, option: str) -> list[str]:
    """An allow / deny list given in code, checked: a str would be read letter by letter (`deny="video"` denied
    'v', 'i', … and loaded video) and `"example" in "examples_and_more"` allowed a plugin by substring."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise PluginOptionTypeError(f"{option}= takes a list of plugin names, found {type(value).__name__} "
                                    f"{value!r:.60}: write {option}=[{value!r:.60}]")
    names = list(value)
    for name in names:
        if not isinstance(name, str):
            raise PluginOptionTypeError(f"{option}=[...]: {name!r:.60} is not a plugin name (a str such as 'video')")
    return names


def _is_node_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, Node)


class _ScriptNodes:
    """The plugin of node classes given straight to `Session(plugins=[MyNode, ...])`: it registers them."""

    def __init__(self, module: str, classes: list[type[Node]]):
        self.__name__ = module
        self.classes = classes

    @hookspecs.hookimpl
    def register_nodes(self) -> list[type[Node]]:
        return list(self.classes)


def _is_comfyui_class(obj: Any) -> bool:
    """A class written for ComfyUI (INPUT_TYPES / RETURN_TYPES / FUNCTION), not a nodegraph Node."""
    return isinstance(obj, type) and not issubclass(obj, Node) and any(
        hasattr(obj, name) for name in ("INPUT_TYPES", "RETURN_TYPES", "FUNCTION"))


def _comfyui_code_message(what: str) -> str:
    """What to say of ComfyUI code given as a plugin: the same words for a class given in code, a (name, [classes])
    pair and a custom-node pack module (NODE_CLASS_MAPPINGS), which all loaded or failed with words about entry
    points and hook implementations that never mention ComfyUI."""
    return (f"{what} is ComfyUI code, which nodegraph does not load as it is: its nodes are ported — a "
            f"nodegraph.Node subclass each, inputs as an `Inputs` class, `outputs`, and the work in `run` — and "
            f"`register_comfyui_classes` keeps the pack's ComfyUI class names importing (docs/plugins.md, 'Porting a "
            f"ComfyUI node')")


def _script_plugin_name(module: str) -> str:
    """The plugin name of node classes given bare: their top-level package (`pkg` for `pkg.nodes`: a template
    plugin's `nodes` module named it 'nodes', the built-in packs' package name, and merged two packages' classes
    into one plugin), "script" for the program's own `__main__`."""
    top = module.partition(".")[0]
    return "script" if top in ("__main__", "") else top


def _script_node_plugins(plugins: list[Any]) -> list[Any]:
    """`plugins` with node classes given bare (a script's one-off nodes, no plugin module) gathered into one
    plugin per top-level package, named after it ("script" for the program's own `__main__`; `_script_plugin_name`):
    `script.MyNode`; a `("name", [MyNode, ...])` pair names that plugin. A ComfyUI class, bare or in a pair, is a
    PluginOptionError saying so. Everything else is left as given."""
    by_module: dict[str, _ScriptNodes] = {}
    out: list[Any] = []
    for obj in plugins:
        given = obj[1] if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], (list, tuple)) else [obj]
        comfy = [c for c in given if _is_comfyui_class(c)]
        if comfy:
            raise PluginOptionError("plugins=[...]: " + _comfyui_code_message(
                f"{', '.join(c.__qualname__ for c in comfy)} (INPUT_TYPES / RETURN_TYPES)"))
        if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], (list, tuple)) and obj[1] and all(
                _is_node_class(c) for c in obj[1]):
            out.append((obj[0], _ScriptNodes(str(obj[0]), list(obj[1]))))
        elif _is_node_class(obj):
            module = _script_plugin_name(obj.__module__)
            if module not in by_module:
                by_module[module] = _ScriptNodes(module, [])
                out.append((module, by_module[module]))
            by_module[module].classes.append(obj)
        else:
            out.append(obj)
    return out


def _explicit_plugin(obj: Any, installed: list[metadata.EntryPoint]) -> tuple[str, Any]:
    """(name, plugin object) of a plugin given in code: a (name, object) pair as given; a module that an
    installed entry point loads takes that entry point's name (so its nodes keep their qualified names and
    the installed copy is not loaded beside it: pluggy refused the same module under two names); anything
    else is named after its module or class."""
    if isinstance(obj, tuple) and len(obj) == 2:
        name, plugin = obj
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", name):
            raise PluginOptionError(f"plugins=[...]: {name!r} is not a plugin name: letters, digits, _ . - (it "
                                    f"prefixes the plugin's node types, NAME.Type)")
    else:
        plugin = obj
    if plugin is None or isinstance(plugin, (bool, int, float, str, bytes, tuple, list, dict)):
        raise PluginOptionError(f"plugins=[...]: {obj!r} is not a plugin: give a module or an object with hook "
                                f"implementations (@hookimpl), or a (name, object) pair")
    if isinstance(obj, tuple):
        return obj
    module = getattr(obj, "__name__", None)
    if isinstance(obj, types.ModuleType):
        for ep in installed:
            if getattr(ep, "module", None) == module and not getattr(ep, "attr", None):
                return ep.name, obj
    return module or type(obj).__name__, obj


def _check_model_dirs(value: dict) -> dict[str, list[str]]:
    """register_model_dirs' value: folder name → list of absolute directory paths (they need not exist yet)."""
    checked: dict[str, list[str]] = {}
    for folder, dirs in value.items():
        if not isinstance(folder, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", folder):
            raise PluginError(f"register_model_dirs: {folder!r} is not a model folder name (letters, digits, _ . -)")
        if isinstance(dirs, (str, os.PathLike)) or not isinstance(dirs, (list, tuple)):
            raise PluginError(f"register_model_dirs: folder {folder!r} must map to a list of directories, "
                              f"found {type(dirs).__name__}")
        for directory in dirs:
            if not isinstance(directory, (str, os.PathLike)) or not os.path.isabs(os.fspath(directory)):
                raise PluginError(f"register_model_dirs: folder {folder!r}: {directory!r} is not an absolute path; "
                                  f"use e.g. str(Path(__file__).parent / 'models')")
        checked[folder] = [os.fspath(d) for d in dirs]
    return checked


def _extension_problems(hook: str, table: dict, builtin: bool = False) -> list[str]:
    """What is wrong with one plugin's return of an extension hook (EXTENSION_HOOKS): samplers, schedules and API
    functions are callables under names (an API name is one `nodegraph.api` has; a built-in pack may register a
    library sampler by its name, resolved on use), model folders map a folder name to its file extensions.
    Checked at load: a sampler 42 failed later in KSampler, blamed on the built-in."""
    from .api import _PROVIDERS

    if hook == "register_comfyui_classes":     # checked entry by entry: one bad entry is skipped, not the plugin
        return []                                # (_usable_comfyui_classes)
    problems = []
    for name, value in table.items():
        where = f"{hook}: {name!r}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}", name):
            problems.append(f"{hook}: {name!r} is not a name (letters, digits, _ . + -, at most 64)")
            continue
        if hook == "register_choice_lists" and name in EXTENSION_KINDS:
            problems.append(f"{where} is the name of the built-in {name} list (samplers and schedules are what "
                            f"KSampler offers, extended by their own hooks); name the plugin's own list apart "
                            f"(e.g. 'my_pack.{name}')")
            continue
        if hook == "register_model_folders":
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not all(
                    isinstance(ext, str) and re.fullmatch(r"\.[A-Za-z0-9_.-]{1,15}", ext) for ext in value):
                problems.append(f"{where} must map to a list of file extensions such as ['.safetensors'], "
                                f"found {value!r:.80}")
            continue
        if not callable(value) and not (builtin and isinstance(value, str)):
            problems.append(f"{where} must be a function, found {type(value).__name__} {value!r:.60}")
        if hook == "register_api" and name not in _PROVIDERS:
            close = difflib.get_close_matches(name, _PROVIDERS, n=1)
            problems.append(f"{where} is no nodegraph.api function" + (f" (did you mean {close[0]!r}?)" if close
                                                                        else "") + "; register_api implements the "
                            "API's own functions for the built-in packs (docs/plugins.md, The plugin API)")
    return problems


def _usable_comfyui_classes(plugin: str, entries: dict, builtin: bool, registry: Registry,
                            report: PluginReport, plugin_types: dict[str, dict[str, str]] | None = None) -> dict:
    """The entries of one plugin's `register_comfyui_classes` that may be registered; each other one is left out and
    recorded in `report.refused_comfyui_classes` (a `comfyui_class` warning): one bad entry — a name with a
    zero-width space, a value of the wrong type — took the whole plugin down, its nodes included. `plugin_types`
    (`_plugin_node_types`): an entry named as another plugin's node type is refused as a built-in's is."""
    builtin_types = {} if builtin or not entries else _builtin_node_types(registry)   # a built-in pack maps onto
    #                                                                                   its own nodes
    others = {type_name: next(iter(owners.items())) for type_name, owners in (plugin_types or {}).items()
              if plugin not in owners} if not builtin else {}      # a plugin may name its own types
    usable = {}
    for name, value in entries.items():
        refusal = _comfyui_class_problems(name, value, builtin_types, others)
        if refusal is None:
            usable[name] = value
        else:
            report.refused_comfyui_classes.append((plugin, name, *refusal))
    return usable


def _builtin_node_types(registry: Registry) -> dict[str, str]:
    """Every name a prompt may give a built-in pack's node (bare `Int`, qualified `primitives.Int`) → its qualified
    name: an API prompt naming one imports as that node, so no plugin's ComfyUI class may claim the name."""
    names = {}
    for qualified, cls in registry.node_types.items():
        if registry.node_plugin.get(qualified) in registry.builtin_plugins:
            names[qualified] = qualified
            names.setdefault(cls.type, qualified)
    return names


def _plugin_node_types(nodes_by_plugin: dict[str, list[Any]], failed: set[str]) -> dict[str, dict[str, str]]:
    """Every name a prompt may give a node of a plugin (bare `MixColors`, qualified `example.MixColors`) → {plugin:
    the qualified name}, from what each plugin's register_nodes returned (all plugins, before any registers: a
    plugin loading first must not claim a later one's names)."""
    names: dict[str, dict[str, str]] = {}
    for plugin, classes in nodes_by_plugin.items():
        if plugin in failed:
            continue
        for cls in classes:
            type_name = getattr(cls, "type", None) if _is_node_class(cls) else None
            if isinstance(type_name, str) and type_name:
                qualified = f"{plugin}.{type_name}"
                names.setdefault(qualified, {})[plugin] = qualified
                names.setdefault(type_name, {})[plugin] = qualified
    return names


#: ComfyUI classes the import resolves itself, before any plugin class is looked up: their entries are never used
_IMPORT_RESOLVED = {"CLIPSetLastLayer": "the import folds it into the clip_skip of the EncodeText nodes it feeds "
                                        "(one it cannot fold stays, and validation says what to do instead)"}


def _comfyui_class_problems(name: Any, value: Any, builtin_types: dict[str, str],
                            plugin_types: dict[str, tuple[str, str]] | None = None) -> tuple[str, str] | None:
    """What is wrong with one `register_comfyui_classes` entry, and how to fix it (None: nothing). The name is a
    ComfyUI class name (any printable text, as custom packs name classes "KSampler (Efficient)") that the import
    does not already resolve itself: not one of the built-in table's (a plugin taking over how
    CheckpointLoaderSimple imports would change every imported workflow), not a built-in node type's (a prompt
    naming `Int` or `CFGGuider` imports as ours; `builtin_types`, see `_builtin_node_types`), not another loaded
    plugin's node type (`plugin_types`: name → (the plugin, its qualified name); a ported pack's class names are its
    node types, so one plugin claiming `MixColors` imported another's workflows as its own node), not a node of
    ComfyUI's editor only (Reroute, PrimitiveNode, notes) nor one the import folds (CLIPSetLastLayer;
    `_IMPORT_RESOLVED`): resolved before any class is looked up. The value is an `api.ComfyUIClass`."""
    from .comfyui import _UI_ONLY, BY_VALUES, EQUIVALENTS, Equivalent

    leave_out = "leave the entry out; map the classes of your own ComfyUI pack, or core classes nodegraph has no " \
                "node for (such as LoadAudio)"
    shape = "return api.ComfyUIClass(type='my_pack.MyNode', outputs=('image',), ...) for each class " \
            "(docs/plugins.md, hook reference)"
    if not isinstance(name, str) or not name.isprintable() or not 0 < len(name) <= 100:
        return ("is not a ComfyUI class name (printable text of 1 to 100 characters)",
                "write the class name exactly as ComfyUI prompts give it (their class_type), without invisible or "
                "control characters")
    if name in EQUIVALENTS:
        return (f"is a class the built-in import table translates already (to {EQUIVALENTS[name].type!r}); a plugin "
                f"cannot take it over", leave_out)
    if name in BY_VALUES:       # KSamplerAdvanced, ImageCompositeMasked: which node depends on the entry's values
        return (f"is a class the built-in import table translates already, by its values (to "
                f"{BY_VALUES[name][1].type!r} where they allow it; otherwise it stays unknown and validation says "
                f"what to use instead); a plugin cannot take it over", leave_out)
    if name in builtin_types:
        return (f"is the name of the built-in node type {builtin_types[name]!r}: a prompt naming {name!r} imports as "
                f"that node, which a plugin cannot take over", leave_out)
    if name in (plugin_types or {}):
        owner, qualified = plugin_types[name]
        return (f"is the name of a node type of plugin {owner!r} ({qualified!r}): a prompt naming {name!r} is that "
                f"plugin's node (its saved ComfyUI workflows use the name), which another plugin cannot take over",
                f"leave the entry out; map the class names of your own ComfyUI pack (if both plugins port the same "
                f"pack, load one of them: --deny-plugin {owner} keeps yours)")
    if name in _IMPORT_RESOLVED:
        return (f"is a class the import resolves itself: {_IMPORT_RESOLVED[name]}",
                "leave the entry out: it would never be used")
    if name in _UI_ONLY:
        return (f"is a node of ComfyUI's editor only ({', '.join(_UI_ONLY)}), which the import resolves itself "
                f"(links go through Reroutes, a PrimitiveNode's value becomes the literal it feeds, notes are dropped)",
                "leave the entry out: it would never be used")
    if not isinstance(value, Equivalent):
        return (f"must be an api.ComfyUIClass(type=..., outputs=(...), inputs={{...}}), found {type(value).__name__}",
                shape)
    if not isinstance(value.type, str) or not isinstance(value.outputs, tuple) or not all(
            isinstance(o, str) for o in value.outputs):
        return "has a type that is not a node type name or outputs that are not a tuple of output names", shape
    if value.widgets is not None and (not isinstance(value.widgets, tuple) or not all(
            w is None or isinstance(w, str) for w in value.widgets)):
        return (f"has widgets {value.widgets!r:.60}, not a tuple of input names",
                "give widgets=('name', ...) in the UI workflow's widget order, None for a seed's control widget")
    if not all(isinstance(table, dict) and all(isinstance(k, str) for k in table)
               for table in (value.inputs, value.values, value.no_ops, value.fixed, value.scaled)) or not all(
            isinstance(names, (set, frozenset)) and all(isinstance(n, str) for n in names)
            for names in (value.dropped, value.input_files)):
        return ("has inputs / values / no_ops / fixed / scaled that are not dicts keyed by input names, or dropped / "
                "input_files that are not sets of names", shape)
    return None


def _collect(pm: pluggy.PluginManager, hook_name: str, report: PluginReport, kind: type,
             sources: dict[str, str], seconds: dict[str, float] | None = None) -> dict[str, Any]:
    """Call one hook plugin by plugin; failures are recorded, not raised; each call's time is added to
    `seconds[plugin]`."""
    results: dict[str, Any] = {}
    failed = {f.name for f in report.failed}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.plugin_name in failed:
            continue
        started = time.perf_counter()
        try:
            try:
                value = impl.function()
            finally:
                if seconds is not None:
                    seconds[impl.plugin_name] = seconds.get(impl.plugin_name, 0.0) + time.perf_counter() - started
            if value is None:
                value = kind()
            if not isinstance(value, (list, tuple) if kind is list else dict):
                raise PluginError(f"{hook_name} must return a {kind.__name__}, got {type(value).__name__}")
            results[impl.plugin_name] = list(value) if kind is list else dict(value)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 — sys.exit in a hook is a failure, not an exit
            report.failed.append(PluginFailure(
                impl.plugin_name, sources.get(impl.plugin_name, "explicit"),
                f"{hook_name}: {type(exc).__name__}: {exc}", traceback.format_exc(),
                _failure_fix(impl.plugin_name, exc, hook_name)))
            failed.add(impl.plugin_name)
    return results


def _failure_fix(name: str, exc: BaseException, stage: str, ep: metadata.EntryPoint | None = None) -> str:
    """How to get past a plugin failure: the specific repair, then how to silence it."""
    skip = f"until then skip it with --deny-plugin {name} (or {ENV_DENY}={name})"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        target = getattr(ep, "module", "") or ""
        if target and (target == exc.name or target.startswith(exc.name + ".")):
            # the entry point's own module is missing: a typo in the plugin's packaging, not a dependency to
            # install (never suggest `pip install` of a name that came from a typo: anyone may register it)
            distribution = _distribution_of(ep)
            where = f" (distribution {distribution!r})" if distribution else ""
            return (f"the plugin's entry point {ep.name} = {ep.value!r}{where} names module {target!r}, which "
                    f"is not installed: fix the module name under [project.entry-points.nodegraph] in the "
                    f"plugin's pyproject.toml (or its package list) and reinstall it; {skip}")
        if top != exc.name and _importable(top):      # the package is there: a module of it is not
            return (f"module {exc.name!r} does not exist in the installed package {top!r}: the plugin's entry point "
                    f"or one of its imports names a wrong module; reinstall or fix the plugin; {skip}")
        return (f"install the package that provides module {top!r} (the plugin's README or pyproject lists its "
                f"dependencies; for a PyPI package of the same name: `pip install {top}`), or reinstall the plugin "
                f"with its dependencies; {skip}")
    if isinstance(exc, pluggy.PluginValidationError):      # pm.register: a hook that does not match its hookspec
        return (f"a hook of the plugin does not match nodegraph's hookspecs (see the error): the hooks take no "
                f"arguments (`@hookimpl def register_nodes(): return [MyNode]`) and are named as docs/plugins.md "
                f"lists them (nodegraph.hookspecs); fix the plugin or update it for this nodegraph; {skip}")
    from .api import ApiError

    if type(exc) is ApiError and "needs nodegraph plugin API" in str(exc):     # api.require at import
        from .api import API_VERSION

        wanted = re.search(r"needs nodegraph plugin API (\d+)\.(\d+)", str(exc))
        have = tuple(int(part) for part in API_VERSION.split("."))
        if wanted is not None and int(wanted[1]) < have[0]:      # made for an older major API: nodegraph is newer
            return (f"the plugin was made for an older plugin API ({wanted[1]}.x) than this nodegraph's "
                    f"({API_VERSION}): install a release of the plugin made for API {have[0]}.x, or a nodegraph "
                    f"{wanted[1]}.x; {skip}")
        return (f"the plugin needs a newer nodegraph than this one (plugin API {API_VERSION}, see the error): "
                f"update nodegraph, or install a release of the plugin made for API {API_VERSION}; {skip}")
    if stage == "import":
        return f"fix or update the plugin (its module raised while being imported); {skip}"
    if isinstance(exc, PortTypeClash) and exc.owner != "nodegraph":
        return (f"plugins {exc.owner!r} and {name!r} both define port type {exc.name!r}, differently, and only one "
                f"definition can exist: skip one of them (--deny-plugin {exc.owner} keeps {name!r}; --deny-plugin "
                f"{name} keeps {exc.owner!r}), or ask their authors to name their types apart (e.g. "
                f"{name.upper()}_{exc.name}); graphs that use the nodes of {name!r} do not validate until then")
    if isinstance(exc, PluginError):
        return (f"the plugin declares something invalid (see the error): fix its declaration as "
                f"docs/plugins.md describes, or update the plugin; {skip}")
    return f"the plugin's {stage} hook raised: fix or update the plugin, or report it to its authors; {skip}"


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# --- checks on what a plugin registers ---------------------------------------------------

def check_node_classes(registry: Registry, node_classes: list[Any], choice_lists: frozenset[str] = frozenset()) -> None:
    """Raise one PluginError naming every node class a plugin may not register, each with its fix
    (`choice_lists`: the names plugins register with `register_choice_lists`, which `choices_from` may name).

    All classes are checked, so an author sees every problem of a plugin at once, not one per try."""
    by_type: dict[str, list[Any]] = {}
    problems: list[Any] = []      # texts, and lists of classes sharing a type (worded below)
    for cls in node_classes:
        if not (isinstance(cls, type) and issubclass(cls, Node) and cls is not Node):
            if isinstance(cls, type) and any(hasattr(cls, name) for name in ("INPUT_TYPES", "RETURN_TYPES")):
                problems.append(f"register_nodes returned {cls.__qualname__}, a ComfyUI node class (INPUT_TYPES / "
                                f"RETURN_TYPES): nodegraph nodes subclass nodegraph.Node, declare their inputs as "
                                f"an `Inputs` class and `outputs`, and do their work in `run` — docs/plugins.md, "
                                f"'Porting a ComfyUI node'")
                continue
            problems.append(f"register_nodes returned {cls!r}, not a nodegraph.Node subclass; "
                            f"return the node classes themselves, e.g. `return [MyNode]`")
            continue
        same = by_type.setdefault(cls.type, [])
        if cls not in same:
            same.append(cls)
        if len(same) == 2:      # one problem per type, however many classes share it (listed once all are seen)
            problems.append(same)
        if cls.spec_error is not None:     # its declaration failed (deferred_spec_errors)
            problems.append(str(cls.spec_error))
            continue
        problems += (_port_problems(registry, cls) + _literal_problems(registry, cls)
                     + _default_problems(cls, choice_lists) + _rename_problems(cls))
        try:
            _check_run_signature(cls)
        except PluginError as exc:
            problems.append(str(exc))
    problems = [p if isinstance(p, str) else
                f"register_nodes returned {len(p)} classes with type {p[0].type!r} "
                f"({', '.join(c.__qualname__ for c in p)}); give each a distinct `type`" for p in problems]
    if len(problems) == 1:
        raise PluginError(problems[0])
    if problems:
        raise PluginError(f"{len(problems)} problems: " + " ".join(f"({i}) {p}" for i, p in enumerate(problems, 1)))


#: the names the registry keeps extensions under (`registry.extensions`): no plugin choice list may take one
EXTENSION_KINDS = frozenset(hook.removeprefix("register_") for hook in EXTENSION_HOOKS) | {"model_dirs"}
#: what `Input(choices_from=...)` may name besides the plugins' choice lists: the extension kinds whose names are
#: the choices
CHOICE_KINDS = tuple(hook.removeprefix("register_") for hook in ("register_samplers", "register_schedules"))


def _default_problems(cls: type[Node], choice_lists: frozenset[str] = frozenset()) -> list[str]:
    """Inputs whose declared default the input itself refuses (a graph that wrote the same value would not
    validate, yet `run` received it), that a graph could not write (not JSON, NaN, an integer beyond 64 bits), or
    whose `choices_from` names no choice list (an extension kind, or a list in `choice_lists`)."""
    from pydantic import ValidationError

    from .paths import PathConfinementError, check_name

    problems = []
    for name, spec in cls.spec.inputs.items():
        where = f"node {cls.type}: input {name!r}"
        known = (*CHOICE_KINDS, *sorted(choice_lists))
        if spec.choices_from is not None and spec.choices_from not in known:
            close = difflib.get_close_matches(str(spec.choices_from), known, n=1)
            problems.append(f"{where} has choices_from={spec.choices_from!r}, which names no choice list"
                            f"{f' (did you mean {close[0]!r}?)' if close else ''}; "
                            f"use one of {', '.join(known)}, or register the list with register_choice_lists")
        if spec.required or spec.default is None:
            continue
        default = spec.default
        try:     # a default is what a graph could write (and what the editor is sent): JSON, an int within 64 bits
            json.dumps(default, allow_nan=False)
            fits = not isinstance(default, int) or isinstance(default, bool) or -2**63 <= default < 2**63
        except (TypeError, ValueError, RecursionError):
            fits = False
        if not fits:
            problems.append(f"{where} has the default {default!r:.80}, which a graph could not write (JSON text, "
                            f"finite numbers, true/false, lists, objects; integers within 64 bits); declare one "
                            f"it could")
            continue
        if spec.adapter is None:
            continue
        try:
            spec.adapter.validate_python(default, strict=True)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            problems.append(f"{where} has the default {default!r:.80}, which the input itself refuses ({reason}); "
                            f"declare a default the input accepts, or none (`Input()`: a required input)")
            continue
        except (TypeError, ValueError, RecursionError) as exc:
            problems.append(f"{where}: its default {default!r:.80} cannot be checked ({exc})")
            continue
        if spec.file_name_in and isinstance(default, str) and default:
            try:
                check_name(default, what="file name", input_name=name, subfolders=spec.subfolders,
                           where=f"the {spec.file_name_in} folder")
            except PathConfinementError as exc:
                problems.append(f"{where} has the default {default!r:.80}: {exc.message}")
    return problems


def _rename_problems(cls: type[Node]) -> list[str]:
    """`renamed_inputs` must map old names that are no input now to names that are."""
    renames = getattr(cls, "renamed_inputs", None) or {}
    if not isinstance(renames, dict):
        return [f"node {cls.type}: renamed_inputs must be a dict old name → new name, found {type(renames).__name__}"]
    def why(old: str, new: str) -> str:
        if old in cls.spec.inputs:
            return f"{old!r} is still an input"
        final = renames.get(new)
        if isinstance(final, str) and final in cls.spec.inputs:       # a chain over versions: a → b, b → c
            return (f"{new!r} is no input of it (it was renamed in turn to {final!r}): map every old name straight "
                    f"to today's, {{{old!r}: {final!r}, {new!r}: {final!r}}}")
        close = difflib.get_close_matches(str(new), list(cls.spec.inputs), n=1)
        return f"{new!r} is no input of it" + (f" (did you mean {close[0]!r}?)" if close else "")

    return [f"node {cls.type}: renamed_inputs maps {old!r} → {new!r}, but {why(old, new)}"
            for old, new in renames.items() if old in cls.spec.inputs or new not in cls.spec.inputs]


def _port_problems(registry: Registry, cls: type[Node]) -> list[str]:
    """Every input and output of a node class whose port type is not registered."""
    def meant(port: str) -> str:      # "Image" for IMAGE: port type names are case-sensitive
        same = [known for known in registry.types.names() if known.upper() == str(port).upper()]
        close = same or difflib.get_close_matches(str(port), registry.types.names(), n=1)
        return f" (did you mean {close[0]!r}? port type names are case-sensitive)" if same else \
            f" (did you mean {close[0]!r}?)" if close else ""

    problems = [f"node {cls.type}: input {name!r} uses unknown port type {spec.port!r}{meant(spec.port)}; register "
                f"it with register_types (known: {', '.join(registry.types.names())})"
                for name, spec in cls.spec.inputs.items() if spec.port not in registry.types]
    return problems + [f"node {cls.type}: output {out.name!r} uses unknown port type {out.port!r}{meant(out.port)}; "
                       f"register it with register_types" for out in cls.spec.outputs if out.port not in registry.types]


#: PortType.literal → the primitive port (and Python annotation) an input of that type validates a literal as
LITERAL_KINDS = {"integer": ("INT", "int"), "number": ("FLOAT", "float"), "string": ("STRING", "str"),
                 "boolean": ("BOOLEAN", "bool")}


def _check_literal_kind(plugin: str, port_type: Any) -> None:
    """A plugin's PortType must name a documented `literal` (or None): `literal="banana"` loaded silently and
    then every literal of it was refused. Raises PluginError naming the plugin, the type and the values."""
    literal = getattr(port_type, "literal", None)
    if literal is not None and literal not in LITERAL_KINDS:
        raise PluginError(
            f"plugin {plugin!r}: port type {getattr(port_type, 'name', port_type)!r} declares literal={literal!r}; "
            f"literal is one of {', '.join(map(repr, LITERAL_KINDS))} (the JSON type its literals are written as) "
            f"or None (its values only come from another node's output). A list has no literal: write it as "
            f"'string' and parse it in the node, or leave it None and link it")


def _literal_problems(registry: Registry, cls: type[Node]) -> list[str]:
    """Inputs whose port type declares a `literal` their annotation does not take: the annotation is what
    validates a literal (`a: Any = Input(port='HEXCOLOR')` refused every literal although HEXCOLOR says
    literal='string'), so the two must agree, and the fix names the annotation to write."""
    from .node import _port_from_annotation

    problems = []
    for name, spec in cls.spec.inputs.items():
        if spec.port not in registry.types or spec.port in ("INT", "FLOAT", "STRING", "BOOLEAN"):
            continue
        literal = registry.types[spec.port].literal
        if literal not in LITERAL_KINDS:
            continue
        wanted_port, annotation = LITERAL_KINDS[literal]
        field_info = cls.Inputs.model_fields.get(name)
        found = _port_from_annotation(field_info.annotation)[0] if field_info is not None else None
        if found == wanted_port or (wanted_port == "FLOAT" and found == "INT"):
            continue
        problems.append(
            f"node {cls.type}: input {name!r} takes port type {spec.port!r}, whose literal is {literal!r}, but its "
            f"annotation {getattr(field_info, 'annotation', None)!r} takes "
            + (f"{found} literals" if found else "no literal") +
            f": the annotation validates a literal, so annotate it `{name}: {annotation} = Input(..., "
            f"port={spec.port!r})` (or declare the port type with literal={_literal_of(found)!r})")
    return problems


def _literal_of(port: str | None) -> str | None:
    """The PortType.literal value matching a primitive port (None for none)."""
    return next((literal for literal, (p, _) in LITERAL_KINDS.items() if p == port), None)


def _check_run_signature(cls: type[Node]) -> None:
    """`run` must accept every declared input by name and require nothing else."""
    where = f"node {cls.type} ({cls.__module__}.{cls.__qualname__})"
    declared = list(cls.spec.inputs)
    expected = f"def run(self{''.join(', ' + n for n in declared)})"
    raw = inspect.getattr_static(cls, "run")
    if raw is Node.__dict__["run"]:
        comfy = [name for name in ("INPUT_TYPES", "RETURN_TYPES", "FUNCTION") if hasattr(cls, name)]
        if comfy:        # a ComfyUI class ported as it was: say how the two layouts map
            raise PluginError(f"{where} is laid out as a ComfyUI node ({', '.join(comfy)}): here inputs are "
                              f"fields of an `Inputs` class, outputs `outputs = (Output(...), ...)` and the work "
                              f"`def run(self, <each input>)`, which this class lacks (FUNCTION is not used) — "
                              f"docs/plugins.md, 'Porting a ComfyUI node'")
        raise PluginError(f"{where} does not implement run(); add `{expected}`")
    if not callable(getattr(cls, "run", None)):
        raise PluginError(f"{where}: run is not a method; define `{expected}`")
    try:
        signature = inspect.signature(cls.run)
    except (TypeError, ValueError):   # builtins without a signature: nothing to check
        return
    params = list(signature.parameters.values())
    if not isinstance(raw, (staticmethod, classmethod)) and params:
        params = params[1:]           # self
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    positional_only = [p.name for p in params if p.kind is p.POSITIONAL_ONLY]
    missing = [n for n in declared if n not in named and not takes_any]
    extra = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)
             and p.default is p.empty and p.name not in cls.spec.inputs]
    problems = []
    if positional_only:
        problems.append(f"positional-only parameter(s) {', '.join(positional_only)} (inputs are passed by name)")
    if missing:
        problems.append(f"no parameter for input(s) {', '.join(missing)}")
    if extra:
        problems.append(f"required parameter(s) {', '.join(extra)} that are not declared inputs")
    if problems:
        raise PluginError(f"{where}: run() has {'; '.join(problems)}. It receives every input by name: "
                          f"write `{expected}` (or `def run(self, **inputs)`)")


# --- warnings ---------------------------------------------------------------------

class _StderrTee:
    """sys.stderr (and sys.stdout) while a plugin is imported: everything goes to the real stderr at once (a plugin's progress,
    `faulthandler`, its logging handlers — which keep this object — work as before), and the first 64 KB written
    while `recording` are kept, so a plugin that exits while imported (argparse at module level) has what it said
    in its failure. Attributes other than `write` are the real stream's (fileno, encoding, ...).

    While recording, each line starts with `[plugin NAME] `: a plugin running argparse at import printed
    `usage: cli.py ...` on every command, which read as nodegraph refusing the user's own arguments."""

    LIMIT = 64 * 1024

    def __init__(self, stream: Any, plugin: str = ""):
        self._stream, self._kept, self._size, self.recording = stream, [], 0, True
        self._prefix, self._line_start = (f"[plugin {plugin}] " if plugin else ""), True

    def write(self, text: str) -> int:
        if not self.recording or not isinstance(text, str):
            return self._stream.write(text)
        if self._size < self.LIMIT:
            self._kept.append(text[: self.LIMIT - self._size])
            self._size += len(self._kept[-1])
        self._stream.write(self._prefixed(text))
        return len(text)

    def _prefixed(self, text: str) -> str:
        """`text` with the plugin's prefix at the start of each line (a line it began earlier is not prefixed again)."""
        if not self._prefix or not text:
            return text
        lines = text.split("\n")
        out = [(self._prefix + lines[0]) if self._line_start and lines[0] else lines[0]]
        out += [(self._prefix + line) if line else line for line in lines[1:]]
        self._line_start = text.endswith("\n")
        return "\n".join(out)

    def recorded(self) -> str:
        return "".join(self._kept)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


SLOW_IMPORT_SECONDS = 3.0     # a plugin whose module takes longer to import gets a `slow_import` warning


def plugin_warnings(report: PluginReport, registry: Registry) -> list[dict[str, Any]]:
    """Failures, clashes, skipped plugins and unused preferences as plain dicts.

    Every entry has `kind` ("failed", "clash", "shared_type", "skipped", "unknown_name", "unknown_hook",
    "no_nodes", "slow_import", "patched", "comfyui_leftover", "comfyui_class" or "preference"),
    `level` ("error", "warning" or "info": "info" is a choice the user made,
    e.g. a denied plugin or a clash settled by a preference), `plugin`,
    `message` and `fix`; each kind adds its own details (see docs/plugins.md).
    """
    out: list[dict[str, Any]] = []
    denied = ", ".join(repr(name) for name in report.denied_builtins)
    for f in report.failed:
        fix = f.fix if not denied else (f"you denied the built-in pack(s) {denied}, which other plugins build on "
                                         f"(port types, samplers): load them again first; else: {f.fix}")
        out.append({"kind": "failed", "level": "error", "plugin": f.name, "source": f.source,
                    "message": f.message, "fix": fix, "error": f.error, "traceback": f.traceback,
                    "distribution": f.distribution, "version": f.version})
    for name, option, known in report.unknown:
        close = difflib.get_close_matches(name, known, n=1)
        out.append({"kind": "unknown_name", "level": "warning", "plugin": name, "option": option,
                    "message": f"{option} {name!r} names no installed plugin, so it chooses nothing",
                    "fix": (f"did you mean {close[0]!r}? " if close else "")
                           + f"installed: {', '.join(known) or 'none'} (`nodegraph plugins` lists them)"})
    for clash in registry.clashes:
        out.append({"kind": "clash", "level": "info" if clash.preferred else "warning",
                    "plugin": clash.plugins[-1], "plugins": list(clash.plugins), "type": clash.type,
                    "qualified": clash.qualified, "preferred": clash.preferred,
                    "message": clash.message, "fix": clash.fix})
    for type_name, owner, plugin in registry.types.shared:
        out.append({"kind": "shared_type", "level": "warning", "plugin": plugin, "type": type_name, "owner": owner,
                    "message": f"plugins {owner!r} and {plugin!r} both define port type {type_name!r}, with the same "
                               f"connection rules and another description or colour: it is one type (shown as "
                               f"{owner!r} describes it), so their nodes connect to each other",
                    "fix": f"nothing to do if both mean the same value; if they do not, a node of one fails on the "
                           f"other's values — ask the authors to name their types apart (e.g. "
                           f"{plugin.upper()}_{type_name})"})
    for conflict in registry.conflicts:
        out.append({"kind": "clash", "level": "warning", "plugin": conflict.loser,
                    "plugins": [conflict.winner, conflict.loser], "extension": conflict.kind,
                    "name": conflict.name, "message": str(conflict), "fix": conflict.fix})
    for name, reason in report.skipped:
        chosen = reason in _SKIP_REASONS_BY_CHOICE
        skipped_dist = reason.rpartition("skipped: ")[2].rstrip(")").split(" ")[0] if "skipped: " in reason else ""
        fix = ("nothing to do: the module given in code is used; Session(autoload=False) loads no installed "
               "plugin at all" if reason == REPLACED_BY_CODE else
               "nothing to do: you chose this (allow/deny lists); change the list to load it" if chosen else
               f"two plugins are both called {name!r}; allow/deny cannot tell them apart: uninstall the one you do "
               f"not want" + (f" (e.g. `pip uninstall {skipped_dist}`)" if skipped_dist and skipped_dist != "given"
                              else ""))
        out.append({"kind": "skipped", "level": "info" if chosen else "warning", "plugin": name,
                    "reason": reason, "message": f"plugin {name!r} was not loaded: {reason}", "fix": fix})
    for plugin in report.loaded:
        for hook in plugin.unknown_hooks:
            close = difflib.get_close_matches(hook, HOOK_NAMES, n=1, cutoff=0.6)
            out.append({"kind": "unknown_hook", "level": "warning", "plugin": plugin.name, "hook": hook,
                        "message": f"plugin {plugin.name!r} has a @hookimpl {hook!r}, which is no nodegraph hook, so "
                                   f"it is never called" + (f" (did you mean {close[0]!r}?)" if close else ""),
                        "fix": f"rename it{f' to {close[0]}' if close else ''}: the hooks are listed in "
                               f"docs/plugins.md (nodegraph.hookspecs: {', '.join(HOOK_NAMES)})"})
    out += [_no_nodes_warning(p) for p in report.loaded if not p.nodes and p.source != "builtin"]
    out += _changed_by_another_plugin(report, registry)
    out += _api_patch_warnings(report)
    for plugin in report.loaded:
        total = plugin.import_seconds + plugin.hook_seconds
        if plugin.source != "builtin" and total >= SLOW_IMPORT_SECONDS:
            parts = f"import {plugin.import_seconds:.1f} s, hooks {plugin.hook_seconds:.1f} s"
            torch_note = (" — it was the first to import torch, at module level, which is most of that: a run "
                          "imports torch anyway, but validate, `nodes` and `plugins` would not"
                          if plugin.imported_torch else "")
            out.append({"kind": "slow_import", "level": "warning", "plugin": plugin.name,
                        "seconds": round(total, 3), "imported_torch": plugin.imported_torch,
                        "message": f"plugin {plugin.name!r} took {total:.1f} s to load ({parts}){torch_note}: every "
                                   f"start of nodegraph (a run, validate, the server) waits for it",
                        "fix": f"its authors can import heavy libraries (torch included) inside the nodes' run() "
                               f"instead of at module level; where its nodes are not needed, --deny-plugin "
                               f"{plugin.name} (or NODEGRAPH_PLUGINS_DENY) skips it"})
    out += _comfyui_leftovers(report, registry)
    out += _refused_comfyui_classes(report)
    out += _comfyui_class_targets(registry)
    for bare, plugin in registry.prefer.items():
        providers = registry.providers(bare)
        if plugin not in providers:
            have = ", ".join(repr(p) for p in providers) or "no loaded plugin"
            out.append({"kind": "preference", "level": "warning", "plugin": plugin, "type": bare,
                        "message": f"preference {bare}={plugin} has no effect: "
                                   f"{_why_not_provided(report, plugin, registry.not_autoloaded)}"
                                   f" (node type {bare!r} is provided by {have})",
                        "fix": f"prefer one of the providers ({have}), or drop the preference" if providers else
                               f"drop the preference: no loaded plugin provides {bare!r}"})
    return out


# ComfyUI class attributes nodegraph does not read → what does their work here (docs/plugins.md, "Porting a
# ComfyUI node"). A port that keeps one silently loses its meaning: IS_CHANGED's NaN served a stale result.
COMFYUI_LEFTOVERS = {
    "IS_CHANGED": "@classmethod fingerprint(cls, literals, resolve_file)",
    "VALIDATE_INPUTS": "@classmethod check_literals(cls, literals, list_model_files)",
    "check_lazy_status": "lazy_inputs_needed(self, available) with Input(lazy=True)",
    "OUTPUT_NODE": "output_node = True",
    "CATEGORY": "category = '...'",
    "NOT_IDEMPOTENT": "deterministic = False",
    "INPUT_IS_LIST": "one call with batched tensors (B, ...): nodegraph passes no lists of values",
    "OUTPUT_IS_LIST": "one batched output (B, ...) or a sweep (`--sweep`): nodegraph has no list outputs",
}


def _comfyui_leftovers(report: PluginReport, registry: Registry) -> list[dict[str, Any]]:
    """`comfyui_leftover` warnings: a plugin's node class that still defines ComfyUI attributes nodegraph never
    reads (one warning per class, naming each and what does its work here)."""
    builtin = {p.name for p in report.loaded if p.source == "builtin"}
    out = []
    for qualified, cls in registry.node_types.items():
        plugin = registry.node_plugin.get(qualified)
        found = [name for name in COMFYUI_LEFTOVERS if hasattr(cls, name)]
        if found and plugin is not None and plugin not in builtin:
            out.append({"kind": "comfyui_leftover", "level": "warning", "plugin": plugin, "type": qualified,
                        "attributes": found,
                        "message": f"node {qualified!r} defines ComfyUI's {', '.join(found)}, which nodegraph does not "
                                   f"read: {'it has' if len(found) == 1 else 'they have'} no effect here",
                        "fix": "; ".join(f"{name} → {COMFYUI_LEFTOVERS[name]}" for name in found)
                               + " (docs/plugins.md, 'Porting a ComfyUI node')"})
    return out


def _refused_comfyui_classes(report: PluginReport) -> list[dict[str, Any]]:
    """`comfyui_class` warnings for the `register_comfyui_classes` entries left out at load (`refused: True`): each
    named, with what is wrong and the fix; the plugin's nodes and its other entries loaded."""
    return [{"kind": "comfyui_class", "level": "warning", "plugin": plugin, "refused": True,
             "type": name if isinstance(name, str) else repr(name)[:100],
             "message": f"plugin {plugin!r}: its register_comfyui_classes entry {name!r:.100} {problem}; the entry "
                        f"was left out (the plugin's nodes and other entries loaded)",
             "fix": fix} for plugin, name, problem, fix in report.refused_comfyui_classes]


def _comfyui_class_targets(registry: Registry) -> list[dict[str, Any]]:
    """`comfyui_class` warnings: a `register_comfyui_classes` entry naming a node type no loaded plugin has, or inputs
    / outputs its type lacks (a typo showed only at validation, blamed on a plugin not loaded)."""
    out = []
    for name, mapping in registry.extensions.get("comfyui_classes", {}).items():
        plugin = registry.extension_plugin.get(("comfyui_classes", name), "?")
        cls = registry.nodes.get(mapping.type)
        if cls is None:
            problem = f"maps ComfyUI's {name!r} to node type {mapping.type!r}, which no loaded plugin has"
        else:
            ours = set(cls.spec.inputs)
            widgets = {mapping.inputs.get(w, w) for w in mapping.widgets or () if w and w not in mapping.no_ops
                       and w not in mapping.dropped}     # ComfyUI's names, renamed as `inputs` says
            renames = getattr(cls, "renamed_inputs", None) or {}     # an old name imports under its new one
            wrong = sorted(n for n in {*mapping.inputs.values(), *mapping.fixed, *widgets}
                           if renames.get(n, n) not in ours)
            missing = [o for o in mapping.outputs if o not in {x.name for x in cls.spec.outputs}]
            if not wrong and not missing:
                continue
            problem = (f"maps ComfyUI's {name!r} to {mapping.type!r}, which has no "
                       + " and no ".join(part for part in (
                           f"input(s) {', '.join(map(repr, wrong))}" if wrong else "",
                           f"output(s) {', '.join(map(repr, missing))}" if missing else "") if part))
        out.append({"kind": "comfyui_class", "level": "warning", "plugin": plugin, "type": name,
                    "message": f"plugin {plugin!r} {problem}: such a node imports broken",
                    "fix": "name the node type (qualified, e.g. 'my_pack.MyNode') and its inputs / outputs as the "
                           "node declares them (`nodegraph nodes --json` lists them)"})
    return out


def _changed_by_another_plugin(report: PluginReport, registry: Registry) -> list[dict[str, Any]]:
    """`patched` warnings: a node class whose methods come from another loaded plugin's package (it replaced
    them, e.g. `other_plugin.Node.run = mine`), or a plugin that registered a class defined by another plugin.
    Python cannot stop a plugin from changing another's code at import; it can make it visible. (A change made
    later, inside a node's run, is not seen.)"""
    package_of = {p.name: p.module.split(".")[0] for p in report.loaded}
    plugin_of_package: dict[str, str] = {}
    for plugin, package in package_of.items():
        plugin_of_package.setdefault(package, plugin)
    out: list[dict[str, Any]] = []
    for qualified, cls in registry.node_types.items():
        owner = registry.node_plugin.get(qualified, "")
        own = package_of.get(owner)
        if own is None:
            continue
        found: list[tuple[str, str]] = []         # (what, the other plugin)
        defined_in = cls.__module__.split(".")[0]
        if defined_in != own and plugin_of_package.get(defined_in, owner) != owner:
            found.append(("its class", plugin_of_package[defined_in]))
        for attribute, value in vars(cls).items():
            function = getattr(value, "__func__", value)       # staticmethod / classmethod
            if not inspect.isfunction(function):
                continue
            package = (function.__module__ or "").split(".")[0]
            other = plugin_of_package.get(package)
            if package not in (own, defined_in, "nodegraph") and other is not None and other != owner:
                found.append((f"its {attribute}()", other))
        for what, other in found:
            out.append({"kind": "patched", "level": "warning", "plugin": other, "node": qualified,
                        "changed_plugin": owner,
                        "message": f"node {qualified} (plugin {owner!r}) runs code of plugin {other!r}: {what} "
                                   f"comes from {other!r}'s package, so graphs using {qualified} do what {other!r} "
                                   f"says, not what {owner!r} ships",
                        "fix": f"if you did not expect this, leave {other!r} out (--deny-plugin {other} or `pip "
                               f"uninstall` it) and tell its authors: a plugin should register a node of its own "
                               f"(a subclass with another type name) instead of changing another plugin's"})
    return out


def _api_patch_warnings(report: PluginReport) -> list[dict[str, Any]]:
    """`patched` warnings for the nodegraph.api functions a plugin replaced (`report.api_patches`): every node
    calling one, the built-in packs' included, runs the plugin's code (ComfyUI packs patch comfy.sample so)."""
    out = []
    for plugin, name, undone in report.api_patches:
        entry = {"kind": "patched", "level": "warning", "plugin": plugin, "api": name, "undone": undone}
        if undone is None:
            out.append(entry | {
                "message": f"plugin {plugin!r} replaced nodegraph.api.{name} with its own code: every node that "
                           f"calls api.{name}, the built-in packs' included, runs what {plugin!r} says",
                "fix": f"if you did not expect this, leave {plugin!r} out (--deny-plugin {plugin}) and tell its "
                       f"authors: a plugin should add its own node, sampler (register_samplers) or guidance term "
                       f"instead of changing the API for every node"})
        elif undone:
            out.append(entry | {
                "level": "info",
                "message": f"plugin {plugin!r} failed to load; its replacement of nodegraph.api.{name} (made while "
                           f"it was imported) was undone",
                "fix": "nothing to do: the API is nodegraph's own again"})
        else:
            out.append(entry | {
                "message": f"plugin {plugin!r} failed to load, but its replacement of nodegraph.api.{name} stays in "
                           f"place (the original could not be found to put back): every node calling api.{name} "
                           f"still runs its code",
                "fix": f"start again without it (--deny-plugin {plugin}, or do not import its module)"})
    return out


def _why_not_provided(report: PluginReport, plugin: str, not_autoloaded: frozenset[str] = frozenset()) -> str:
    """Why `plugin` provides no node a preference names: not installed, left out (--no-plugins), failed,
    skipped, or no such node."""
    if plugin in not_autoloaded:
        return f"plugin {plugin!r} is installed but installed plugins are not loaded here (--no-plugins)"
    if any(f.name == plugin for f in report.failed):
        return f"plugin {plugin!r} failed to load (see its entry above)"
    if any(name == plugin for name, _ in report.skipped):
        return f"plugin {plugin!r} was not loaded ({dict(report.skipped)[plugin]})"
    if not any(p.name == plugin for p in report.loaded):
        loaded = ", ".join(sorted(repr(p.name) for p in report.loaded if p.source != "builtin")) or "none"
        return f"no plugin named {plugin!r} is installed (plugins loaded: {loaded})"
    return f"plugin {plugin!r} provides no node type of that name"


def _no_nodes_warning(plugin: PluginInfo) -> dict[str, Any]:
    """The `no_nodes` entry for a loaded plugin that registered no node: why, as far as it can be told."""
    entry = {"kind": "no_nodes", "level": "warning", "plugin": plugin.name, "module": plugin.module,
             "hooks": list(plugin.hooks)}
    if plugin.namespace_folder:
        return entry | {
            "folder": plugin.namespace_folder,
            "message": f"plugin {plugin.name!r} registered no nodes: its module {plugin.module!r} was imported from "
                       f"{plugin.namespace_folder}, a folder without __init__.py, not from the installed package",
            "fix": "run nodegraph from another folder (`python -m` puts the working folder first on the import "
                   f"path, so a folder named {plugin.module!r} there shadows the install), or rename that folder"}
    if plugin.unknown_hooks and not plugin.hooks:
        return entry | {
            "message": f"plugin {plugin.name!r} registered no nodes: its hook(s) {', '.join(plugin.unknown_hooks)} "
                       f"are named as no nodegraph hook (see the unknown_hook warning)",
            "fix": "name them as docs/plugins.md lists the hooks, e.g. `@hookimpl def register_nodes(): ...`"}
    if plugin.hooks:
        return entry | {"level": "info",
                        "message": f"plugin {plugin.name!r} registers no nodes, only {', '.join(plugin.hooks)}",
                        "fix": "nothing to do if that is all it is meant to add"}
    if plugin.comfyui_pack:
        return entry | {
            "message": f"plugin {plugin.name!r} registered no nodes: "
                       + _comfyui_code_message(f"its module {plugin.module!r} (NODE_CLASS_MAPPINGS)"),
            "fix": "port the pack's nodes and register them with `@hookimpl def register_nodes(): return [...]` "
                   "(`nodegraph plugin new NAME` writes a plugin to start from)"}
    if plugin.source == "explicit":       # given in code: no entry point is involved
        return entry | {
            "message": f"plugin {plugin.name!r} registered no nodes and implements no hook: the object given in code "
                       f"({plugin.module!r}) has no @hookimpl functions",
            "fix": "give the module that defines the hooks, decorate register_nodes with @nodegraph.hookimpl, or "
                   "give node classes themselves (Session(plugins=[MyNode]))"}
    return entry | {
        "message": f"plugin {plugin.name!r} registered no nodes and implements no hook: its entry point loads "
                   f"{plugin.module!r}, which has no @hookimpl functions",
        "fix": "point the entry point at the module that defines the hooks (or re-export them from the package's "
               "__init__.py), and decorate register_nodes with @nodegraph.hookimpl"}
