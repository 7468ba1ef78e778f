"""T5 encoder and its SentencePiece tokenizer: parity with transformers on random weights and a tiny model file."""

from __future__ import annotations

import pytest
import torch

from nodes.models.t5 import T5_XXL, T5Config, T5EncoderModel, detect_t5_config, relative_position_bucket
from nodes.models.t5_tokenizer import T5Tokenizer, TokenizerModelMissing, find_spiece_model

torch.set_num_threads(1)

PROMPTS = ["a photo of a cat", "The  Quick fox!", "", "unseen words: zebra 42", "an astronaut riding a horse " * 20]


@pytest.fixture(scope="module")
def spiece_folder(tmp_path_factory):
    """A folder holding a tiny unigram SentencePiece model trained on the fly with T5's special ids."""
    sentencepiece = pytest.importorskip("sentencepiece")
    folder = tmp_path_factory.mktemp("t5_tokenizer")
    text = ["a photo of a cat sitting on a red mat", "the quick brown fox jumps over the lazy dog",
            "an astronaut riding a horse on the moon"] * 30
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_prefix=str(folder / "spiece"), vocab_size=36, hard_vocab_limit=False,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    return folder


def _reference_t5(seed=0):
    """A small transformers T5EncoderModel (gated-GELU v1.1) with random weights everywhere, norms included."""
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(vocab_size=300, d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=3,
                                   relative_attention_num_buckets=32, relative_attention_max_distance=128,
                                   feed_forward_proj="gated-gelu", dropout_rate=0.0)
    torch.manual_seed(seed)
    reference = transformers.T5EncoderModel(config).eval()
    state = {k: torch.randn_like(v) * 0.5 for k, v in reference.state_dict().items()}
    state["encoder.embed_tokens.weight"] = state["shared.weight"]  # tied in the reference
    reference.load_state_dict(state)
    return reference, state


@pytest.mark.parity
@torch.no_grad()
def test_t5_encoder_matches_transformers():
    """Our T5 encoder, loaded from the transformers state dict, matches T5EncoderModel with and without a mask."""
    reference, state = _reference_t5()
    config = detect_t5_config({k: tuple(v.shape) for k, v in state.items()})
    ours = T5EncoderModel(config).eval()
    ours.load_state_dict({k: v for k, v in state.items() if k != "encoder.embed_tokens.weight"}, strict=True)
    ids = torch.randint(0, 300, (2, 160), generator=torch.Generator().manual_seed(1))  # > max_distance: log buckets
    mask = torch.ones_like(ids)
    mask[1, 100:] = 0
    for attention_mask in (None, mask):
        expected = reference(ids, attention_mask=attention_mask).last_hidden_state
        error = float((ours(ids, attention_mask) - expected).abs().max() / expected.abs().max())
        assert error <= 1e-4, error


def test_detect_t5_config_reads_sizes_from_shapes():
    """Detection recovers every size of a T5 v1.1 encoder from its state-dict shapes, at T5-XXL size on meta."""
    with torch.device("meta"):
        model = T5EncoderModel(T5_XXL)
    shapes = {f"text_encoders.t5xxl.transformer.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    assert detect_t5_config(shapes, "text_encoders.t5xxl.transformer.") == T5_XXL
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(4.76e9, rel=0.01)


def test_relative_position_bucket_is_exact_near_and_log_spaced_far():
    """Offsets below 8 get their own bucket per sign; far offsets share log-spaced buckets capped at 15 / 31."""
    offsets = torch.tensor([0, 1, 7, -1, -7, 200, -200])
    assert relative_position_bucket(offsets).tolist() == [0, 17, 23, 1, 7, 31, 15]


def test_tokenizer_ids_match_transformers(spiece_folder):
    """Our ids equal transformers' T5Tokenizer on the same spiece.model, eos appended, padding with 0."""
    transformers = pytest.importorskip("transformers")
    reference = transformers.T5Tokenizer.from_pretrained(str(spiece_folder), extra_ids=0)
    ours = T5Tokenizer(spiece_folder / "spiece.model", max_length=32)
    for prompt in PROMPTS:
        expected = reference(prompt, max_length=32, truncation=True, padding="max_length")
        ids, mask = ours(prompt)
        assert ids[0].tolist() == expected.input_ids, prompt
        assert mask[0].tolist() == expected.attention_mask, prompt


def test_missing_tokenizer_model_names_the_file_and_the_fix(tmp_path):
    """A T5 checkpoint without spiece.model fails with the weights' path, where it looked, and what to copy."""
    weights = tmp_path / "t5xxl_fp16.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(TokenizerModelMissing, match="t5xxl_fp16.safetensors.*spiece.model.*Copy the spiece.model"):
        find_spiece_model(weights)


def test_tokenizer_model_is_found_beside_the_weights(tmp_path, spiece_folder):
    """``<stem>.spiece.model`` next to the weights is found, as is a diffusers tokenizer_3/ folder."""
    weights = tmp_path / "t5xxl.safetensors"
    (tmp_path / "t5xxl.spiece.model").write_bytes((spiece_folder / "spiece.model").read_bytes())
    assert find_spiece_model(weights).name == "t5xxl.spiece.model"
    pipeline = tmp_path / "sd3"
    (pipeline / "tokenizer_3").mkdir(parents=True)
    (pipeline / "text_encoder_3").mkdir()
    (pipeline / "tokenizer_3" / "spiece.model").write_bytes(b"x")
    assert find_spiece_model(pipeline / "text_encoder_3" / "model.safetensors").parent.name == "tokenizer_3"


def test_out_of_vocabulary_ids_are_refused():
    """Ids beyond the embedding table (a tokenizer from another model) raise a clear error, not an index crash."""
    model = T5EncoderModel(T5Config(vocab_size=10, d_model=8, d_kv=4, num_heads=2, d_ff=8, num_layers=1))
    with pytest.raises(ValueError, match="input_ids: ids must lie in \\[0, 10\\)"):
        model(torch.tensor([[3, 12]]))


@torch.no_grad()
def test_half_precision_encoder_stays_close_to_float32():
    """In float16 (the clamped path) and bfloat16 the output stays near float32 (2 % / 6 %: bf16 keeps 8 bits)."""
    _, state = _reference_t5(seed=2)
    config = detect_t5_config({k: tuple(v.shape) for k, v in state.items()})
    model = T5EncoderModel(config).eval()
    model.load_state_dict({k: v for k, v in state.items() if k != "encoder.embed_tokens.weight"})
    ids = torch.randint(0, 300, (1, 24), generator=torch.Generator().manual_seed(3))
    expected = model(ids)
    for dtype, tolerance in ((torch.float16, 0.02), (torch.bfloat16, 0.06)):  # measured 0.7 % / 4.0 %
        out = model.to(dtype)(ids)
        assert out.dtype == dtype
        assert float((out.float() - expected).abs().max() / expected.abs().max()) < tolerance, dtype
