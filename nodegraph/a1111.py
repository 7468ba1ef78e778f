"""AUTOMATIC1111 WebUI's generation parameters ("PNG Info") read into a text-to-image graph.

A1111 writes what made an image into the image: a PNG's "parameters" text chunk (a JPEG's / WebP's EXIF
UserComment), three parts —

    a small red circle on the left, on a blue background        ← the prompt (any number of lines)
    Negative prompt: blurry                                     ← optional, any number of lines
    Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model: v1-5, Clip skip: 2

ComfyUI opens such an image as a graph, so does this (`nodegraph run a1111.png`, the editor's drop, the server's
`import_graph {data: {"parameters": TEXT}}`): `parameters_graph(text)` builds the shape of `graphs/txt2img.json`
— LoadCheckpoint (Model, as `<name>.safetensors` unless it names a file), EncodeText × 2 (Clip skip; A1111's
prompt weighting),
EmptyLatent (Size), KSampler (Seed, Steps, CFG scale, the sampler and its schedule through validation's alias
table: "DPM++ 2M Karras" → dpmpp_2m / karras; "Schedule type" when given), VAEDecode, SaveImage. Settings with
no place in that graph — hires fix, img2img's denoising strength, variation seeds, ENSD, a VAE, LoRA hashes,
restore faces — are listed in `metadata.a1111_untranslated` (the CLI and the editor say so); the whole text is
kept in `metadata.a1111_parameters`.

Main functions: `parameters_from_image(data)`, `parse_parameters(text)`, `parameters_graph(text)`.
"""

from __future__ import annotations

import re
from typing import Any

MAX_PARAMETERS_CHARS = 100_000          # a prompt of 20,000 characters and its settings, with room
# a settings line: "Key: value, Key: "quoted, with commas", ..." — the last line of the text that starts so
_SETTING = re.compile(r'\s*([A-Za-z][\w \-/+.()]*?):\s*("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)')
_SETTINGS_LINE = re.compile(r"^Steps: *\d")
_NEGATIVE = "Negative prompt:"
TRANSLATED = ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model", "Clip skip", "Model hash",
              "Version")      # the model hash and the WebUI version identify, they configure nothing


def parameters_from_image(data: bytes) -> str | None:
    """The A1111 "parameters" text of an image file's bytes — a PNG's text chunk, or a JPEG's / WebP's EXIF
    UserComment — or None."""
    from .graph import PNG_SIGNATURE, graph_text_from_png

    if data.startswith(PNG_SIGNATURE):
        try:
            return graph_text_from_png(data, "parameters")
        except ValueError:
            return None
    if not (data.startswith(b"\xff\xd8\xff") or (data.startswith(b"RIFF") and data[8:12] == b"WEBP")):
        return None
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            comment = image.getexif().get_ifd(0x8769).get(0x9286)      # Exif IFD → UserComment
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    if isinstance(comment, bytes):           # an 8-byte character-code header, then the text
        head, body = comment[:8], comment[8:]
        comment = body.decode("utf-16-be" if head.startswith(b"UNICODE") else "utf-8", errors="replace")
    if not isinstance(comment, str):
        return None
    return comment.strip("\0").strip() or None


def parse_parameters(text: str) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative prompt, settings) of A1111's parameters text; settings keep A1111's key names, values
    unquoted. A text without a settings line is all prompt."""
    lines = text.strip().split("\n")
    settings: dict[str, str] = {}
    if lines and _SETTINGS_LINE.match(lines[-1].strip()):
        for match in _SETTING.finditer(lines.pop().strip()):
            key, value = match.group(1).strip(), match.group(2).strip()
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            settings[key] = value
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if not in_negative and line.startswith(_NEGATIVE):
            in_negative, line = True, line[len(_NEGATIVE):].lstrip()
        (negative if in_negative else prompt).append(line)
    return "\n".join(prompt).strip(), "\n".join(negative).strip(), settings


def _number(settings: dict[str, str], key: str, kind: type, untranslated: list[str]) -> Any:
    text = settings.get(key)
    if text is None:
        return None
    try:
        value = kind(float(text)) if kind is int else kind(text)
    except (TypeError, ValueError, OverflowError):
        untranslated.append(f"{key}: {text} (not a number)")
        return None
    return value


def _sampler_and_schedule(settings: dict[str, str], untranslated: list[str]) -> tuple[str | None, str | None]:
    """Our sampler and scheduler for A1111's "Sampler" (and "Schedule type"), through validation's aliases; an
    unknown name is kept as written, so validation names it with its suggestion."""
    from .validation import CHOICE_ALIASES, _alias_key

    sampler = schedule = None
    name = settings.get("Sampler")
    if name is not None:
        sampler, schedule = CHOICE_ALIASES.get(_alias_key(name), (None, None))
        if sampler is None:
            key = _alias_key(name).replace(" ", "_")
            sampler = key if re.fullmatch(r"[a-z0-9_]+", key) else name
    kind = settings.get("Schedule type")
    if kind is not None:
        alias = CHOICE_ALIASES.get(_alias_key(kind))
        schedule = alias[0] if alias is not None else _alias_key(kind).replace(" ", "_")
    return sampler, schedule


def parameters_graph(text: str, source: str = "an A1111 image") -> dict:
    """A text-to-image graph (format 1) from A1111's parameters text; see the module docstring."""
    from .errors import GraphError, GraphValidationError

    if not isinstance(text, str) or not text.strip() or len(text) > MAX_PARAMETERS_CHARS:
        raise GraphValidationError([GraphError(
            "invalid_format", f"{source}: A1111 parameters are text of 1 to {MAX_PARAMETERS_CHARS} characters")])
    prompt, negative, settings = parse_parameters(text)
    untranslated = [f"{key}: {value}" for key, value in settings.items() if key not in TRANSLATED]
    width = height = None
    size = settings.get("Size")
    if size is not None:
        match = re.fullmatch(r"\s*(\d{1,5})\s*x\s*(\d{1,5})\s*", size)
        if match:
            width, height = int(match.group(1)), int(match.group(2))
        else:
            untranslated.append(f"Size: {size} (not WIDTHxHEIGHT)")
    steps = _number(settings, "Steps", int, untranslated)
    cfg = _number(settings, "CFG scale", float, untranslated)
    seed = _number(settings, "Seed", int, untranslated)
    clip_skip = _number(settings, "Clip skip", int, untranslated)
    sampler, schedule = _sampler_and_schedule(settings, untranslated)
    model = settings.get("Model")
    ckpt_name = None
    if model:
        ckpt_name = model if re.search(r"\.(safetensors|ckpt|pt|pth|bin)$", model, re.I) else f"{model}.safetensors"

    def encoder(text_value: str) -> dict:
        inputs: dict[str, Any] = {"text_encoder": {"node": "checkpoint", "output": "text_encoder"}, "text": text_value,
                                  "weighting": "a1111"}      # (word:1.3) as A1111 reads it
        if clip_skip is not None:
            inputs["clip_skip"] = clip_skip
        return inputs

    sampler_inputs: dict[str, Any] = {
        "model": {"node": "checkpoint", "output": "model"}, "positive": {"node": "prompt", "output": "conditioning"},
        "negative": {"node": "negative", "output": "conditioning"}, "latent": {"node": "latent", "output": "latent"},
        "denoise": 1.0}
    for key, value in (("seed", seed), ("steps", steps), ("cfg", cfg), ("sampler", sampler),
                       ("scheduler", schedule)):
        if value is not None:
            sampler_inputs[key] = value
    latent_inputs: dict[str, Any] = {"batch_size": 1, "vae": {"node": "checkpoint", "output": "vae"}}
    if width is not None:
        latent_inputs.update(width=width, height=height)
    first_line = prompt.split("\n", 1)[0][:60]
    return {"format_version": 1,
            "metadata": {"title": f"A1111: {first_line}" if first_line else "A1111 parameters",
                         "description": f"Made from the generation parameters of {source} (AUTOMATIC1111 WebUI).",
                         "imported_from": "a1111-parameters", "a1111_parameters": text,
                         "a1111_untranslated": untranslated},
            "nodes": {
                "checkpoint": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": ckpt_name} if ckpt_name else {}},
                "prompt": {"type": "EncodeText", "title": "Prompt", "inputs": encoder(prompt)},
                "negative": {"type": "EncodeText", "title": "Negative prompt", "inputs": encoder(negative)},
                "latent": {"type": "EmptyLatent", "inputs": latent_inputs},
                "sampler": {"type": "KSampler", "inputs": sampler_inputs},
                "decode": {"type": "VAEDecode", "inputs": {"vae": {"node": "checkpoint", "output": "vae"},
                                                            "latent": {"node": "sampler", "output": "latent"}}},
                "save": {"type": "SaveImage", "inputs": {"images": {"node": "decode", "output": "image"},
                                                          "filename_prefix": "a1111"}}}}
