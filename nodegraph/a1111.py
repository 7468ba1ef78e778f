"""AUTOMATIC1111 WebUI's generation parameters ("PNG Info") read into a text-to-image graph.

A1111 writes what made an image into the image: a PNG's "parameters" text chunk (a JPEG's / WebP's EXIF
UserComment), three parts —

    a small red circle on the left, on a blue background        ← the prompt (any number of lines)
    Negative prompt: blurry                                     ← optional, any number of lines
    Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model: v1-5, Clip skip: 2

ComfyUI opens such an image as a graph, so does this (`nodegraph run a1111.png`, the editor's drop, the server's
`import_graph {data: {"parameters": TEXT}}`): `parameters_graph(text, list_model_files=…)` builds the shape of
`graphs/txt2img.json` — LoadCheckpoint (Model, as `<name>.safetensors` unless it names a file), EncodeText × 2
(Clip skip; A1111's prompt weighting), EmptyLatent (Size), KSampler (Seed, Steps, CFG scale, the sampler and its
schedule through validation's alias table: "DPM++ 2M Karras" → dpmpp_2m / karras; "Schedule type" when given,
"Automatic" as each sampler's own), VAEDecode, SaveImage — and what A1111 loads besides the checkpoint:
- the prompt's `<lora:NAME:WEIGHT>` / `<lyco:…>` tags become a chain of LoadLoRA nodes (`lora_1`, `lora_2`, …, model
  and text encoder, strength WEIGHT; `<lora:NAME>` 1.0; `:TE:UNET` and `te=` / `unet=` as A1111 reads them) between
  the checkpoint and its users, each tag replaced by nothing as A1111 does; NAME is the loras folder's file of that
  stem, else `NAME.safetensors` (validation then lists the folder);
- `VAE: name` becomes LoadVAE `vae`, which VAEDecode and EmptyLatent use;
- a bare word of a prompt that is an embeddings-folder file's stem ("EasyNegative": A1111 uses a textual inversion
  by its name alone) is written `embedding:EasyNegative` — when "TI hashes" is written, only the names it lists
  (A1111 skipped the others: another model's width) — only with a listing; without, validation warns of it.
Each of those is said in `metadata.a1111_translated`. Settings with no place in the graph — hires fix, img2img's
denoising strength, variation seeds, ENSD, LoRA and TI hashes (informational), restore faces — are listed in
`metadata.a1111_untranslated` (the CLI and the editor say so); the whole text is kept in
`metadata.a1111_parameters`.

A1111's .txt beside an image (or PNG Info pasted into a file) is read the same way (`looks_like_parameters`).

Main functions: `parameters_from_image(data)`, `parse_parameters(text)`, `parameters_graph(text)`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

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

ListModelFiles = Callable[[str], tuple[list[str], list[str]]]     # folder → (its files, directories searched)
# A1111's extra-network tag (modules/extra_networks.py: `<(\w+):([^>]+)>`); "lyco" is the same Lora extension's.
# No "<" inside a tag: with A1111's `[^>]+` each unclosed "<lora:" scanned to the end of the text (quadratic: a
# 100 KB import held the server's GIL for 11 s); with `[^<>]+` it stops at the next tag. The module's patterns are
# all linear so (tests/security/test_regex_bounds.py).
_LORA_TAG = re.compile(r"<(lora|lyco):([^<>]+)>", re.IGNORECASE)
MAX_LORA_TAGS = 50                 # more LoRAs than any picture uses; a hostile prompt's 10,000 tags stay text
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin", ".pth")      # nodes/models/prompt_syntax.EMBEDDING_SUFFIXES
# a prompt's words as the bare-embedding warning splits them (prompt_syntax._PROMPT_WORD_SEPARATORS); a word
# already written `embedding:NAME`, and an extra-network tag left in a prompt, are matched whole first and kept
_PROMPT_WORD = re.compile(r"embedding:[^\s,()\[\]:]+|<\w+:[^<>]+>|[^\s,()\[\]:|<>{}]+")


def _file_finder(files: list[str], suffixes: tuple[str, ...]) -> Callable[[str], str | None]:
    """A lookup of the file of a model folder's listing (relative paths, "sub/x.safetensors") that A1111's name
    means: the same path, else the same base name, else the same stem (A1111 names LoRAs and embeddings by their
    stem); an exact spelling before one differing in case only (A1111 users' folders were often on case-blind
    disks). Tables built once: a prompt of 50 tags against a folder of 10,000 files is 60 dictionary lookups."""
    def stem(path: str) -> str:
        base = path.rsplit("/", 1)[-1]
        return base.rsplit(".", 1)[0] if base.lower().endswith(suffixes) else base

    usable = [f for f in files if f.lower().endswith(suffixes)]
    keys = (lambda f: f, lambda f: f.rsplit("/", 1)[-1], stem)
    exact: list[dict[str, str]] = [{} for _ in keys]
    folded: list[dict[str, str]] = [{} for _ in keys]
    for file in usable:
        for key, same, same_folded in zip(keys, exact, folded):
            same.setdefault(key(file), file)
            same_folded.setdefault(key(file).lower(), file)

    def find(name: str) -> str | None:
        for table in exact:
            if name in table:
                return table[name]
        return next((table[name.lower()] for table in folded if name.lower() in table), None)

    return find


def _listing(list_model_files: ListModelFiles | None, folder: str) -> list[str] | None:
    """A model folder's files, or None without a listing (or one that failed: the import then guesses names)."""
    if list_model_files is None:
        return None
    try:
        files, _searched = list_model_files(folder)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [f for f in files if isinstance(f, str)]


def _lora_strengths(params: list[str]) -> tuple[float, float] | str:
    """(strength_model, strength_text) of a LoRA tag's parameters after its name, as A1111's Lora extension reads
    them: `:W` both, `:TE:UNET` each, `te=` / `unet=` by name, none 1.0 — or why they cannot be read."""
    positional, named = [], {}
    for item in params:
        key, equals, value = item.partition("=")
        if equals:
            named[key.strip()] = value
        else:
            positional.append(item)
    try:
        text = float(named.get("te", positional[0] if positional else 1.0))
        model = float(named.get("unet", positional[1] if len(positional) > 1 else text))
    except ValueError:
        return "a weight that is not a number"
    if not (math.isfinite(text) and math.isfinite(model)):
        return "a weight that is not a finite number"
    return model, text


def _model_file_name(name: str, find: Callable[[str], str | None] | None) -> str:
    """The model-folder file of A1111's `name` (a LoRA's stem, the VAE's base name): the listed file when there is
    one, else the name with `.safetensors` unless it has a model file's suffix (validation then lists the folder)."""
    found = find(name) if find is not None else None
    if found is not None:
        return found
    return name if name.lower().endswith(_MODEL_SUFFIXES) else f"{name}.safetensors"


def _lora_tags(prompt: str, files: list[str] | None, notes: list[str],
               untranslated: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """The prompt without its `<lora:NAME:WEIGHT>` / `<lyco:…>` tags, and a LoadLoRA's inputs for each tag, in the
    prompt's order. A tag is replaced by nothing, as A1111 does (its commas stay: the text encoder gets what
    A1111's got). A tag whose weights cannot be read is taken out as well, its LoRA at strength 1.0, and said.
    Past MAX_LORA_TAGS the tags stay in the text, said once."""
    loras: list[dict[str, Any]] = []
    find = _file_finder(files, _MODEL_SUFFIXES) if files is not None else None
    over: list[str] = []
    nameless: list[str] = []

    def take(match: re.Match) -> str:
        tag = match.group(0)
        name, *params = [part.strip() for part in match.group(2).split(":")]
        if len(loras) + len(nameless) >= MAX_LORA_TAGS:
            over.append(tag)
            return tag
        if not name:
            nameless.append(tag)
            untranslated.append(f"{tag} (a LoRA tag without a name: taken out of the prompt)")
            return ""
        strengths = _lora_strengths(params)
        if isinstance(strengths, str):
            untranslated.append(f"{tag} ({strengths}: loaded at strength 1.0; set it on its LoadLoRA)")
            strengths = (1.0, 1.0)
        positional = [p for p in params if "=" not in p]
        if len(positional) > 2 or any(p.partition("=")[0].strip() == "dyn" for p in params):
            untranslated.append(f"{tag} (A1111's dyn dimension is not read: the LoRA is loaded at its full rank)")
        file = _model_file_name(name, find)
        loras.append({"lora_name": file, "strength_model": strengths[0], "strength_text": strengths[1]})
        strength = (f"strength {strengths[0]:g}" if strengths[0] == strengths[1]
                    else f"strength_model {strengths[0]:g}, strength_text {strengths[1]:g}")
        notes.append(f"{tag} → LoadLoRA 'lora_{len(loras)}' ({file}, {strength}), taken out of the prompt")
        return ""

    prompt = _LORA_TAG.sub(take, prompt)
    if over:
        untranslated.append(f"{len(over)} LoRA tags past the first {MAX_LORA_TAGS} ({over[0]}, …): left in the "
                            f"prompt")
    return prompt, loras


def _used_embeddings(ti_hashes: str | None) -> set[str] | None:
    """The names (lower case) of A1111's "TI hashes" setting — the textual inversions its prompts used, which A1111
    1.6+ writes — or None when it wrote none (an older A1111, or no embedding used)."""
    if ti_hashes is None:
        return None
    return {part.rpartition(":")[0].strip().lower() for part in ti_hashes.split(",") if ":" in part}


def _with_embedding_prefixes(text: str, files: list[str], where: str, notes: list[str],
                             used: set[str] | None = None) -> str:
    """`text` with each bare word that is an embedding file's stem written `embedding:NAME`: A1111 uses a textual
    inversion by its file name alone ("EasyNegative"), this one only when the prompt says `embedding:`. Words are
    compared in lower case (CLIP's tokenizer lower-cases them, so A1111 matched them so), NAME keeps the file's
    spelling and subfolder (`sub/EasyNegative` for sub/EasyNegative.safetensors). `used` (the "TI hashes" names):
    only those — A1111 skips an embedding of another model's width, whose name then stayed words there."""
    by_stem: dict[str, str] = {}
    for file in files:
        base = file.rsplit("/", 1)[-1]
        name, stem = file.rsplit(".", 1)[0], base.rsplit(".", 1)[0].lower()
        if (base.lower().endswith(_EMBEDDING_SUFFIXES) and re.fullmatch(r"[^\s,()\[\]:]+", name)  # writable as
                and (used is None or stem in used)):                                             # embedding:NAME
            by_stem.setdefault(stem, name)
    said: set[str] = set()

    def prefixed(match: re.Match) -> str:
        word = match.group(0)
        name = by_stem.get(word.lower()) if not word.startswith(("embedding:", "<")) else None
        if name is None:
            return word
        if word.lower() not in said:
            said.add(word.lower())
            notes.append(f"{word!r} ({where}) → embedding:{name}, the embedding file's name as A1111 uses it")
        return f"embedding:{name}"

    return _PROMPT_WORD.sub(prefixed, text) if by_stem else text


def parameters_graph(text: str, source: str = "an A1111 image", list_model_files: ListModelFiles | None = None) -> dict:
    """A text-to-image graph (format 1) from A1111's parameters text; see the module docstring.

    `list_model_files` (`ModelPaths.list`: folder → (files, directories searched)) lets the import name the files
    A1111 names by stem (a LoRA tag's, the `VAE:` setting's) and find the bare embedding names of the prompts;
    without it those are guessed as `<name>.safetensors` and bare names stay words (validation warns of them)."""
    from .errors import GraphError, GraphValidationError

    if not isinstance(text, str) or not text.strip(" \t\r\n\0\ufeff") or len(text) > MAX_PARAMETERS_CHARS:
        raise GraphValidationError([GraphError(
            "invalid_format", f"{source}: A1111 parameters are text of 1 to {MAX_PARAMETERS_CHARS} characters")])
    prompt, negative, settings = parse_parameters(text)
    vae = (settings.get("VAE") or "").strip()
    vae = "" if vae.lower() in ("none", "automatic") else vae
    untranslated = [f"{key}: {value}" for key, value in settings.items()
                    if key not in TRANSLATED and not (key == "VAE" and vae)]
    translated: list[str] = []          # what became a node or was rewritten (metadata.a1111_translated)
    prompt, loras = _lora_tags(prompt, _listing(list_model_files, "loras"), translated, untranslated)
    if _LORA_TAG.search(negative):
        untranslated.append("LoRA tags in the negative prompt (left as written: LoRAs are loaded from the prompt's)")
    embeddings = _listing(list_model_files, "embeddings")
    if embeddings:
        used = _used_embeddings(settings.get("TI hashes"))
        prompt = _with_embedding_prefixes(prompt, embeddings, "prompt", translated, used)
        negative = _with_embedding_prefixes(negative, embeddings, "negative prompt", translated, used)
    width = height = None
    size = settings.get("Size")
    if size is not None:
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", size)
        if match and max(len(match.group(1)), len(match.group(2))) <= 5:
            width, height = int(match.group(1)), int(match.group(2))    # past the latent's range: validation says
        elif match:         # "99999999999x99999999999" is that form; saying it was not misled
            untranslated.append(f"Size: {size} (too large: an image side is at most 16384 pixels here)")
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

    # the LoRAs chained between the checkpoint and its users, in the prompt's order (A1111 applies them all)
    lora_nodes: dict[str, dict] = {}
    model_from = encoder_from = "checkpoint"
    for number, lora in enumerate(loras, 1):
        node_id = f"lora_{number}"
        lora_nodes[node_id] = {"type": "LoadLoRA", "title": f"LoRA {lora['lora_name']}", "inputs": {
            "model": {"node": model_from, "output": "model"},
            "text_encoder": {"node": encoder_from, "output": "text_encoder"}, **lora}}
        model_from = encoder_from = node_id
    vae_from = "checkpoint"
    vae_nodes: dict[str, dict] = {}
    if vae:
        vae_files = _listing(list_model_files, "vae")
        vae_file = _model_file_name(vae, _file_finder(vae_files, _MODEL_SUFFIXES) if vae_files is not None else None)
        vae_nodes["vae"] = {"type": "LoadVAE", "title": "VAE", "inputs": {"vae_name": vae_file}}
        vae_from = "vae"
        translated.append(f"VAE: {vae} → LoadVAE 'vae' ({vae_file}), the VAE that VAEDecode and EmptyLatent use")

    def encoder(text_value: str) -> dict:
        inputs: dict[str, Any] = {"text_encoder": {"node": encoder_from, "output": "text_encoder"}, "text": text_value,
                                  "weighting": "a1111"}      # (word:1.3) as A1111 reads it
        if clip_skip is not None:
            inputs["clip_skip"] = clip_skip
        return inputs

    sampler_inputs: dict[str, Any] = {
        "model": {"node": model_from, "output": "model"}, "positive": {"node": "prompt", "output": "conditioning"},
        "negative": {"node": "negative", "output": "conditioning"}, "latent": {"node": "latent", "output": "latent"},
        "denoise": 1.0}
    for key, value in (("seed", seed), ("steps", steps), ("cfg", cfg), ("sampler", sampler),
                       ("scheduler", schedule)):
        if value is not None:
            sampler_inputs[key] = value
    latent_inputs: dict[str, Any] = {"batch_size": 1, "vae": {"node": vae_from, "output": "vae"}}
    if width is not None:
        latent_inputs.update(width=width, height=height)
    first_line = prompt.split("\n", 1)[0][:60]
    return {"format_version": 1,
            "metadata": {"title": f"A1111: {first_line}" if first_line else "A1111 parameters",
                         "description": f"Made from the generation parameters of {source} (AUTOMATIC1111 WebUI).",
                         "imported_from": "a1111-parameters", "a1111_parameters": text,
                         "a1111_untranslated": untranslated, "a1111_translated": translated},
            "nodes": {
                "checkpoint": {"type": "LoadCheckpoint", "inputs": {"ckpt_name": ckpt_name} if ckpt_name else {}},
                **lora_nodes, **vae_nodes,
                "prompt": {"type": "EncodeText", "title": "Prompt", "inputs": encoder(prompt)},
                "negative": {"type": "EncodeText", "title": "Negative prompt", "inputs": encoder(negative)},
                "latent": {"type": "EmptyLatent", "inputs": latent_inputs},
                "sampler": {"type": "KSampler", "inputs": sampler_inputs},
                "decode": {"type": "VAEDecode", "inputs": {"vae": {"node": vae_from, "output": "vae"},
                                                            "latent": {"node": "sampler", "output": "latent"}}},
                "save": {"type": "SaveImage", "inputs": {"images": {"node": "decode", "output": "image"},
                                                          "filename_prefix": "a1111"}}}}
