"""Textual-inversion embeddings: every file layout, exact substitution in prompts, weighting, errors, the node path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from nodegraph import GraphValidationError, Session
from nodegraph.model_paths import ModelPaths
from nodes.models.clip import CLIPTextModel, PromptEncoder
from nodes.models.detect import ModelLoadError
from nodes.models.embeddings import TextualInversion, embedding_names, load_embedding
from nodes.models.tokenizer import default_tokenizer

from .conftest import TINY_CLIP

torch.set_num_threads(1)
TINY_WORLD = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "tiny_world.safetensors"


@pytest.fixture(scope="module")
def encoder() -> PromptEncoder:
    torch.manual_seed(0)
    return PromptEncoder({"clip_l": CLIPTextModel(TINY_CLIP).eval()}, pooled_from="clip_l")


def _word_vectors(encoder: PromptEncoder, words: str, role: str = "clip_l") -> torch.Tensor:
    """The token-embedding rows of `words`: an embedding made of them must encode exactly like the words."""
    ids = default_tokenizer().encode(words)
    return encoder.encoders[role].text_model.embeddings.token_embedding.weight[ids].detach().clone()


def test_every_file_layout_loads(tmp_path, monkeypatch):
    """A1111 .pt (pickle opt-in) and .safetensors, SDXL clip_l/clip_g and diffusers learned_embeds all load."""
    vectors = torch.randn(3, 768)
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": "style", "step": 3000},
               tmp_path / "style.pt")
    with pytest.raises(ModelLoadError, match="pickle.*refused"):
        load_embedding(tmp_path / "style.pt")
    assert torch.equal(load_embedding(tmp_path / "style.pt", allow_pickle=True).vectors["*"], vectors)

    save_file({"emb_params": vectors}, str(tmp_path / "a1111.safetensors"))
    assert load_embedding(tmp_path / "a1111.safetensors").num_vectors == 3

    save_file({"clip_l": torch.randn(2, 768), "clip_g": torch.randn(2, 1280)}, str(tmp_path / "xl.safetensors"))
    xl = load_embedding(tmp_path / "xl.safetensors")
    assert xl.for_encoder("clip_g", 1280).shape == (2, 1280) and xl.for_encoder("clip_l", 768).shape == (2, 768)

    save_file({"<cat-toy>": torch.randn(768)}, str(tmp_path / "learned_embeds.safetensors"))
    torch.save({"<cat-toy>": torch.randn(768)}, tmp_path / "learned_embeds.bin")
    assert load_embedding(tmp_path / "learned_embeds.safetensors").vectors["*"].shape == (1, 768)
    assert load_embedding(tmp_path / "learned_embeds.bin", allow_pickle=True).name == "learned_embeds"


def test_other_files_are_refused_by_name(tmp_path):
    """A file that is not an embedding (here a tiny LoRA-like dict) names the keys it found."""
    save_file({"lora_unet_a.lora_down.weight": torch.zeros(2, 4), "lora_unet_a.lora_up.weight": torch.zeros(4, 2)},
              str(tmp_path / "lora.safetensors"))
    with pytest.raises(ModelLoadError, match="expected a textual-inversion embedding.*lora_unet_a"):
        load_embedding(tmp_path / "lora.safetensors")


@torch.no_grad()
def test_embedding_encodes_exactly_like_the_words_it_holds(encoder):
    """An embedding whose vectors are the rows of "red ball" gives the same context and pooled output as the words."""
    embedding = TextualInversion("rb", {"*": _word_vectors(encoder, "red ball")})
    ours = encoder.encode("a photo of embedding:rb on grass", embeddings={"rb": embedding})
    words = encoder.encode("a photo of red ball on grass")
    assert torch.equal(ours.context, words.context)
    assert torch.equal(ours.pooled, words.pooled)   # placeholder ids past EOS do not move the pooled position
    assert not torch.equal(ours.context, encoder.encode("a photo of on grass").context)


@torch.no_grad()
def test_embeddings_take_prompt_weights_and_mix_with_others(encoder):
    """(embedding:name:1.3) weights its tokens as (words:1.3) would; two embeddings in one prompt both apply."""
    red = TextualInversion("red", {"*": _word_vectors(encoder, "red")})
    ball = TextualInversion("ball.safetensors", {"*": _word_vectors(encoder, "big ball")})
    embeddings = {"red": red, "ball.safetensors": ball}
    ours = encoder.encode("a (embedding:red:1.3) embedding:ball.safetensors", embeddings=embeddings)
    assert torch.allclose(ours.context, encoder.encode("a (red:1.3) big ball").context, atol=1e-6)
    assert embedding_names("a (embedding:red:1.3) embedding:ball.safetensors, embedding:red") == [
        "red", "ball.safetensors"]


def test_wrong_width_and_unknown_names_say_what_to_do(encoder):
    """An SD 1.x-width embedding on another width names both widths; an unloaded name says where to put it."""
    wide = TextualInversion("xl_only", {"clip_g": torch.randn(2, 1280)})
    with pytest.raises(ValueError, match=r"1280-wide.*SDXL.*64-wide"):
        encoder.encode("embedding:xl_only", embeddings={"xl_only": wide})
    fine = TextualInversion("fine", {"*": torch.randn(1, 64)})
    with pytest.raises(ValueError, match="embedding:other, which is not loaded.*models/embeddings"):
        encoder.encode("embedding:fine and embedding:other", embeddings={"fine": fine})


def _graph(prompt: str) -> dict:
    return {"format_version": 1, "nodes": {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "enc": {"type": "EncodeText", "inputs": {"text_encoder": {"node": "ckpt", "output": "text_encoder"},
                                                 "text": prompt}},
        "out": {"type": "ShowValue", "inputs": {"value": {"node": "enc", "output": "conditioning"}}}}}


def test_encode_text_node_reads_embeddings_from_the_models_folder(tmp_path):
    """EncodeText resolves embedding:name in models/embeddings (with or without the suffix) on the shipped model."""
    import shutil

    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    (root / "embeddings").mkdir()
    shutil.copy(TINY_WORLD, root / "checkpoints" / TINY_WORLD.name)
    from nodes.models.loading import load_checkpoint

    text_encoder = load_checkpoint(TINY_WORLD, components=("text_encoder",)).text_encoder
    save_file({"emb_params": _word_vectors(text_encoder, "red circle")}, str(root / "embeddings" / "rc.safetensors"))
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path / "out")
    context = lambda prompt: session.run(_graph(prompt)).outputs["out"]["value"]["context"]  # noqa: E731
    expected = context("a small red circle on the left")
    assert torch.equal(context("a small embedding:rc on the left"), expected)
    assert torch.equal(context("a small embedding:rc.safetensors on the left"), expected)
    # a missing one fails at validation, naming the input (it passed `validate` and failed once the run began)
    (error,) = session.validate(_graph("a embedding:missing"))
    assert error.node_id == "enc" and error.input == "text"
    assert "embedding:missing, but no 'missing.safetensors' is in the embeddings folder" in error.message
    with pytest.raises(GraphValidationError, match="embedding:missing"):
        session.run(_graph("a embedding:missing"))


def test_an_embedding_is_not_split_across_chunks(encoder):
    """A multi-vector embedding that would cross the 75-token boundary moves whole to the next chunk."""
    from nodes.models.tokenizer import tokenize_prompt

    words = " ".join(["cat"] * 74)
    tokens = tokenize_prompt(default_tokenizer(), f"{words} embedding:three", {"three": [50000, 50001, 50002]})
    assert len(tokens.chunks[0]) == 74 and tokens.chunks[1] == [50000, 50001, 50002]
    single = tokenize_prompt(default_tokenizer(), f"{words} embedding:one", {"one": [50000]})
    assert single.chunks[0][-1] == 50000 and len(single.chunks) == 1


@torch.no_grad()
def test_sdxl_embedding_gives_each_encoder_its_own_vectors():
    """An SDXL embedding (clip_l + clip_g vectors) puts each encoder's vectors in its own tower, exactly."""
    from dataclasses import replace

    from nodes.models.clip import CLIP_G

    torch.manual_seed(1)
    big_g = replace(CLIP_G, width=96, layers=2, heads=2, intermediate=192, projection_dim=96)
    sdxl = PromptEncoder({"clip_l": CLIPTextModel(TINY_CLIP).eval(), "clip_g": CLIPTextModel(big_g).eval()},
                         pooled_from="clip_g")
    embedding = TextualInversion("xl", {"clip_l": _word_vectors(sdxl, "blue cube", "clip_l"),
                                        "clip_g": _word_vectors(sdxl, "blue cube", "clip_g")})
    ours = sdxl.encode("a embedding:xl at noon", embeddings={"xl": embedding})
    words = sdxl.encode("a blue cube at noon")
    assert ours.context.shape[-1] == 64 + 96
    assert torch.equal(ours.context, words.context) and torch.equal(ours.pooled, words.pooled)


@pytest.mark.parametrize("vectors, words", [
    (torch.randn(0, 64), "holds no vectors"),                   # raised IndexError deep in the text encoder
    (torch.randint(-5, 5, (2, 64), dtype=torch.int8), "int8, not floating point"),   # said "found Tensor (2, 64)"
    (torch.full((2, 64), float("nan")), "NaN or infinite"),     # turned every image to noise, blamed on SaveImage
])
def test_a_damaged_embedding_is_refused_naming_the_file(tmp_path, vectors, words):
    save_file({"emb_params": vectors}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ModelLoadError, match=words) as failure:
        load_embedding(tmp_path / "bad.safetensors")
    assert "bad.safetensors" in str(failure.value)


def test_an_embedding_replaced_under_its_name_is_read_again_and_recorded(tmp_path):
    """An embedding file overwritten under the same name was served from the cache (the prompt text had not
    changed; only `model_folder` inputs were fingerprinted), and the run's provenance named no embedding. Files a
    prompt names (`Node.named_model_files`) are fingerprinted — through a String box too — and hashed."""
    import shutil

    from nodes.models.loading import load_checkpoint

    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    (root / "embeddings").mkdir()
    shutil.copy(TINY_WORLD, root / "checkpoints" / TINY_WORLD.name)
    text_encoder = load_checkpoint(TINY_WORLD, components=("text_encoder",)).text_encoder
    file = root / "embeddings" / "thing.safetensors"
    save_file({"emb_params": _word_vectors(text_encoder, "red circle")}, str(file))
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path / "out")
    graph = _graph("")
    graph["nodes"]["words"] = {"type": "String", "inputs": {"value": "a small embedding:thing on the left"}}
    graph["nodes"]["enc"]["inputs"]["text"] = {"node": "words", "output": "value"}
    from types import SimpleNamespace

    from nodegraph.provenance import model_files

    def recorded() -> dict:
        return model_files(SimpleNamespace(graph=session.load(graph), services=session.services))

    first = session.run(graph)
    (entry,) = [v for k, v in recorded().items() if k.startswith("enc.text:")]
    assert entry["name"] == "thing.safetensors" and entry["folder"] == "embeddings"
    assert session.run(graph).executed == []                                   # unchanged: cached
    save_file({"emb_params": _word_vectors(text_encoder, "green square")}, str(file))
    second = session.run(graph)
    assert "enc" in second.executed
    assert not torch.equal(first.outputs["out"]["value"]["context"], second.outputs["out"]["value"]["context"])
    (again,) = [v for k, v in recorded().items() if k.startswith("enc.text:")]
    assert again["sha256"] != entry["sha256"]


def test_encode_text_weighs_words_as_comfyui_or_a1111(tmp_path):
    """PromptEncoder had A1111's weighting ("scale_mean") but EncodeText always used ComfyUI's, so an A1111
    user's (word:1.3) meant something else in a graph (an A1111 migrant's pass). EncodeText's `weighting` picks."""
    import shutil

    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    shutil.copy(TINY_WORLD, root / "checkpoints" / TINY_WORLD.name)
    session = Session(model_paths=ModelPaths(roots=[root]), output_dir=tmp_path / "out")

    def context(prompt: str, weighting: str) -> torch.Tensor:
        graph = _graph(prompt)
        graph["nodes"]["enc"]["inputs"]["weighting"] = weighting
        return session.run(graph).outputs["out"]["value"]["context"]

    plain = "a small red circle on the left"
    assert torch.equal(context(plain, "comfyui"), context(plain, "a1111"))      # no weights: the same
    weighted = "a small (red:1.4) circle on the left"
    assert not torch.allclose(context(weighted, "comfyui"), context(weighted, "a1111"))
    (error,) = session.validate({**_graph(plain), "nodes": {**_graph(plain)["nodes"], "enc": {
        **_graph(plain)["nodes"]["enc"], "inputs": {**_graph(plain)["nodes"]["enc"]["inputs"], "weighting": "mean"}}}})
    assert error.code == "not_in_choices" and error.input == "weighting"
