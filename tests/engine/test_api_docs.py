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


def _code_block_with(text: str) -> str:
    """The ```python block of docs/plugins.md that contains `text`."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS, re.DOTALL)
    (block,) = [b for b in blocks if text in b]
    return block


def test_the_documented_api_example_runs_on_the_shipped_model(tmp_path):
    """The TwoPassSample example of docs/plugins.md, run as written, samples a 64×64 latent."""
    pytest.importorskip("torch")
    from nodegraph import Session, hookimpl

    namespace: dict = {}
    exec(compile(_code_block_with("class TwoPassSample"), "docs/plugins.md", "exec"), namespace)

    class Plugin:
        @hookimpl
        def register_nodes(self):
            return [namespace["TwoPassSample"]]

    def link(node, output):
        return {"node": node, "output": output}

    graph = {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "pos": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": "a star"}},
        "neg": {"type": "EncodeText", "inputs": {"text_encoder": link("ckpt", "text_encoder"), "text": ""}},
        "empty": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "vae": link("ckpt", "vae")}},
        "two": {"type": "TwoPassSample", "inputs": {"model": link("ckpt", "model"),
                                                    "positive": link("pos", "conditioning"),
                                                    "negative": link("neg", "conditioning"),
                                                    "latent": link("empty", "latent"), "seed": 1}},
        "show": {"type": "ShowValue", "inputs": {"value": link("two", "latent")}},
    }}
    session = Session(plugins=[("docs_example", Plugin())], output_dir=tmp_path / "out")
    samples = session.run(graph).outputs["show"]["value"]["samples"]
    assert samples.shape == (1, 4, 16, 16) and samples.std() > 0.1
