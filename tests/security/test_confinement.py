"""One confinement rule (nodegraph/paths.py) and every node input that names a file or folder goes through it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nodegraph import GraphValidationError, NodeExecutionError, NodeInputError, Session
from nodegraph.model_paths import ModelPaths
from nodegraph.paths import MAX_COMPONENT_BYTES, MAX_NAME_BYTES, PathConfinementError, confine, is_inside

from .conftest import link

BAD_NAMES = [
    ("", "empty"),
    ("   ", "empty"),
    ("/etc/passwd", "absolute"),
    ("//server/share", "absolute"),
    ("C:/Windows/win.ini", "drive"),
    ("c:boot.ini", "drive"),
    ("..", "parent"),
    ("../secret", "parent"),
    ("runs/../../x", "parent"),
    ("runs/./x", "dot"),
    ("a\\..\\b", "backslash"),
    ("name\x00.png", "control_character"),
    ("line\nbreak", "control_character"),
    ("tab\there", "control_character"),
    ("x\ud800.png", "not_text"),          # a lone surrogate: realpath raised UnicodeEncodeError (a hostile pass)
    ("x\u202egnp.exe", "bidi_control"),     # listed as "xexe.png" (a hostile pass's finding)
    ("runs/\u2067a", "bidi_control"),
    ("runs//x", "empty_component"),
    ("runs/", "empty_component"),
    ("lv/<>|?*", "reserved_character"),
    ('out"put', "reserved_character"),
    ("ab:c.png", "reserved_character"),
    ("CON", "reserved_name"),
    ("runs/nul.txt", "reserved_name"),
    ("COM¹.txt", "reserved_name"),          # Windows reads COM¹ as COM1 (a hostile pass's finding)
    ("report.", "trailing_dot"),            # Windows drops a trailing dot or space: "report." is "report"
    ("runs/x /y", "trailing_dot"),
    ("x" * (MAX_COMPONENT_BYTES + 1), "too_long"),
    ("/".join(["abcdefgh"] * 200), "too_long"),
    (42, "not_text"),
]


@pytest.mark.parametrize("name, rule", BAD_NAMES, ids=[r for _, r in BAD_NAMES])
def test_every_rule_refuses_its_class_of_name(tmp_path, name, rule):
    """Each class of bad name is refused with its stable rule code, the input name and the value."""
    with pytest.raises(PathConfinementError) as info:
        confine(tmp_path, name, what="run name", input_name="run_name", subfolders=True)
    assert info.value.rule == rule
    assert info.value.input == "run_name" and info.value.value == name
    assert isinstance(info.value, NodeInputError)
    assert "run name" in str(info.value) and "inside" in str(info.value)     # what it is and the fix


def test_a_folder_with_a_trailing_slash_is_told_its_name_without_it(tmp_path):
    """'mydata/' (a shell's tab completion adds the '/') was refused as "an empty component ('//' or a '/' at either
    end)"; the message now gives the name to write."""
    with pytest.raises(PathConfinementError) as info:
        confine(tmp_path, "my data/sub/", what="folder", input_name="folder", subfolders=True)
    assert info.value.rule == "empty_component" and "ends in '/'" in str(info.value)
    assert "'my data/sub')" in str(info.value)


def test_good_names_stay_under_the_root(tmp_path):
    """Plain names, dotted names and (where allowed) subfolders resolve to root / name."""
    assert confine(tmp_path, "vae") == tmp_path / "vae"
    assert confine(tmp_path, "tiny_world.v2.safetensors") == tmp_path / "tiny_world.v2.safetensors"
    assert confine(tmp_path, "runs/a", subfolders=True) == tmp_path / "runs" / "a"
    assert confine(tmp_path, "x" * MAX_COMPONENT_BYTES) == tmp_path / ("x" * MAX_COMPONENT_BYTES)
    assert confine(tmp_path / "missing", "new") == tmp_path / "missing" / "new"   # the root need not exist


def test_subfolders_only_where_allowed(tmp_path):
    """A '/' is refused unless the caller allows subfolders."""
    with pytest.raises(PathConfinementError) as info:
        confine(tmp_path, "runs/a")
    assert info.value.rule == "subfolder"


def test_total_length_is_bounded(tmp_path):
    """A name over MAX_NAME_BYTES is refused even when each component is short."""
    name = "/".join(["d" * 100] * (MAX_NAME_BYTES // 100 + 1))
    with pytest.raises(PathConfinementError, match="longer than"):
        confine(tmp_path, name, subfolders=True)


def test_symlinks_leading_out_are_refused(tmp_path):
    """A symlinked folder or file inside the root that points outside it is refused (real path checked)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, root / "escape")
    os.symlink(outside / "secret.txt", root / "secret.txt")
    os.symlink(root, root / "self")
    for name in ("escape", "escape/secret.txt", "escape/new_file", "secret.txt"):
        with pytest.raises(PathConfinementError) as info:
            confine(root, name, subfolders=True)
        assert info.value.rule == "outside_root"
    assert not is_inside(root, root / "self")                       # a link to the root itself is not inside it
    assert confine(root, "escape", subfolders=True, links_out=True) == root / "escape"   # model folders only
    (root / "inner").mkdir()
    os.symlink(root / "inner", root / "inner_link")
    assert confine(root, "inner_link/x", subfolders=True) == root / "inner_link" / "x"   # links inside are fine


def test_model_names_resolve_only_inside_model_folders(tmp_path):
    """ModelPaths.resolve refuses escapes and files without the folder's extensions; owner links still work."""
    models = tmp_path / "models"
    (models / "checkpoints" / "sd").mkdir(parents=True)
    (models / "checkpoints" / "sd" / "a.safetensors").write_bytes(b"x")
    (models / "checkpoints" / "notes.txt").write_text("not a model")
    elsewhere = tmp_path / "disk2"
    elsewhere.mkdir()
    (elsewhere / "big.safetensors").write_bytes(b"y")
    os.symlink(elsewhere / "big.safetensors", models / "checkpoints" / "big.safetensors")
    paths = ModelPaths(roots=[models])
    assert paths.resolve("checkpoints", "sd/a.safetensors") == models / "checkpoints" / "sd" / "a.safetensors"
    assert paths.resolve("checkpoints", "big.safetensors").read_bytes() == b"y"    # the owner linked it in
    for name in ("../../etc/passwd", "/etc/passwd", "sd\\a.safetensors", "a\x00.safetensors", "notes.txt", ""):
        with pytest.raises(LookupError):
            paths.resolve("checkpoints", name)


def test_model_listings_show_only_what_resolves(tmp_path):
    """A dangling link or a FIFO with a model suffix was listed, then 'not found' when chosen."""
    folder = tmp_path / "models" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "real.safetensors").write_bytes(b"x")
    os.symlink(tmp_path / "gone.safetensors", folder / "dangling.safetensors")
    os.mkfifo(folder / "pipe.safetensors")
    paths = ModelPaths(roots=[tmp_path / "models"])
    listed, _ = paths.list("checkpoints")
    assert listed == ["real.safetensors"]
    for name in ("dangling.safetensors", "pipe.safetensors"):
        with pytest.raises(LookupError) as info:
            paths.resolve("checkpoints", name)
        # the folders as validation shows them: a server's client does not learn where it is installed
        assert "looked in: models/checkpoints" in str(info.value) and str(tmp_path) not in str(info.value)


# --- nodes -----------------------------------------------------------------------------------------


def _train_vae_graph(run_name: str) -> dict:
    return {"format_version": 1, "nodes": {
        "data": {"type": "TinyWorldDataset", "inputs": {"count": 4, "size": 16}},
        "vae": {"type": "TrainVAE", "inputs": {"dataset": link("data", "dataset"), "width": 32, "channel_mult": "1",
                                               "steps": 1, "batch_size": 2, "run_name": run_name}},
        "show": {"type": "ShowValue", "inputs": {"value": link("vae", "report")}}}}


def _train_unet_graph() -> dict:
    """`_train_vae_graph` plus a one-step TrainDiffusion on it (run name "unet"), for nodes that need a model."""
    graph = _train_vae_graph("vae")
    graph["nodes"]["unet"] = {"type": "TrainDiffusion", "inputs": {
        "dataset": link("data", "dataset"), "vae": link("vae", "vae"), "model_channels": 32, "channel_mult": "1",
        "res_blocks": 1, "attention_levels": "1", "heads": 2, "text_width": 32, "text_layers": 1, "steps": 1,
        "batch_size": 2, "warmup_steps": 0, "run_name": "unet"}}
    return graph


def refusal(session: Session, graph: dict) -> tuple[str, str | None, str | None, str]:
    """(node id, input, rule, stage) of a file name `session.run` refuses: names the rule refuses as text are
    refused by validation, before any node runs (`Input(file_name_in=...)`); a symlink out, by the node."""
    try:
        session.run(graph)
    except GraphValidationError as exc:
        [error] = exc.errors
        return error.node_id, error.input, (error.details or {}).get("rule"), "validation"
    except NodeExecutionError as exc:
        assert isinstance(exc.exception, PathConfinementError)
        return exc.node_id, exc.exception.input, exc.exception.rule, "run"
    raise AssertionError("the name was not refused")


@pytest.mark.parametrize("run_name", ["/tmp/evil_run", "../../evil", "runs/../../evil", "a\\b", "x\x00"])
def test_training_run_names_cannot_leave_the_training_folder(tmp_path, run_name):
    """TrainVAE refuses an absolute / '..' / odd run_name before training, naming run_name; nothing is written."""
    session = Session(output_dir=tmp_path / "out")
    node_id, name, _rule, stage = refusal(session, _train_vae_graph(run_name))
    assert (node_id, name, stage) == ("vae", "run_name", "validation")
    assert not (tmp_path / "out" / "training").exists() or not any((tmp_path / "out" / "training").rglob("*"))
    assert not os.path.exists("/tmp/evil_run/training_state.safetensors")


def test_diffusion_and_controlnet_run_names_are_confined_too(tmp_path):
    """TrainDiffusion and TrainControlNet refuse a run_name leaving output/training, naming run_name."""
    graph = _train_unet_graph()
    graph["nodes"]["control"] = {"type": "TrainControlNet", "inputs": {
        "dataset": link("data", "dataset"), "model": link("unet", "model"), "text_encoder": link("unet", "text_encoder"),
        "vae": link("vae", "vae"), "steps": 1, "batch_size": 2, "warmup_steps": 0, "run_name": "/tmp/evil_control"}}
    graph["nodes"]["show"] = {"type": "ShowValue", "inputs": {"value": link("control", "report")}}
    session = Session(output_dir=tmp_path / "out")
    assert refusal(session, graph) == ("control", "run_name", "absolute", "validation")
    graph["nodes"]["control"]["inputs"]["run_name"] = "control"
    graph["nodes"]["unet"]["inputs"]["run_name"] = "../../evil_unet"
    assert refusal(session, graph) == ("unet", "run_name", "parent", "validation")
    assert not (tmp_path / "evil_unet").exists() and not os.path.exists("/tmp/evil_control")


def test_training_run_name_through_a_symlink_is_refused(tmp_path):
    """A run folder that is a symlink leading out of output/training is refused."""
    (tmp_path / "out" / "training").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "out" / "training" / "linked")
    session = Session(output_dir=tmp_path / "out")
    with pytest.raises(NodeExecutionError) as info:
        session.run(_train_vae_graph("linked"))
    assert info.value.exception.rule == "outside_root"
    assert not any((tmp_path / "elsewhere").iterdir())


def test_training_run_names_with_subfolders_work(tmp_path):
    """A run name like runs/a trains under output/training/runs/a."""
    session = Session(output_dir=tmp_path / "out")
    session.run(_train_vae_graph("runs/a"))
    assert (tmp_path / "out" / "training" / "runs" / "a" / "training_state.safetensors").is_file()


def _save_image_graph(prefix: str) -> dict:
    return {"format_version": 1, "nodes": {
        "img": {"type": "RenderTinyWorld", "inputs": {"size": 16}},
        "save": {"type": "SaveImage", "inputs": {"images": link("img", "image"), "filename_prefix": prefix}}}}


@pytest.mark.parametrize("prefix", ["/tmp/evil", "../evil", "a/../../evil", "C:/evil", "a\\evil", ""])
def test_save_image_prefixes_stay_in_the_output_folder(tmp_path, prefix):
    """SaveImage refuses prefixes that leave the output folder (or are empty), naming filename_prefix."""
    session = Session(output_dir=tmp_path / "out")
    with pytest.raises(Exception) as info:      # "" fails validation (min_length); the rest at run time
        session.run(_save_image_graph(prefix))
    assert "filename_prefix" in str(info.value)
    assert not (tmp_path / "evil_00001.png").exists()


def test_save_image_through_a_symlinked_subfolder_is_refused(tmp_path):
    """A prefix whose subfolder is a symlink leading out of the output folder is refused."""
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "out" / "sub")
    session = Session(output_dir=tmp_path / "out")
    with pytest.raises(NodeExecutionError) as info:
        session.run(_save_image_graph("sub/cat"))
    assert info.value.exception.rule == "outside_root"
    assert not any((tmp_path / "elsewhere").iterdir())
    result = session.run(_save_image_graph("cats/tabby"))                         # a real subfolder is fine
    assert result.outputs["save"]["files"][0]["path"].endswith("cats/tabby_00001.png")


def _dataset_graph(folder: str) -> dict:
    return {"format_version": 1, "nodes": {
        "data": {"type": "ImageFolderDataset", "inputs": {"folder": folder, "size": 8}},
        "show": {"type": "ShowValue", "inputs": {"value": link("data", "report")}}}}


def _write_image(path, value=128):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    path.with_suffix(".txt").write_text("a grey square")


@pytest.mark.parametrize("folder", ["/etc", "..", "../..", "data/../../x"])
def test_dataset_folders_stay_in_the_input_folder(tmp_path, folder):
    """ImageFolderDataset refuses dataset folders outside the input folder, naming `folder`."""
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    _node_id, name, _rule, stage = refusal(session, _dataset_graph(folder))
    assert (name, stage) == ("folder", "validation")


def test_dataset_skips_files_linked_from_outside(tmp_path):
    """Inside a dataset folder, image files and folders that are symlinks to elsewhere are never read."""
    _write_image(tmp_path / "in" / "data" / "own.png")
    _write_image(tmp_path / "outside" / "secret.png", value=10)
    _write_image(tmp_path / "outside" / "sub" / "deep.png", value=20)
    os.symlink(tmp_path / "outside" / "secret.png", tmp_path / "in" / "data" / "secret.png")
    os.symlink(tmp_path / "outside" / "secret.txt", tmp_path / "in" / "data" / "secret.txt")
    os.symlink(tmp_path / "outside" / "sub", tmp_path / "in" / "data" / "sub")
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    result = session.run(_dataset_graph("data"))
    report = result.outputs["show"]["value"]
    assert report.startswith("1 image used, 1 skipped") and "1 outside the folder" in report
    assert "1 linked folder(s) not entered" in report         # a folder link was left out without a count
    (warning,) = [w for w in result.warnings if "skipped" in w["message"]]   # said, not only in the report output
    assert "1 skipped" in warning["message"] and "linked folder" in warning["message"]


def _load_image_graph(name: str) -> dict:
    return {"format_version": 1, "nodes": {
        "load": {"type": "LoadImage", "inputs": {"image": name}},
        "show": {"type": "ShowValue", "inputs": {"value": link("load", "mask")}}}}


def test_load_image_names_stay_in_the_input_folder(tmp_path):
    """LoadImage refuses names that leave the input folder, including a symlink to a file elsewhere: validation
    refuses them all (a run is never started), and the run's own file resolution refuses the symlink too (it
    could appear after validation)."""
    _write_image(tmp_path / "outside" / "secret.png")
    _write_image(tmp_path / "in" / "ok.png")
    os.symlink(tmp_path / "outside" / "secret.png", tmp_path / "in" / "linked.png")
    session = Session(input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    assert session.run(_load_image_graph("ok.png")).outputs["show"]["value"].shape == (1, 8, 8)
    for name, rule, stage in (("../outside/secret.png", "parent", "validation"),     # named as a way out
                              ("/etc/hostname", "absolute", "validation"),
                              ("linked.png", "outside_root", "validation")):
        assert refusal(session, _load_image_graph(name))[1:] == ("image", rule, stage)
    with pytest.raises(LookupError, match="outside its folder through a symbolic link"):
        session.resolve_file("input", "linked.png")
    # a subfolder of the input folder is fine (ComfyUI's mask editor saves clipspace/...png; a migrant copies the
    # folder over), one whose link leads out is not
    _write_image(tmp_path / "in" / "clipspace" / "mask.png")
    assert session.run(_load_image_graph("clipspace/mask.png")).outputs["show"]["value"].shape == (1, 8, 8)
    os.symlink(tmp_path / "outside", tmp_path / "in" / "elsewhere")
    assert refusal(session, _load_image_graph("elsewhere/secret.png"))[1:] == ("image", "outside_root", "validation")
    with pytest.raises(LookupError, match="outside its folder through a symbolic link"):
        session.resolve_file("input", "elsewhere/secret.png")


@pytest.mark.parametrize("filename", ["../evil.safetensors", "/tmp/evil.safetensors", "sub/evil.safetensors",
                                      "evil.pt", ".hidden.safetensors", "a\x00.safetensors"])
def test_checkpoint_file_names_are_plain_names_in_the_model_folder(tmp_path, tiny_parts, filename):
    """SaveCheckpoint refuses any filename but a plain .safetensors name, naming `filename`, writing nothing."""
    from nodegraph.node import NodeContext
    from nodes.models.nodes import TextEncoder, diffusion_model
    from nodes.training.nodes import SaveCheckpoint

    unet, vae, encoder = tiny_parts
    node = SaveCheckpoint()
    node.context = NodeContext("save", "SaveCheckpoint", lambda *a: None, lambda nid: None,
                               {"model_paths": ModelPaths(roots=[tmp_path / "models"])})
    with pytest.raises(NodeInputError) as info:
        node.run(diffusion_model(unet, "m"), TextEncoder(encoder, "sd1"), vae, filename, "fp16", "", False)
    assert info.value.input == "filename"
    assert not (tmp_path / "evil.safetensors").exists() and not (tmp_path / "models").exists()


def test_upload_names_that_are_device_names_are_renamed_not_refused():
    """An upload called CON or nul.png is kept under a safe name (the docs promise upload names are sanitised):
    the result always passes the confinement rule."""
    from nodegraph.files import sanitise_name

    for name, safe in (("CON", "upload_CON"), ("nul.png", "upload_nul.png"), ("com1.txt.png", "upload_com1.txt.png"),
                       ("console.png", "console.png"), ("../x.png", "x.png")):
        assert sanitise_name(name) == safe
        confine("/tmp", safe)


@pytest.mark.parametrize("node_type", ["SaveCheckpoint", "SaveControlNet", "SaveLoRA"])
@pytest.mark.parametrize("filename, ok", [("noext", False), ("x.ckpt", False), (".safetensors", False),
                                          (".hidden.safetensors", False), ("mine.safetensors", True)])
def test_model_file_names_need_their_suffix_at_validation(tmp_path, node_type, filename, ok):
    """A save node's file name is checked before the run (a training graph would otherwise train for an hour and
    then refuse the name): it must end in .safetensors, and stay a plain name in its model folder."""
    errors = Session(output_dir=tmp_path).validate(
        {"format_version": 2, "nodes": {"save": {"type": node_type, "inputs": {"filename": filename}}}})
    named = [e for e in errors if e.input == "filename"]
    assert bool(named) != ok, named
    if not ok:
        assert ".safetensors" in named[0].message and named[0].code == "invalid_value"


def test_lcm_and_flow_run_names_are_refused_at_validation(tmp_path):
    """DistillLCM's and TrainFlow's run_name are file names in the output folder like the other training
    nodes': a '..' or absolute name is refused before any node runs, naming run_name."""
    graph = _train_unet_graph()
    graph["nodes"]["lcm"] = {"type": "DistillLCM", "inputs": {
        "dataset": link("data", "dataset"), "model": link("unet", "model"), "text_encoder": link("unet", "text_encoder"),
        "vae": link("vae", "vae"), "steps": 1, "batch_size": 2, "warmup_steps": 0, "run_name": "../x"}}
    graph["nodes"]["show"] = {"type": "ShowValue", "inputs": {"value": link("lcm", "report")}}
    session = Session(output_dir=tmp_path / "out")
    assert refusal(session, graph) == ("lcm", "run_name", "parent", "validation")
    del graph["nodes"]["lcm"]
    graph["nodes"]["flow"] = {"type": "TrainFlow", "inputs": {
        "dataset": link("data", "dataset"), "text_encoder": link("unet", "text_encoder"), "vae": link("vae", "vae"),
        "steps": 1, "batch_size": 2, "warmup_steps": 0, "run_name": "/tmp/evil_flow"}}
    graph["nodes"]["show"] = {"type": "ShowValue", "inputs": {"value": link("flow", "report")}}
    assert refusal(session, graph) == ("flow", "run_name", "absolute", "validation")
    assert not (tmp_path / "out" / "training").exists() and not os.path.exists("/tmp/evil_flow")


def test_comfyuis_prefix_tokens_are_expanded_and_what_they_give_is_confined(tmp_path):
    """An imported workflow's `%date:yyyy-MM-dd%/ComfyUI` prefix was refused ("contains ':'"), and
    `ComfyUI_%KSampler.seed%` wrote a file literally named so. ComfyUI's tokens are expanded (the time and node
    tokens when the run starts, `%width%` and `%batch_num%` at saving: nodegraph/prefix_tokens.py); a token
    without a value is a validation error naming it, and the name a token gives is checked as any prefix ('/' in
    a value becomes '_', as ComfyUI's). A ':' outside a date token is still refused."""
    import datetime

    from nodegraph import Session
    from nodegraph.paths import PathConfinementError, check_name

    check_name("%date:yyyy-MM-dd%/ComfyUI", subfolders=True, what="prefix")      # valid now
    with pytest.raises(PathConfinementError) as info:
        check_name("ab:c_%date:yyyy%", subfolders=True, what="prefix")
    assert info.value.rule == "reserved_character"
    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")

    def graph(prefix: str, batch: int = 1, name: str = "night") -> dict:
        return {"format_version": 1, "nodes": {
            "render": {"type": "RenderTinyWorld", "title": "The Scene",
                       "inputs": {"caption": "a red circle on a white background", "size": 32, "seed": 7}},
            "name": {"type": "String", "inputs": {"value": name}},
            "two": {"type": "ImageBatch", "inputs": {"a": link("render", "image"), "b": link("render", "image")}},
            "save": {"type": "SaveImage", "inputs": {"images": link("two" if batch == 2 else "render",
                                                                    "images" if batch == 2 else "image"),
                                                     "filename_prefix": prefix}}}}

    def saved(prefix: str, batch: int = 1, name: str = "night") -> list[str]:
        files = session.run(graph(prefix, batch, name)).outputs["save"]["files"]
        return [Path(f["path"]).relative_to(tmp_path / "out").as_posix() for f in files]

    today = datetime.date.today()
    names = saved("%date:yyyy-MM-dd%/ComfyUI_%render.seed%_%The Scene.size%_%width%x%height%")
    assert names in ([f"{today:%Y-%m-%d}/ComfyUI_7_32_32x32_00001.png"],
                     [f"{datetime.date.today():%Y-%m-%d}/ComfyUI_7_32_32x32_00001.png"])     # past midnight
    assert saved("b%batch_num%_%RenderTinyWorld.caption%_100%", batch=2) == [
        "b0_a red circle on a white background_100%_00001.png", "b1_a red circle on a white background_100%_00001.png"]
    assert saved("n_%name.value%", name="../../../../tmp/escape") == ["n_.._.._.._.._tmp_escape_00001.png"]
    assert saved("n_%name.value%", name="%width%") == ["n_32_00001.png"]    # ComfyUI's two stages: so does it
    # a date token in a value is not expanded, and its ':' was kept past the reserved-character check (an operator)
    errors = session.validate(graph("n_%name.value%/x", name="%date:..%"))
    assert any(e.node_id == "save" and "':'" in e.message for e in errors), [e.message for e in errors]
    # the name is part of the save's cache key: another value is another file (it was served from the cache)
    assert saved("v_%name.value%", name="first") == ["v_first_00001.png"]
    assert saved("v_%name.value%", name="second") == ["v_second_00001.png"]
    for prefix, name, words in (
            ("%KSampler.seed%", "night", "names node 'KSampler', which the graph does not have"),
            ("%save.images%", "night", "is linked to another node"),
            ("x/%name.value%", "..", "'..'")):
        errors = session.validate(graph(prefix, name=name))
        assert any(e.node_id == "save" and words in e.message for e in errors), [e.message for e in errors]
        with pytest.raises(GraphValidationError):
            session.run(graph(prefix, name=name))
    assert not os.path.exists("/tmp/escape_00001.png")


def test_prefix_tokens_in_an_imported_comfyui_prompt_use_its_names(tmp_path):
    """Tokens written the ComfyUI way failed in imported prompts: `%CheckpointLoaderSimple.ckpt_name%` (a class
    that became LoadCheckpoint), `%KSampler.sampler_name%` (an input renamed `sampler`), `%Empty Latent Image.width%`
    (a title with spaces: written as is), and a seed fed by a primitive ("linked to another node"). A name too
    long for the file system was a raw OSError naming the server's folder."""
    from nodegraph import Session
    from nodegraph.graph import import_foreign

    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    prompt = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": 77}},
        "3": {"class_type": "KSampler", "inputs": {"seed": ["1", 0], "steps": 2, "cfg": 5.0, "sampler_name": "euler",
                                                    "scheduler": "karras", "denoise": 1.0}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 48, "height": 32, "batch_size": 1},
              "_meta": {"title": "Empty Latent Image"}},
        "8": {"class_type": "RenderTinyWorld", "inputs": {"caption": "a blue star", "size": 32}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix":
              "%CheckpointLoaderSimple.ckpt_name%_%KSampler.sampler_name%_%Empty Latent Image.width%_%KSampler.seed%"}}}
    nodes = session.registry.nodes
    graph = import_foreign(prompt, lambda t: [o.name for o in nodes[t].spec.outputs] if t in nodes else None)
    files = session.run(graph, outputs=["9"]).outputs["9"]["files"]
    assert Path(files[0]["path"]).name == "tiny_world_v4.safetensors_euler_48_77_00001.png"
    long = {"format_version": 1, "nodes": {
        "n": {"type": "String", "inputs": {"value": "😀" * 62}},     # 248 bytes: the number makes it 258
        "r": {"type": "RenderTinyWorld", "inputs": {"caption": "a blue star", "size": 32}},
        "s": {"type": "SaveImage", "inputs": {"images": link("r", "image"), "filename_prefix": "%n.value%"}}}}
    with pytest.raises(NodeExecutionError) as failed:
        session.run(long)
    message = str(failed.value.exception)
    assert "too long for the file system" in message and str(tmp_path) not in message


def test_prefix_tokens_inside_a_subgraph_are_expanded(tmp_path):
    """A SaveImage inside a subgraph definition kept `%year%_%render.seed%` as written (only the file's top-level
    nodes were looked at); a token there names the definition's inner nodes first."""
    import datetime

    from nodegraph import Session

    session = Session(output_dir=tmp_path / "out", input_dir=tmp_path / "in")
    graph = {"format_version": 2, "nodes": {"inner": {"type": "subgraph:draw", "inputs": {}}},
             "subgraphs": {"draw": {"inputs": {}, "outputs": {}, "nodes": {
                 "render": {"type": "RenderTinyWorld", "inputs": {"caption": "a blue star", "size": 32, "seed": 9}},
                 "save": {"type": "SaveImage", "inputs": {"images": link("render", "image"),
                                                          "filename_prefix": "%year%_%render.seed%"}}}}}}
    files = session.run(graph).outputs["inner/save"]["files"]
    assert Path(files[0]["path"]).name in (f"{datetime.date.today().year}_9_00001.png",
                                           f"{datetime.date.today().year - 1}_9_00001.png")    # on New Year's Eve
    graph["subgraphs"]["draw"]["nodes"]["save"]["inputs"]["filename_prefix"] = "%nothere.seed%"
    errors = session.validate(graph)
    assert any("in subgraph draw (node save)" in e.message and "'nothere'" in e.message for e in errors), errors


def test_tokens_in_a_model_save_name_are_expanded_too():
    """SaveLoRA wrote a file named `%date:yyyy%.safetensors` (the name rule lets ':' through inside date tokens,
    as prefixes expand them; model save names did not): tokens in every name a node writes are expanded now,
    and what they give is checked like any name."""
    from datetime import datetime

    from nodegraph.prefix_tokens import expand_graph

    session = Session(autoload=False)
    graph = session.load({"format_version": 2, "nodes": {
        "name": {"type": "String", "inputs": {"value": "../up"}},
        "save": {"type": "SaveLoRA", "inputs": {"lora": {"node": "name", "output": "value"},
                                                "filename": "%date:yyyy%_%name.value%.safetensors"}}}})
    expanded, errors = expand_graph(graph, session.registry)
    assert errors == []
    assert expanded.nodes["save"].inputs["filename"] == f"{datetime.now().year}_.._up.safetensors"
