"""The prompt syntax read without torch: weights bounded, other tools' syntax named (nodes/models/prompt_syntax.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nodegraph import Session
from nodes.models.prompt_syntax import parse_prompt_weights, syntax_notes, weight_problem


@pytest.mark.parametrize("prompt", ["(a small red circle:" + "9" * 400 + ")", "(red:1000000000000000000000000000000)",
                                    "(red:-150)", "(" * 60 + "red" + ")" * 60])
def test_a_weight_past_a_hundred_is_a_problem_naming_the_words(prompt):
    """(circle:99…9) gave a NaN image that VAEDecode blamed on the sampler (a hostile pass); 1.1^60 = 304 too."""
    problem = weight_problem(prompt)
    assert problem is not None and "past the ±100" in problem and "red" in problem


@pytest.mark.parametrize("prompt", ["a (red:1.3) circle", "[blue] square BREAK (star:0.5)", "(red:-1) circle",
                                    "((((((red))))))", "plain words", "a: b (c"])
def test_usual_weights_are_no_problem(prompt):
    assert weight_problem(prompt) is None


def test_other_tools_syntax_is_named_with_what_to_write():
    """InvokeAI's red++ and A1111's <lora:…> tags were read as words with no word said (an InvokeAI user's pass)."""
    (compel,) = syntax_notes("a red++ circle, blue-- square")
    assert "'red++', 'blue--'" in compel and "(red:1.21)" in compel
    (tag,) = syntax_notes("a red circle <lora:tiny_world_lcm_v3:0.8>")
    assert "<lora:tiny_world_lcm_v3:0.8>" in tag and "LoadLoRA" in tag
    assert syntax_notes("a red-blue circle, well-known, (red:1.2), C-3PO, 3 - 2") == []
    (long_tag,) = syntax_notes("<lora:" + "x" * 20_000 + ":1>")          # quoted short, not 20,000 characters
    assert len(long_tag) < 300


def test_the_prompt_syntax_needs_no_torch():
    """`validate` checks prompts (weights, embeddings) without importing torch (a docs-literal pass found
    validate of any EncodeText graph importing it through the embeddings module)."""
    code = ("import sys; from nodes.models import prompt_syntax, nodes; "
            "nodes._missing_embeddings('embedding:x', lambda folder: ([], [])); prompt_syntax.weight_problem('(a:2)'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_encode_text_refuses_the_weight_at_validation_and_warns_about_the_syntax():
    session = Session(autoload=False)
    graph = {"format_version": 2, "nodes": {
        "ck": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world_v4.safetensors"}},
        "enc": {"type": "EncodeText", "inputs": {"text_encoder": {"node": "ck", "output": "text_encoder"},
                                                 "text": "(a red circle:1e3)"}},
        "s": {"type": "ShowValue", "inputs": {"value": {"node": "enc", "output": "conditioning"}}}}}
    assert weight_problem("(a red circle:1e3)") is None         # "1e3" is no weight to the syntax: text
    graph["nodes"]["enc"]["inputs"]["text"] = "(a red circle:1000)"
    (error,) = session.validate(graph)
    assert error.input == "text" and "1000" in error.message
    graph["nodes"]["enc"]["inputs"]["text"] = "a red++ circle <lora:x:1>"
    warnings = [w["message"] for w in session.run(graph).warnings]
    assert any("InvokeAI" in w for w in warnings) and any("LoadLoRA" in w for w in warnings)
    assert not any("never learnt" in w and "lora" in w for w in warnings)     # the tag's words: one warning
    assert parse_prompt_weights("x") == [("x", 1.0, False)]
