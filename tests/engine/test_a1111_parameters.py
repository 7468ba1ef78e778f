"""AUTOMATIC1111's generation parameters ("PNG Info") opened as a text-to-image graph, as ComfyUI opens them.

An A1111 migrant's pass: `nodegraph run image.png` of an A1111 image said "a PNG without an embedded graph; only
images saved by SaveImage carry one" — wrong twice (it carries its parameters, and ComfyUI PNGs import too).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from nodegraph import GraphValidationError, Session
from nodegraph.a1111 import parameters_from_image, parameters_graph, parse_parameters
from nodegraph.cli import main

ROOT = Path(__file__).resolve().parents[2]
TEXT = ('a small red circle on the left,\non a blue background\nNegative prompt: blurry,\nugly\n'
        'Steps: 3, Sampler: DPM++ 2M Karras, CFG scale: 5, Seed: 42, Size: 32x48, Model hash: abcd, '
        'Model: tiny_world_v6f, Clip skip: 2, Hires upscale: 2, Lora hashes: "a: 1, b: 2", Version: v1.9.4')


def png_with(parameters: str | None) -> bytes:
    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_the_text_is_read_as_a1111_writes_it():
    prompt, negative, settings = parse_parameters(TEXT)
    assert prompt == "a small red circle on the left,\non a blue background" and negative == "blurry,\nugly"
    assert settings["Sampler"] == "DPM++ 2M Karras" and settings["Size"] == "32x48"
    assert settings["Lora hashes"] == "a: 1, b: 2"                 # a quoted value keeps its commas
    assert parse_parameters("just a prompt: with a colon") == ("just a prompt: with a colon", "", {})


def test_the_graph_holds_every_setting_it_has_a_place_for_and_names_the_rest():
    graph = parameters_graph(TEXT)
    nodes = graph["nodes"]
    assert nodes["checkpoint"]["inputs"]["ckpt_name"] == "tiny_world_v6f.safetensors"
    assert nodes["prompt"]["inputs"]["clip_skip"] == 2 and nodes["negative"]["inputs"]["text"] == "blurry,\nugly"
    assert {k: nodes["sampler"]["inputs"][k] for k in ("seed", "steps", "cfg", "sampler", "scheduler")} == \
        {"seed": 42, "steps": 3, "cfg": 5.0, "sampler": "dpmpp_2m", "scheduler": "karras"}
    assert (nodes["latent"]["inputs"]["width"], nodes["latent"]["inputs"]["height"]) == (32, 48)
    assert graph["metadata"]["a1111_untranslated"] == ["Hires upscale: 2", "Lora hashes: a: 1, b: 2"]
    other = parameters_graph("x\nSteps: 4, Sampler: Euler a, Schedule type: Exponential, Size: big, Seed: nan?")
    assert other["nodes"]["sampler"]["inputs"]["sampler"] == "euler_ancestral"
    assert other["nodes"]["sampler"]["inputs"]["scheduler"] == "exponential"
    assert "Size: big (not WIDTHxHEIGHT)" in other["metadata"]["a1111_untranslated"]
    with pytest.raises(GraphValidationError, match="A1111 parameters are text"):
        parameters_graph("x" * 200_000)


def test_run_opens_an_a1111_png_and_says_what_it_left_out(tmp_path, capsys):
    path = tmp_path / "a1111.png"
    path.write_bytes(png_with(TEXT.replace("Clip skip: 2, ", "")))
    assert main(["run", str(path), "--output-dir", str(tmp_path / "out"), "--no-progress", "--no-plugins"]) == 0
    err = capsys.readouterr().err
    assert "carries AUTOMATIC1111's generation parameters" in err and "Hires upscale: 2" in err
    record = json.loads((tmp_path / "out" / "a1111.outputs.json").read_text())
    assert record["status"] == "succeeded" and record["graph"]["nodes"]["sampler"]["inputs"]["seed"] == 42
    assert Session(autoload=False).import_comfyui(path).nodes["sampler"].inputs["steps"] == 3


def test_a_jpeg_with_its_parameters_in_exif_and_a_png_with_nothing():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + "a red ring\nSteps: 2, Seed: 7".encode("utf-16-be")
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG", exif=exif.tobytes())
    assert parameters_from_image(out.getvalue()) == "a red ring\nSteps: 2, Seed: 7"
    assert parameters_from_image(png_with(None)) is None
    from nodegraph.graph import graph_from_bytes

    with pytest.raises(GraphValidationError) as caught:
        graph_from_bytes(png_with(None), "photo.png")
    assert "load it with LoadImage" in caught.value.errors[0].message
    with pytest.raises(GraphValidationError) as caught:
        graph_from_bytes(png_with(TEXT), "a.png")
    assert caught.value.errors[0].code == "foreign_format" and caught.value.errors[0].details["tool"] == "a1111"


def test_hostile_and_odd_parameters_are_read_in_linear_time_and_exactly():
    """A hostile re-test: a 60,000-character settings line held the server 30 s (a quadratic regex); quoted values
    lost their JSON escapes, a seed past 2^53 its last digits, "Sampler: DDIM" became a schedule name, "Schedule
    type: Automatic" stayed invalid, and an image naming no model said nothing about it."""
    import time

    started = time.perf_counter()
    for body in ("a" * 99_000, "," * 99_000, ", a" * 33_000, '"' * 99_000):
        parse_parameters("x\nSteps: 1, " + body)
    assert time.perf_counter() - started < 2.0
    _, _, settings = parse_parameters('x\nSteps: 3, Model: "caf\\u00e9, v2", Seed: 1234567890123456789, odd, Size: 8x8')
    assert settings == {"Steps": "3", "Model": "café, v2", "Seed": "1234567890123456789", "Size": "8x8"}
    graph = parameters_graph("x\nSteps: 3, Sampler: DDIM, Seed: 1234567890123456789")
    assert graph["nodes"]["sampler"]["inputs"]["sampler"] == "ddim"
    assert graph["nodes"]["sampler"]["inputs"]["seed"] == 1234567890123456789
    assert any("Model: none named" in note for note in graph["metadata"]["a1111_untranslated"])
    automatic = parameters_graph("x\nSteps: 3, Sampler: DPM++ 2M, Schedule type: Automatic, Model: m")
    assert automatic["nodes"]["sampler"]["inputs"]["scheduler"] == "karras"


def test_image_bytes_from_other_writers_and_huge_headers():
    """UserComment in little-endian UTF-16 (ExifTool in "II" files) read as big-endian gave mojibake; a JPEG whose
    header claims 400 Mpx made `nodegraph run` print PIL's DecompressionBombError traceback."""
    import struct

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + "a red ring\nSteps: 2".encode("utf-16-le")
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG", exif=exif.tobytes())
    assert parameters_from_image(out.getvalue()) == "a red ring\nSteps: 2"
    small = io.BytesIO()
    Image.new("RGB", (16, 16)).save(small, "JPEG")
    data = bytearray(small.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)        # the header claims 20000×20000
    assert parameters_from_image(bytes(data)) is None
    from nodegraph.graph import graph_from_bytes

    with pytest.raises(GraphValidationError):
        graph_from_bytes(bytes(data), "huge.jpg")
    assert Session(autoload=False).import_comfyui(png_with(TEXT)).nodes["sampler"].inputs["seed"] == 42


def test_small_losses_a_hostile_retest_found():
    """An unclosed quote after Sampler swallowed Seed, Size and Model (and no note said so); "Steps: 2.7" became 2
    and "Seed: 1.9" 1 without a word; parameters of NUL characters were accepted; a UTF-16 UserComment starting with
    its byte-order mark kept U+FEFF at the start of the prompt."""
    _, _, settings = parse_parameters('x\nSteps: 3, Sampler: "DPM++ 2M, Seed: 42, Size: 32x48, Model: m')
    assert (settings["Seed"], settings["Size"], settings["Model"]) == ("42", "32x48", "m")
    graph = parameters_graph("x\nSteps: 2.7, Seed: 1.9, CFG scale: 4.5, Model: m")
    assert "steps" not in graph["nodes"]["sampler"]["inputs"] and "seed" not in graph["nodes"]["sampler"]["inputs"]
    assert {"Steps: 2.7 (not a whole number)", "Seed: 1.9 (not a whole number)"} <= set(
        graph["metadata"]["a1111_untranslated"])
    assert parameters_graph("x\nSteps: 20.0, Model: m")["nodes"]["sampler"]["inputs"]["steps"] == 20
    with pytest.raises(GraphValidationError, match="A1111 parameters are text"):
        parameters_graph("\0" * 40)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + "\ufeffa red ring\nSteps: 2".encode("utf-16-le")
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG", exif=exif.tobytes())
    assert parameters_from_image(out.getvalue()) == "a red ring\nSteps: 2"


def test_a1111_text_file_beside_an_image_opens_as_its_graph(tmp_path, capsys):
    """A1111's "Create a text file next to every image" (and PNG Info pasted into a file) said `[invalid_json] not
    valid JSON: Expecting value`; it is the same parameters text as the PNG's chunk."""
    from nodegraph.a1111 import looks_like_parameters
    from nodegraph.graph import foreign_prompt, graph_from_bytes

    path = tmp_path / "00001-1.txt"
    path.write_text("\ufeff" + TEXT.replace("Clip skip: 2, ", "") + "\n", encoding="utf-8")
    with pytest.raises(GraphValidationError) as caught:
        graph_from_bytes(path.read_bytes(), path.name)
    assert caught.value.errors[0].code == "foreign_format" and caught.value.errors[0].details["tool"] == "a1111"
    assert foreign_prompt(path) == {"parameters": TEXT.replace("Clip skip: 2, ", "") + "\n"}
    assert main(["validate", str(path), "--no-plugins"]) == 0
    assert Session(autoload=False).import_comfyui(path).nodes["sampler"].inputs["seed"] == 42
    assert not looks_like_parameters('{"a": 1}') and not looks_like_parameters("Steps: 3\nthen a prompt")
    with pytest.raises(GraphValidationError) as caught:          # a broken JSON file still says where it broke
        graph_from_bytes(b'{"nodes": ', "broken.json")
    assert caught.value.errors[0].code == "invalid_json"


def listing(**folders: list[str]):
    """A `list_model_files` of the given folders' files (others empty), as `ModelPaths.list` answers."""
    return lambda folder: (list(folders.get(folder, [])), [f"models/{folder}"])


def test_lora_tags_become_a_load_lora_chain_and_leave_the_prompt():
    """A real-models user's A1111 image: `<lora:NAME:WEIGHT>` stayed prompt words and no LoRA was loaded."""
    text = ("a cat, <lora:kohya_locon:0.7>, <lyco:style>, <lora:split:0.5:0.25>, <lora:named:te=0.3:unet=0.6>, "
            "<lora:odd:abc>\nNegative prompt: blurry, <lora:neg:1>\nSteps: 2, Seed: 1, Model: sd15, "
            'Lora hashes: "kohya_locon: 1234abcd"')
    graph = parameters_graph(text, list_model_files=listing(loras=["styles/style.pt", "kohya_locon.safetensors"]))
    nodes = graph["nodes"]
    loras = [(node_id, n["inputs"]) for node_id, n in nodes.items() if n["type"] == "LoadLoRA"]
    assert [(i["lora_name"], i["strength_model"], i["strength_text"]) for _, i in loras] == [
        ("kohya_locon.safetensors", 0.7, 0.7), ("styles/style.pt", 1.0, 1.0),     # listed files by their stem
        ("split.safetensors", 0.25, 0.5), ("named.safetensors", 0.6, 0.3),        # :TE:UNET, te= / unet=
        ("odd.safetensors", 1.0, 1.0)]                                            # not listed: NAME.safetensors
    assert [node_id for node_id, _ in loras] == ["lora_1", "lora_2", "lora_3", "lora_4", "lora_5"]
    assert loras[0][1]["model"] == {"node": "checkpoint", "output": "model"}
    assert loras[1][1]["text_encoder"] == {"node": "lora_1", "output": "text_encoder"}
    assert nodes["sampler"]["inputs"]["model"] == {"node": "lora_5", "output": "model"}
    assert nodes["prompt"]["inputs"]["text_encoder"] == nodes["negative"]["inputs"]["text_encoder"] == {
        "node": "lora_5", "output": "text_encoder"}
    assert nodes["prompt"]["inputs"]["text"] == "a cat, , , , , "         # each tag replaced by nothing, as A1111
    assert nodes["negative"]["inputs"]["text"] == "blurry, <lora:neg:1>"
    notes = graph["metadata"]["a1111_translated"]
    assert notes[0] == ("<lora:kohya_locon:0.7> → LoadLoRA 'lora_1' (kohya_locon.safetensors, strength 0.7), taken "
                        "out of the prompt")
    assert "strength_model 0.25, strength_text 0.5" in notes[2]
    left = graph["metadata"]["a1111_untranslated"]
    assert "Lora hashes: kohya_locon: 1234abcd" in left          # informational, as before
    assert "<lora:odd:abc> (a weight that is not a number: loaded at strength 1.0; set it on its LoadLoRA)" in left
    assert any(note.startswith("LoRA tags in the negative prompt") for note in left)
    bare = parameters_graph("a dog <lora:x>\nSteps: 2, Model: m")       # no listing: the name as A1111's stem
    assert bare["nodes"]["lora_1"]["inputs"]["lora_name"] == "x.safetensors"
    assert bare["nodes"]["prompt"]["inputs"]["text"] == "a dog "
    many = parameters_graph("x " + "<lora:a:1>" * 60 + "\nSteps: 2")            # a hostile prompt: bounded
    assert sum(n["type"] == "LoadLoRA" for n in many["nodes"].values()) == 50
    assert "10 LoRA tags past the first 50 (<lora:a:1>, …): left in the prompt" in many["metadata"][
        "a1111_untranslated"]


def test_the_vae_setting_becomes_load_vae_for_decode_and_the_empty_latent():
    """`VAE: name` was listed as not translated, and the image decoded with the checkpoint's own VAE."""
    text = "a cat\nSteps: 2, Model: sd15, VAE: vae-ft-mse.safetensors, VAE hash: 1234"
    graph = parameters_graph(text, list_model_files=listing(vae=["sd/vae-ft-mse.safetensors"]))
    nodes = graph["nodes"]
    assert nodes["vae"] == {"type": "LoadVAE", "title": "VAE", "inputs": {"vae_name": "sd/vae-ft-mse.safetensors"}}
    assert nodes["decode"]["inputs"]["vae"] == nodes["latent"]["inputs"]["vae"] == {"node": "vae", "output": "vae"}
    assert not any(note.startswith("VAE: ") for note in graph["metadata"]["a1111_untranslated"])
    assert any(note.startswith("VAE: vae-ft-mse.safetensors → LoadVAE 'vae'")
               for note in graph["metadata"]["a1111_translated"])
    unlisted = parameters_graph(text)
    assert unlisted["nodes"]["vae"]["inputs"]["vae_name"] == "vae-ft-mse.safetensors"
    plain = parameters_graph("a cat\nSteps: 2, Model: sd15")
    assert "vae" not in plain["nodes"] and plain["nodes"]["decode"]["inputs"]["vae"]["node"] == "checkpoint"


def test_bare_embedding_names_are_written_as_embedding_references_when_the_file_is_there():
    """A1111 uses a textual inversion by its file name ("EasyNegative"); here that was plain words."""
    text = ("a cat, embedding:EasyNegative, (badhands:1.2), EasyNegatives\nNegative prompt: easynegative, blurry\n"
            "Steps: 2, Model: sd15")
    graph = parameters_graph(text, list_model_files=listing(embeddings=["EasyNegative.safetensors", "neg/BadHands.pt"]))
    nodes = graph["nodes"]
    assert nodes["prompt"]["inputs"]["text"] == ("a cat, embedding:EasyNegative, (embedding:neg/BadHands:1.2), "
                                                 "EasyNegatives")
    assert nodes["negative"]["inputs"]["text"] == "embedding:EasyNegative, blurry"
    assert ("'easynegative' (negative prompt) → embedding:EasyNegative, the embedding file's name as A1111 uses it"
            in graph["metadata"]["a1111_translated"])
    assert parameters_graph(text)["nodes"]["negative"]["inputs"]["text"] == "easynegative, blurry"   # no listing
    files = listing(embeddings=["EasyNegative.safetensors", "xl_neg.safetensors"])
    used = parameters_graph('EasyNegative, xl_neg\nSteps: 2, TI hashes: "EasyNegative: 66a7279a88"',
                            list_model_files=files)        # A1111 says it used EasyNegative, not xl_neg
    assert used["nodes"]["prompt"]["inputs"]["text"] == "embedding:EasyNegative, xl_neg"
    odd = parameters_graph("bad\nSteps: 2", list_model_files=listing(embeddings=["a (b)/bad.pt"]))
    assert odd["nodes"]["prompt"]["inputs"]["text"] == "bad"       # `embedding:a (b)/bad` would not read back


def test_session_cli_and_server_imports_use_the_model_folders(tmp_path, capsys):
    """The listing reaches the import from `Session.import_comfyui`, `nodegraph run` / `validate` and the server's
    import_graph, so an A1111 image names the user's own LoRA, VAE and embedding files."""
    from nodegraph.files import FileStore
    from nodegraph.model_paths import ModelPaths
    from nodegraph.protocol import PROTOCOL_VERSION, ServerProtocol
    from nodegraph.run_queue import RunQueue

    for folder, name in (("loras", "people/kohya_locon.safetensors"), ("vae", "vae_ft.safetensors"),
                         ("embeddings", "EasyNegative.safetensors")):
        (tmp_path / "models" / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "models" / folder / name).write_bytes(b"")
    text = ("a cat, <lora:kohya_locon:0.7>\nNegative prompt: EasyNegative\nSteps: 2, Model: sd15, "
            "VAE: vae_ft.safetensors")
    path = tmp_path / "a1111.png"
    path.write_bytes(png_with(text))
    session = Session(autoload=False, model_paths=ModelPaths(roots=[tmp_path / "models"]))
    graph = session.import_comfyui(path)
    assert graph.nodes["lora_1"].inputs["lora_name"] == "people/kohya_locon.safetensors"
    assert graph.nodes["negative"].inputs["text"] == "embedding:EasyNegative"
    (tmp_path / "paths.json").write_text(json.dumps({"loras": [str(tmp_path / "models" / "loras")],
                                                     "embeddings": [str(tmp_path / "models" / "embeddings")]}))
    main(["validate", str(path), "--model-paths", str(tmp_path / "paths.json"), "--no-plugins"])
    assert "people/kohya_locon.safetensors" not in capsys.readouterr().out     # found, so not listed as missing
    protocol = ServerProtocol(session, RunQueue(), FileStore(tmp_path / "in", tmp_path / "out"))
    protocol.connect("c1")
    protocol.receive("c1", json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    (reply,) = protocol.receive("c1", json.dumps({"type": "import_graph", "data": {"parameters": text}}))
    assert reply.message["graph"]["nodes"]["negative"]["inputs"]["text"] == "embedding:EasyNegative"
    assert reply.message["graph"]["nodes"]["lora_1"]["inputs"]["lora_name"] == "people/kohya_locon.safetensors"


def test_the_cli_note_says_what_the_import_made_beyond_the_plain_graph(tmp_path, capsys):
    """The import made LoadLoRA / LoadVAE nodes (`metadata.a1111_translated`) but the note named only what was
    left out: a user saw new nodes without a word on where they came from."""
    path = tmp_path / "lora.png"
    path.write_bytes(png_with("a red ring <lora:style:0.5>\nSteps: 2, Seed: 1, Model: tiny_world_v6f, VAE: x"))
    main(["validate", str(path), "--no-plugins"])
    err = capsys.readouterr().err
    assert "(also: " in err and "LoadLoRA" in err and "LoadVAE" in err
