"""A sweep's index keeps the values its variants' RandomInt nodes drew, so each variant runs again (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

from nodegraph import Session
from nodegraph.cli import main
from nodegraph.distributed.batch import run_batch
from nodegraph.distributed.worker import SessionWorker

RANDOM_SUM = {"format_version": 2, "nodes": {
    "r": {"type": "RandomInt", "inputs": {}},
    "m": {"type": "Math", "inputs": {"a": {"node": "r", "output": "value"}, "b": 1, "op": "add"}},
    "show": {"type": "ShowValue", "inputs": {"value": {"node": "m", "output": "result"}}}}}


def test_a_sweep_records_and_prints_what_each_variant_drew_and_its_graph_repeats_it(tmp_path, capsys):
    """index.json kept `base_graph` with the RandomInt's link and each item's overrides only: the drawn values
    were nowhere (a ShowValue's or a video's result could not be made again) and the CLI printed no `drawn:`.
    Now each item holds `drawn` and `graph` (the drawn values pinned), in index.json and index.jsonl, the CLI
    prints them, and running an item's `graph` gives that item's result."""
    path = tmp_path / "rand.json"
    path.write_text(json.dumps(RANDOM_SUM))
    out = tmp_path / "sw"
    assert main(["run", str(path), "--sweep", "m.b=1,2", "--output-dir", str(out), "--no-progress",
                 "--no-plugins"]) == 0
    printed = capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert json.loads((out / "index.jsonl").read_text().splitlines()[-1])["items"] == index["items"]
    assert index["base_graph"]["nodes"]["m"]["inputs"]["a"] == {"node": "r", "output": "value"}
    for item, b in zip(index["items"], (1, 2)):
        drawn = item["drawn"]["r"]["value"]
        assert isinstance(drawn, int) and item["outputs"]["show"]["value"] == drawn + b
        assert f"variant {item['index']}: r.value = {drawn}" in printed
        assert item["graph"]["nodes"]["m"]["inputs"] == {"a": drawn, "b": b, "op": "add"}
        again = tmp_path / f"again{b}.json"
        again.write_text(json.dumps(item["graph"]))
        assert main(["run", str(again), "--output-dir", str(tmp_path / f"r{b}"), "--no-progress",
                     "--no-plugins"]) == 0
        rerun = json.loads((tmp_path / f"r{b}" / f"again{b}.outputs.json").read_text())
        assert rerun["outputs"]["show"]["value"] == item["outputs"]["show"]["value"]
    assert "drawn: variant 0: r.value = " in printed and "pinned in index.json" in printed


def test_a_variant_that_draws_nothing_keeps_its_item_as_before(tmp_path):
    """No RandomInt: no `drawn` and no `graph` in the items (overrides on `base_graph` are what ran)."""
    graph = {"format_version": 2, "nodes": {
        "m": {"type": "Math", "inputs": {"a": 2, "b": 1, "op": "add"}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "m", "output": "result"}}}}}
    run_batch(Session(output_dir=tmp_path), graph, [{"m.b": 1}, {"m.b": 2}], output_dir=tmp_path / "sw")
    items = json.loads((tmp_path / "sw" / "index.json").read_text())["items"]
    assert all("drawn" not in item and "graph" not in item for item in items)


class _WorkerPool:
    """A stand-in WorkerPool that runs each request on a real SessionWorker in this process (what Ray would)."""

    total_slots = 1

    def __init__(self):
        self.worker = SessionWorker("w0", {"builtins": True, "autoload": False}, threads=0)

    def execute(self, request, needs, on_event, stop=None):
        outcome = None
        for kind, *rest in self.worker.run(request):
            if kind == "outcome":
                outcome = rest[0]
        return outcome


def test_a_variant_run_on_a_worker_records_what_it_drew(tmp_path):
    """The worker's outcome carried no drawn values, so a `--ray` sweep's items could not hold them."""
    items = run_batch(Session(output_dir=tmp_path), RANDOM_SUM, [{"m.b": 1}], output_dir=tmp_path / "sw",
                      pool=_WorkerPool())
    (item,) = items
    drawn = item.drawn["r"]["value"]
    assert item.status == "succeeded" and item.outputs["show"]["value"] == drawn + 1
    assert item.graph["nodes"]["m"]["inputs"]["a"] == drawn
    (kept,) = json.loads(Path(tmp_path / "sw" / "index.json").read_text())["items"]
    assert kept["drawn"] == {"r": {"value": drawn}}
