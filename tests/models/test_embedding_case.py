"""`embedding:NAME` in another case than its file: validation and the loader give one answer.

A1111 users type embedding names in any case. Validation compared names in lower case and passed
`embedding:easynegative`, then the loader looked for the exact file and the run failed after the checkpoint had
loaded. Both now find the file the same way (`prompt_syntax.find_embedding_file`): the exact spelling, else the one
file differing only in case (said in a warning), and several such files are refused with "did you mean".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from nodegraph import Session
from nodegraph.model_paths import PROJECT_ROOT, ModelPaths
from nodes.models.prompt_syntax import find_embedding_file

TINY_WORLD = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "tiny_world.safetensors"


def _graph(prompt: str) -> dict:
    return {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "enc": {"type": "EncodeText", "inputs": {"text_encoder": {"node": "ckpt", "output": "text_encoder"},
                                                 "text": prompt}},
        "out": {"type": "ShowValue", "inputs": {"value": {"node": "enc", "output": "conditioning"}}}}}


def _models(tmp_path: Path, *embedding_files: str) -> Path:
    """A models folder with the shipped checkpoint and embeddings of the words "red circle" under these names."""
    from nodes.models.loading import load_checkpoint
    from nodes.models.tokenizer import default_tokenizer

    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    (root / "embeddings").mkdir()
    shutil.copy(TINY_WORLD, root / "checkpoints" / TINY_WORLD.name)
    encoder = load_checkpoint(TINY_WORLD, components=("text_encoder",)).text_encoder
    ids = default_tokenizer().encode("red circle")
    vectors = encoder.encoders["clip_l"].text_model.embeddings.token_embedding.weight[ids].detach().clone()
    for name in embedding_files:
        save_file({"emb_params": vectors}, str(root / "embeddings" / name))
    return root


@pytest.mark.parametrize("name, files, expected", [
    ("EasyNegative", ["EasyNegative.safetensors"], ("EasyNegative.safetensors", None)),
    ("easynegative", ["EasyNegative.safetensors"], ("EasyNegative.safetensors", None)),
    ("EASYNEGATIVE.PT", ["sub/x.pt", "EasyNegative.pt"], ("EasyNegative.pt", None)),
    ("easynegative", ["EasyNegative.pt", "easynegative.safetensors"], ("easynegative.safetensors", None)),  # exact
    ("missing", ["EasyNegative.safetensors"], (None, None)),
])
def test_find_embedding_file_takes_the_exact_name_then_the_one_in_another_case(name, files, expected):
    """The exact spelling wins (any suffix); else the one file whose name differs only in case."""
    assert find_embedding_file(name, files) == expected


def test_several_files_differing_in_case_are_refused_asking_which():
    """Two files differing only in case: no guess, a "did you mean" naming both."""
    file, why = find_embedding_file("easynegative", ["EasyNegative.safetensors", "EASYNEGATIVE.safetensors"])
    assert file is None
    assert "did you mean embedding:EASYNEGATIVE or embedding:EasyNegative?" in why


@torch.no_grad()
def test_an_embedding_named_in_another_case_passes_validation_and_loads(tmp_path):
    """`embedding:easynegative` with EasyNegative.safetensors: validation passes and the run reads that file (it
    passed validation, then failed after loading the checkpoint), saying which file it took."""
    session = Session(model_paths=ModelPaths(roots=[_models(tmp_path, "EasyNegative.safetensors")]),
                      output_dir=tmp_path / "out")
    assert session.validate(_graph("a small embedding:easynegative on the left")) == []
    result = session.run(_graph("a small embedding:easynegative on the left"))
    exact = session.run(_graph("a small embedding:EasyNegative on the left"))
    assert torch.equal(result.outputs["out"]["value"]["context"], exact.outputs["out"]["value"]["context"])
    assert any("embedding:easynegative is the file EasyNegative.safetensors" in warning["message"]
               for warning in result.warnings)


@torch.no_grad()
def test_several_embeddings_differing_in_case_fail_at_validation_and_at_run_time(tmp_path):
    """Two files differing only in case: validation refuses with "did you mean", and so does the loader when a
    graph reaches it without validation (api.encode_text from a plugin's node)."""
    from types import SimpleNamespace

    from nodes.models.nodes import NodeInputError, _prompt_embeddings

    root = _models(tmp_path, "EasyNegative.safetensors", "EASYNEGATIVE.safetensors")
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path / "out")
    (error,) = session.validate(_graph("embedding:easynegative"))
    assert error.input == "text" and "did you mean" in error.message
    context = SimpleNamespace(services=session.services, service=lambda name: session.services[name],
                              warn=lambda message: None)
    with pytest.raises(NodeInputError, match="did you mean embedding:EASYNEGATIVE or embedding:EasyNegative"):
        _prompt_embeddings(context, "embedding:easynegative")


def test_the_validation_message_shows_each_embeddings_folder_as_run_time_messages_do(tmp_path, monkeypatch):
    """The project's folder is `<nodegraph>/models/embeddings`, as every loader's message writes it (validation
    wrote "(models/embeddings, models/embeddings)")."""
    monkeypatch.chdir(tmp_path)
    root = _models(tmp_path)
    session = Session(model_paths=ModelPaths(roots=[root, PROJECT_ROOT / "models"]), output_dir=tmp_path / "out")
    (error,) = session.validate(_graph("embedding:nothing_like_it"))
    assert "(models/embeddings, <nodegraph>/models/embeddings)" in error.message


def test_an_embedding_named_in_another_case_is_recorded_with_its_sha256(tmp_path):
    """`embedding:easynegative` reads EasyNegative.safetensors, but the run record looked for the exact name and
    held no SHA-256 for it: the record now hashes the file the name resolves to (found in the cached listing)."""
    from types import SimpleNamespace

    from nodegraph.provenance import file_sha256, model_files

    root = _models(tmp_path, "EasyNegative.safetensors")
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path / "out")
    graph = _graph("a small embedding:easynegative on the left")
    session.run(graph)
    recorded = model_files(SimpleNamespace(graph=session.load(graph), services=session.services))
    assert recorded["enc.text:EasyNegative.safetensors"] == {
        "folder": "embeddings", "name": "EasyNegative.safetensors",
        "sha256": file_sha256(root / "embeddings" / "EasyNegative.safetensors")}


def test_files_differing_only_in_case_are_not_recorded_as_one_of_them(tmp_path):
    """Two files differing only in case: the loader refuses the name, and the record guesses neither."""
    from types import SimpleNamespace

    from nodegraph.provenance import model_files

    root = _models(tmp_path, "EasyNegative.safetensors", "EASYNEGATIVE.safetensors")
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path / "out")
    graph = session.load(_graph("embedding:easynegative"))
    assert not [key for key in model_files(SimpleNamespace(graph=graph, services=session.services))
                if key.startswith("enc.text:")]


def test_an_embedding_named_in_another_case_replaced_runs_the_node_again(tmp_path):
    """EasyNegative.safetensors overwritten while the prompt says embedding:easynegative: EncodeText runs again (the
    key fingerprinted the exact name, found nothing, and kept serving the old conditioning)."""
    from safetensors.torch import load_file

    root = _models(tmp_path, "EasyNegative.safetensors")
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path / "out")
    graph = _graph("a small embedding:easynegative on the left")
    session.run(graph)
    assert session.run(graph).executed == []
    file = root / "embeddings" / "EasyNegative.safetensors"
    save_file({"emb_params": torch.randn_like(load_file(str(file))["emb_params"])}, str(file))
    assert "enc" in session.run(graph).executed


@pytest.mark.parametrize("files, with_listing, expected", [
    (["EasyNegative.safetensors"], True, "EasyNegative.safetensors"),
    (["EasyNegative.safetensors"], False, None),                                   # a plain resolver: exact names
    (["EasyNegative.safetensors", "EASYNEGATIVE.safetensors"], True, None),          # the loader refuses: no guess
    (["EasyNegative.pt", "easynegative.safetensors"], True, "easynegative.safetensors"),   # the exact name first
])
def test_the_cache_key_finds_a_named_file_as_the_loader_does(tmp_path, files, with_listing, expected):
    """`first_existing_file`, which the key and the record share: the exact name, else (given the cached listing)
    the one file differing only in case; several such files are no answer."""
    from nodegraph.executor import ListingResolver
    from nodegraph.node import first_existing_file

    (tmp_path / "embeddings").mkdir()
    for name in files:
        (tmp_path / "embeddings" / name).write_bytes(b"x")
    paths = ModelPaths(roots=[tmp_path])
    resolve = ListingResolver(paths.resolve, paths.list) if with_listing else paths.resolve
    found = first_existing_file(resolve, "embeddings", ("easynegative.safetensors", "easynegative.pt"),
                                getattr(resolve, "list_model_files", None))
    assert (found[0] if found else None) == expected


def test_the_fingerprint_stamps_the_file_in_another_case(tmp_path):
    """EncodeText's key part for `embedding:easynegative` names EasyNegative.safetensors (it said 'missing')."""
    from nodegraph.executor import ListingResolver

    root = _models(tmp_path, "EasyNegative.safetensors")
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path / "out")
    encode = session.registry.nodes["EncodeText"]
    fingerprint = encode.fingerprint({"text": "embedding:easynegative"},
                                     ListingResolver(session.resolve_file, session.model_paths.list))
    assert "embeddings/EasyNegative.safetensors:" in fingerprint and "missing" not in fingerprint
