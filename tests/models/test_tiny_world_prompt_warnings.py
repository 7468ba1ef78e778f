"""What the encoders say about prompts the shipped tiny-world models cannot draw: unknown words on the flow
model too, plurals and counts named as such, two-object prompts (weak binding), and the flow model's
template-only phrasings."""

from __future__ import annotations

import pytest

from nodegraph import Session

TEMPLATE = "a small red circle on the left, on a blue background"


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


def warnings_for(session: Session, checkpoint: str, encoder: str, prompt: str) -> list[str]:
    """The warning messages of one encoder node reading `prompt` with `checkpoint`'s text encoder."""
    graph = {"format_version": 2, "nodes": {
        "checkpoint": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": checkpoint}},
        "prompt": {"type": encoder, "inputs": {"text_encoder": {"node": "checkpoint", "output": "text_encoder"},
                                               "text": prompt}},
        "show": {"type": "ShowValue", "inputs": {"value": {"node": "prompt", "output": "conditioning"}}}}}
    return [w["message"] for w in session.run(graph).warnings]


def test_the_flow_model_names_unknown_words_like_the_default_model(session):
    """A newcomer's "a yelow dog" on the flow demo gave a grey canvas and no warning: EncodeTextSD3 said nothing."""
    messages = warnings_for(session, "tiny_world_flow.safetensors", "EncodeTextSD3", "a yelow dog")
    assert any("never learnt the word(s) 'yelow', 'dog'" in m and "Check the spelling" in m for m in messages)


def test_the_flow_model_warns_about_a_prompt_that_is_not_one_of_its_templates(session):
    """"a blue circle" drew a plain blue canvas on the flow model: it learnt only the five caption templates."""
    messages = warnings_for(session, "tiny_world_flow.safetensors", "EncodeTextSD3", "a blue circle")
    assert any("five caption templates" in m for m in messages)
    assert warnings_for(session, "tiny_world_flow.safetensors", "EncodeTextSD3", TEMPLATE.upper()) == []


def test_a_plural_is_not_called_a_spelling_mistake(session):
    """"three red circles" said "Check the spelling"; the spelling is right, the model knows only 'circle'."""
    (message,) = warnings_for(session, "tiny_world_v6f.safetensors", "EncodeText", "three red circles")
    assert "write 'circle' for 'circles'" in message and "counting" in message
    assert "spelling" not in message


def test_a_two_object_prompt_warns_that_binding_is_weak(session):
    """Template-form two-object prompts come out right in about one image in five: the warning says so first."""
    prompt = "a red circle on the left and a blue square on the right, on a white background"
    (message,) = warnings_for(session, "tiny_world_v6f.safetensors", "EncodeText", prompt)
    assert message.startswith("binding is weak") and "swapped colours" in message
    assert warnings_for(session, "tiny_world_v6f.safetensors", "EncodeText", TEMPLATE) == []
