"""docs/plugins.md keeps up with the code: every public name of nodegraph.api and every hook is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from nodegraph import api, hookspecs

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOKS = [name for name, value in vars(hookspecs).items()
         if inspect.isfunction(value) and hasattr(value, "nodegraph_spec")]


def _mentioned(name: str) -> bool:
    """True when the docs mention `name` or `api.name` in code (a backticked span)."""
    return re.search(r"`[^`]*\b" + re.escape(name) + r"\b[^`]*`", DOCS) is not None


@pytest.mark.parametrize("name", api.__all__)
def test_every_public_api_name_is_documented(name):
    """Each name in nodegraph.api.__all__ appears in code in docs/plugins.md."""
    assert _mentioned(name), f"nodegraph.api.{name} is public but docs/plugins.md does not mention it"


@pytest.mark.parametrize("function", [n for n in api.__all__ if inspect.isfunction(getattr(api, n))])
def test_every_documented_function_argument_is_in_the_docs(function):
    """Each argument of a public API function is named in docs/plugins.md (the argument list or a signature)."""
    for parameter in inspect.signature(getattr(api, function)).parameters:
        assert _mentioned(parameter), f"argument {parameter!r} of api.{function} is not documented"


def test_hooks_exist():
    """The hookspecs module defines hooks (guards the discovery below)."""
    assert "register_nodes" in HOOKS and "register_api" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_hook_reference(hook):
    """Each hookspec has a row in the hook reference table."""
    assert re.search(r"^\| `" + re.escape(hook) + r"` \|", DOCS, re.MULTILINE), \
        f"hook {hook} is missing from the 'Hook reference' table of docs/plugins.md"


def test_the_api_version_in_the_docs_is_the_installed_one():
    """The versioning section quotes the current API_VERSION."""
    assert f'(`"{api.API_VERSION}"`)' in DOCS
