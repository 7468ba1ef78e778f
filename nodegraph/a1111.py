"""AUTOMATIC1111 WebUI's generation parameters ("PNG Info") read into a text-to-image graph.

A1111 writes what made an image into the image: a PNG's "parameters" text chunk (a JPEG's / WebP's EXIF
UserComment), three parts —

    a small red circle on the left, on a blue background        ← the prompt (any number of lines)
    Negative prompt: blurry                                     ← optional, any number of lines
    Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model: v1-5, Clip skip: 2

ComfyUI opens such an image as a graph, so does this (`nodegraph run a1111.png`, the editor's drop, the server's
`import_graph {data: {"parameters": TEXT}}`): `parameters_graph(text)` builds the shape of `graphs/txt2img.json`
— LoadCheckpoint (Model, as `<name>.safetensors` unless it names a file), EncodeText × 2 (Clip skip; A1111's
prompt weighting), EmptyLatent (Size), KSampler (Seed, Steps, CFG scale, the sampler and its schedule through
validation's alias table: "DPM++ 2M Karras" → dpmpp_2m / karras; "Schedule type" when given, "Automatic" as each
sampler's own), VAEDecode, SaveImage. Settings with
no place in that graph — hires fix, img2img's denoising strength, variation seeds, ENSD, a VAE, LoRA hashes,
restore faces — are listed in `metadata.a1111_untranslated` (the CLI and the editor say so); the whole text is
kept in `metadata.a1111_parameters`.

A1111's .txt beside an image (or PNG Info pasted into a file) is read the same way (`looks_like_parameters`).

Main functions: `parameters_from_image(data)`, `parse_parameters(text)`, `parameters_graph(text)`.
"""

from __future__ import annotations

import re
from typing import Any

MAX_PARAMETERS_CHARS = 100_000          # a prompt of 20,000 characters and its settings, with room
_SETTINGS_LINE = re.compile(r"^Steps: *\d")      # the settings line: the text's last line, starting so
_KEY = re.compile(r"[A-Za-z][\w \-/+.()]{0,80}")      # a setting's name, as A1111 writes them
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
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        return None      # a 180-Mpx panorama's header alone is refused by PIL's bomb check: not A1111's
    if isinstance(comment, bytes):           # an 8-byte character-code header, then the text
        head, body = comment[:8], comment[8:]
        if head.startswith(b"UNICODE"):      # UTF-16 in the file's byte order: A1111 (piexif) writes big-endian,
            little = body[1::2].count(0) > body[0::2].count(0)      # ExifTool little in "II" files; ASCII's zeros
            comment = body.decode("utf-16-le" if little else "utf-16-be", errors="replace")   # say which
        else:
            comment = body.decode("utf-8", errors="replace")
    if not isinstance(comment, str):
        return None
    return comment.lstrip("\ufeff").strip("\0").strip() or None     # a UTF-16 text may start with its BOM


def looks_like_parameters(text: str) -> bool:
    """Whether a text file is A1111's parameters — the .txt it saves beside an image ("Create a text file next to
    every image"), or PNG Info copied into a file: not JSON, and its last line is the settings line."""
    body = text.strip()
    if not body or body[0] in "{[" or len(body) > MAX_PARAMETERS_CHARS:
        return False
    return bool(_SETTINGS_LINE.match(body.rsplit("\n", 1)[-1].strip()))


def parse_parameters(text: str) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative prompt, settings) of A1111's parameters text; settings keep A1111's key names, values
    unquoted. A text without a settings line is all prompt."""
    lines = text.strip().replace("\r\n", "\n").split("\n")
    settings: dict[str, str] = {}
    if lines and _SETTINGS_LINE.match(lines[-1].strip()):
        settings = _settings(lines.pop().strip())
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if not in_negative and line.startswith(_NEGATIVE):
            in_negative, line = True, line[len(_NEGATIVE):].lstrip()
        (negative if in_negative else prompt).append(line)
    return "\n".join(prompt).strip(), "\n".join(negative).strip(), settings


def _settings(line: str) -> dict[str, str]:
    """`Key: value, Key: "quoted, with commas", ...` → {key: value}, in one pass (a regex over the line was
    quadratic: a 60,000-character line held the server for 30 s). A quoted value is JSON (A1111 writes it with
    json.dumps); a part without "Key:" is skipped."""
    import json

    settings: dict[str, str] = {}
    position = 0
    while position < len(line):
        next_comma = line.find(",", position)
        colon = line.find(":", position, next_comma if next_comma >= 0 else len(line))   # within this part only
        if colon < 0:                  # a part without "Key:": skipped
            if next_comma < 0:
                break
            position = next_comma + 1
            continue
        key = line[position:colon].strip()
        cursor = colon + 1
        while cursor < len(line) and line[cursor] == " ":
            cursor += 1
        end = len(line)
        if cursor < len(line) and line[cursor] == '"':           # a JSON string: up to its closing quote
            end = cursor + 1
            while end < len(line) and line[end] != '"':
                end += 2 if line[end] == "\\" else 1
        if end < len(line):
            raw = line[cursor:end + 1]
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw.strip('"')
            comma = line.find(",", end + 1)
        else:          # no quote, or one never closed (it swallowed Seed, Size and Model after it): up to the comma
            comma = line.find(",", cursor)
            value = line[cursor:comma if comma >= 0 else len(line)].strip()
        if _KEY.fullmatch(key) and isinstance(value, str):
            settings[key] = value
        if comma < 0:
            break
        position = comma + 1
    return settings


def _number(settings: dict[str, str], key: str, kind: type, untranslated: list[str]) -> Any:
    text = settings.get(key)
    if text is None:
        return None
    try:          # an integer as written (a seed past 2^53 lost its last digits through float)
        if kind is int and not re.fullmatch(r"\s*[+-]?\d{1,30}\s*", text):
            number = float(text)        # "20.0" is 20; "2.7" steps or a "1.9" seed are no A1111 value: not guessed
            if not number.is_integer():
                untranslated.append(f"{key}: {text} (not a whole number)")
                return None
            return int(number)
        return kind(text)
    except (TypeError, ValueError, OverflowError):
        untranslated.append(f"{key}: {text} (not a number)")
        return None


def _sampler_and_schedule(settings: dict[str, str], untranslated: list[str]) -> tuple[str | None, str | None]:
    """Our sampler and scheduler for A1111's "Sampler" (and "Schedule type"), through validation's aliases; an
    unknown name is kept as written, so validation names it with its suggestion."""
    from .validation import CHOICE_ALIASES, _alias_key

    sampler = schedule = None
    name = settings.get("Sampler")
    if name is not None:
        key = _alias_key(name)
        # the table holds schedule names too ("ddim" → ddim_uniform, "uniform" → normal): a sampler field's
        # name that is itself a sampler's ("DDIM") is taken as it is
        sampler, schedule = (None, None) if key in _SCHEDULE_ALIASES else CHOICE_ALIASES.get(key, (None, None))
        if sampler is None:
            plain = key.replace(" ", "_")
            sampler = plain if re.fullmatch(r"[a-z0-9_]+", plain) else name
    kind = settings.get("Schedule type")
    if kind is not None and _alias_key(kind) == "automatic":      # each sampler's own default, as A1111 picks it
        schedule = schedule or _AUTOMATIC_SCHEDULES.get(sampler, "normal")
    elif kind is not None:
        alias = CHOICE_ALIASES.get(_alias_key(kind))
        schedule = alias[0] if alias is not None else _alias_key(kind).replace(" ", "_")
    return sampler, schedule


_SCHEDULE_ALIASES = frozenset({"ddim", "uniform"})     # CHOICE_ALIASES keys that name A1111's schedules
# A1111's "Automatic" schedule type: the schedule each sampler declares (karras for the DPM family it lists)
_AUTOMATIC_SCHEDULES = {"dpmpp_2m": "karras", "dpmpp_sde": "karras", "dpmpp_2m_sde": "exponential"}


def parameters_graph(text: str, source: str = "an A1111 image") -> dict:
    """A text-to-image graph (format 1) from A1111's parameters text; see the module docstring."""
    from .errors import GraphError, GraphValidationError

    if not isinstance(text, str) or not text.strip(" \t\r\n\0\ufeff") or len(text) > MAX_PARAMETERS_CHARS:
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
    if not model:                  # an older A1111 wrote only the hash: validation then asks for ckpt_name
        untranslated.append("Model: none named (set checkpoint.ckpt_name to the model that made the image)")
    else:
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
