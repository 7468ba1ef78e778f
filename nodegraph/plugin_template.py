"""`nodegraph plugin new NAME`: write a ready-to-install plugin package.

`write_plugin(name, directory)` creates `<directory>/<name>/`::

    pyproject.toml          entry point `<name> = "<name>"` in group "nodegraph"
    README.md               install, test, run, rename
    <name>/__init__.py      the plugin module (re-exports the hook)
    <name>/nodes.py         one node (`ScaleNumber`) and `register_nodes`
    tests/test_<name>.py    loads the plugin through `Session(plugins=[<name>])`, runs graphs
    graphs/scale.json       a saved graph using the qualified type `<name>.ScaleNumber`

The package passes its own test as generated (tests/engine/test_plugin_template.py
runs it, and installs it with pip to prove the entry point). Bad names — not a
Python identifier, a keyword, a standard-library or nodegraph module name, or an
existing folder — raise `PluginTemplateError` naming the name and the fix.
"""

from __future__ import annotations

import json
import keyword
import os
import sys
from pathlib import Path

from .errors import NodegraphError

# Names a plugin package may not take: they would shadow nodegraph itself or common top-level packages.
RESERVED_NAMES = frozenset({"nodegraph", "nodes", "plugins", "tests", "test", "graphs", "models", "server"})


class PluginTemplateError(NodegraphError, ValueError):
    """The plugin name or target folder cannot be used; the message says why and what to do."""


def check_plugin_name(name: str) -> None:
    """Raise PluginTemplateError unless `name` can be a plugin (entry point + importable package)."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise PluginTemplateError(
            f"plugin name {name!r} is not a Python identifier (ASCII letters, digits and underscores, not "
            f"starting with a digit); use e.g. {_suggest(name)!r}")
    if keyword.iskeyword(name):
        raise PluginTemplateError(f"plugin name {name!r} is a Python keyword; use e.g. {name + '_nodes'!r}")
    if name in RESERVED_NAMES or name in sys.stdlib_module_names or name.startswith("_"):
        raise PluginTemplateError(
            f"plugin name {name!r} would shadow {'a standard-library module' if name in sys.stdlib_module_names else 'a name nodegraph uses'}"
            f" (or is private); choose a distinctive name, e.g. {name.strip('_') + '_nodes'!r}")


def _suggest(name: object) -> str:
    text = "".join(c if c.isalnum() and c.isascii() else "_" for c in str(name).strip()).strip("_").lower()
    if not text or text[0].isdigit():
        text = "my_" + text
    return text or "my_plugin"


def write_plugin(name: str, directory: str | os.PathLike = ".") -> Path:
    """Write the package `<directory>/<name>/` and return its folder; raises PluginTemplateError."""
    check_plugin_name(name)
    parent = Path(directory)
    if parent.exists() and not parent.is_dir():
        raise PluginTemplateError(f"--dir {str(parent)!r} is a file, not a folder; give a folder to create the plugin in")
    folder = parent / name
    if folder.exists():
        raise PluginTemplateError(
            f"folder {str(folder)!r} already exists; choose another name or --dir, or remove the folder first")
    files = render(name)
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def render(name: str) -> dict[str, str]:
    """The package's files (relative path → text) for a plugin called `name`."""
    from . import __version__

    dist = "nodegraph-" + name.replace("_", "-")
    values = {"{{name}}": name, "{{dist}}": dist, "{{version}}": __version__}

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(key, value)
        return text.lstrip("\n")

    graph = {
        "format_version": 1,
        "metadata": {"title": f"{name}: scale a number", "description": "The template plugin's example graph."},
        "nodes": {
            "scale": {"type": f"{name}.ScaleNumber", "inputs": {"value": 2.5, "factor": 4.0, "offset": 1.0}},
            "show": {"type": "ShowValue", "inputs": {"value": {"node": "scale", "output": "value"}}},
        },
    }
    return {
        "pyproject.toml": fill(_PYPROJECT),
        "README.md": fill(_README),
        f"{name}/__init__.py": fill(_INIT),
        f"{name}/nodes.py": fill(_NODES),
        f"tests/test_{name}.py": fill(_TEST),
        "graphs/scale.json": json.dumps(graph, indent=2) + "\n",
    }


_PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{{dist}}"
version = "0.1.0"
description = "A nodegraph plugin: {{name}}."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["nodegraph>={{version}}"]

[project.optional-dependencies]
test = ["pytest"]

# How nodegraph finds the plugin: group "nodegraph"; the entry point's name is the plugin's
# name (node types are "{{name}}.<Type>"), its value the module holding the hooks.
[project.entry-points.nodegraph]
{{name}} = "{{name}}"

[tool.setuptools]
packages = ["{{name}}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

_INIT = '''
"""The {{name}} nodegraph plugin: its hooks, found through the entry point in pyproject.toml."""

from .nodes import ScaleNumber, register_nodes

__all__ = ["ScaleNumber", "register_nodes"]
__version__ = "0.1.0"
'''

_NODES = '''
"""Nodes of the {{name}} plugin (thin classes; put real work in plain modules beside this one).

Every node declares typed inputs (`Input(...)`, with ranges and defaults), named
typed outputs, a semver `version` (bump it when results change, so cached
results are not reused) and a `run` that takes every input by name.
"""

from __future__ import annotations

from nodegraph import Input, Node, NodeInputs, Output, hookimpl


class ScaleNumber(Node):
    """Multiply a number by a factor and add an offset: value * factor + offset."""

    category = "{{name}}"
    version = "1.0.0"

    class Inputs(NodeInputs):
        value: float = Input(0.0, description="the number to scale")
        factor: float = Input(1.0, ge=-1000.0, le=1000.0, step=0.1, description="multiplier")
        offset: float = Input(0.0, description="added after scaling")

    outputs = (Output("value", "FLOAT", "value * factor + offset"),)

    def run(self, value: float, factor: float, offset: float) -> dict:
        return {"value": value * factor + offset}


@hookimpl
def register_nodes():
    """The node classes this plugin adds."""
    return [ScaleNumber]
'''

_TEST = '''
"""Tests of the {{name}} plugin: it loads through a Session, and its node and saved graph run."""

from pathlib import Path

import {{name}}
from nodegraph import Session

GRAPH = Path(__file__).resolve().parents[1] / "graphs" / "scale.json"


def make_session() -> Session:
    """Built-in nodes plus this plugin only (installed plugins are not autoloaded)."""
    return Session(plugins=[{{name}}], autoload=False)


def test_plugin_loads_and_registers_its_node():
    """The plugin loads without failures and registers {{name}}.ScaleNumber."""
    session = make_session()
    assert not session.plugin_report.failed, session.plugin_warnings()
    assert "{{name}}.ScaleNumber" in session.registry.nodes


def test_one_node_graph_runs():
    """A graph of one ScaleNumber node computes value * factor + offset."""
    graph = {"format_version": 1,
             "nodes": {"scale": {"type": "{{name}}.ScaleNumber",
                                 "inputs": {"value": 3.0, "factor": 2.0, "offset": 0.5}}}}
    result = make_session().run(graph, outputs=["scale"])
    assert result.outputs["scale"]["value"] == 6.5


def test_saved_graph_runs():
    """graphs/scale.json validates and shows 2.5 * 4 + 1."""
    session = make_session()
    assert session.validate(GRAPH) == []
    assert session.run(GRAPH).outputs["show"]["value"] == 11.0
'''

_README = '''
# {{dist}}

A nodegraph plugin. It adds the node `{{name}}.ScaleNumber`
(category `{{name}}`): `value * factor + offset`.

## Install and test

```sh
pip install -e .            # registers the entry point: group "nodegraph", name "{{name}}"
nodegraph plugins           # lists {{name}} as loaded (exit status 4 if any plugin failed)
pip install -e .[test] && pytest
nodegraph run graphs/scale.json
```

## Names

Node types of an installed plugin are `<plugin>.<Type>`, here `{{name}}.ScaleNumber`.
The bare name `ScaleNumber` also works while no other plugin provides a node of that
name; saved graphs should use the qualified name (graphs/scale.json does).

## Grow it

* Add node classes to `{{name}}/nodes.py` and list them in `register_nodes`;
  keep real work in plain modules that do not import nodegraph.
* Bump a node's `version` when its results change.
* Port types, samplers, schedules and model folders have hooks too: see
  nodegraph's docs/plugins.md.
'''
