"""`nodegraph templates` is a listing a newcomer skims: one line per template (the description's first sentence),
the demos first and the training graphs under their own heading; `--json` keeps every description whole."""

from __future__ import annotations

import json

from nodegraph.cli import main
from nodegraph.templates import is_training_template, summary


def test_a_summary_is_the_first_sentence_cut_at_a_word():
    """Descriptions of 1,000 characters were printed whole; a decimal point or "e.g." does not end a sentence."""
    assert summary("CFG 1, 2 and 7.5 side by side. Large checkpoints depend on it more.") == \
        "CFG 1, 2 and 7.5 side by side."
    long = "word " * 60 + "end."
    cut = summary(long)
    assert len(cut) <= 120 and cut.endswith("word…")
    assert summary("") == ""


def test_training_templates_are_told_apart_by_folder_or_name():
    """The editor's Templates menu groups by the same rule (web/src/run/templates.ts isTrainingTemplate)."""
    assert is_training_template("project/train/train_tiny_world_v6f.json")
    assert is_training_template("safety/train_safety_checker.json")
    assert not is_training_template("project/txt2img.json")
    assert not is_training_template("project/trainer_demo.json")


def test_the_listing_puts_demos_first_and_training_graphs_after_a_heading(capsys):
    """The shipped project's demos come before its training graphs; no line is a paragraph."""
    assert main(["templates", "--no-plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("Training graphs"))
    where = {line.split("  ", 1)[0]: i for i, line in enumerate(lines) if line.startswith("project/")}
    demos = [i for template, i in where.items() if not is_training_template(template)]
    training = [i for template, i in where.items() if is_training_template(template)]
    assert "project/txt2img.json" in where and len(training) > 10
    assert max(demos) < heading < min(training)
    assert max(len(line) for line in lines) < 400


def test_json_keeps_the_whole_description(capsys):
    """Scripts read `--json`: the full text, not the summary."""
    assert main(["templates", "--no-plugins", "--json"]) == 0
    listed = {entry["id"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert len(listed["project/cfg_sweep.json"]["description"]) > 200
