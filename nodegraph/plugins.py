"""Finding, loading and isolating plugins (pluggy).

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
plugin that fails to import, or whose hook raises or returns something
invalid, is recorded in `PluginReport.failed` (name, error, traceback),
unregistered, and skipped — start-up goes on. When two plugins register the
same node type, the first in the order above wins and a `Conflict` is recorded.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .errors import PluginError
from .node import Node
from .registry import Registry

BUILTIN_GROUP = "nodegraph.builtins"
PLUGIN_GROUP = "nodegraph"
ENV_DISABLE_AUTOLOAD = "NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD"
ENV_ALLOW = "NODEGRAPH_PLUGINS_ALLOW"
ENV_DENY = "NODEGRAPH_PLUGINS_DENY"
EXTENSION_HOOKS = ("register_samplers", "register_schedules", "register_model_folders")


@dataclass(frozen=True)
class PluginInfo:
    """A plugin that loaded: its name, where it came from, and what it registered."""

    name: str
    source: str                  # "builtin", "entry_point" or "explicit"
    module: str
    distribution: str | None
    version: str | None
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that was skipped because it failed to import or register."""

    name: str
    source: str
    error: str
    traceback: str


@dataclass
class PluginReport:
    """What happened when plugins were loaded."""

    loaded: list[PluginInfo] = field(default_factory=list)
    failed: list[PluginFailure] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (name, reason)

    def to_dict(self, registry: Registry | None = None) -> dict[str, Any]:
        return {
            "loaded": [vars(p) | {"nodes": list(p.nodes)} for p in self.loaded],
            "failed": [vars(f) for f in self.failed],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "conflicts": [vars(c) | {"message": str(c)} for c in (registry.conflicts if registry else [])],
        }


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


def autoload_enabled() -> bool:
    return os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() not in ("1", "true", "yes")


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)


def load_plugins(
    builtins: bool = True,
    autoload: bool | None = None,
    plugins: Iterable[Any] = (),
    allow: list[str] | None = None,
    deny: list[str] | None = None,
) -> tuple[pluggy.PluginManager, Registry, PluginReport]:
    """Load plugins in the documented order and build the Registry from their hooks.

    Args:
        builtins: load the built-in node packs (group `nodegraph.builtins`).
        autoload: load installed plugins (group `nodegraph`); default: on unless
            NODEGRAPH_DISABLE_PLUGIN_AUTOLOAD is set.
        plugins: extra plugin objects (modules or instances with hookimpls),
            or (name, object) pairs.
        allow, deny: plugin names; default from NODEGRAPH_PLUGINS_ALLOW / _DENY.
    """
    if autoload is None:
        autoload = autoload_enabled()
    allow = allow if allow is not None else _env_list(ENV_ALLOW)
    deny = set(deny if deny is not None else (_env_list(ENV_DENY) or []))
    pm = pluggy.PluginManager("nodegraph")
    pm.add_hookspecs(hookspecs)
    report = PluginReport()
    candidates: list[tuple[str, str, Any, Any]] = []   # (name, source, entry point or None, object)
    if builtins:
        candidates += [(ep.name, "builtin", ep, None) for ep in _entry_points(BUILTIN_GROUP)]
    if autoload:
        for ep in _entry_points(PLUGIN_GROUP):
            if allow is not None and ep.name not in allow:
                report.skipped.append((ep.name, "not on the allow list"))
                continue
            candidates.append((ep.name, "entry_point", ep, None))
    for obj in plugins:
        name, obj = obj if isinstance(obj, tuple) else (getattr(obj, "__name__", None) or type(obj).__name__, obj)
        candidates.append((name, "explicit", None, obj))

    registry = Registry()
    registered: list[tuple[str, str, Any, metadata.EntryPoint | None]] = []
    for name, source, ep, target in candidates:
        if name in deny:
            report.skipped.append((name, "on the deny list"))
            continue
        if pm.has_plugin(name):
            report.skipped.append((name, "a plugin with this name is already loaded"))
            continue
        try:
            obj = ep.load() if ep is not None else target
            pm.register(obj, name=name)
        except Exception as exc:  # noqa: BLE001 — a broken plugin must never stop start-up
            report.failed.append(PluginFailure(name, source, f"{type(exc).__name__}: {exc}",
                                               traceback.format_exc()))
            continue
        registered.append((name, source, obj, ep))

    # Hooks are called per plugin so that a failure is attributed and isolated.
    sources = {name: source for name, source, _, _ in registered}
    types_by_plugin = _collect(pm, "register_types", report, list, sources)
    nodes_by_plugin = _collect(pm, "register_nodes", report, list, sources)
    extensions_by_plugin = {hook: _collect(pm, hook, report, dict, sources) for hook in EXTENSION_HOOKS}

    def fail(name: str, exc: Exception) -> None:
        report.failed.append(PluginFailure(name, sources[name], f"{type(exc).__name__}: {exc}",
                                           traceback.format_exc()))
        pm.unregister(name=name)

    # Pass 1: port types of every plugin, so that nodes may use types from any plugin.
    for name, _, _, _ in registered:
        if name in {f.name for f in report.failed}:
            continue
        try:
            for port_type in types_by_plugin.get(name, []):
                registry.types.register(port_type, source=name)
        except Exception as exc:  # noqa: BLE001
            fail(name, exc)
    # Pass 2: nodes and extensions; a plugin registers all of its nodes or none.
    for name, source, obj, ep in registered:
        if name in {f.name for f in report.failed}:
            if pm.has_plugin(name):
                pm.unregister(name=name)
            continue
        node_classes = nodes_by_plugin.get(name, [])
        try:
            for cls in node_classes:
                if not (isinstance(cls, type) and issubclass(cls, Node) and cls is not Node):
                    raise PluginError(f"register_nodes returned {cls!r}, not a nodegraph.Node subclass")
                _check_ports(registry, cls)
        except Exception as exc:  # noqa: BLE001
            fail(name, exc)
            continue
        for cls in node_classes:
            registry.add_node(cls, name)
        for hook, table in extensions_by_plugin.items():
            for ext_name, value in (table.get(name) or {}).items():
                registry.add_extension(hook.removeprefix("register_"), ext_name, value, name)
        dist = getattr(ep, "dist", None) if ep is not None else None
        report.loaded.append(PluginInfo(
            name=name, source=source, module=getattr(obj, "__name__", type(obj).__name__),
            distribution=getattr(dist, "name", None), version=getattr(dist, "version", None),
            nodes=tuple(c.type for c in node_classes)))
    return pm, registry, report


def _collect(pm: pluggy.PluginManager, hook_name: str, report: PluginReport, kind: type,
             sources: dict[str, str]) -> dict[str, Any]:
    """Call one hook plugin by plugin; failures are recorded, not raised."""
    results: dict[str, Any] = {}
    failed = {f.name for f in report.failed}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.plugin_name in failed:
            continue
        try:
            value = impl.function()
            if value is None:
                value = kind()
            if not isinstance(value, (list, tuple) if kind is list else dict):
                raise PluginError(f"{hook_name} must return a {kind.__name__}, got {type(value).__name__}")
            results[impl.plugin_name] = list(value) if kind is list else dict(value)
        except Exception as exc:  # noqa: BLE001
            report.failed.append(PluginFailure(impl.plugin_name, sources.get(impl.plugin_name, "explicit"), f"{hook_name}: {type(exc).__name__}: {exc}",
                                               traceback.format_exc()))
            failed.add(impl.plugin_name)
    return results


def _check_ports(registry: Registry, cls: type[Node]) -> None:
    for name, spec in cls.spec.inputs.items():
        if spec.port not in registry.types:
            raise PluginError(f"node {cls.type}: input {name!r} uses unknown port type {spec.port!r}; "
                              f"register it with register_types (known: {', '.join(registry.types.names())})")
    for out in cls.spec.outputs:
        if out.port not in registry.types:
            raise PluginError(f"node {cls.type}: output {out.name!r} uses unknown port type {out.port!r}; "
                              f"register it with register_types")
