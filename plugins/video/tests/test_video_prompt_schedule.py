"""PromptTravel's schedule text: the "N: prompt" lines it always read, FizzNodes' quoted form that ComfyUI
AnimateDiff users paste ('"0": "a red circle", "7": "a blue square"'), and a warning (not a silent single prompt)
when a text looks like a schedule but its entries were not read as keyframes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodegraph import Session
from nodegraph.model_paths import ModelPaths
from nodegraph_video.frames import FramesError, parse_keyframes, schedule_warning

ROOT = Path(__file__).resolve().parents[3]
RED, BLUE = "a red circle on the left, on a black background", "a blue square on the right, on a white background"


@pytest.mark.parametrize("text", [
    f'"0" :"{RED}",\n"7" :"{BLUE}"',                 # FizzNodes' BatchPromptSchedule, as the tester pasted it
    f'"0": "{RED}", "7": "{BLUE}"',                  # one line
    f'"0": "{RED}",\n"7": "{BLUE}",\n',              # trailing comma and newline
    f'{{"0": "{RED}",\n "-1": "{BLUE}"}}',           # braces, a frame counted from the end
    f'0: "{RED}",\n7: "{BLUE}",',                    # quoted prompts after plain numbers
    f"0: {RED}\n7: {BLUE}",                          # the plain forms, as before
    f"0: {RED} | 7: {BLUE}",
])
def test_quoted_and_plain_schedules_give_the_same_keyframes(text):
    """Every form gives frames 0 and 7 with the prompts without quotes or commas, and no warning."""
    keyframes = parse_keyframes(text, 8)
    assert keyframes == [(0, RED), (7, BLUE)]
    assert schedule_warning(text, keyframes) is None


def test_quoted_prompts_keep_escaped_quotes_and_refuse_stray_text():
    """\\" inside a quoted prompt is a quote; text that is not an entry is refused naming it, not swallowed."""
    assert parse_keyframes(r'"0": "a \"red\" circle", "3": "b"', 4) == [(0, 'a "red" circle'), (3, "b")]
    for bad, stray in (('"0": a red circle', '"0": a red circle'), ('"0": "a" oops "3": "b"', "oops")):
        with pytest.raises(FramesError, match="is not a") as caught:
            parse_keyframes(bad, 4)
        assert repr(stray) in str(caught.value) and caught.value.input == "prompts"
    with pytest.raises(FramesError, match="two prompts"):
        parse_keyframes('"0": "a", "0": "b"', 4)
    with pytest.raises(FramesError, match="outside the clip"):
        parse_keyframes('"0": "a", "9": "b"', 4)


@pytest.mark.parametrize("text, frames", [
    ("0: a red circle, 7: a blue square", "0, 7"),             # one line, comma-separated: read as one keyframe
    ("'0': 'a red circle', '7': 'a blue square'", "0, 7"),     # single quotes: not a schedule form read here
    ("a cat, 0: sitting, 5: running", "0, 5"),                 # entries after a prompt
])
def test_a_text_that_looks_like_a_schedule_but_was_not_read_as_one_warns(text, frames):
    """More "N:" entries than keyframes read: the warning names them and the forms that are read."""
    warning = schedule_warning(text, parse_keyframes(text, 8))
    assert warning is not None and f"(frames {frames})" in warning and "'0: a red circle | 7:" in warning


@pytest.mark.parametrize("text", ["just one prompt", "a clock at 12:30, on a desk", "a (red:1.2) circle",
                                  "0: a clock at 12:30 | 7: a clock at 1:45"])
def test_times_weights_and_plain_prompts_do_not_warn(text):
    """A time of day, a prompt weight or a single prompt is not a schedule."""
    assert schedule_warning(text, parse_keyframes(text, 8)) is None


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    paths = ModelPaths(roots=[tmp_path_factory.mktemp("models")],
                       extra={"checkpoints": [ROOT / "models" / "checkpoints"]})
    return Session(autoload=True, allow=["video"], model_paths=paths,
                   output_dir=tmp_path_factory.mktemp("output"), input_dir=tmp_path_factory.mktemp("input"))


def _travel(session: Session, prompts: str):
    link = {"node": "ck", "output": "text_encoder"}
    graph = {"format_version": 1, "nodes": {
        "ck": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": "tiny_world.safetensors"}},
        "pt": {"type": "video.PromptTravel", "inputs": {"text_encoder": link, "prompts": prompts, "frames": 8}}}}
    result = session.run(graph, outputs=["pt"])
    return result.outputs["pt"]["conditioning"]["context"], [w["message"] for w in result.warnings]


def test_prompt_travel_reads_a_fizznodes_schedule(session):
    """The tester's pasted schedule: frames 0 and 7 get different conditioning (they were identical), no warning;
    the same prompts on one comma-separated line run with a warning naming the keyframes."""
    context, warnings = _travel(session, f'"0" :"{RED}",\n"7" :"{BLUE}"')
    assert float((context[0] - context[7]).abs().max()) > 1e-3 and warnings == []
    plain, _ = _travel(session, f"0: {RED}\n7: {BLUE}")
    assert (plain - context).abs().max() == 0
    _, warnings = _travel(session, "0: a red circle, 7: a blue square")
    (warning,) = warnings
    assert "schedule of 2 keyframes (frames 0, 7)" in warning
