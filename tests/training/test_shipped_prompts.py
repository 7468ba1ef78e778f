"""Every prompt in the shipped graphs speaks the tiny world's language (cfg_sweep.json said "medium", #16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodes.training.world_captions import parse_prompt, unknown_words

GRAPHS = sorted((Path(__file__).resolve().parents[2] / "graphs").glob("*.json"))
PROMPT_INPUTS = {"EncodeText": "text", "RenderTinyWorld": "caption"}


def _prompts(path: Path) -> list[tuple[str, str]]:
    graph = json.loads(path.read_text())
    out = []
    for node_id, node in graph["nodes"].items():
        name = PROMPT_INPUTS.get(node["type"])
        text = node.get("inputs", {}).get(name) if name else None
        if isinstance(text, str) and text.strip():
            out.append((node_id, text))
    return out


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_shipped_prompts_use_only_world_words_and_parse(path):
    """Each non-empty prompt has no word the world lacks and describes a tiny-world scene."""
    for node_id, text in _prompts(path):
        assert unknown_words(text) == [], f"{path.name} node {node_id}: {text!r}"
        assert parse_prompt(text) is not None, f"{path.name} node {node_id}: {text!r}"
