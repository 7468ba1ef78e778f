"""Sweeps that must be refused up front, batch records that are kept, and file names in index.json (no Ray)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nodegraph import Session
from nodegraph.cli import main
from nodegraph.distributed.batch import run_batch
from nodegraph.distributed.sweep import SweepError, parse_sweep

ROOT = Path(__file__).resolve().parents[2]
ARITHMETIC_PATH = str(ROOT / "graphs" / "arithmetic.json")
ARITHMETIC = json.loads(Path(ARITHMETIC_PATH).read_text())
TXT2IMG = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
SAVE_GRAPH = {"format_version": 1, "nodes": {
    "load": {"type": "LoadImage", "inputs": {"image": "dot.png"}},
    "save": {"type": "SaveImage", "inputs": {"images": {"node": "load", "output": "image"},
                                             "filename_prefix": "a"}}}}


@pytest.mark.parametrize("spec, words", [
    ("seed=0..10:1e-320", "more than 100000 values"),
    ("seed=1e308..inf", "'inf' is not a finite number"),
    ("seed=0..nan", "'nan' is not a finite number"),
    ("seed=0..10:inf", "'inf' is not a finite number"),
    ("seed=0..1e400", "'1e400' is not a finite number"),
    ("seed=1e308..-1e308:-1e308", "leave the float range"),
    ("seed=0.5.." + "9" * 400, "more than 100000 values"),
    ("seed=NaN,1", "NaN is not a number a graph can hold"),
    ("sampler.cfg=[1, Infinity]", "Infinity is not a number a graph can hold"),
    ("prompt.text=[1,2", "starts like JSON but is not JSON"),
    ("sampler.=3", "is not NODE.INPUT"),
])
def test_bad_numbers_and_items_are_sweep_errors(spec, words):
    """Non-finite or overflowing ranges and broken JSON items raise SweepError naming the spec and a fix."""
    with pytest.raises(SweepError) as info:
        parse_sweep([spec], TXT2IMG)
    assert words in str(info.value) and f"--sweep {spec!r}" in str(info.value) and "Fix:" in str(info.value)


def test_list_items_are_json_and_may_hold_commas():
    """A JSON string, array or object item keeps its commas; other items split at commas as before."""
    assert parse_sweep(['prompt.text="a red, round cat",dog'], TXT2IMG) == [
        {"prompt.text": "a red, round cat"}, {"prompt.text": "dog"}]
    assert parse_sweep(["prompt.text=[1,2]"], TXT2IMG) == [{"prompt.text": [1, 2]}]
    assert parse_sweep(['prompt.text={"a": [1, 2]}, "x"'], TXT2IMG) == [{"prompt.text": {"a": [1, 2]}},
                                                                         {"prompt.text": "x"}]
    assert parse_sweep(['prompt.text="wait..."'], TXT2IMG) == [{"prompt.text": "wait..."}]   # text, not a range
    assert parse_sweep(["sampler.cfg=3,5.5,true"], TXT2IMG) == [{"sampler.cfg": v} for v in (3, 5.5, True)]


def test_csv_rows_must_match_the_header(tmp_path):
    """A CSV row with too few or too many cells is refused naming the line; a quoted cell keeps its comma."""
    short = tmp_path / "short.csv"
    short.write_text("seed,sampler.cfg\n64\n")
    with pytest.raises(SweepError, match=r"line 2 has 1 cell\(s\) but the header names 2 column\(s\)"):
        parse_sweep([str(short)], TXT2IMG)
    long = tmp_path / "long.csv"
    long.write_text("seed,sampler.cfg\n1,2\n128,256,999\n")
    with pytest.raises(SweepError, match=r"line 3 has 3 cell\(s\)"):
        parse_sweep([str(long)], TXT2IMG)
    good = tmp_path / "good.csv"
    good.write_text('seed,prompt.text\n1,"a red, round cat"\n2,\n')
    assert parse_sweep([str(good)], TXT2IMG) == [{"sampler.seed": 1, "prompt.text": "a red, round cat"},
                                                 {"sampler.seed": 2, "prompt.text": ""}]


@pytest.mark.parametrize("spec, words", [
    ("width.value=0..10:1e-320", "more than 100000 values"),
    ("width.value=1e308..inf", "'inf' is not a finite number"),
    ("width.nosuch=1,2", "node 'width' (Int) has no input 'nosuch'"),
])
def test_cli_bad_sweeps_exit_2_once(spec, words, tmp_path, capsys):
    """`run --sweep` with an overflowing range or an input the node lacks: exit 2, one error, nothing run."""
    assert main(["run", ARITHMETIC_PATH, "--sweep", spec, "--output-dir", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and words in err and f"--sweep {spec!r}" in err and "Fix:" in err
    assert not (tmp_path / "index.json").exists()


def test_cli_a_value_the_input_refuses_exits_2_before_anything_runs(tmp_path, capsys):
    """1e20 for an INT input failed each variant on its own; it is refused once, up front, naming key and value."""
    assert main(["run", ARITHMETIC_PATH, "--sweep", "width.value=1e20,64", "--output-dir", str(tmp_path),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--sweep width.value=1e+20" in err and "expects an INT value" in err
    assert not (tmp_path / "index.json").exists()
    # a whole float is that integer, as a graph file and --set read it (it was refused as "a float this large")
    for spec, count in (("width.value=20.0,24", 2), ("width.value=8..16:4.0", 3)):
        assert main(["run", ARITHMETIC_PATH, "--sweep", spec, "--output-dir", str(tmp_path / spec),
                     "--no-progress"]) == 0, capsys.readouterr().err
        assert json.loads((tmp_path / spec / "index.json").read_text())["succeeded"] == count


def test_a_sweep_key_with_a_suggestion_reads_as_one_sentence(tmp_path, capsys):
    """"… Did you mean 'sampler'?. Fix: …": a problem that ends in its own question mark takes no full stop."""
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"format_version": 1, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 3}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "a", "output": "value"}}}}}))
    assert main(["run", str(graph), "--sweep", "a.valeu=1,2", "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'value'? Fix:" in err and "?." not in err, err


def test_cli_short_csv_row_exits_2(tmp_path, capsys):
    """The report's CSV (a row of one cell under two columns) is a usage error, not a traceback."""
    bad = tmp_path / "bad.csv"
    bad.write_text("width.value,height.value\n64\n128,256,999\n")
    assert main(["run", ARITHMETIC_PATH, "--sweep", str(bad), "--output-dir", str(tmp_path / "o")]) == 2
    assert "line 2 has 1 cell(s)" in capsys.readouterr().err


def test_cli_refuses_a_swept_or_set_input_that_is_linked_or_undeclared(tmp_path, capsys):
    """A linked input swept, or a --set of an undeclared input in a batch, is refused once before any run."""
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"format_version": 1, "nodes": {
        "a": {"type": "Int", "inputs": {"value": 3}},
        "m": {"type": "Math", "inputs": {"a": {"node": "a", "output": "value"}, "b": 2, "op": "add"}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "m", "output": "result"}}}}}))
    assert main(["run", str(graph), "--sweep", "m.a=1,2", "--output-dir", str(tmp_path / "o")]) == 2
    assert "input 'a' of node 'm' comes from node 'a' through a link" in capsys.readouterr().err
    assert main(["run", str(graph), "--sweep", "m.b=1,2", "--set", "a.nosuch=1",
                 "--output-dir", str(tmp_path / "o")]) == 2
    assert "--set a.nosuch: node 'a' (Int) has no input 'nosuch'" in capsys.readouterr().err


def test_cli_sweeps_read_what_run_reads_comfyui_prompts_and_pngs(tmp_path, capsys):
    """`run --sweep` of a ComfyUI API prompt ended in a 40-line traceback (the sweep path skipped the import
    that `run` does), and of a PNG in "'utf-8' codec can't decode byte 0x89": it reads the file as `run` does."""
    from PIL.PngImagePlugin import PngInfo

    prompt = {"1": {"class_type": "Int", "inputs": {"value": 4}},
              "2": {"class_type": "ShowValue", "inputs": {"value": ["1", 0]}}}
    api = tmp_path / "prompt_api.json"
    api.write_text(json.dumps(prompt))
    assert main(["run", str(api), "--sweep", "1.value=5,6", "--output-dir", str(tmp_path / "a"),
                 "--no-progress"]) == 0
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert [item["outputs"]["2"]["value"] for item in index["items"]] == [5, 6]
    assert index["graph"] == str(api) and "is a ComfyUI API prompt" in capsys.readouterr().err
    info = PngInfo()
    info.add_text("prompt", json.dumps(prompt))                 # a PNG as ComfyUI saves it
    png = tmp_path / "comfy.png"
    Image.new("RGB", (8, 8)).save(png, pnginfo=info)
    assert main(["run", str(png), "--sweep", "1.value=7", "--output-dir", str(tmp_path / "b"),
                 "--no-progress"]) == 0
    index = json.loads((tmp_path / "b" / "index.json").read_text())
    assert [item["outputs"]["2"]["value"] for item in index["items"]] == [7]
    broken = tmp_path / "broken.json"                            # not a graph: one error, exit 1 as `run` does
    broken.write_text("{\"nodes\": 3}")
    capsys.readouterr()
    assert main(["run", str(broken), "--sweep", "a.value=1", "--output-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip(), err


def test_every_batch_keeps_its_record(tmp_path):
    """index.json is the latest batch; index.jsonl gains one line per batch into the folder."""
    session = Session(output_dir=tmp_path / "out")
    session.map(ARITHMETIC, [{"width.value": 64}], output_dir=tmp_path / "sweep")
    session.map(ARITHMETIC, [{"width.value": 32}, {"width.value": 16}], output_dir=tmp_path / "sweep")
    latest = json.loads((tmp_path / "sweep" / "index.json").read_text())
    history = [json.loads(line) for line in (tmp_path / "sweep" / "index.jsonl").read_text().splitlines()]
    assert latest["variants"] == 2 and [h["variants"] for h in history] == [1, 2] and history[1] == latest


def _dot_png(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(folder / "dot.png")


def test_index_names_files_by_their_path_and_marks_cached_ones(tmp_path):
    """File names in index.json are paths inside the output folder; a variant served from the cache says so."""
    _dot_png(tmp_path / "in")
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    variants = [{"save.filename_prefix": "a"}, {"save.filename_prefix": "a"}, {"save.filename_prefix": "sub/a"}]
    items = session.map(SAVE_GRAPH, variants, output_dir=tmp_path / "sweep")
    files = [item.files[0] for item in items]
    assert [f["name"] for f in files] == ["a_00001.png", "a_00001.png", "sub/a_00001.png"]
    assert [f.get("from_cache", False) for f in files] == [False, True, False]
    assert all((tmp_path / "sweep" / f["name"]).is_file() for f in files)


class _OutOfOrderPool:
    """A stand-in WorkerPool: two slots; variant 0 finishes last, each returns one file named as a worker would."""

    total_slots = 2

    def __init__(self):
        self.finished: list[int] = []
        self.lock = threading.Lock()

    def execute(self, request, needs, on_event, stop=None):
        seed = request["graph"]["nodes"]["width"]["inputs"]["value"]
        time.sleep(0.3 if seed == 0 else 0.0)
        with self.lock:
            self.finished.append(seed)
        return {"status": "succeeded", "worker": f"w{seed}", "outputs": {"show": {"value": seed}},
                "files": [{"node_id": "save", "name": "sub/img_00001.png", "data": str(seed).encode(),
                           "kind": "image", "mime": "image/png"}]}


def test_remote_files_are_numbered_in_variant_order(tmp_path):
    """With a pool, files are written in variant order whatever order runs finish in; names include the subfolder."""
    session = Session(output_dir=tmp_path / "out")
    pool = _OutOfOrderPool()
    items = run_batch(session, ARITHMETIC, [{"width.value": v} for v in (0, 1, 2)], output_dir=tmp_path / "sw",
                      pool=pool)
    assert pool.finished[-1] == 0                                          # variant 0 really finished last
    names = [item.files[0]["name"] for item in items]
    assert names == ["sub/img_00001.png", "sub/img_00002.png", "sub/img_00003.png"]
    assert [(tmp_path / "sw" / n).read_bytes() for n in names] == [b"0", b"1", b"2"]


def test_cli_refuses_a_set_for_a_missing_node_in_a_batch_once(tmp_path, capsys):
    """In a batch, --set naming a node the graph lacks is one usage error, not one failure per variant."""
    assert main(["run", ARITHMETIC_PATH, "--sweep", "width.value=1,2", "--set", "ghost.value=1",
                 "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--set ghost.value: the graph has no node 'ghost'" in err


def test_a_sweep_keeps_the_nodes_warnings_the_base_graph_and_the_provenance(tmp_path, capsys):
    """A single run prints "never learnt the word(s) 'dog'"; a sweep dropped it and index.json held neither
    warnings nor provenance. Now each item keeps its warnings, the sweep prints each once naming the variants,
    and index.json holds the base graph (overrides applied: what each variant ran) and the provenance."""
    graph = json.loads(json.dumps(TXT2IMG))
    graph["nodes"]["prompt"]["inputs"]["text"] = "a red dog on the left, on a blue background"
    graph["nodes"]["latent"]["inputs"].update(width=32, height=32)
    path = tmp_path / "dog.json"
    path.write_text(json.dumps(graph))
    assert main(["run", str(path), "--sweep", "sampler.steps=1,2", "--output-dir", str(tmp_path / "sw"),
                 "--no-progress", "--no-plugins"]) == 0
    err = capsys.readouterr().err
    assert err.count("never learnt the word(s) 'dog'") == 1 and "in every variant" in err
    index = json.loads((tmp_path / "sw" / "index.json").read_text())
    assert all(any("'dog'" in w["message"] for w in item["warnings"]) for item in index["items"])
    assert index["base_graph"]["nodes"]["prompt"]["inputs"]["text"].endswith("blue background")
    assert index["provenance"]["models"]["checkpoint.ckpt_name"]["sha256"]
    assert index["provenance"]["nodegraph"]


def test_worker_flags_without_ray_are_a_usage_error(capsys):
    """`--workers 3` without --ray was accepted and ignored; it is a usage error saying to add --ray."""
    assert main(["run", ARITHMETIC_PATH, "--workers", "3", "--no-plugins"]) == 2
    assert "--workers applies to Ray workers only; add --ray" in capsys.readouterr().err
    from nodegraph.server import main as serve_main

    assert serve_main(["--worker-gpus", "1", "--retry", "never", "--port", "0"]) == 2
    assert "--worker-gpus, --retry apply to Ray workers only" in capsys.readouterr().err


def test_a_variant_that_reads_other_files_names_them_in_its_item(tmp_path):
    """index.json's provenance named only the base graph's files: a sweep over the source image (or the
    checkpoint) recorded no hash for what the other variants read. Each item now carries the `inputs` /
    `models` entries in which it differs from the base's; a variant reading the base's files carries none."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(inputs / "dot.png")
    Image.new("RGB", (4, 4), (0, 0, 255)).save(inputs / "other.png")
    session = Session(input_dir=inputs, output_dir=tmp_path / "out")
    run_batch(session, SAVE_GRAPH, [{"load.image": "dot.png"}, {"load.image": "other.png"}, {}],
              output_dir=tmp_path / "out")
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    base = index["provenance"]["inputs"]["load.image"]
    assert base["name"] == "dot.png"
    first, second, third = index["items"]
    assert "provenance" not in first and "provenance" not in third
    other = second["provenance"]["inputs"]["load.image"]
    assert other["name"] == "other.png" and other["sha256"] != base["sha256"]
    assert "models" not in second["provenance"]


def test_a_sweep_finds_an_input_the_file_leaves_at_its_default_as_set_does(tmp_path, capsys):
    """`--set quality=80` found SaveImage's declared input; `--sweep quality=50,90` said no node has it, and its fix
    pointed at `nodegraph validate`, which lists no node ids. Now both find it, and the error lists the nodes."""
    inputs = tmp_path / "in"
    _dot_png(inputs)
    path = tmp_path / "save.json"
    path.write_text(json.dumps(SAVE_GRAPH))
    common = ["--input-dir", str(inputs), "--output-dir", str(tmp_path / "out"), "--no-progress", "--no-plugins"]
    assert main(["run", str(path), "--sweep", "quality=50,90", "--set", "save.format=jpeg", *common]) == 0
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [item["overrides"] for item in index["items"]] == [{"save.format": "jpeg", "save.quality": 50},
                                                              {"save.format": "jpeg", "save.quality": 90}]
    capsys.readouterr()
    assert main(["run", str(path), "--sweep", "nonsense=1,2", *common]) == 2
    assert "the graph's nodes: load (LoadImage), save (SaveImage)" in capsys.readouterr().err


def test_seeds_swept_closer_than_the_batch_size_are_warned():
    """Batch item k uses seed + k: `--set batch_size=2 --sweep seed=42..43` drew seed 43's image twice, silently."""
    from nodegraph.distributed.batch import seed_overlap_warning

    graph = Session().load(TXT2IMG)
    assert seed_overlap_warning(graph, [{"sampler.seed": 42}, {"sampler.seed": 43}]) is None      # batch 1
    close = [{"latent.batch_size": 2, "sampler.seed": s} for s in (42, 43)]
    warning = seed_overlap_warning(graph, close)
    assert "seeds 42 and 43 draw 1 image(s) twice" in warning and "seed=42..44:2" in warning
    apart = [{"latent.batch_size": 2, "sampler.seed": s} for s in (42, 44, 46)]
    assert seed_overlap_warning(graph, apart) is None
