"""The synthesised world and its analytic detector: captions parse back, the held-out set is never trained on, and
the detector reads pitch, chords, tempo, sweeps, noise and loudness off synthesised (and Griffin-Lim-vocoded) sound."""

import random

import numpy as np
import pytest
import torch

from nodegraph_audio import detect, features, synth
from nodegraph_audio.text import VOCABULARY, tokenize

torch.set_num_threads(1)


def test_captions_parse_back_and_the_held_out_fifth_has_over_100_prompts():
    """Every caption parses to its spec; at least 100 are held out; every attribute value is still trained on."""
    prompts = synth.all_prompts()
    assert all(synth.parse_caption(text) == spec for text, spec in prompts[::7])
    held_out = synth.held_out_prompts()
    assert len(held_out) >= 100
    rng = random.Random(0)
    trained = [synth.sample_spec(rng) for _ in range(3000)]
    assert not any(synth.is_held_out(synth.caption(spec)) for spec in trained)
    assert {s.note for s in trained if s.kind == "tone"} == set(synth.TONE_NOTES)
    assert {s.tempo for s in trained if s.kind == "clicks"} == set(synth.TEMPOS)


def test_tokenizer_knows_every_caption_word():
    """Captions tokenize without <unk>; unknown words map to <unk>; the empty prompt is <bos> then padding."""
    unknown = VOCABULARY.index("<unk>")
    assert all(unknown not in tokenize(text) for text, _ in synth.all_prompts())
    assert unknown in tokenize("a purple tone")
    assert tokenize("") == [VOCABULARY.index("<bos>")] + [0] * (len(tokenize("")) - 1)


@pytest.mark.parametrize("prompt, caption", [
    ("a loud C major chord", "loud c4 major chord"),
    ("A minor chord", "a4 minor chord"),
    ("quiet A# major triad", "quiet a#4 major chord"),
    ("E flat minor chord", "d#4 minor chord"),
    ("Bb major chord, loud", "loud a#4 major chord"),
    ("soft beep at A4", "quiet tone at a4"),
    ("C sharp 4 tone", "tone at c#4"),
    ("middle C note", "tone at c4"),
    ("Middle C", "tone at c4"),
    ("c sharp 4", "tone at c#4"),
    ("a tone at Db5", "tone at c#5"),
    ("metronome, 120 bpm", "clicks at 120 bpm"),
    ("LOUD 160BPM ticking", "loud clicks at 160 bpm"),
    ("clicks at 100 beats per minute", "clicks at 100 bpm"),
    ("ascending chirp", "rising sweep"),
    ("falling siren, very loud", "loud falling sweep"),
    ("quiet hiss", "quiet noise burst"),
])
def test_prompts_in_other_words_read_as_the_worlds_sounds(prompt, caption):
    """read_prompt: synonyms, any order and case, sharps / flats / "middle C", tempos written together or as
    "beats per minute"; chords without an octave sit in octave 4."""
    spec = synth.read_prompt(prompt)
    assert spec is not None and synth.caption(spec) == caption


def test_every_caption_reads_as_its_spec_and_other_sounds_are_refused():
    """read_prompt agrees with parse_caption on every caption; sounds outside the world or two sounds give None."""
    for text, spec in synth.all_prompts():
        assert synth.read_prompt(text) == synth.replace(spec, template=0)
    for prompt in ("a tone", "tone at c6", "clicks at 90 bpm", "a c4 tone and a chord", "a violin", "quiet loud hiss",
                   "rising and falling sweep"):
        assert synth.read_prompt(prompt) is None, prompt


@pytest.mark.parametrize("prompt, reason", [
    ("a tone at c9", "C9 is outside the notes the model was trained on"),
    ("clicks at 45 bpm", "45 bpm is not a tempo the model was trained on"),
    ("a rising sweep and a loud tone at c4", "two sounds (sweep and tone)"),
    ("a violin chord", "a chord needs major or minor"),
    ("a tone", "a tone needs a note with its octave"),
    ("a dog barking", "names no sound of the tiny world"),
])
def test_prompt_problem_says_why_a_prompt_is_not_one_sound(prompt, reason):
    """prompt_problem names what is missing or out of range (for EncodeAudioPrompt's warning and refusal)."""
    assert synth.read_prompt(prompt) is None and reason in synth.prompt_problem(prompt)
    assert synth.prompt_problem("a loud C major chord") is None


@pytest.mark.parametrize("caption", ["loud tone at c4", "quiet note b5", "tone at f#4"])
def test_detector_reads_pitch_within_a_few_cents(caption):
    """The FFT-peak pitch of a synthesised tone is within 0.05 semitone of its note."""
    spec = synth.parse_caption(caption)
    wave = synth.synthesize(spec, random.Random(1))
    assert abs(detect.semitone_error(detect.pitch(wave), spec.note)) < 0.05
    assert detect.loudness(wave) == spec.loudness


def test_detector_reads_every_attribute_of_the_held_out_sounds_before_and_after_the_spectrogram_round_trip():
    """On held-out sounds, synthesised and then encoded → Griffin-Lim decoded, the detector is right >= 97 %."""
    rng = random.Random(2)
    held_out = synth.held_out_prompts()[::3]
    waves = np.stack([synth.synthesize(spec, rng) for _, spec in held_out])
    rebuilt = features.decode(features.encode(torch.from_numpy(waves)), iterations=32).numpy()
    for clips in (waves, rebuilt):
        hits = [value for wave, (_, spec) in zip(clips, held_out)
                for key, value in detect.score_clip(wave, spec).items() if key not in ("pitch_error", "tempo_bpm")]
        assert np.mean(hits) >= 0.97


def test_detector_says_wrong_when_the_sound_is_wrong():
    """A tone a whole tone off, a major chord judged as minor, clicks at another tempo all score 0."""
    rng = random.Random(3)
    tone = synth.synthesize(synth.SoundSpec("tone", note=62), rng)
    assert detect.score_clip(tone, synth.SoundSpec("tone", note=60))["pitch_semitone"] == 0.0
    chord = synth.synthesize(synth.SoundSpec("chord", note=60, quality="major"), rng)
    assert detect.score_clip(chord, synth.SoundSpec("chord", note=60, quality="minor"))["chord_quality"] == 0.0
    clicks = synth.synthesize(synth.SoundSpec("clicks", tempo=140), rng)
    assert detect.score_clip(clicks, synth.SoundSpec("clicks", tempo=120))["tempo_5pct"] == 0.0
    assert detect.score_clip(clicks, synth.SoundSpec("clicks", tempo=140))["tempo_5pct"] == 1.0
    silence = np.zeros(synth.CLIP_SAMPLES, dtype=np.float32)
    assert detect.score_clip(silence, synth.SoundSpec("tone", note=60))["pitch_semitone"] == 0.0


def test_synthesised_sounds_stay_inside_the_model_band():
    """Tones, chords, sweeps and noise keep < 0.1 % of their energy above 4 kHz (the spectrogram's band); clicks,
    whose few-ms decay widens the band-limited noise, keep >= 85 % inside it."""
    rng = random.Random(4)
    for kind in synth.KINDS:
        spec = next(s for _, s in synth.all_prompts() if s.kind == kind)
        power = np.abs(np.fft.rfft(synth.synthesize(spec, rng))) ** 2
        frequencies = np.fft.rfftfreq(synth.CLIP_SAMPLES, 1 / synth.SAMPLE_RATE)
        outside = power[frequencies > synth.BAND_HZ].sum() / power.sum()
        assert outside < (0.15 if kind == "clicks" else 1e-3), kind
