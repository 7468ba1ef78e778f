"""`nodegraph plugin new NAME`: write a ready-to-install plugin package.

`write_plugin(name, directory)` creates `<directory>/<name>/`, laid out like the
shipped plugins (plugins/video: folder `video`, package `nodegraph_video`)::

    pyproject.toml                    entry point `<name> = "nodegraph_<name>"` in group "nodegraph"
    README.md                         install, test, run, rename
    nodegraph_<name>/__init__.py      the plugin module (re-exports the hook)
    nodegraph_<name>/nodes.py         one node (`ScaleNumber`) and `register_nodes`
    tests/test_<name>.py              loads the plugin through `Session(plugins=[("<name>", module)])`
    nodegraph_<name>/graphs/scale.json  a saved graph using the qualified type `<name>.ScaleNumber`: inside the
                                      package (package data), so a wheel ships it and the editor's Templates
                                      menu / `nodegraph templates` list it as `<name>/scale.json`

The package is not called `<name>` because the project folder is: `python -m
nodegraph.cli` (what scripts/nodegraph runs) puts the working folder first on the
import path, and a folder `<name>/` without `__init__.py` there would be imported
as an empty namespace package in place of the installed plugin.

The package passes its own test as generated (tests/engine/test_plugin_template.py
runs it, and installs it with pip to prove the entry point). Bad names — not a
Python identifier, a keyword, a standard-library or nodegraph module name, a
built-in pack's or an installed plugin's name (in any case), a name whose distribution
`nodegraph-<name>` pip would take for an installed or shipped one (PEP 503: `Safety`,
`ng__safeguide`; installing it would uninstall that one), a trailing `_` (the project
name would end in `-`), a common package's name (`torch`), or an existing folder —
raise `PluginTemplateError` naming the name and the fix.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import sys
from pathlib import Path

from .errors import NodegraphError

# Names a plugin may not take: they would shadow nodegraph's own folders and modules.
RESERVED_NAMES = frozenset({"nodegraph", "nodes", "plugins", "tests", "test", "graphs", "models", "server",
                            "web", "scripts", "input", "output", "docs", "benchmarks",
                            "project"})     # the source name of the project's templates ("project/txt2img.json")
# Top-level packages nodegraph, its plugins and their users import: a plugin (and its project folder) named like
# one invites import mix-ups (an editable install of it, or a script beside the folder). Lower case: compared so.
COMMON_PACKAGES = frozenset({
    "torch", "torchvision", "torchaudio", "numpy", "scipy", "pandas", "pil", "pillow", "cv2", "skimage",
    "matplotlib", "networkx", "pydantic", "pluggy", "safetensors", "websockets", "tqdm", "regex", "clip",
    "sentencepiece", "diffusers", "transformers", "accelerate", "peft", "huggingface_hub", "tokenizers",
    "xformers", "av", "ray", "pytest", "hypothesis", "setuptools", "pip", "wheel", "yaml", "requests",
    "comfy", "jax", "tensorflow", "keras", "onnx", "onnxruntime"})


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
    if name.endswith("_"):
        raise PluginTemplateError(
            f"plugin name {name!r} ends with '_': its distribution name {'nodegraph-' + name.replace('_', '-')!r} "
            f"would end with '-', which is not a valid project name (PEP 508: it must end with a letter or digit) "
            f"and the package would not build; use e.g. {name.rstrip('_') + '_nodes'!r}")
    if name in RESERVED_NAMES or name in sys.stdlib_module_names or name.startswith("_"):
        raise PluginTemplateError(
            f"plugin name {name!r} would shadow {'a standard-library module' if name in sys.stdlib_module_names else 'a name nodegraph uses'}"
            f" (or is private); choose a distinctive name, e.g. {name.strip('_') + '_nodes'!r}")
    taken = name_taken_by(name)
    if taken:
        raise PluginTemplateError(f"plugin name {name!r} is {taken}; choose a distinctive name, e.g. "
                                  f"{'my_' + name.lower()!r}")


def name_taken_by(name: str) -> str | None:
    """What already uses `name` (a built-in pack, an installed plugin, a common or importable package), or None."""
    from importlib.util import find_spec

    from .plugins import builtin_plugin_names, installed_plugin_names

    if name in builtin_plugin_names():
        return (f"the name of nodegraph's built-in node pack {name!r}: plugins are loaded by name, so yours would "
                f"be skipped (and its node types would read as {name}.<Type>, the pack's)")
    installed = installed_plugin_names()
    if name in installed:
        return f"the name of an installed plugin (from {installed[name] or 'an unknown distribution'})"
    clash = distribution_clash(distribution_name(name))
    if clash:
        return (f"a plugin whose distribution name {distribution_name(name)!r} is the same project to pip as "
                f"{clash} (pip compares names lowercased with runs of '-', '_' and '.' as one '-'), so installing "
                f"it would uninstall that one")
    for other in [*builtin_plugin_names(), *installed]:
        if other.lower() == name.lower():
            return (f"the name of the plugin {other!r} in another case: their plugin names and node types would "
                    f"differ only in case")
    for module in (name, package_name(name)):
        if module.lower() in COMMON_PACKAGES:
            return (f"the name of a widely used package ({module!r}): a plugin and a project folder called so "
                    f"invite import mix-ups")
        try:
            spec = find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin is not None:     # a namespace folder has no origin: not a package
            return f"already importable as a module ({module!r}, from {spec.origin})"
    return None


def distribution_name(name: str) -> str:
    """The project name in the generated pyproject: `nodegraph-<name>`, PEP 503-normalised (lower case, each run of
    `_` one `-`) so that it is the name pip compares installed projects by, and a clash shows as equal strings."""
    return "nodegraph-" + re.sub(r"[-_.]+", "-", name).lower()


def distribution_clash(dist: str) -> str | None:
    """What already has the (normalised) project name `dist`: an installed distribution or a plugin shipped in
    nodegraph's plugins/ folder (a source checkout), named with where it is; None when the name is free.

    Why: pip treats `nodegraph-Safety` and `nodegraph-safety` as one project, so installing the generated package
    replaces (uninstalls) the other one — the check must compare normalised names, not the plugin name."""
    from importlib.metadata import distributions

    for found in distributions():
        other = found.metadata["Name"] or ""
        if other and re.sub(r"[-_.]+", "-", other).lower() == dist:
            return f"the installed distribution {other!r} {found.version}"
    shipped = Path(__file__).resolve().parent.parent / "plugins"
    for pyproject in sorted(shipped.glob("*/pyproject.toml")):
        match = re.search(r'^name\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.MULTILINE)
        if match and re.sub(r"[-_.]+", "-", match.group(1)).lower() == dist:
            return f"the shipped plugin {match.group(1)!r} ({pyproject.parent})"
    return None


def package_name(name: str) -> str:
    """The importable package of plugin `name`: `nodegraph_<name>` (the folder `<name>/` holds the project)."""
    return f"nodegraph_{name}"


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

    dist = distribution_name(name)
    values = {"{{name}}": name, "{{package}}": package_name(name), "{{dist}}": dist, "{{version}}": __version__}

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(key, value)
        return text.lstrip("\n")

    graph = {
        "format_version": 2,
        "metadata": {"title": f"{name}: scale a number", "description": "The template plugin's example graph."},
        "nodes": {
            "scale": {"type": f"{name}.ScaleNumber", "inputs": {"value": 2.5, "factor": 4.0, "offset": 1.0}},
            "show": {"type": "ShowValue", "inputs": {"value": {"node": "scale", "output": "value"}}},
        },
    }
    return {
        "pyproject.toml": fill(_PYPROJECT),
        "README.md": fill(_README),
        f"{package_name(name)}/__init__.py": fill(_INIT),
        f"{package_name(name)}/nodes.py": fill(_NODES),
        f"tests/test_{name}.py": fill(_TEST),
        f"{package_name(name)}/graphs/scale.json": json.dumps(graph, indent=2) + "\n",
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
# name (node types are "{{name}}.<Type>"), its value the module holding the hooks. The package is
# not called "{{name}}": that is this folder's name, which would shadow it when nodegraph runs
# from the folder above (`python -m` puts the working folder on the import path).
[project.entry-points.nodegraph]
{{name}} = "{{package}}"

[tool.setuptools]
packages = ["{{package}}"]

# the saved graphs ship inside the package: the editor's Templates menu and `nodegraph templates` list them
[tool.setuptools.package-data]
{{package}} = ["graphs/*.json"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

_INIT = '''
"""The {{name}} nodegraph plugin: its hooks, found through the entry point in pyproject.toml."""

from .nodes import ScaleNumber, register_nodes

__all__ = ["ScaleNumber", "register_nodes"]
# the plugin's version is pyproject.toml's (what `nodegraph plugins` shows after `pip install -e .`)
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

import {{package}}
from nodegraph import Session

GRAPH = Path({{package}}.__file__).resolve().parent / "graphs" / "scale.json"


def make_session() -> Session:
    """Built-in nodes plus this plugin only, under its entry-point name (installed plugins are not autoloaded)."""
    return Session(plugins=[("{{name}}", {{package}})], autoload=False)


def test_plugin_loads_and_registers_its_node():
    """The plugin loads without failures and registers {{name}}.ScaleNumber."""
    session = make_session()
    assert not session.plugin_report.failed, session.plugin_warnings()
    assert "{{name}}.ScaleNumber" in session.registry.nodes


def test_one_node_graph_runs():
    """A graph of one ScaleNumber node computes value * factor + offset."""
    graph = {"format_version": 2,
             "nodes": {"scale": {"type": "{{name}}.ScaleNumber",
                                 "inputs": {"value": 3.0, "factor": 2.0, "offset": 0.5}}}}
    result = make_session().run(graph, outputs=["scale"])
    assert result.outputs["scale"]["value"] == 6.5


def test_saved_graph_runs():
    """{{package}}/graphs/scale.json validates and shows 2.5 * 4 + 1."""
    session = make_session()
    assert session.validate(GRAPH) == []
    assert session.run(GRAPH).outputs["show"]["value"] == 11.0
'''

_README = '''
# {{dist}}

A nodegraph plugin. It adds the node `{{name}}.ScaleNumber`
(category `{{name}}`): `value * factor + offset`. The plugin is called `{{name}}`
(its entry point's name, used in node types); its Python package is `{{package}}`.

## Install and test

```sh
pip install -e .            # registers the entry point: group "nodegraph", name "{{name}}"
nodegraph plugins           # lists {{name}} as loaded, 1 node(s) (exit status 4 if any plugin failed)
pip install -e .[test] && pytest
nodegraph templates         # lists {{name}}/scale.json, the graph in {{package}}/graphs/
nodegraph run {{name}}/scale.json
```

While you work on it, `pip install -e .` once is the loop: edits to the package take effect at the next
`nodegraph` command (only a changed entry point or version needs the install again). From Python,
`Session(plugins=[("{{name}}", {{package}})])` loads it without installing (what the tests do).

## Names

Node types of an installed plugin are `<plugin>.<Type>`, here `{{name}}.ScaleNumber`.
The bare name `ScaleNumber` also works while no other plugin provides a node of that
name; saved graphs should use the qualified name ({{package}}/graphs/scale.json does).

## Grow it

* Add node classes to `{{package}}/nodes.py` and list them in `register_nodes`;
  keep real work in plain modules that do not import nodegraph.
* Bump a node's `version` when its results change.
* Port types, samplers, schedules and model folders have hooks too: see
  nodegraph's docs/plugins.md.
'''
