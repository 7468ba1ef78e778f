"""Names that display as other names, and hidden output names (hostile5, findings 10 and 11): upload subfolders
`．．/bob` (fullwidth dots), `․․/x` (one-dot leaders), `a\\u200b/b` (a zero-width space), `" a"` (a leading space) and
both `é` and `e\\u0301` (two folders that look the same) were accepted; a SaveImage `filename_prefix` of
`.partial-0123456789ab.x` wrote a hidden file that counted in the quota, was never listed, and was deleted by the
next start's sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodegraph import NodeContext, api
from nodegraph.errors import PathConfinementError
from nodegraph.files import FileAccessError, FileStore, sanitise_name
from nodegraph.paths import check_name
from nodegraph.registry import Registry


@pytest.mark.parametrize("subfolder, said", [
    ("\uff0e\uff0e/bob", "reads as '..'"), ("\u2024\u2024/x", "reads as '..'"), ("a/\u2025", "reads as '..'"),
    ("a\u200b/b", "U+200B"), ("\ufeffa", "U+FEFF"), (" a", "starts or ends with a space"),
    ("a/ b", "starts or ends with a space"), ("e\u0301", "name it 'é'"), ("\uff41", "name it 'a'"),
    ("\uff23\uff2f\uff2e", "reads as 'CON'"),
])
def test_look_alike_upload_folders_are_refused(tmp_path, subfolder, said):
    """Each is refused with the reason and the plain name to use; nothing is created."""
    store = FileStore(tmp_path / "in", tmp_path / "out")
    with pytest.raises(FileAccessError, match="upload subfolder") as info:
        store.save_upload("a.txt", b"x", kind="caption", subfolder=subfolder)
    assert said in str(info.value)
    assert not (tmp_path / "in").exists() or list((tmp_path / "in").rglob("*")) == []


@pytest.mark.parametrize("subfolder", ["img/10_zorb", "café", "日本/写真", "a b/c-d", "x.y"])
def test_plain_upload_folders_are_still_accepted(tmp_path, subfolder):
    """Names accepted before stay accepted: precomposed accents, CJK, inner spaces, dots inside."""
    store = FileStore(tmp_path / "in", tmp_path / "out")
    assert store.save_upload("a.txt", b"x", kind="caption", subfolder=subfolder) == f"input/{subfolder}/a.txt"


@pytest.mark.parametrize("name, rule", [
    ("\uff0e\uff0e/bob", "lookalike"), ("a/\u2024\u2024/b", "lookalike"), ("\uff0e", "lookalike"),
    ("\uff23\uff2f\uff2e.png", "lookalike"), ("a\uff0fb", "lookalike"), ("a\u200b.png", "format_character"),
    ("\u00adx.png", "format_character"), ("x\u202egnp.exe", "bidi_control"),
])
def test_the_shared_name_check_refuses_invisible_characters_and_look_alikes_of_special_names(name, rule):
    """Every name a graph gives (prefixes, dataset folders, model names) is refused the same way."""
    with pytest.raises(PathConfinementError) as info:
        check_name(name, subfolders=True)
    assert info.value.rule == rule


@pytest.mark.parametrize("name", ["写真：夏.png", "x².png", "ｆｉｌｅ.png", "e\u0301.png", " a.png", "日" * 80])
def test_the_shared_name_check_keeps_other_names_it_accepted(name):
    """Compatibility characters that read as nothing special (a Japanese fullwidth colon, a superscript, fullwidth
    letters) stay accepted where names are files that already exist (models, LoadImage)."""
    check_name(name, subfolders=True)


def test_uploaded_file_names_are_sanitised_of_look_alikes():
    """Upload file names (not folders) are sanitised, not refused (as before this fix): look-alike dots, spaces and
    invisible characters become '_', and a leading one goes."""
    assert sanitise_name("a\uff0e\uff0eb.png") == "a_b.png" and sanitise_name("\u2024\u2024/x.png") == "x.png"
    assert sanitise_name("a\u200bb.png") == "a_b.png" and sanitise_name(" a.png") == "a.png"
    assert sanitise_name("e\u0301.png") == "é.png"


def make_context(tmp_path: Path) -> NodeContext:
    """A node context whose output folder is tmp_path / "out"."""
    services = {"output_dir": tmp_path / "out", "registry": Registry()}
    return NodeContext("n", "Test", lambda *a: None, lambda node_id: None, services, run_id="r")


@pytest.mark.parametrize("prefix", [".partial-0123456789ab.x", "runs/.hidden", ".cache/img"])
def test_hidden_output_names_are_refused(tmp_path, prefix):
    """A prefix whose file or folder part starts with '.' is refused, naming the input and why; nothing is
    written."""
    with pytest.raises(api.ApiArgumentError) as info:
        api.save_files(make_context(tmp_path), [b"x"], kind="text", prefix=prefix, suffix=".txt",
                       argument="filename_prefix")
    assert info.value.input == "filename_prefix" and "starts with '.'" in str(info.value)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_a_prefix_with_dots_inside_is_still_accepted(tmp_path):
    """Dots inside a name ("v1.5/run.a") are no hidden name."""
    (saved,) = api.save_files(make_context(tmp_path), [b"x"], kind="text", prefix="v1.5/run.a", suffix=".txt")
    assert saved["name"].startswith("v1.5/run.a_")
