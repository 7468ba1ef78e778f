"""ImageFolderDataset's `folder` naming the input folder itself ('.'), and what validation says of a folder input
(an attacker's finding: '.' was refused, "./" was told to write the refused '.', a missing folder was told to be
uploaded though no folder can be, and a file named as the folder passed validation to fail at run time)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from nodegraph import Session
from nodegraph.paths import PathConfinementError, check_name


def _dataset(folder: str) -> dict:
    return {"format_version": 2, "nodes": {
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": folder, "size": 8}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "data", "output": "report"}}}}}


def _flat_dataset(folder: Path, count: int = 3) -> None:
    """`count` captioned images directly in `folder`, and one uncaptioned in its `cats/`."""
    (folder / "cats").mkdir(parents=True)
    for index in range(count):
        Image.new("RGB", (16, 16), (index * 60, 20, 20)).save(folder / f"a{index}.png")
        (folder / f"a{index}.txt").write_text("a red square")
    Image.new("RGB", (16, 16)).save(folder / "cats" / "x.png")


def _errors(session: Session, folder: str, input_dir: Path) -> list:
    return [e for e in session.validate(_dataset(folder), input_dir=input_dir) if e.node_id == "data"]


def test_dot_names_the_input_folder_itself_and_the_dataset_reads_it(tmp_path):
    """A flat dataset directly in the input folder ('.'), with the subfolders inside it, as kohya reads its
    train_data_dir; linked in from a String node too."""
    _flat_dataset(tmp_path / "in")
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    assert _errors(session, ".", tmp_path / "in") == []
    report = session.run(_dataset(".")).outputs["show"]["value"]
    assert report.startswith("3 images used, 1 skipped") and "cats/x.png" in report, report
    linked = {"format_version": 2, "nodes": {
        "s": {"type": "String", "inputs": {"value": "."}},
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": {"node": "s", "output": "value"}, "size": 8}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "data", "output": "report"}}}}}
    assert session.run(linked).outputs["show"]["value"] == report
    Image.new("RGB", (16, 16)).save(tmp_path / "in" / "new.png")      # a file added: the folder is read again
    (tmp_path / "in" / "new.txt").write_text("a black square")
    assert session.run(_dataset(".")).outputs["show"]["value"].startswith("4 images used"), "a stale dataset"


@pytest.mark.parametrize("folder, rule", [("..", "parent"), ("./cats", "dot"), ("cats/.", "dot"), ("a/../cats", "parent"),
                                          ("./", "dot"), ("/", "absolute"), (".//", "dot")])
def test_other_ways_of_writing_dot_are_still_refused(tmp_path, folder, rule):
    """Exactly '.' is the input folder itself; `..`, `./x` and other oddities are refused as before, and those
    that meant the input folder itself ("./", "/") say to write '.'."""
    _flat_dataset(tmp_path / "in")
    (errors,) = _errors(Session(input_dir=tmp_path / "in"), folder, tmp_path / "in")
    assert errors.code == "invalid_value" and errors.details["rule"] == rule, errors
    meant_itself = folder.strip("/") in ("", ".")
    assert ("the input folder itself is named '.'" in errors.message) == meant_itself, errors.message


def test_dot_is_a_folder_inputs_name_only():
    """A run name (a folder in the output folder) or an image's file name still refuses '.'; and "./" there is
    no longer told to write the '.' that is then refused."""
    for subfolders in (True, False):
        with pytest.raises(PathConfinementError) as info:
            check_name(".", subfolders=subfolders)
        assert info.value.rule == "dot"
    with pytest.raises(PathConfinementError) as info:
        check_name("./", subfolders=True)
    assert "a folder is named without it" not in info.value.message, info.value.message
    with pytest.raises(PathConfinementError) as info:
        check_name("runs/", subfolders=True)
    assert "a folder is named without it: 'runs'" in info.value.message      # a suggestion that is taken


def test_a_missing_folder_says_to_upload_its_files_into_a_subfolder(tmp_path):
    """No folder can be uploaded: the message names the upload's `subfolder` (and where the docs say it), lists
    the folders there (not files, which a folder input refuses) and the files '.' would read."""
    _flat_dataset(tmp_path / "in")
    (error,) = _errors(Session(input_dir=tmp_path / "in"), "cat", tmp_path / "in")
    assert error.code == "not_in_choices"
    assert "Did you mean 'cats'?" in error.message and "Folders there: 'cats/'" in error.message
    assert "'a0.png'" not in error.message and "'.', the input folder itself, holds 6 file(s)" in error.message
    assert "`subfolder`" in error.message and "Training on a server" in error.message
    assert "Upload it (the editor)" not in error.message
    (none,) = _errors(Session(input_dir=tmp_path / "nowhere"), "img", tmp_path / "nowhere")
    assert "does not exist yet" in none.message and "`subfolder`" in none.message, none.message


def test_a_file_named_as_the_folder_is_refused_at_validation(tmp_path):
    """`folder: "a0.png"` passed validation and failed only when the run reached the node."""
    _flat_dataset(tmp_path / "in")
    (error,) = _errors(Session(input_dir=tmp_path / "in"), "a0.png", tmp_path / "in")
    assert error.code == "not_in_choices" and "is a file; name a folder" in error.message, error.message
    assert "'.' is the input folder itself" in error.message
