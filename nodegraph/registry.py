"""What the plugins registered: node classes, port types and named extensions.

`Registry` is plain data filled by plugins.py and read by validation, the
executor, the CLI and the server. It knows which plugin registered what, so
that conflicts and failures can be reported by name.

Extensions (samplers, schedules, model folders) are kept as name → object maps
under `extensions[hook_name]`; the engine does not interpret them — the node
packs that use them do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .node import Node
from .types import TypeRegistry


@dataclass(frozen=True)
class Conflict:
    """Two plugins registered the same name; `winner` kept it."""

    kind: str      # "node" or an extension hook name
    name: str
    winner: str
    loser: str

    def __str__(self) -> str:
        return (f"{self.kind} {self.name!r} is registered by both {self.winner!r} and {self.loser!r}; "
                f"using {self.winner!r} (built-ins first, then plugins in name order)")


@dataclass
class Registry:
    """Registered node classes, port types and extensions, with their origins."""

    nodes: dict[str, type[Node]] = field(default_factory=dict)
    node_plugin: dict[str, str] = field(default_factory=dict)
    types: TypeRegistry = field(default_factory=TypeRegistry)
    extensions: dict[str, dict[str, Any]] = field(default_factory=dict)
    extension_plugin: dict[tuple[str, str], str] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    _schemas: list[dict] | None = field(default=None, repr=False)

    def add_node(self, cls: type[Node], plugin: str) -> None:
        """Register a node class; the first registration of a type wins, later ones are recorded as conflicts."""
        owner = self.node_plugin.get(cls.type)
        if owner is not None:
            if self.nodes[cls.type] is not cls:
                self.conflicts.append(Conflict("node", cls.type, owner, plugin))
            return
        self.nodes[cls.type] = cls
        self.node_plugin[cls.type] = plugin
        self._schemas = None

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

    def node_schemas(self) -> list[dict]:
        """JSON schemas of every node, sorted by type (memoised)."""
        if self._schemas is None:
            self._schemas = []
            for name, cls in sorted(self.nodes.items()):
                schema = {**cls.spec.to_json_schema(cls), "plugin": self.node_plugin[name]}
                for input_name, spec in cls.spec.inputs.items():
                    if spec.choices_from is not None:   # choices that plugins extend
                        schema["inputs"][input_name]["choices"] = self.extension_names(spec.choices_from)
                self._schemas.append(schema)
        return self._schemas

    def extension_names(self, kind: str) -> list[str]:
        """Names registered under an extension kind, in registration order (built-ins first)."""
        return list(self.extensions.get(kind, {}))

    def schema_hash(self) -> str:
        """A short content hash of all node schemas and types (clients cache schemas by it)."""
        blob = json.dumps([self.node_schemas(), self.types.to_dict()], sort_keys=True, default=str)
        return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()
