"""kohya's training-data layout and LoRA header: `N_name` repeat folders, `.caption` sidecars, reg/ folders left out,
and the `ss_*` keys A1111 / Civitai read, written the same bytes for the same training.

A kohya user's pass found the `10_` prefix ignored (every image drawn alike), `.caption` files ignored, a reg/
folder trained as instance images, and an `ss_tag_frequency` whose order (and so the file's SHA-256) followed
the string hash seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from nodes.training.image_folder import ImageFolderDataset, repeat_folder

ROOT = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


def _image(path: Path, colour=(200, 10, 10), caption: str | None = None, suffix: str = ".txt") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), colour).save(path)
    if caption is not None:
        path.with_suffix(suffix).write_text(caption)


def test_repeat_folder_names_parse_as_sd_scripts_splits_them():
    """`N_name` gives N repeats and everything after the first underscore as the class token."""
    assert repeat_folder("10_zorbchar") == (10, "zorbchar")
    assert repeat_folder("3_sks dog") == (3, "sks dog")
    assert repeat_folder("007_zorb_char") == (7, "zorb_char")
    assert repeat_folder("zorbchar") is None and repeat_folder("10zorb") is None and repeat_folder("_x") is None
    assert repeat_folder("x_10_y") is None


def test_repeat_folders_weigh_images_and_caption_the_uncaptioned_with_their_class_token(tmp_path):
    """Each image of 10_zorbchar counts 10 times, of 2_stripes twice, of a plain folder once; an uncaptioned image
    of a repeat folder takes its class token, one outside any takes nothing (skipped) unless default_caption."""
    _image(tmp_path / "10_zorbchar" / "a.png", caption="zorbchar, red")
    _image(tmp_path / "10_zorbchar" / "b.png")                                   # no caption: "zorbchar"
    _image(tmp_path / "10_zorbchar" / "close" / "c.png", caption="zorbchar, close")   # nested: still 10
    _image(tmp_path / "2_stripes" / "s.png", caption="stripes")
    _image(tmp_path / "plain" / "p.png", caption="plain picture")
    _image(tmp_path / "plain" / "q.png")                                         # no caption, no class token
    dataset = ImageFolderDataset(tmp_path, size=16)
    rows = {path.relative_to(tmp_path).as_posix(): (caption, repeats, folder) for path, caption, repeats, folder
            in zip(dataset.paths, dataset.captions, dataset.repeats, dataset.item_folders)}
    assert rows == {"10_zorbchar/a.png": ("zorbchar, red", 10, "10_zorbchar"),
                    "10_zorbchar/b.png": ("zorbchar", 10, "10_zorbchar"),
                    "10_zorbchar/close/c.png": ("zorbchar, close", 10, "10_zorbchar"),
                    "2_stripes/s.png": ("stripes", 2, "2_stripes"),
                    "plain/p.png": ("plain picture", 1, tmp_path.name)}
    report = dataset.report
    assert report.dataset_dirs == {"10_zorbchar": {"n_repeats": 10, "img_count": 3},
                                   "2_stripes": {"n_repeats": 2, "img_count": 1},
                                   tmp_path.name: {"n_repeats": 1, "img_count": 1}}
    assert [p.name for p in report.missing_caption] == ["q.png"] and report.class_captioned == 1
    assert report.summary() == (f"5 images used (10_zorbchar: 3 × 10 repeats, 91 % of draws; 2_stripes: 1 × 2 "
                                f"repeats, 6 % of draws; {tmp_path.name}: 1 × 1 repeat, 3 % of draws), 1 skipped "
                                f"(0 corrupt, 1 missing caption, 0 empty caption); 1 captioned by their folder's "
                                f"class token")
    # a folder of plain names reads as before: no repeats in its summary, every image drawn alike
    plain = ImageFolderDataset(tmp_path / "plain", size=16, default_caption="a photo")
    assert plain.repeats == [1, 1] and plain.report.summary() == (
        "2 images used, 0 skipped (0 corrupt, 0 missing caption, 0 empty caption); 1 with the default caption")


def test_the_data_folders_own_name_is_not_read_as_repeats(tmp_path):
    """As kohya reads only the folders inside train_data_dir: a dataset folder named "2024_trip" gives 1 repeat and
    captions nothing "trip"."""
    _image(tmp_path / "2024_trip" / "a.png", caption="a beach")
    _image(tmp_path / "2024_trip" / "b.png")
    dataset = ImageFolderDataset(tmp_path / "2024_trip", size=16)
    assert dataset.repeats == [1] and dataset.captions == ["a beach"]
    assert dataset.report.summary() == "1 image used, 1 skipped (0 corrupt, 1 missing caption, 0 empty caption)"


def test_a_zero_repeat_folder_is_left_out_and_named(tmp_path):
    """kohya never draws an image of a 0_ folder: it is skipped and counted, with the fix."""
    _image(tmp_path / "0_off" / "a.png", caption="off")
    _image(tmp_path / "1_on" / "b.png", caption="on")
    dataset = ImageFolderDataset(tmp_path, size=16)
    assert [p.name for p in dataset.paths] == ["b.png"]
    assert dataset.report.skipped_files() == ["0_off/a.png (in a 0_ folder: 0 repeats, never drawn; rename the "
                                              "folder 1_...)"]


def test_repeats_weigh_the_draws_of_a_training_batch():
    """DiffusionData.weights (from `repeats`) make _noised_batch draw items in proportion to them; without weights
    the draws are exactly the uniform ones of before (existing runs unchanged)."""
    from nodes.training.nodes import _repeat_weights
    from nodes.training.trainer import DiffusionData, TrainConfig, _batch_indices, _noised_batch

    class Folder:
        repeats = [10] * 8 + [2] * 4

    weights = _repeat_weights(Folder())
    assert weights.tolist() == [10.0] * 8 + [2.0] * 4

    class Alike:
        repeats = [10] * 5

    assert _repeat_weights(Alike()) is None and _repeat_weights(object()) is None
    latents, ids, empty = torch.zeros(12, 4, 2, 2), torch.zeros(12, 77, dtype=torch.long), torch.zeros(77).long()
    weighted = DiffusionData(latents, ids, empty, weights=weights)
    draws = torch.cat([weighted.batch_indices(64, step, 0, seed=3) for step in range(200)])
    share = float((draws >= 8).float().mean())                   # the 2_ folder's images: 8 of 88 draws
    assert abs(share - 8 / 88) < 0.02, share
    config = TrainConfig(steps=10, batch_size=32, seed=3)
    idx = _noised_batch(weighted, torch.linspace(0.99, 0.01, 1000), config, 5, 0, 0.0, "eps")[0]
    assert torch.equal(idx, weighted.batch_indices(32, 5, 0, seed=3))
    uniform = DiffusionData(latents, ids, empty)
    assert torch.equal(uniform.batch_indices(32, 5, 0, seed=3), _batch_indices(12, 32, 5, 0, 3))


def test_caption_files_are_read_and_a_differing_txt_wins_with_one_note(tmp_path):
    """sd-scripts' default .caption is read when there is no .txt; with both, the .txt is used and a difference is
    said once; an empty .caption is named in the skip row."""
    _image(tmp_path / "a.jpg", caption="from caption", suffix=".caption")
    _image(tmp_path / "b.png", caption="from txt")
    (tmp_path / "b.caption").write_text("other text")
    _image(tmp_path / "c.png", caption="same")
    (tmp_path / "c.caption").write_text("same\n")
    _image(tmp_path / "d.png", caption="   ", suffix=".CAPTION")
    _image(tmp_path / "e.png", caption="another", suffix=".txt")
    (tmp_path / "e.caption").write_text("another one")
    dataset = ImageFolderDataset(tmp_path, size=16)
    assert dataset.captions == ["from caption", "from txt", "same", "another"]
    assert [p.name for p in dataset.report.caption_conflicts] == ["b.png", "e.png"]
    assert dataset.report.notes() == ["2 image(s) have both a .txt and a .caption file that differ; the .txt is used "
                                      "(e.g. b.txt over b.caption): delete the one you do not mean"]
    assert dataset.report.skipped_files() == ["d.png (its caption d.CAPTION is empty)"]


def test_kohya_regularisation_folders_are_left_out_with_a_note(tmp_path):
    """A kohya_ss project (img/ beside reg/) trains only img/; a reg/ holding N_name folders is left out too; a
    folder merely called reg, with neither, is ordinary data."""
    project = tmp_path / "project"
    _image(project / "img" / "10_zorb" / "a.png", caption="zorb")
    _image(project / "reg" / "1_person" / "r.png", caption="person")
    _image(project / "reg" / "loose.png", caption="person too")
    dataset = ImageFolderDataset(project, size=16)
    assert [p.name for p in dataset.paths] == ["a.png"] and dataset.item_folders == ["img/10_zorb"]
    assert [p.name for p in dataset.report.regularisation_folders] == ["reg"]
    assert dataset.report.summary().endswith("; 1 regularisation folder(s) left out")
    assert dataset.report.notes()[0].startswith("reg/: kohya regularisation images (reg/ beside img/) are not "
                                                "supported and were left out")
    nested = tmp_path / "nested"
    _image(nested / "10_zorb" / "a.png", caption="zorb")
    _image(nested / "Reg" / "1_person" / "r.png", caption="person")
    assert [p.name for p in ImageFolderDataset(nested, size=16).paths] == ["a.png"]
    ordinary = tmp_path / "ordinary"
    _image(ordinary / "reg" / "x.png", caption="a regatta")
    kept = ImageFolderDataset(ordinary, size=16)
    assert [p.name for p in kept.paths] == ["x.png"] and not kept.report.regularisation_folders


def test_image_folder_node_warns_of_reg_folders_and_caption_conflicts(tmp_path):
    """The node says what the scan chose on its own (not only in its report output)."""
    from nodegraph import Session

    _image(tmp_path / "in" / "proj" / "img" / "5_zorb" / "a.png", caption="zorb")
    (tmp_path / "in" / "proj" / "img" / "5_zorb" / "a.caption").write_text("zorb, other")
    _image(tmp_path / "in" / "proj" / "reg" / "1_person" / "r.png", caption="person")
    session = Session(builtins=True, input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    result = session.run({"format_version": 2, "nodes": {"data": {"type": "ImageFolderDataset", "inputs": {
        "folder": "proj", "size": 16}}}}, outputs=["data"])
    said = [w["message"] for w in result.warnings]
    assert any("reg/: kohya regularisation images" in m for m in said), said
    assert any("have both a .txt and a .caption file that differ" in m for m in said), said
    assert result.outputs["data"]["report"].startswith("1 image used (img/5_zorb: 1 × 5 repeats, 100 % of draws)")


def test_tag_frequency_is_ordered_by_count_then_tag_and_kept_per_folder():
    """(−count, tag) order, duplicates within a caption counted once, keyed by dataset folder as kohya keys it."""
    from nodes.training.lcm_nodes import tag_frequency, tag_frequency_by_folder

    assert list(tag_frequency(["b, a, c", "c, a, a", "d"]).items()) == [("a", 2), ("c", 2), ("b", 1), ("d", 1)]
    assert tag_frequency_by_folder(["zorb, red", "zorb", "stripes"], ["10_zorb", "10_zorb", "2_stripes"]) == \
        {"10_zorb": {"zorb": 2, "red": 1}, "2_stripes": {"stripes": 1}}


_TRAIN_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from pathlib import Path
from nodegraph import Session
from nodegraph.model_paths import ModelPaths
root, inputs, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
link = lambda node, output: {"node": node, "output": output}
graph = {"format_version": 2, "nodes": {
    "load": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v6f.safetensors", "weight_dtype": "fp32"}},
    "data": {"type": "ImageFolderDataset", "inputs": {"folder": "kohya", "size": 32}},
    "train": {"type": "TrainLoRA", "inputs": {"dataset": link("data", "dataset"), "model": link("load", "model"),
              "text_encoder": link("load", "text_encoder"), "vae": link("load", "vae"), "rank": 2, "steps": 1,
              "batch_size": 2, "lr": 1e-3, "warmup_steps": 1, "seed": 5, "caption_dropout": 0.25,
              "checkpoint_every": 0, "run_name": "zorb"}},
    "save": {"type": "SaveLoRA", "inputs": {"lora": link("train", "lora"), "filename": "zorb.safetensors"}}}}
Session(builtins=True, model_paths=ModelPaths(roots=[work / "models", root / "models"]), input_dir=inputs,
        output_dir=work / "out").run(graph)
"""


def test_identical_trainings_write_byte_identical_lora_files_with_kohyas_header(tmp_path):
    """Two processes with different PYTHONHASHSEED train the same LoRA: the files are the same bytes (the tag order
    followed the hash seed), and the header carries the ss_* keys A1111 / Civitai read, as kohya writes them."""
    tags = ", ".join(f"tag{k}" for k in range(40))                 # 40 tied tags: a set's order shows at once
    _image(tmp_path / "in" / "kohya" / "3_zorb" / "a.png", (255, 0, 255), caption=f"zorb, {tags}")
    _image(tmp_path / "in" / "kohya" / "3_zorb" / "b.png", (0, 255, 255))         # captioned "zorb" by its folder
    _image(tmp_path / "in" / "kohya" / "1_other" / "c.png", (0, 0, 255), caption=f"other, {tags}")
    script = tmp_path / "train.py"
    script.write_text(_TRAIN_SCRIPT)
    files = []
    for seed in ("1", "2"):
        work = tmp_path / f"hashseed{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, str(script), str(ROOT), str(tmp_path / "in"), str(work)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        files.append(work / "models" / "loras" / "zorb.safetensors")
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]
    assert digests[0] == digests[1]
    from safetensors import safe_open

    with safe_open(str(files[0]), "pt") as file:
        header = file.metadata()
    assert list(json.loads(header["ss_tag_frequency"])) == ["1_other", "3_zorb"]      # dataset (path) order
    assert list(json.loads(header["ss_tag_frequency"])["3_zorb"])[:3] == ["zorb", "tag0", "tag1"]
    assert json.loads(header["ss_dataset_dirs"]) == {"3_zorb": {"n_repeats": 3, "img_count": 2},
                                                     "1_other": {"n_repeats": 1, "img_count": 1}}
    assert {key: header[key] for key in ("ss_sd_model_name", "ss_resolution", "ss_num_train_images",
                                         "ss_learning_rate", "ss_batch_size_per_device", "ss_seed", "ss_lr_scheduler",
                                         "ss_caption_dropout_rate", "ss_mixed_precision", "ss_max_train_steps",
                                         "ss_clip_skip")} == {
        "ss_sd_model_name": "tiny_world_v6f.safetensors", "ss_resolution": "(32, 32)", "ss_num_train_images": "7",
        "ss_learning_rate": "0.001", "ss_batch_size_per_device": "2", "ss_seed": "5", "ss_lr_scheduler": "cosine",
        "ss_caption_dropout_rate": "0.25", "ss_mixed_precision": "no", "ss_max_train_steps": "1",
        "ss_clip_skip": "None"}
    assert header["ss_optimizer"].startswith("torch.optim.adamw.AdamW(")
    assert "ss_training_started_at" not in header and "ss_session_id" not in header
