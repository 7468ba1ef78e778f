"""A run's record names the code that ran (node versions, the checkout's commit), and a saved graph is written
canonically so the record's graph, read back through jq, repeats the file byte for byte."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nodegraph import Session
from nodegraph import provenance
from nodegraph.cli import main
from nodegraph.node import NodeContext
from nodegraph.provenance import checkout_commit, float_literals_as_floats

ROOT = Path(__file__).resolve().parents[2]
ARITHMETIC = str(ROOT / "graphs" / "arithmetic.json")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_the_record_names_the_version_of_every_node_type_that_ran(tmp_path):
    """Built-in nodes' versions were left out ("nodegraph's version covers them", and it stays 0.1.0), so records
    made before and after a result-changing node update (KSampler 1.1.1) looked alike. Every node type the graph
    ran is named with its version now, and only those."""
    assert main(["run", ARITHMETIC, "--output-dir", str(tmp_path), "--no-plugins", "--no-progress"]) == 0
    record = json.loads((tmp_path / "arithmetic.outputs.json").read_text())["provenance"]
    registry = Session(autoload=False).registry
    types = {"Int", "IntMath", "Math", "Compare", "String", "Switch", "FormatText", "ShowValue"}
    assert record["nodes"] == {t: registry.nodes[t].version for t in sorted(types)}
    assert {"nodegraph", "torch", "python", "device", "models", "inputs"} <= set(record)     # the keys it had


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="not a git checkout")
def test_the_record_names_the_commit_of_the_checkout_it_ran_from(tmp_path):
    """No source revision was recorded; from a checkout it is the commit `git rev-parse HEAD` names."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert checkout_commit(ROOT) == head.strip()
    assert main(["run", ARITHMETIC, "--output-dir", str(tmp_path), "--no-plugins", "--no-progress"]) == 0
    record = json.loads((tmp_path / "arithmetic.outputs.json").read_text())["provenance"]
    assert record["nodegraph_commit"] == provenance.source_commit()


def test_an_installed_copy_records_no_commit(tmp_path, monkeypatch):
    """Not a checkout (a wheel): the key is absent, not null."""
    monkeypatch.setattr(provenance, "source_commit", lambda: None)
    assert main(["run", ARITHMETIC, "--output-dir", str(tmp_path), "--no-plugins", "--no-progress"]) == 0
    assert "nodegraph_commit" not in json.loads((tmp_path / "arithmetic.outputs.json").read_text())["provenance"]


def _git(root: Path, head: str, files: dict[str, str] | None = None) -> Path:
    git = root / ".git"
    git.mkdir(parents=True)
    (git / "HEAD").write_text(head)
    for name, text in (files or {}).items():
        (git / name).parent.mkdir(parents=True, exist_ok=True)
        (git / name).write_text(text)
    return root


def test_the_commit_is_read_from_the_git_files_as_git_keeps_them(tmp_path):
    """A loose ref, a packed ref, a detached HEAD and a worktree's `.git` file each name the commit; no checkout,
    a ref that names nothing or a HEAD that is not a commit give None."""
    assert checkout_commit(_git(tmp_path / "loose", "ref: refs/heads/main\n", {"refs/heads/main": COMMIT + "\n"})) \
        == COMMIT
    packed = f"# pack-refs with: peeled fully-peeled sorted\n{COMMIT} refs/heads/main\n"
    assert checkout_commit(_git(tmp_path / "packed", "ref: refs/heads/main\n", {"packed-refs": packed})) == COMMIT
    assert checkout_commit(_git(tmp_path / "detached", COMMIT + "\n")) == COMMIT
    common = _git(tmp_path / "main", "ref: refs/heads/main\n", {"refs/heads/feature": COMMIT + "\n"}) / ".git"
    own = common / "worktrees" / "wt"
    own.mkdir(parents=True)
    (own / "HEAD").write_text("ref: refs/heads/feature\n")
    (own / "commondir").write_text("../..\n")
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text(f"gitdir: {own}\n")
    assert checkout_commit(tmp_path / "wt") == COMMIT
    (tmp_path / "none").mkdir()
    assert checkout_commit(tmp_path / "none") is None
    assert checkout_commit(_git(tmp_path / "unborn", "ref: refs/heads/main\n")) is None
    assert checkout_commit(_git(tmp_path / "junk", "not a commit\n")) is None


def test_an_integer_in_a_float_input_is_embedded_as_a_float_and_nothing_else_changes():
    """`cfg: 5` and `cfg: 5.0` run alike but embedded differently, so a PNG's bytes followed how the graph file
    wrote the number. A FLOAT input's integer literal is written as a float in `graph_as_run`; INT, STRING and
    boolean literals, links, unknown types and subgraph definitions' other inputs stay as given."""
    session = Session(autoload=False)
    data = {"format_version": 2, "nodes": {
        "m": {"type": "Math", "inputs": {"a": 5, "b": {"node": "i", "output": "value"}, "op": "add"}},
        "i": {"type": "Int", "inputs": {"value": 7}},
        "f": {"type": "Math", "inputs": {"a": 1.5, "b": 2, "op": "multiply"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "m", "output": "result"}}}}}
    context = NodeContext("show", "ShowValue", lambda *a: None, lambda n: None, {"registry": session.registry},
                          graph=session.load(data))
    embedded = context.graph_as_run()
    assert embedded["nodes"]["m"]["inputs"] == {"a": 5.0, "b": {"node": "i", "output": "value"}, "op": "add"}
    assert type(embedded["nodes"]["m"]["inputs"]["a"]) is float and embedded["nodes"]["f"]["inputs"]["b"] == 2.0
    assert type(embedded["nodes"]["i"]["inputs"]["value"]) is int
    with_subgraph = {"nodes": {"x": {"type": "Unknown", "inputs": {"a": 1}}},
                     "subgraphs": {"s": {"nodes": {"in": {"type": "Math", "inputs": {"a": 3, "op": "add"}}}}}}
    canonical = float_literals_as_floats(with_subgraph, session.registry)
    assert canonical["nodes"]["x"]["inputs"]["a"] == 1 and type(canonical["nodes"]["x"]["inputs"]["a"]) is int
    assert type(canonical["subgraphs"]["s"]["nodes"]["in"]["inputs"]["a"]) is float


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq")
def test_the_records_graph_read_back_through_jq_repeats_the_png_byte_for_byte(tmp_path):
    """README's `jq .graph rec.json > g.json` re-run gave the same pixels but other PNG bytes: jq 1.6 writes
    `5.0` as `5`, and the PNG embedded the literal as given. The embedded graph is canonical now."""
    assert main(["run", str(ROOT / "graphs" / "txt2img.json"), "--set", "steps=2", "--output-dir",
                 str(tmp_path / "a"), "--no-progress", "--threads", "1"]) == 0
    rewritten = subprocess.run(["jq", ".graph", str(tmp_path / "a" / "txt2img.outputs.json")], capture_output=True,
                               text=True, check=True).stdout
    assert '"cfg": 5,' in rewritten or '"denoise": 1' in rewritten      # jq really dropped a ".0"
    (tmp_path / "g.json").write_text(rewritten)
    assert main(["run", str(tmp_path / "g.json"), "--output-dir", str(tmp_path / "b"), "--no-progress",
                 "--threads", "1"]) == 0
    (first,), (again,) = sorted((tmp_path / "a").glob("*.png")), sorted((tmp_path / "b").glob("*.png"))
    assert first.read_bytes() == again.read_bytes()
