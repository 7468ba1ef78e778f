"""The video plugin's library: frame-batch operations, prompt travel, smoothing, animated clips and captions."""

from __future__ import annotations

import random

import pytest
import torch

from nodegraph import api
from nodegraph_video.animated_world import (
    MOTIONS,
    VIDEO_HOLDOUT,
    ClipError,
    ClipSpec,
    caption_problem,
    parse_video_caption,
    read_motion,
    render_clip,
    sample_clip,
    video_caption,
)
from nodegraph_video.frames import (
    FramesError,
    blend_conditioning,
    concat,
    crossfade,
    frame_indices,
    on_frames,
    parse_keyframes,
    reverse,
    select,
    temporal_smooth,
    travel_weights,
)
from nodegraph_video.motion_training import keyframe_conditioning

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world():
    return api.tiny_world()


def _clips(count: int = 2, frames: int = 4) -> torch.Tensor:
    """(count·frames, 1) where item (c, f) holds 10·c + f, to read back what an operation did."""
    return torch.tensor([[10.0 * c + f] for c in range(count) for f in range(frames)])


def test_frame_indices_accept_indices_and_slices():
    """'0, -1', '1:3' and '::2' select the frames Python indexing would; bad specs name the input."""
    assert frame_indices("0, -1", 5) == [0, 4]
    assert frame_indices("1:3, 0", 5) == [1, 2, 0]
    assert frame_indices("::2", 5) == [0, 2, 4]
    for bad, message in (("", "no frames"), ("a", "not a frame index"), ("9", "does not exist"), ("1:1", "selects no"),
                         ("::0", "cannot be 0")):
        with pytest.raises(FramesError, match=message) as info:
            frame_indices(bad, 5, "indices")
        assert info.value.input == "indices"


def test_select_reverse_and_concat_act_on_every_clip():
    """Frame operations apply per clip of a clip-major batch."""
    x = _clips()
    assert select(x, 4, [3, 0]).view(-1).tolist() == [3, 0, 13, 10]
    assert reverse(x, 4).view(-1).tolist() == [3, 2, 1, 0, 13, 12, 11, 10]
    joined = concat(x, 4, select(x, 4, [0]), 1)
    assert joined.view(-1).tolist() == [0, 1, 2, 3, 0, 10, 11, 12, 13, 10]
    with pytest.raises(FramesError, match="clip"):
        concat(x, 4, torch.zeros(3, 1), 1)


def test_on_frames_updates_a_latent_and_its_mask():
    """A LATENT keeps its other keys, gets the new frame count, and its per-frame mask follows the frames."""
    latent = {"samples": torch.arange(8.0).view(8, 1, 1, 1), "frames": 4, "fps": 8.0,
              "noise_mask": torch.arange(8.0).view(8, 1, 1)}
    out = on_frames(latent, 4, lambda t: select(t, 4, [1]), 1)
    assert out["frames"] == 1 and out["fps"] == 8.0
    assert out["samples"].view(-1).tolist() == [1, 5] and out["noise_mask"].view(-1).tolist() == [1, 5]


def test_keyframes_parse_and_travel_weights_interpolate():
    """'0: a | 4: b' blends linearly between keyframes and holds outside them; errors name the input."""
    assert parse_keyframes("0: a | -1: b", 5) == [(0, "a"), (4, "b")]
    assert parse_keyframes("just one prompt", 3) == [(0, "just one prompt")]
    # a quoted number inside a plain prompt is no schedule (it was refused as a broken quoted schedule)
    assert parse_keyframes('a poster saying "2024": happy new year', 3) == [
        (0, 'a poster saying "2024": happy new year')]
    assert parse_keyframes('0: a | 2: "2024": b', 3) == [(0, "a"), (2, '"2024": b')]
    assert travel_weights([1, 3], 5) == [(0, 0, 0.0), (0, 0, 0.0), (0, 1, 0.5), (1, 1, 0.0), (1, 1, 0.0)]
    for bad, message in (("0: a\n0: b", "two prompts"), ("0: a | 9: b", "outside the clip"), ("0: a | b", "no frame")):
        with pytest.raises(FramesError, match=message):
            parse_keyframes(bad, 5)


def test_blend_conditioning_rows_are_per_frame_lerps():
    """Row k of the travelled conditioning is lerp(prompt a, prompt b, w_k); mismatched shapes are refused."""
    a, b = {"context": torch.zeros(1, 2, 3)}, {"context": torch.ones(1, 2, 3)}
    out = blend_conditioning([a, b], travel_weights([0, 4], 5))["context"]
    assert out.shape == (5, 2, 3) and out[:, 0, 0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(FramesError, match="different shape"):
        blend_conditioning([a, {"context": torch.ones(1, 4, 3)}], travel_weights([0, 4], 5))
    rows = keyframe_conditioning({"context": torch.zeros(2, 2, 3)}, {"context": torch.ones(2, 2, 3)}, 3)["context"]
    assert rows[:, 0, 0].tolist() == [0.0, 0.5, 1.0, 0.0, 0.5, 1.0]


def test_temporal_smoothing_and_crossfade():
    """Smoothing keeps a constant clip, averages a spike over its neighbours; crossfade blends linearly."""
    flat = torch.ones(6, 2)
    assert torch.allclose(temporal_smooth(flat, 6, 1.5), flat)
    spike = torch.zeros(11, 1)
    spike[5] = 1.0
    smoothed = temporal_smooth(spike, 11, 1.0).view(-1)
    assert smoothed[5] < 1 and smoothed[4] == smoothed[6] > 0 and abs(float(smoothed.sum()) - 1.0) < 1e-5
    assert torch.equal(temporal_smooth(spike, 11, 0.0), spike)
    fade = crossfade(torch.zeros(1, 1), torch.ones(1, 1), 5).view(-1)
    assert fade.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_temporal_smoothing_with_a_vanishing_sigma_is_the_identity():
    """A sigma below float32's smallest value (1e-46, 1e-300, 5e-324) leaves the frames as they are, never NaN."""
    frames = torch.rand(5, 4, 4, 3)
    for sigma in (1e-46, 1e-300, 5e-324):
        assert torch.equal(temporal_smooth(frames, 5, sigma), frames)


def test_video_captions_round_trip(world):
    """parse_video_caption inverts video_caption for random clips of every motion; other text gives None."""
    rng = random.Random(3)
    seen = set()
    for _ in range(300):
        clip = sample_clip(rng, world)
        seen.add(clip.motion)
        parsed = parse_video_caption(video_caption(clip), world)
        assert parsed is not None and video_caption(parsed) == video_caption(clip)
    assert seen == set(MOTIONS)
    assert parse_video_caption("A small RED circle moving from left to right; on a blue background!", world).motion \
        == "left_to_right"
    for text in ("a red circle moving, on a blue background", "a small red circle and a square moving from left to "
                 "right, on a blue background", "hello", "a small red circle moving from left to left, on a blue "
                 "background"):
        assert parse_video_caption(text, world) is None


@pytest.mark.parametrize("text, caption", [
    ("a red circle moving up", "a small red circle moving from bottom to top, on a black background"),
    ("The yellow triangle falls.", "a small yellow triangle moving from top to bottom, on a black background"),
    ("a tiny cyan triangle drifting leftwards over a gray background",
     "a small cyan triangle moving from right to left, on a gray background"),
    ("red ring sliding to the right on a white background",
     "a small red ring moving from left to right, on a white background"),
    ("a red ring moving left to right", "a small red ring moving from left to right, on a black background"),
    ("BLUE BACKGROUND, RED STAR RISING", "a small red star moving from bottom to top, on a blue background"),
    ("a black circle going down", "a small black circle moving from top to bottom, on a white background"),
    ("a big blue star shrinking", "a blue star shrinking from large to small in the centre, on a black background"),
    ("a green square getting bigger at the top, on a purple background",
     "a green square growing from small to large at the top, on a purple background"),
    ("a circle turning from red to green", "a small circle changing from red to green in the centre, on a black "
                                           "background"),
    ("a purple circle in the middle turning orange",
     "a small circle changing from purple to orange in the centre, on a black background"),
    ("a red circle", "a small red circle in the centre, on a black background"),
    ("on the left a large white square, grey background",
     "a large white square on the left, on a gray background"),
])
def test_video_captions_as_people_write_them(world, text, caption):
    """Free phrasings: motion verbs and directions, synonyms, any order and case; size, position and background
    may be left out (small, centre, black, or white for a black object)."""
    clip = parse_video_caption(text, world)
    assert clip is not None and video_caption(clip) == caption


@pytest.mark.parametrize("text, why", [
    ("a red circle bouncing", "'bouncing'"),
    ("a red circle moving", "'moving' has no direction"),
    ("a red circle growing and shrinking", "names 2 motions (grow, shrink)"),
    ("a red square at the top moving to the right", "starts on the left, but the caption puts the square at the top"),
    ("a square moving right", "names no colour for the square"),
    ("a red circle moving right on a red background", "red, the background's colour"),
    ("a red circle and a blue square moving right", "more than one object (circle, square)"),
    ("a red circle turning red", "changes from red to red"),
    ("a medium red circle moving up", "'medium'"),
    ("a purpel circle moving up", "did you mean 'purpel' → 'purple'"),
    ("two red circles moving right", "a clip shows one moving shape, so 'two' cannot be drawn"),   # not "→ 'to'"
])
def test_video_captions_that_are_refused_say_why(world, text, why):
    """Unknown words are named (with a close known word); ambiguous or impossible clips (two motions, no
    direction, a move that starts elsewhere, an object the background's colour, a change to the same colour,
    two objects) are refused with that reason, as the README promises."""
    assert parse_video_caption(text, world) is None
    assert why in caption_problem(text, world)


def test_training_clips_never_show_held_out_pairs(world):
    """Training clips avoid the held-out motion–shape pairs; held-out sampling gives only held-out clips."""
    rng = random.Random(5)
    for _ in range(400):
        clip = sample_clip(rng, world)
        assert (clip.motion, clip.shape) not in VIDEO_HOLDOUT and not clip.is_held_out(world)
    assert all(sample_clip(rng, world, held_out=True).is_held_out(world) for _ in range(50))
    with pytest.raises(ClipError):
        ClipSpec("left_to_right", "circle", "red", "red")


def test_shape_weights_draw_stars_more_often_and_keep_the_hold_out(world):
    """{"star": 3} makes stars about 3/7 of training clips, never a held-out pair; {} is the uniform draw (the
    same clips as before for a seed); bad text is a ValueError naming the entry."""
    uniform = [sample_clip(random.Random(f"u{i}"), world) for i in range(50)]
    assert uniform == [sample_clip(random.Random(f"u{i}"), world, shape_weights={}) for i in range(50)]
    weighted = [sample_clip(random.Random(f"w{i}"), world, shape_weights={"star": 3}) for i in range(700)]
    share = sum(clip.shape == "star" for clip in weighted) / len(weighted)
    assert 0.33 < share < 0.5, share
    assert not any(clip.is_held_out(world) for clip in weighted)
    assert world.parse_shape_weights("star: 3, ring: 0.5") == {"star": 3.0, "ring": 0.5}
    with pytest.raises(ValueError, match="hexagon"):
        world.parse_shape_weights("hexagon: 2")


def test_rendered_clips_read_back_as_their_motion(world):
    """The detector reads each rendered motion back: direction, growth, colour change, constant shape."""
    cases = {
        ClipSpec("left_to_right", "star", "red", "blue", size="large"): ("direction", "left_to_right"),
        ClipSpec("bottom_to_top", "circle", "yellow", "black"): ("direction", "bottom_to_top"),
        ClipSpec("grow", "ring", "white", "green", position="left"): ("grew", True),
        ClipSpec("shrink", "square", "cyan", "gray"): ("shrank", True),
    }
    for clip, (key, expected) in cases.items():
        frames = render_clip(clip, world, 8)
        assert frames.shape == (8, 64, 64, 3)
        summary = read_motion(world.detect_many(frames))
        assert summary[key] == expected and set(summary["shapes"]) == {clip.shape}
    change = ClipSpec("colour", "triangle", "red", "white", end_colour="blue", size="large")
    colours = read_motion(world.detect_many(render_clip(change, world, 8)))["colours"]
    assert colours[0] == "red" and colours[-1] == "blue"


def test_frame_correlated_noise_shares_the_asked_part_across_a_clips_frames():
    """ε_f = √c ε_clip + √(1-c) ε_f: unit variance, frame-to-frame correlation ≈ c within a clip, ≈ 0 across
    clips; the same seed gives the same noise; c = 0 is independent frames."""
    from nodegraph_video.frames import FrameCorrelatedNoise, FramesError

    samples = torch.zeros(2 * 8, 4, 32, 32)
    noise = FrameCorrelatedNoise(7, 8, 0.6).generate(samples)
    assert noise.shape == samples.shape and abs(float(noise.std()) - 1) < 0.02
    flat = noise.flatten(1)
    within = float(torch.corrcoef(flat[:8]).triu(1).sum() / 28)
    across = float(torch.corrcoef(torch.stack([flat[0], flat[8]]))[0, 1])
    assert abs(within - 0.6) < 0.05 and abs(across) < 0.05
    assert torch.equal(noise, FrameCorrelatedNoise(7, 8, 0.6).generate(samples))
    independent = FrameCorrelatedNoise(7, 8, 0.0).generate(samples).flatten(1)
    assert abs(float(torch.corrcoef(independent[:8]).triu(1).sum() / 28)) < 0.05
    with pytest.raises(FramesError):
        FrameCorrelatedNoise(7, 8, 1.0)
    with pytest.raises(FramesError):
        FrameCorrelatedNoise(7, 3, 0.5).generate(samples)


# --- cross-frame attention ------------------------------------------------------------------------


def _qkv(clips: int = 2, frames: int = 4, heads: int = 2, tokens: int = 6, dim: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(clips * frames, heads, tokens, dim, generator=generator) for _ in range(3)]


def test_anchor_keys_read_the_first_frame_per_clip():
    from nodegraph_video.cross_frame import anchor_keys

    k, _, _ = _qkv()
    clip = k.view(2, 4, *k.shape[1:])
    first = anchor_keys(k, 4, "first").view(2, 4, *k.shape[1:])
    assert torch.equal(first, clip[:, :1].expand_as(clip))                 # each clip its own first frame
    both = anchor_keys(k, 4, "first_and_self")
    assert both.shape == (8, 2, 12, 8)                                     # (B·F, heads, 2 tokens, dim)
    both = both.view(2, 4, 2, 12, 8)
    assert torch.equal(both[:, :, :, :6], clip[:, :1].expand_as(clip)) and torch.equal(both[:, :, :, 6:], clip)
    previous = anchor_keys(k, 4, "first_and_previous").view(2, 4, 2, 12, 8)[:, :, :, 6:]
    assert torch.equal(previous[:, 1:], clip[:, :-1]) and torch.equal(previous[:, 0], clip[:, 0])


def test_cross_frame_processor_keeps_frame_zero_and_strength_zero_is_plain_attention():
    from nodegraph_video.cross_frame import CrossFrameProcessor
    from nodegraph_video.motion_module import frames_context
    from nodes.models.patches import default_attention

    q, k, v = _qkv()
    plain = default_attention(q, k, v)
    with frames_context(4):
        for mode in ("first", "first_and_self", "first_and_previous"):
            out = CrossFrameProcessor(mode)(q, k, v, None, default_attention).view(2, 4, 2, 6, 8)
            torch.testing.assert_close(out[:, 0], plain.view(2, 4, 2, 6, 8)[:, 0])   # frame 0 reads itself
            assert not torch.allclose(out[:, 1:], plain.view(2, 4, 2, 6, 8)[:, 1:])
        torch.testing.assert_close(CrossFrameProcessor("first", 0.0)(q, k, v, None, default_attention), plain)
        half = CrossFrameProcessor("first", 0.5)(q, k, v, None, default_attention)
        full = CrossFrameProcessor("first", 1.0)(q, k, v, None, default_attention)
        torch.testing.assert_close(half, (plain + full) / 2)
        # Under "first", frames whose queries equal frame 0's give frame 0's output: the look is shared.
        same_q = q.view(2, 4, 2, 6, 8)[:, :1].expand(2, 4, 2, 6, 8).reshape(q.shape)
        out = CrossFrameProcessor("first")(same_q, k, v, None, default_attention).view(2, 4, 2, 6, 8)
        torch.testing.assert_close(out, out[:, :1].expand_as(out))


def test_cross_frame_processor_needs_the_clip_length_and_a_known_mode():
    from nodegraph_video.cross_frame import CrossFrameProcessor
    from nodegraph_video.motion_module import MotionModuleError, frames_context
    from nodes.models.patches import default_attention

    q, k, v = _qkv()
    with pytest.raises(MotionModuleError) as info:
        CrossFrameProcessor()(q, k, v, None, default_attention)
    assert info.value.input == "frames" and "SampleVideo" in str(info.value)
    with frames_context(3), pytest.raises(MotionModuleError, match="multiple of the clip length 3"):
        CrossFrameProcessor()(q, k, v, None, default_attention)
    assert CrossFrameProcessor(frames=4)(q, k, v, None, default_attention).shape == q.shape
    with pytest.raises(MotionModuleError) as info:
        CrossFrameProcessor("last")
    assert info.value.input == "mode"


# --- FreeInit -------------------------------------------------------------------------------------


def test_butterworth_low_pass_gain():
    from nodegraph_video.frames import butterworth_low_pass

    gain = butterworth_low_pass(8, 16, 16, spatial_stop=0.25, temporal_stop=0.5, order=4)
    assert gain.shape == (8, 16, 16) and gain[0, 0, 0] == 1.0
    assert torch.isclose(gain[0, 2, 0], torch.tensor(0.5))        # ν_y = 2·2/16 = 0.25 = the spatial stop
    assert torch.isclose(gain[2, 0, 0], torch.tensor(0.5))        # ν_t = 2·2/8 = 0.5 = the temporal stop
    assert torch.equal(gain[:, 1], gain[:, -1]) and torch.equal(gain[1], gain[-1])   # ±ν alike: real output
    assert gain[0, 8, 8] < 1e-3                                    # Nyquist is stopped
    only_mean = butterworth_low_pass(4, 4, 4, 0.0, 0.0)
    assert only_mean.sum() == 1.0 and only_mean[0, 0, 0] == 1.0


def test_filter_clips_and_free_init_restart():
    from nodegraph_video.frames import butterworth_low_pass, filter_clips, free_init_restart

    generator = torch.Generator().manual_seed(0)
    z0, eps, fresh = (torch.randn(2 * 4, 3, 8, 8, generator=generator) for _ in range(3))
    torch.testing.assert_close(filter_clips(z0, 4, torch.ones(4, 8, 8)), z0)
    mean = filter_clips(z0, 4, butterworth_low_pass(4, 8, 8, 0.0, 0.0))              # DC only: each clip's mean
    clip_mean = z0.view(2, 4, 3, 8, 8).mean(dim=(1, 3, 4), keepdim=True).expand(2, 4, 3, 8, 8).reshape(z0.shape)
    torch.testing.assert_close(mean, clip_mean)
    start, noise = free_init_restart(z0, eps, fresh, 4, torch.ones(4, 8, 8))         # all kept: z0 and ε again
    torch.testing.assert_close(start, z0)
    torch.testing.assert_close(noise, eps)
    start, noise = free_init_restart(z0, eps, fresh, 4, torch.zeros(4, 8, 8))        # nothing kept: fresh noise
    assert start.abs().max() < 1e-6
    torch.testing.assert_close(noise, fresh)
    gain = butterworth_low_pass(4, 8, 8, 0.25, 0.25)
    start, noise = free_init_restart(z0, eps, fresh, 4, gain)
    sigma = 14.6                                                                       # linear: LPF(z0 + σε) + σ·HPF(η)
    torch.testing.assert_close(start + sigma * noise, filter_clips(z0 + sigma * eps, 4, gain)
                               + sigma * filter_clips(fresh, 4, 1 - gain), rtol=1e-4, atol=1e-4)


def test_travel_weights_with_equal_keyframes_hold():
    """Two keyframes on the same frame (a one-frame clip) hold the first one instead of dividing by zero."""
    assert [w for *_, w in travel_weights([0, 0], 1)] == [0.0]
    assert travel_weights([0], 1) == [(0, 0, 0.0)]


# --- motion-compensated clip consistency guidance ---------------------------------------------------


def _moving_square(frames: int = 4, step: int = 2, clips: int = 1) -> torch.Tensor:
    """(clips·frames, 2, 16, 16): a 3×3 square moving `step` pixels right per frame on a flat background."""
    x = torch.full((clips * frames, 2, 16, 16), 0.25)
    for c in range(clips):
        for f in range(frames):
            x[c * frames + f, :, 5:8, 2 + step * f:5 + step * f] = torch.tensor([1.0, -1.0])[:, None, None] * (c + 1)
    return x


def test_shift_latent_moves_content_and_repeats_the_border():
    from nodegraph_video.consistency import shift_latent

    x = torch.arange(16.0).view(1, 1, 4, 4)
    moved = shift_latent(x, 1, -1)
    assert torch.equal(moved[0, 0, 1:, :3], x[0, 0, :3, 1:])              # row r+1, column c-1 holds x[r, c]
    assert torch.equal(moved[0, 0, 0, :3], x[0, 0, 0, 1:])                # vacated top row: the border repeated
    assert torch.equal(moved[0, 0, :, 3], moved[0, 0, :, 2])              # vacated right column likewise
    assert torch.equal(shift_latent(x, 0, 0), x)


def test_best_shift_finds_the_motion_between_frames():
    from nodegraph_video.consistency import best_shift

    x = _moving_square(step=2)
    assert best_shift(x[0], x[1], 3) == (0, 2)
    assert best_shift(x[2], x[1], 3) == (0, -2)
    assert best_shift(x[0], x[0], 2) == (0, 0)
    assert best_shift(x[0], x[1], 1) == (0, 1)                             # the nearest allowed shift


def test_aligned_average_keeps_a_moving_object_and_repairs_a_frame():
    from nodegraph_video.consistency import aligned_average

    x = _moving_square(frames=4, step=2, clips=2)
    torch.testing.assert_close(aligned_average(x, 4), x)                   # aligned neighbours agree: no trail
    plain = (x[0] + 2 * x[1] + x[2]) / 4
    assert not torch.allclose(plain, x[1])                                 # a plain temporal average would smear
    damaged = x.clone()
    damaged[1, :, 6, 5] = 0.25                                             # frame 1 of clip 0 loses a pixel
    out = aligned_average(damaged, 4)
    torch.testing.assert_close(out[1, :, 6, 5], torch.tensor([0.625, -0.375]))   # (1/4, 1/2, 1/4) of ±1, 0.25, ±1
    torch.testing.assert_close(out[0, :, 6, 3], torch.tensor([0.75, -7 / 12]))    # end frame: (2/3, 1/3)
    torch.testing.assert_close(out[4:], x[4:])                             # the other clip is untouched
    torch.testing.assert_close(aligned_average(damaged, 4, neighbour_weight=0.0), damaged)


def test_aligned_average_keeps_linear_change_inside_the_clip():
    from nodegraph_video.consistency import aligned_average

    ramp = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 3, 8, 8)    # a colour blend over 5 frames
    torch.testing.assert_close(aligned_average(ramp, 5)[1:-1], ramp[1:-1])


def test_clip_consistency_term_scales_the_pull_and_needs_the_clip_length():
    from types import SimpleNamespace

    from nodegraph_video.consistency import ClipConsistencyTerm, aligned_average
    from nodegraph_video.motion_module import MotionModuleError, frames_context

    x = _moving_square(frames=4)
    x[1, :, 6, 5] = 0.25
    state = SimpleNamespace(denoised=x)
    with frames_context(4):
        torch.testing.assert_close(ClipConsistencyTerm(scale=0.5)(state), 0.5 * (aligned_average(x, 4) - x))
        assert ClipConsistencyTerm(scale=0.0)(state) is None
    torch.testing.assert_close(ClipConsistencyTerm(scale=1.0, frames=4)(state), aligned_average(x, 4) - x)
    with pytest.raises(MotionModuleError):
        ClipConsistencyTerm()(state)
    term = ClipConsistencyTerm(sigma_low=0.5, sigma_high=3.0)
    assert term.active_at(torch.tensor([1.0, 2.0])) and not term.active_at(torch.tensor([4.0]))
    with pytest.raises(ValueError):
        ClipConsistencyTerm(sigma_low=2.0, sigma_high=1.0)


def test_aligned_median_repairs_an_outlier_without_blurring_and_keeps_the_ends():
    from nodegraph_video.consistency import aligned_median

    x = _moving_square(frames=5, step=2)
    torch.testing.assert_close(aligned_median(x, 5), x)                    # aligned neighbours agree
    damaged = x.clone()
    damaged[2, :, 6, 7] = 0.25                                             # frame 2 loses a pixel ...
    damaged[2, :, 2, 2] = 3.0                                              # ... and grows a speck
    damaged[0, :, 6, 3] = 0.25                                             # an end frame is kept as it is
    out = aligned_median(damaged, 5)
    torch.testing.assert_close(out[2], x[2])                               # both repaired exactly (no 1/4 blend)
    torch.testing.assert_close(out[0], damaged[0])
    ramp = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 3, 8, 8)    # monotone in time: its own median
    torch.testing.assert_close(aligned_median(ramp, 5), ramp)
    wobble = ramp.clone()
    wobble[2] = 0.9                                                        # outside its neighbours 0.25 and 0.75
    torch.testing.assert_close(aligned_median(wobble, 5)[2], torch.full((3, 8, 8), 0.75))


def test_clip_consistency_term_median_statistic():
    from types import SimpleNamespace

    from nodegraph_video.consistency import ClipConsistencyTerm, aligned_median

    x = _moving_square(frames=5)
    x[2, :, 6, 7] = 0.25
    correction = ClipConsistencyTerm(scale=0.5, frames=5, statistic="median")(SimpleNamespace(denoised=x))
    torch.testing.assert_close(correction, 0.5 * (aligned_median(x, 5) - x))
    with pytest.raises(ValueError, match="statistic"):
        ClipConsistencyTerm(statistic="mode")
