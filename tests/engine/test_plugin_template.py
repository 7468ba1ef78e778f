"""`nodegraph plugin new`: the generated package passes its own tests and installs as an entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from nodegraph.cli import main
from nodegraph.plugin_template import PluginTemplateError, write_plugin


def _env(**extra: str) -> dict[str, str]:
    """The test process's environment with plugin autoload back on (conftest turns it off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODEGRAPH_")}
    return {**env, **extra}


@pytest.fixture
def package(tmp_path) -> Path:
    """A plugin package `tpl_demo` written by the CLI into tmp_path."""
    assert main(["plugin", "new", "tpl_demo", "--dir", str(tmp_path)]) == 0
    return tmp_path / "tpl_demo"


def test_generated_package_has_its_files_and_entry_point(package):
    """pyproject declares the `nodegraph` entry point `tpl_demo` naming the package `nodegraph_tpl_demo` (not the
    project folder's name, which would shadow it from the folder above); every promised file exists."""
    for relative in ("README.md", "nodegraph_tpl_demo/__init__.py", "nodegraph_tpl_demo/nodes.py",
                     "tests/test_tpl_demo.py", "nodegraph_tpl_demo/graphs/scale.json"):
        assert (package / relative).is_file(), relative
    assert not (package / "tpl_demo").exists()
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["nodegraph"] == {"tpl_demo": "nodegraph_tpl_demo"}
    assert project["project"]["name"] == "nodegraph-tpl-demo"
    assert project["tool"]["setuptools"]["packages"] == ["nodegraph_tpl_demo"]
    assert project["tool"]["setuptools"]["package-data"] == {"nodegraph_tpl_demo": ["graphs/*.json"]}
    graph = json.loads((package / "nodegraph_tpl_demo" / "graphs" / "scale.json").read_text())
    assert graph["nodes"]["scale"]["type"] == "tpl_demo.ScaleNumber"


def test_generated_tests_pass_as_generated(package):
    """The package's own pytest suite passes with only its folder on PYTHONPATH."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=package,
                          env=_env(PYTHONPATH=str(package)), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_pip_installed_package_loads_through_its_entry_point(package, tmp_path):
    """Installed by pip (a real wheel build), `nodegraph plugins` finds it, `nodegraph templates` lists its saved
    graph (shipped inside the package: the old scaffold's top-level graphs/ was left out of wheels) and `nodegraph
    run` runs it by its template id."""
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                          "--no-index", "--quiet", "--target", str(site), str(package)],
                         capture_output=True, text=True, timeout=120)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    env = _env(PYTHONPATH=str(site))
    listed = subprocess.run([sys.executable, "-m", "nodegraph.cli", "plugins", "--json", "--allow-plugin", "tpl_demo"],
                            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    loaded = {p["name"]: p for p in json.loads(listed.stdout)["loaded"]}
    assert loaded["tpl_demo"]["source"] == "entry_point"
    assert loaded["tpl_demo"]["distribution"] == "nodegraph-tpl-demo"
    assert loaded["tpl_demo"]["nodes"] == ["tpl_demo.ScaleNumber"]
    assert loaded["tpl_demo"]["module"] == "nodegraph_tpl_demo"
    listed = subprocess.run([sys.executable, "-m", "nodegraph.cli", "templates", "--json", "--allow-plugin",
                             "tpl_demo"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (template,) = [t for t in json.loads(listed.stdout) if t["source"] == "tpl_demo"]
    assert template["id"] == "tpl_demo/scale.json" and template["title"] == "tpl_demo: scale a number"
    ran = subprocess.run([sys.executable, "-m", "nodegraph.cli", "run", "tpl_demo/scale.json",
                          "--allow-plugin", "tpl_demo", "--output-dir", str(tmp_path / "out"), "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "show: 11.0" in ran.stdout and "using the template of that id" in ran.stderr


@pytest.mark.parametrize(("name", "expected"), [
    ("9lives", "not a Python identifier"),
    ("my-plugin", "not a Python identifier"),
    ("class", "keyword"),
    ("json", "standard-library"),
    ("nodegraph", "shadow"),
    ("_hidden", "private"),
    ("image", "built-in node pack"),
    ("primitives", "built-in node pack"),
    ("sampling", "built-in node pack"),
    ("torch", "widely used package"),
    ("numpy", "widely used package"),
    ("PIL", "widely used package"),
    ("example", "installed plugin"),
])
def test_bad_names_are_refused(tmp_path, name, expected):
    """Names that cannot be an importable, distinctive package raise an error that suggests a fix."""
    with pytest.raises(PluginTemplateError, match=expected) as info:
        write_plugin(name, tmp_path)
    assert "e.g." in str(info.value)
    assert not any(tmp_path.iterdir())


def test_existing_folder_is_refused_and_the_cli_exits_2(package, tmp_path, capsys):
    """Writing over an existing folder fails with exit status 2, naming the folder, and leaves it untouched."""
    before = (package / "nodegraph_tpl_demo" / "nodes.py").read_text()
    assert main(["plugin", "new", "tpl_demo", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and str(package) in err
    assert (package / "nodegraph_tpl_demo" / "nodes.py").read_text() == before
    assert main(["plugin", "new", "not-ok", "--dir", str(tmp_path)]) == 2
    assert "'not_ok'" in capsys.readouterr().err
    assert main(["plugin", "new", "tpl_other", "--dir", str(tmp_path)]) == 0    # the hint names this Python's pip
    assert f"next: {sys.executable} -m pip install -e" in capsys.readouterr().out
    assert json.loads((tmp_path / "tpl_other" / "nodegraph_tpl_other" / "graphs" / "scale.json").read_text()
                      )["format_version"] == 2


def test_a_plugin_imported_from_a_namespace_folder_is_flagged(tmp_path, monkeypatch, capsys):
    """A plugin whose module is a folder without __init__.py (the old scaffold's project folder, shadowing an
    editable install) loads with no nodes: `nodegraph plugins` says so, naming the plugin, the folder and the fix."""
    import importlib

    from nodegraph import Session

    (tmp_path / "ghost_filters").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("ghost_filters")
    session = Session(plugins=[("ghost_filters", module)], autoload=False)
    (warning,) = [w for w in session.plugin_warnings() if w["kind"] == "no_nodes"]
    assert warning["level"] == "warning" and warning["plugin"] == "ghost_filters"
    assert str(tmp_path / "ghost_filters") in warning["message"] and "__init__.py" in warning["message"]
    assert "another folder" in warning["fix"]

    import nodegraph.cli as cli

    monkeypatch.setattr(cli, "_session", lambda args, **kw: session)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "NO NODES" in out and "ghost_filters" in out and "0 node(s)" in out


def test_a_plugin_with_only_other_hooks_is_noted_not_warned():
    """A plugin that adds no node but implements other hooks (e.g. samplers) gets an info note, not a warning."""
    from nodegraph import Session, hookimpl

    class SamplerOnly:
        @hookimpl
        def register_samplers(self):
            return {}

    (note,) = [w for w in Session(plugins=[("sampler_only", SamplerOnly())], autoload=False).plugin_warnings()
               if w["kind"] == "no_nodes"]
    assert note["level"] == "info" and "register_samplers" in note["message"]


def test_names_pip_takes_for_an_installed_distribution_are_refused(tmp_path, monkeypatch):
    """`Safety` or `ng__demo` give `nodegraph-Safety` / `nodegraph-ng--demo`, which pip normalises (PEP 503) to an
    installed project's name: installing the package would uninstall that plugin. Refused, naming the clash."""
    site = tmp_path / "site"
    (site / "nodegraph_ng_demo-0.3.0.dist-info").mkdir(parents=True)
    (site / "nodegraph_ng_demo-0.3.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: nodegraph-ng-demo\nVersion: 0.3.0\n")
    monkeypatch.syspath_prepend(str(site))
    out = tmp_path / "out"
    for name, clash in [("Safety", "'nodegraph-safety'"), ("EXAMPLE", "'nodegraph-example'"),
                        ("ng__demo", "'nodegraph-ng-demo' 0.3.0"), ("NG_demo", "'nodegraph-ng-demo' 0.3.0")]:
        with pytest.raises(PluginTemplateError, match="same project to pip") as info:
            write_plugin(name, out)
        assert clash in str(info.value) and "uninstall" in str(info.value), str(info.value)
    assert not out.exists()


def test_generated_distribution_names_are_valid_and_normalised(tmp_path):
    """The pyproject's project name is a valid PEP 508 name, already normalised (what pip compares); a trailing
    `_` (which made `nodegraph-safety-`, a build failure) is refused with the rule and a fix."""
    import re

    from nodegraph.plugin_template import render

    for name in ("Mixed_Case", "a__b", "x_1", "Tpl"):
        project = tomllib.loads(render(name)["pyproject.toml"])["project"]["name"]
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", project) and "--" not in project, project
        try:
            from packaging.requirements import Requirement
            from packaging.utils import canonicalize_name
        except ImportError:
            continue
        assert Requirement(project).name == project == canonicalize_name(project)
    with pytest.raises(PluginTemplateError, match=r"ends with '_'.*PEP 508.*e\.g\. 'tpl_end_nodes'"):
        write_plugin("tpl_end_", tmp_path)
    assert not any(tmp_path.iterdir())
