"""Every shipped graph runs after the README's plain set-up: the extras its nodes need are installed by it (#16)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# node type → (the optional extra in pyproject.toml it needs, which inputs make it need it)
NEEDS_EXTRA = {
    "LoadUpscaleModel": ("upscale", lambda inputs: not str(inputs.get("model_name", "")).endswith(
        (".safetensors", ".pth", ".pt", ".bin"))),                   # a built-in Real-ESRGAN name
    "CannyEdges": ("preprocess", lambda inputs: True),
    "DistanceDepth": ("preprocess", lambda inputs: True),
}


def _default_extras() -> set[str]:
    """The extras `scripts/setup` (no argument) installs, read from its `extras="..."` line."""
    text = (ROOT / "scripts" / "setup").read_text()
    match = re.search(r'^extras="([^"]*)"', text, re.MULTILINE)
    assert match, "scripts/setup no longer sets extras=\"...\"; update this test"
    assert 'install -e ".[$extras]"' in text
    return {name for name in match.group(1).split(",") if name}


def test_plain_setup_installs_what_the_shipped_graphs_need():
    """graphs/upscale.json's built-in Real-ESRGAN model comes with the default set-up (it failed before)."""
    extras = _default_extras()
    pyproject = (ROOT / "pyproject.toml").read_text()
    needed: dict[str, set[str]] = {}
    for path in sorted((ROOT / "graphs").glob("*.json")):
        for node in json.loads(path.read_text())["nodes"].values():
            rule = NEEDS_EXTRA.get(node["type"])
            if rule and rule[1](node.get("inputs", {})):
                needed.setdefault(rule[0], set()).add(path.name)
    assert "upscale" in needed                                           # upscale.json uses a built-in model
    for extra, graphs in needed.items():
        assert re.search(rf"^{extra} = \[", pyproject, re.MULTILINE), f"pyproject.toml has no extra {extra!r}"
        assert extra in extras, f"{sorted(graphs)} need the {extra!r} extra, which scripts/setup does not install"
