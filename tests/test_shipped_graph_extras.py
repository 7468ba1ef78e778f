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


def test_the_test_setup_stands_for_the_plain_one_so_they_do_not_reinstall_in_turn(tmp_path):
    """`scripts/nodegraph` (plain set-up) and `scripts/test` (test set-up) in turn each reinstalled the environment
    (pip, from the network), because each removed the other's stamp. The test extra holds every requirement of
    the plain set-up's extras, so its stamp now stands for both: after it, a plain set-up installs nothing.
    Run in a copy of the script with a stand-in Python that logs what pip is asked to do."""
    import os
    import subprocess
    import tomllib

    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in _default_extras():
        assert set(optional[extra]) <= set(optional["test"]), f"the test extra lacks what {extra!r} installs"
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / "scripts" / "setup").write_text((ROOT / "scripts" / "setup").read_text())
    (checkout / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (checkout / "plugins" / "x").mkdir(parents=True)
    (checkout / "plugins" / "x" / "pyproject.toml").write_text("")
    for name in ("package-lock.json", "index.html", "vite.config.ts", "tsconfig.json", "src/main.ts", "dist/x"):
        (checkout / "web" / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / "web" / name).write_text("")
    tools = tmp_path / "bin"                # an npm that builds nothing
    tools.mkdir()
    (tools / "npm").write_text("#!/bin/sh\nexit 0\n")
    (tools / "npm").chmod(0o755)
    log = tmp_path / "pip.log"
    python = checkout / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\ncase "$*" in *"pip install"*) echo "$*" >> {log};; esac\nexit 0\n')
    python.chmod(0o755)

    def setup(*mode: str) -> list[str]:
        before = log.read_text().splitlines() if log.exists() else []
        done = subprocess.run(["bash", "scripts/setup", *mode], cwd=checkout, capture_output=True, text=True,
                       env={**os.environ, "TMPDIR": str(tmp_path), "PATH": f"{tools}:{os.environ['PATH']}"})
        assert done.returncode == 0, done.stderr
        return (log.read_text().splitlines() if log.exists() else [])[len(before):]

    assert any(".[test]" in line for line in setup("test"))
    assert setup() == []                   # the plain set-up is already there
    assert setup("test") == []
    assert setup() == []
