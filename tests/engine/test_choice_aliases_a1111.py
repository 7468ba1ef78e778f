"""A1111's sampler and schedule names get the choice they mean, or a plain "not built in" (nodegraph/validation.py
`CHOICE_ALIASES` / `UNSUPPORTED_CHOICES`; an A1111 user's pass found "DPM2 a" → 'ddpm', "k_euler_a" → 'euler')."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodegraph.cli import main
from nodegraph.validation import suggest_choice
from nodes.sampling.nodes import LIBRARY_SAMPLERS, LIBRARY_SCHEDULES

TXT2IMG = str(Path(__file__).resolve().parents[2] / "graphs" / "txt2img.json")


@pytest.mark.parametrize(("name", "meant"), [
    ("k_euler_a", "'euler_ancestral'"), ("k_euler_ancestral", "'euler_ancestral'"), ("k_euler", "'euler'"),
    ("k_lms", "'lms'"), ("k_heun", "'heun'"), ("k_dpmpp_2m", "'dpmpp_2m'"), ("k_dpmpp_sde", "'dpmpp_sde'"),
    ("k_dpmpp_2m_sde", "'dpmpp_2m_sde'"), ("k_lms_ka", "'lms' with scheduler 'karras'"),
    ("k_dpmpp_2m_ka", "'dpmpp_2m' with scheduler 'karras'"), ("DPM++ 2M Karras", "'dpmpp_2m' with scheduler 'karras'"),
    ("DPM++ SDE Karras", "'dpmpp_sde' with scheduler 'karras'"), ("Euler a", "'euler_ancestral'"),
    ("DPM++ 2M", "'dpmpp_2m'"), ("DPM++ 2M SDE", "'dpmpp_2m_sde'"),
])
def test_a1111_sampler_names_suggest_the_sampler_meant(name, meant):
    """A1111's menu names and its old API names ("k_euler_a") name the sampler (and schedule) they are."""
    assert f"Did you mean {meant}?" in suggest_choice(name, LIBRARY_SAMPLERS)


@pytest.mark.parametrize(("name", "said"), [
    ("DPM2", "DPM2 is not built in"), ("DPM2 Karras", "DPM2 is not built in"), ("k_dpm_2", "DPM2 is not built in"),
    ("DPM2 a", "DPM2 a is not built in"), ("DPM2 a Karras", "DPM2 a is not built in"),
    ("k_dpm_2_a", "DPM2 a is not built in"), ("k_dpm_2_a_ka", "DPM2 a is not built in"),
    ("DPM++ 2S a", "DPM++ 2S ancestral is not built in"), ("DPM++ 2S a Karras", "DPM++ 2S ancestral is not built in"),
    ("k_dpmpp_2s_a", "DPM++ 2S ancestral is not built in"),
    ("DPM++ 3M SDE", "DPM++ 3M SDE is not built in"), ("DPM++ 3M SDE Karras", "DPM++ 3M SDE is not built in"),
    ("DPM++ 3M SDE Exponential", "DPM++ 3M SDE is not built in"),
    ("DPM++ 2M SDE Heun", "the heun solver) is not a choice here"),
    ("Restart", "Restart sampling is not built in"), ("DDIM CFG++", "CFG++ samplers are not built in; 'ddim'"),
    ("k_dpm_fast", "DPM-Solver fast"), ("k_dpm_ad", "DPM-Solver adaptive"),
])
def test_a1111_samplers_nodegraph_lacks_say_so(name, said):
    """A sampler nodegraph lacks says so and names what to use, with no guess at an unrelated one ('ddpm')."""
    hint = suggest_choice(name, LIBRARY_SAMPLERS)
    assert said in hint and "Did you mean" not in hint and "ddpm" not in hint


@pytest.mark.parametrize(("name", "expected"), [
    ("Polyexponential", "the polyexponential schedule is not built in, but at A1111's default rho of 1"),
    ("Align Your Steps", "Align Your Steps is not built in"), ("Align Your Steps GITS", "Align Your Steps is not"),
    ("Automatic", "A1111's 'Automatic' is each sampler's own default schedule"),
    ("DDIM", "Did you mean 'ddim_uniform'?"), ("Uniform", "Did you mean 'normal'?"),
    ("SGM Uniform", "Did you mean 'sgm_uniform'?"), ("Karras", "Did you mean 'karras'?"),
])
def test_a1111_schedule_types_name_the_schedule_or_say_it_is_not_built_in(name, expected):
    """A1111's "Schedule type" menu: its names map to ours, or say plainly that the schedule is not built in."""
    assert expected in suggest_choice(name, LIBRARY_SCHEDULES)


def test_schedule_notes_stay_off_sampler_lists_and_sampler_notes_off_schedule_lists():
    """A schedule's note in a sampler list (or a sampler's in a schedule list) would answer the wrong question."""
    assert "not built in" not in suggest_choice("Polyexponential", LIBRARY_SAMPLERS)
    assert "not built in" not in suggest_choice("DPM2 a", LIBRARY_SCHEDULES)


def test_the_cli_says_dpm2_a_is_not_built_in(capsys):
    """`nodegraph validate --set "sampler=DPM2 a"` suggested 'ddpm', another sampler (the tester's command)."""
    assert main(["validate", TXT2IMG, "--no-plugins", "--set", "sampler=DPM2 a"]) == 1
    out = capsys.readouterr().out
    assert "DPM2 a is not built in; 'euler_ancestral'" in out and "'ddpm'?" not in out
