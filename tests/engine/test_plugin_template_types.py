"""The generated plugin template type-checks clean with mypy (nodegraph ships py.typed, so plugin authors run it).

Every node declaration used to fail: `class Inputs(NodeInputs)` gave "Metaclass conflict" (the inputs metaclass
derived from `type(BaseModel)`, which checkers cannot resolve) and a typed `run(self, value, ...)` gave "Signature
of "run" incompatible with supertype "Node"". Skipped where mypy is not installed (it is in the `test` extra).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import nodegraph
from nodegraph.plugin_template import package_name, write_plugin

mypy_api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install -e .[test] brings it)")

# nodegraph's parent folder: an editable install is a setuptools import hook that mypy cannot follow
SOURCE_ROOT = Path(nodegraph.__file__).resolve().parent.parent


def mypy_errors(folder: Path, package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Run mypy on `folder/package` (nodegraph's own modules are read but not reported); (exit status, report)."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MYPYPATH", str(SOURCE_ROOT))
    report, errors, status = mypy_api.run([
        "--follow-imports=silent", "--no-incremental", "--cache-dir", str(tmp_path / "mypy_cache"),
        "--no-error-summary", "--hide-error-context", package])
    return status, report + errors


def test_generated_template_type_checks_clean(tmp_path, monkeypatch):
    """`nodegraph plugin new` output passes mypy as written: its Inputs class and its typed run are accepted."""
    folder = write_plugin("typed_check", tmp_path)
    status, report = mypy_errors(folder, package_name("typed_check"), tmp_path, monkeypatch)
    assert status == 0, report


def test_typical_node_declarations_type_check_clean(tmp_path, monkeypatch):
    """Several Inputs classes, port-typed inputs and run signatures of every shape (keyword-only, with a
    default, **rest) are accepted; a real mistake inside run is still reported."""
    package = tmp_path / "typed_nodes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nodes.py").write_text('''
from typing import Any

from nodegraph import Input, Node, NodeInputs, Output


class Blend(Node):
    class Inputs(NodeInputs):
        image: Any = Input(port="IMAGE")
        strength: float = Input(0.5, ge=0.0, le=1.0)

    outputs = (Output("image", "IMAGE"),)

    def run(self, image: Any, strength: float) -> dict[str, Any]:
        return {"image": image * strength}


class Label(Node):
    class Inputs(NodeInputs):
        text: str = Input("")
        count: int = Input(1, ge=1)

    outputs = (Output("text", "STRING"),)

    def run(self, *, text: str, count: int = 1, **rest: Any) -> dict[str, str]:
        return {"text": text * count}


def broken(label: Label) -> int:
    return label.run(text="a")["text"]     # a str returned as int: mypy must still catch this
''')
    status, report = mypy_errors(tmp_path, "typed_nodes", tmp_path, monkeypatch)
    errors = [line for line in report.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "Incompatible return value" in errors[0], report
