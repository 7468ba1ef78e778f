"""A1111 prompt syntax read here as plain words is named, and so is an embedding's bare file name
(nodes/models/prompt_syntax.py `syntax_notes`, `bare_embedding_notes`; an A1111 user's pass found
`[red:green:0.5]`, `[red|green]`, `AND` and a bare "redthing" all silently read as words)."""

from __future__ import annotations

import pytest

from nodegraph import Session
from nodes.models.prompt_syntax import bare_embedding_notes, syntax_notes


@pytest.mark.parametrize(("prompt", "shown"), [
    ("a small [red:green:0.5] circle", "'[red:green:0.5]'"),
    ("a small [green:0.5] circle", "'[green:0.5]'"),            # [to:when]
    ("a small [red::0.5] circle", "'[red::0.5]'"),              # [from::when]
    ("a [red:green:10] circle", "'[red:green:10]'"),            # when as a step number
    ("a [(red:1.2):green: 0.5 ] circle", "'[(red:1.2):green: 0.5 ]'"),
])
def test_prompt_editing_is_named_with_what_to_do_instead(prompt, shown):
    """[from:to:when] in any of its forms is one note that names the text and the two-sampler recipe."""
    (note,) = syntax_notes(prompt)
    assert note.startswith(shown) and "prompt editing [from:to:when] is not read here" in note
    assert "SplitSigmas" in note


def test_alternation_and_composable_and_are_named():
    """[a|b] and an upper-case AND between spaces each get their note."""
    (alternation,) = syntax_notes("a small [red|green] circle")
    assert alternation.startswith("'[red|green]'") and "alternation [a|b]" in alternation
    (composable,) = syntax_notes("a red circle AND a green square")
    assert "composable diffusion" in composable and "(words:1.2)" in composable
    assert len(syntax_notes("a [red:green:0.5] [red|blue] circle AND a square")) == 3


@pytest.mark.parametrize("prompt", [
    "a [red] circle",                       # de-emphasis
    "a (red:1.3) circle, [(blue:1.2)]",     # weights, also inside a square group
    "[a (red:1.3)] circle",
    "embedding:thing, (embedding:thing:1.2), [embedding:thing]",
    "a clock at 10:30, a ratio of 16:9",   # colons and numbers outside square brackets
    r"a \[red:green:0.5\] sign",            # escaped brackets are literal text
    "Rock and roll, ANDROID, BAND AID, red|green",
    "(a red circle:0.8) [blue square]",
])
def test_ordinary_text_gets_no_a1111_note(prompt):
    """Weights, de-emphasis, embeddings, times, escaped brackets and a lower-case 'and' are no A1111 syntax."""
    assert syntax_notes(prompt) == []


def test_a_lora_tag_is_not_taken_for_prompt_editing():
    """<lora:name:0.8> has ':0.8' before its closer, but angle brackets: only the LoRA note."""
    (note,) = syntax_notes("a red circle <lora:tiny_world_lcm_v3:0.8>")
    assert "LoadLoRA" in note


def test_a_bare_embedding_file_name_is_named_with_what_to_write():
    """A word equal to an embedding file's stem (any case, also in a subfolder) says to write embedding:NAME."""
    files = ["redthing.safetensors", "neg/EasyNegative.pt", "notes.txt"]
    first, second = bare_embedding_notes("a small RedThing circle, (EasyNegative:1.2), redthing", files)
    assert first == ("'RedThing' matches the embedding file redthing.safetensors; write embedding:redthing to use "
                     "it (a bare name is plain words here)")
    assert "neg/EasyNegative.pt" in second and "embedding:neg/EasyNegative " in second


@pytest.mark.parametrize("prompt", ["a small embedding:redthing circle", "(embedding:redthing:1.2)",
                                    "a red thing", "notes", "redthings"])
def test_an_embedding_used_as_such_or_an_other_word_gets_no_note(prompt):
    """`embedding:NAME` is how it is used here; other words, and files that are no embedding, say nothing."""
    assert bare_embedding_notes(prompt, ["redthing.safetensors", "notes.txt"]) == []


def _encode_graph(text: str) -> dict:
    return {"format_version": 2, "nodes": {
        "ck": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "enc": {"type": "EncodeText", "inputs": {"text_encoder": {"node": "ck", "output": "text_encoder"},
                                                 "text": text}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "enc", "output": "conditioning"}}}}}


def test_encode_text_warns_about_a1111_syntax_and_a_bare_embedding_name(tmp_path):
    """A run's warnings (what the CLI prints and the editor shows) carry the new notes, once each."""
    (tmp_path / "models" / "embeddings").mkdir(parents=True)
    (tmp_path / "models" / "embeddings" / "redthing.safetensors").write_bytes(b"listed, never read")
    session = Session(autoload=False)
    result = session.run(_encode_graph("a small [red:green:0.5] redthing circle AND a square, redthing"))
    warnings = [w["message"] for w in result.warnings]
    assert [w for w in warnings if w.startswith("'redthing' matches the embedding file")] == [
        "'redthing' matches the embedding file redthing.safetensors; write embedding:redthing to use it (a bare "
        "name is plain words here)"]
    assert any("prompt editing" in w for w in warnings) and any("composable diffusion" in w for w in warnings)
