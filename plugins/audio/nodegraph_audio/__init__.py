"""nodegraph-audio: audio files, spectrograms, vocoders and a tiny text-to-audio diffusion model for nodegraph.

Library modules (plain torch / numpy / soundfile, no engine imports, usable on their own):

    waveform.py     the AUDIO value (waveform (B, channels, samples) float32 + sample rate): checks, file
                    reading / writing (soundfile: WAV, FLAC, OGG, MP3), resampling (polyphase), trim / pad,
                    mix, gain, fade, concatenate
    spectral.py     STFT / inverse STFT, mel filterbanks, dB scaling, mel → linear, Griffin-Lim
    spectrogram_image.py   spectrogram ↔ IMAGE (a dB range mapped to [0, 1], low frequencies at the bottom)
    hifigan.py      the HiFi-GAN generator of transformers' SpeechT5HifiGan (AudioLDM's vocoder), same keys
    synth.py        the synthesised captioned sounds (tones, chords, sweeps, clicks, noise bursts) and
                    the held-out prompts
    detect.py       the analytic detector (pitch, chord, tempo, sweep, noise, loudness) the benchmark uses
    features.py     the tiny model's spectrogram latent: band-limited linear log-magnitude STFT (B, 1, 256, 96)
    text.py         the word tokenizer of the tiny model
    beat.py         beat-phase features per frame (click tracks), the optional rhythm conditioning of the model
    denoiser.py     the tiny model: a 1-D U-Net over frames (bins as channels) with a caption transformer
    training.py     its rectified-flow training loop over the training kit's pieces
    model_file.py   the model file (safetensors, float16, metadata)

Adapters: ``nodes.py`` (the nodes and the plugin hooks; the entry point in group ``nodegraph``).
Models: ``models/tiny_t2a.safetensors`` (the shipped tiny text-to-audio model).
"""

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
#: The plugin's shipped models; searched after the model folder "audio".
SHIPPED_MODELS = PACKAGE_ROOT.parent / "models"
