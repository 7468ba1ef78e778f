"""What the plugins registered: node classes, port types and named extensions.

`Registry` is plain data filled by plugins.py and read by validation, the
executor, the CLI and the server. It knows which plugin registered what, so
that clashes and failures can be reported by name.

Node type names (see docs/plugins.md, "Node type names and clashes"):

- Every registered node has a *qualified* name `<plugin>.<Type>` (built-in
  packs too: `primitives.Int`), kept in `node_types`. Qualified names always
  resolve.
- The *bare* name `<Type>` is an alias when exactly one node class has it, or
  when a preference (`prefer`, `--prefer-plugin TYPE=PLUGIN`) picks one of the
  providers, or else when one provider is a built-in pack (`builtin_plugins`):
  built-in names stay what every shipped and saved graph means, and a plugin's
  node of the same name is reached by its qualified name (the clash is a
  warning). Otherwise the bare name is *ambiguous* (`ambiguous`): graphs that
  use it fail validation with `ambiguous_node_type`, naming every provider.
  Never does one plugin silently take another's name.
- `nodes` maps every name that resolves (qualified names and aliases) to its
  class: the one lookup table validation and the executor use.
- The *canonical* name (what schemas list as `type`, and so what the editor
  saves) is the bare name when it is unique, else the qualified name — a name
  that stays valid without a preference.

Main objects: `Registry`, `NodeClash` (one bare name, several providers),
`Conflict` (an extension name such as a sampler registered twice; the first
keeps it). Extensions (samplers, schedules, model folders) are kept as
name → object maps under `extensions[hook_name]`; the engine does not
interpret them — the node packs that use them do.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .node import Node

log = logging.getLogger(__name__)


def read_choice_list(function: Callable[[], Any], limit: int, max_chars: int) -> tuple[list[str], str | None]:
    """(the choices a plugin's choice-list function gives now, what was wrong with them or None): strings only, each
    at most `max_chars`, at most `limit` of them, duplicates dropped; a function that raises gives no choices."""
    import threading

    try:
        given = function()
        if given is None:
            return [], "returned None; return a list of strings (an empty list for none)"
        # at most limit + 1 taken: a generator that never ends is cut, not read until memory runs out
        items = list(itertools.islice(given, limit + 1)) if not isinstance(given, (str, bytes, dict)) else None
    except BaseException as exc:  # noqa: BLE001 — a plugin's list must not break validation or the node list
        # (an argparse inside it exits: that took a server's event loop down). A KeyboardInterrupt is Ctrl+C only
        # on the main thread, where Python delivers SIGINT; raised on a server's threads it is the plugin's own,
        # and stopped the whole server on every editor's hello (a hostile re-test)
        if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
            raise
        return [], f"raised {type(exc).__name__}: {str(exc)[:200]}"
    if items is None:
        return [], f"returned a {type(given).__name__}; return a list of strings"
    good = [str.__str__(item) for item in items if isinstance(item, str) and 0 < len(item) <= max_chars]
    kept = list(dict.fromkeys(good))[:limit]         # a repeated name once (plain str: a subclass's hash may raise)
    problem = None
    if len(good) < len(items):
        problem = f"gave {len(items) - len(good)} value(s) that are not strings of 1 to {max_chars} characters (left out)"
    if len(items) > limit:
        problem = f"gave more than {limit} choices; the first {limit} are offered"
    return kept, problem
from .types import TypeRegistry


@dataclass(frozen=True)
class Conflict:
    """Two plugins registered the same extension name; `winner` kept it."""

    kind: str      # an extension hook name, e.g. "samplers"
    name: str
    winner: str
    loser: str

    def __str__(self) -> str:
        return (f"{self.kind} {self.name!r} is registered by both {self.winner!r} and {self.loser!r}; "
                f"using {self.winner!r} (built-ins first, then plugins in name order)")

    @property
    def fix(self) -> str:
        return (f"deny one of the plugins (--deny-plugin {self.loser}) or ask its authors to rename "
                f"their {self.kind} entry")


@dataclass(frozen=True)
class NodeClash:
    """Several plugins provide node classes with the same bare type name."""

    type: str                    # the bare name, e.g. "Blur"
    plugins: tuple[str, ...]     # the providers, in load order
    preferred: str | None = None  # the provider a preference picked for the bare name, if any
    builtin: str | None = None    # the built-in pack that keeps the bare name (no preference given), if any

    @property
    def qualified(self) -> list[str]:
        return [f"{plugin}.{self.type}" for plugin in self.plugins]

    @property
    def message(self) -> str:
        names = " and ".join(repr(p) for p in self.plugins)
        if self.preferred is not None:
            return (f"node type {self.type!r} is provided by plugins {names}; the bare name {self.type!r} "
                    f"means {self.preferred + '.' + self.type!r} (preferred)")
        if self.builtin is not None:
            others = " and ".join(repr(f"{p}.{self.type}") for p in self.plugins if p != self.builtin)
            return (f"node type {self.type!r} is provided by plugins {names}; the bare name {self.type!r} "
                    f"stays the built-in {self.builtin + '.' + self.type!r}, and the plugin's node is "
                    f"{others}")
        return (f"node type {self.type!r} is provided by plugins {names}; the bare name {self.type!r} is "
                f"ambiguous and graphs that use it do not validate")

    @property
    def fix(self) -> str:
        if self.builtin is not None and self.preferred is None:
            plugin = next(p for p in self.plugins if p != self.builtin)
            return (f"write {plugin + '.' + self.type!r} in a graph to use the plugin's node, or give it the bare "
                    f"name (--prefer-plugin {self.type}={plugin}); its authors should rename it, since a built-in "
                    f"has the name")
        alternatives = " or ".join(repr(q) for q in self.qualified)
        deny = " ".join(f"--deny-plugin {p}" for p in self.plugins[1:])     # all but one: two of three still clash
        return (f"write {alternatives} in the graph, deny {'one plugin' if len(self.plugins) == 2 else 'all but one'}"
                f" ({deny}), "
                f"or prefer one (--prefer-plugin {self.type}={self.plugins[0]}, "
                f"env NODEGRAPH_PLUGINS_PREFER={self.type}={self.plugins[0]})")

    def __str__(self) -> str:
        return f"{self.message}. Fix: {self.fix}."


@dataclass
class Registry:
    """Registered node classes, port types and extensions, with their origins.

    Attributes:
        node_types: qualified name → class, one entry per registration, in load order.
        nodes: every name that resolves (qualified names and unambiguous bare aliases) → class.
        node_plugin: every name in `nodes` → the plugin that registered it.
        ambiguous: bare name → qualified names of its providers, when none is preferred.
        prefer: bare name → plugin whose node the bare name means when several provide it.
        builtin_plugins: the built-in packs' plugin names: with no preference, a built-in keeps its bare name.
        unavailable: plugin name → why it is not loaded (failed, denied, not allowed), so that
            validation can say why a type is missing.
        shadowed: loaded plugin name → why another installed copy under that name was skipped (two
            distributions both name a plugin so): a qualified type the loaded one lacks may be the other's.
        not_autoloaded: installed plugins left out because loading installed plugins was turned off
            (--no-plugins, `Session(autoload=False)`): a graph naming one is told so, not "not installed".
        failed_providers: bare name → plugins that failed to load but declared a node of that type
            (`add_failed_provider`): the bare name means a loaded provider only when it would have with
            them loaded (preferred, or the one built-in), so a failed plugin's saved graphs never run
            another plugin's node of the same name.
        conflicts: extension names registered twice (the first keeps the name).
    """

    nodes: dict[str, type[Node]] = field(default_factory=dict)
    node_plugin: dict[str, str] = field(default_factory=dict)
    node_types: dict[str, type[Node]] = field(default_factory=dict)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    prefer: dict[str, str] = field(default_factory=dict)
    builtin_plugins: set[str] = field(default_factory=set)
    unavailable: dict[str, str] = field(default_factory=dict)
    not_autoloaded: frozenset[str] = frozenset()
    shadowed: dict[str, str] = field(default_factory=dict)
    failed_providers: dict[str, list[str]] = field(default_factory=dict)
    types: TypeRegistry = field(default_factory=TypeRegistry)
    extensions: dict[str, dict[str, Any]] = field(default_factory=dict)
    extension_plugin: dict[tuple[str, str], str] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    _providers: dict[str, list[tuple[str, type[Node]]]] = field(default_factory=dict, repr=False)
    _qualified_of: dict[type[Node], str] = field(default_factory=dict, repr=False)
    _schemas: list[dict] | None = field(default=None, repr=False)
    _renames: dict[str, dict[str, str]] | None = field(default=None, repr=False)
    _choices_read: dict[str, tuple[float, list[str]]] = field(default_factory=dict, repr=False)
    _choice_problems: dict[str, str | None] = field(default_factory=dict, repr=False)
    _choice_reading: dict[str, threading.Event] = field(default_factory=dict, repr=False)   # set when a read ends
    _choice_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- node types -------------------------------------------------------

    def add_node(self, cls: type[Node], plugin: str) -> str:
        """Register a node class as `<plugin>.<type>`; returns the qualified name.

        The bare name becomes an alias when it is unique (or preferred); a second
        class with the same bare name makes it ambiguous (see `clashes`).
        """
        qualified = f"{plugin}.{cls.type}"
        if qualified in self.node_types:
            if self.node_types[qualified] is not cls:
                raise ValueError(f"plugin {plugin!r} registers two node classes of type {cls.type!r}")
            return qualified
        self.node_types[qualified] = cls
        self._qualified_of.setdefault(cls, qualified)
        self.nodes[qualified] = cls
        self.node_plugin[qualified] = plugin
        self._providers.setdefault(cls.type, []).append((plugin, cls))
        self._update_alias(cls.type)
        self._schemas = self._renames = None
        return qualified

    def add_failed_provider(self, bare: str, plugin: str) -> None:
        """Record that `plugin`, which failed to load, declares a node of type `bare` (see `failed_providers`)."""
        failed = self.failed_providers.setdefault(bare, [])
        if plugin not in failed:
            failed.append(plugin)
            self._update_alias(bare)
            self._schemas = self._renames = None

    def _update_alias(self, bare: str) -> None:
        if bare in self.node_types:      # a qualified name is never shadowed by an alias
            return
        providers = self._distinct_providers(bare)
        failed = self.failed_providers.get(bare, [])
        chosen: tuple[str, type[Node]] | None = None
        if not providers:
            return
        if len(providers) == 1 and not failed:
            chosen = providers[0]
        else:
            chosen = next((p for p in providers if p[0] == self.prefer.get(bare)), None)
            builtin = self._builtin_provider(providers)
            if chosen is None and builtin is not None and not any(p in self.builtin_plugins for p in failed):
                chosen = builtin
        if chosen is None:
            self.nodes.pop(bare, None)
            self.node_plugin.pop(bare, None)
            self.ambiguous[bare] = [f"{plugin}.{bare}" for plugin, _ in providers] + [f"{p}.{bare}" for p in failed]
        else:
            self.nodes[bare], self.node_plugin[bare] = chosen[1], chosen[0]
            self.ambiguous.pop(bare, None)

    def _builtin_provider(self, providers: list[tuple[str, type[Node]]]) -> tuple[str, type[Node]] | None:
        """The one built-in pack among a clash's providers (None when there is none, or several)."""
        builtin = [p for p in providers if p[0] in self.builtin_plugins]
        return builtin[0] if len(builtin) == 1 else None

    def _distinct_providers(self, bare: str) -> list[tuple[str, type[Node]]]:
        """Providers of a bare name, one per distinct class (a class re-exported by two plugins is one)."""
        seen: dict[type[Node], tuple[str, type[Node]]] = {}
        for plugin, cls in self._providers.get(bare, []):
            seen.setdefault(cls, (plugin, cls))
        return list(seen.values())

    @property
    def clashes(self) -> list[NodeClash]:
        """Bare names provided by more than one node class, in first-registration order."""
        out = []
        for bare in self._providers:
            providers = self._distinct_providers(bare)
            if len(providers) > 1:
                plugins = tuple(plugin for plugin, _ in providers)
                preferred = self.prefer.get(bare)
                builtin = self._builtin_provider(providers)
                out.append(NodeClash(bare, plugins, preferred if preferred in plugins else None,
                                     builtin[0] if builtin is not None else None))
        return out

    def providers(self, bare: str) -> list[str]:
        """Plugins that provide a node with this bare type name, in load order."""
        return [plugin for plugin, _ in self._providers.get(bare, [])]

    def qualified_name(self, cls: type[Node]) -> str:
        """The qualified name `<plugin>.<Type>` a class was first registered under."""
        try:
            return self._qualified_of[cls]
        except KeyError:
            raise KeyError(f"node class {cls.__qualname__} is not registered") from None

    def plugin_of(self, cls: type[Node]) -> str | None:
        """The plugin that registered a node class (None if it is not registered)."""
        qualified = self._qualified_of.get(cls)
        return self.node_plugin.get(qualified) if qualified is not None else None

    def canonical_name(self, qualified: str) -> str:
        """The name to save in graphs: the bare name when it is unique (or a built-in's that keeps it in a
        clash), else the qualified name."""
        cls = self.node_types[qualified]
        if cls.type not in self.node_types and self._qualified_of.get(cls) == qualified:
            providers = self._distinct_providers(cls.type)
            builtin = self._builtin_provider(providers)
            if len(providers) == 1 or (builtin is not None and builtin[1] is cls):
                return cls.type
        return qualified

    def resolve(self, name: str) -> str | None:
        """The qualified name a node type name means (None when unknown or ambiguous)."""
        cls = self.nodes.get(name)
        if cls is None:
            return None
        if name in self.node_types:
            return name
        return f"{self.node_plugin[name]}.{cls.type}"

    def takes_literal(self, node_type: str, input_name: str) -> bool:
        """Whether that input of that node type may hold a literal value (not a link-only port such as `*`, an
        IMAGE); True for a type or input not known here (nothing to say against it)."""
        cls = self.nodes.get(node_type)
        spec = cls.spec.inputs.get(input_name) if cls is not None else None
        return spec is None or spec.adapter is not None

    def input_renames(self) -> dict[str, dict[str, str]]:
        """Node type name (every name that resolves) → its class's `renamed_inputs`, for the classes that have
        some; remembered until a node is added."""
        if self._renames is None:
            self._renames = {name: dict(cls.renamed_inputs) for name, cls in self.nodes.items()
                             if getattr(cls, "renamed_inputs", None)}
        return self._renames

    def aliases(self, qualified: str) -> list[str]:
        """Other names that resolve to this registration: its bare name, when that is an alias of it."""
        bare = self.node_types[qualified].type
        return [bare] if bare != qualified and self.resolve(bare) == qualified else []

    # --- extensions ---------------------------------------------------------

    def add_extension(self, kind: str, name: str, value: Any, plugin: str) -> None:
        """Register a named extension object (e.g. a sampler); first registration wins."""
        table = self.extensions.setdefault(kind, {})
        owner = self.extension_plugin.get((kind, name))
        if owner is not None:
            if table[name] is not value:
                self.conflicts.append(Conflict(kind, name, owner, plugin))
            return
        table[name] = value
        self.extension_plugin[(kind, name)] = plugin
        self._schemas = None

    def extension_names(self, kind: str) -> list[str]:
        """Names registered under an extension kind, in registration order (built-ins first)."""
        return list(self.extensions.get(kind, {}))

    # A plugin's choice list (`register_choice_lists`) is read at most this often; longer and bigger lists are cut.
    CHOICES_TTL = 2.0
    MAX_CHOICES = 10_000
    MAX_CHOICE_CHARS = 1000
    # how long a caller waits for a list being read; a slower list is read on in the background and its last values
    # (none the first time) are offered meanwhile — a list that took 20 s held every editor's hello for 20 s
    CHOICES_WAIT = 2.0

    def choices(self, name: str, wait: float | None = None) -> list[str]:
        """The valid values of an input declared `choices_from=name`: a plugin's choice list as its function gives
        it now (read again after CHOICES_TTL seconds, on a thread of its own, waited for at most `wait` seconds —
        CHOICES_WAIT when None; see `choice_list_problem`), else the names of the extension kind `name` (samplers,
        schedules). "Took more than N s" is logged only when the caller's own wait ran out (a one-shot `run` waits
        `Session.RUN_CHOICES_WAIT`: it was told "no choices are offered" about a list it then waited for and got)."""
        wait = self.CHOICES_WAIT if wait is None else wait
        function = self.extensions.get("choice_lists", {}).get(name) if name not in self.extensions else None
        if function is None:       # an extension kind's names (samplers): never a plugin's list of that name
            return self.extension_names(name)
        with self._choice_lock:
            cached = self._choices_read.get(name)
            if cached is not None and time.monotonic() - cached[0] < self.CHOICES_TTL:
                return cached[1]
            done = self._choice_reading.get(name)
            if done is None or done.is_set():           # no read under way: start one (one at a time per list)
                done = self._choice_reading[name] = threading.Event()
                threading.Thread(target=self._read_choices, args=(name, function, done), daemon=True,
                                 name=f"nodegraph-choices-{name[:40]}").start()
        if done.wait(wait):
            return self._choices_read.get(name, (0.0, []))[1]
        plugin = self.extension_plugin.get(("choice_lists", name), "?")
        slow = (f"choice list {name!r} of plugin {plugin!r} took more than {wait:g} s to answer; "
                f"{'its last choices are' if cached else 'no choices are'} offered until it does")
        with self._choice_lock:
            if not done.is_set():
                if self._choice_problems.get(name) != slow:
                    log.warning("%s", slow)
                self._choice_problems[name] = slow
        return cached[1] if cached is not None else []

    def _read_choices(self, name: str, function: Callable[[], Any], done: threading.Event) -> None:
        """Read one choice list (on its own thread: `choices`) and keep what it gave and what was wrong with it."""
        try:
            values, problem = read_choice_list(function, self.MAX_CHOICES, self.MAX_CHOICE_CHARS)
            now = time.monotonic()           # after the read: a list slower than the TTL is still read once per TTL
            if problem is not None:
                plugin = self.extension_plugin.get(("choice_lists", name), "?")
                problem = f"choice list {name!r} of plugin {plugin!r} {problem}"
            with self._choice_lock:
                if problem is not None and self._choice_problems.get(name) != problem:  # logged once while the same
                    log.warning("%s", problem)
                self._choice_problems[name] = problem
                self._choices_read[name] = (now, values)
        finally:
            done.set()

    def choice_list_problem(self, name: str) -> str | None:
        """Why the last read of choice list `name` failed or was cut (its function raised, returned no strings,
        too many), or None."""
        return self._choice_problems.get(name)

    def has_choice_lists(self) -> bool:
        return bool(self.extensions.get("choice_lists"))

    # --- schemas -----------------------------------------------------------

    def node_schemas(self) -> list[dict]:
        """JSON schemas of every registered node, sorted by canonical type (memoised).

        `type` is the canonical name (save this), `qualified_type` the
        `<plugin>.<Type>` form, `aliases` the other names that resolve to it.
        """
        if self._schemas is None:
            schemas = []
            for qualified, cls in self.node_types.items():
                schema = {**cls.spec.to_json_schema(cls), "type": self.canonical_name(qualified),
                          "qualified_type": qualified, "plugin": self.node_plugin[qualified]}
                schema["aliases"] = [n for n in (qualified, *self.aliases(qualified)) if n != schema["type"]]
                if getattr(cls, "renamed_inputs", None):     # old input name → new, for clients loading old graphs
                    schema["renamed_inputs"] = dict(cls.renamed_inputs)
                for input_name, spec in cls.spec.inputs.items():
                    if spec.choices_from is not None:   # choices that plugins extend
                        schema["inputs"][input_name]["choices"] = self.extension_names(spec.choices_from)
                schemas.append(schema)
            self._schemas = sorted(schemas, key=lambda s: s["type"])
        if not self.has_choice_lists():
            return self._schemas
        return [self._with_current_choices(schema) for schema in self._schemas]     # plugins' lists as they are now

    def _with_current_choices(self, schema: dict) -> dict:
        """`schema` with each input of a plugin choice list given that list as it is now (a copy where any is)."""
        lists = self.extensions["choice_lists"]
        spec = self.nodes[schema["qualified_type"]].spec
        dynamic = {name: i.choices_from for name, i in spec.inputs.items() if i.choices_from in lists}
        if not dynamic:
            return schema
        inputs = {**schema["inputs"], **{name: {**schema["inputs"][name], "choices": self.choices(list_name)}
                                         for name, list_name in dynamic.items()}}
        return {**schema, "inputs": inputs}

    def schema_hash(self) -> str:
        """A short content hash of all node schemas and types (clients cache schemas by it), and of the ComfyUI class
        names plugins map onto their nodes (the editor's `list_nodes` schemas carry them: `Session.node_schemas`)."""
        classes = sorted((name, getattr(value, "type", None)) for name, value in
                         (self.extensions.get("comfyui_classes") or {}).items())
        blob = json.dumps([self.node_schemas(), self.types.to_dict(), classes], sort_keys=True, default=str)
        return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()
