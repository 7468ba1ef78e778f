"""Command-line messages a newcomer met in the first hour: `--set prompt=...` (a node's id, not an input's name)
and a --model-paths YAML file that does not exist."""

from __future__ import annotations

from pathlib import Path

from nodegraph.cli import main

TXT2IMG = str(Path(__file__).resolve().parents[2] / "graphs" / "txt2img.json")


def said(capsys) -> str:
    """Everything the command printed (validate reports a graph's errors on stdout, usage errors on stderr)."""
    out, err = capsys.readouterr()
    return out + err


def test_set_with_a_node_id_suggests_the_nodes_text_input(capsys):
    """`--set prompt=...` listed the nodes but never said that `prompt.text` was meant."""
    assert main(["validate", TXT2IMG, "--set", "prompt=a red square"]) != 0
    assert "'prompt' is a node, not an input: did you mean --set prompt.text=...?" in said(capsys)


def test_set_with_an_unknown_name_gets_no_node_hint(capsys):
    """A key that names neither an input nor a node keeps the plain message."""
    assert main(["validate", TXT2IMG, "--set", "zorb=1"]) != 0
    text = said(capsys)
    assert "no node of the graph has an input named 'zorb'" in text and "is a node" not in text


def test_a_missing_yaml_model_paths_file_says_it_does_not_exist(tmp_path, capsys):
    """The README's `--model-paths ~/ComfyUI/extra_model_paths.yaml`, without that file, said "it should be a JSON
    object": the path was wrong, not the format."""
    assert main(["validate", TXT2IMG, "--model-paths", str(tmp_path / "extra_model_paths.yaml")]) == 2
    text = said(capsys)
    assert "the file does not exist; check the path" in text and "JSON object" not in text


def test_the_servers_default_data_folder_is_git_ignored():
    """`nodegraph serve` from the checkout (as the README shows) left `.nodegraph/`, the run history with its
    prompts, as an untracked folder that was easy to commit."""
    import inspect

    from nodegraph.server import Server

    root = Path(__file__).resolve().parents[2]
    default = inspect.signature(Server.__init__).parameters["data_dir"].default
    ignored = {line.strip() for line in (root / ".gitignore").read_text().splitlines()}
    assert f"{default}/" in ignored or f"/{default}/" in ignored
