"""A training dataset from the browser: ImageFolderDataset's "Upload folder…" (web/src/editor/InputWidget.tsx), in Chromium.

A dataset builder's finding: the editor uploaded one file at a time into the input folder itself and no caption at
all, so neither a kohya `10_name` folder nor a `.txt` caption could reach a server. A folder chosen with the directory
picker now lands in the server's input folder under its name, subfolders kept, images and captions beside each
other, other files skipped and counted; the input then names the folder. Also: a WAV SaveAudio wrote opens as its
graph (web/src/graph/mediaGraph.ts reads its LIST/INFO ICMT, as `nodegraph run saved.wav` does).
"""

from __future__ import annotations

import io
import json

from PIL import Image

from .test_editor_e2e import ROOT, editor_page, pytestmark  # noqa: F401

GRAPH = {"format_version": 2, "metadata": {"title": "Dataset"},
         "nodes": {"data": {"type": "ImageFolderDataset", "inputs": {"folder": "dataset"}}}}


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, "PNG")
    return out.getvalue()


def test_a_folder_uploads_into_its_subfolders_with_captions_and_names_the_input(tmp_path):
    chosen = tmp_path / "picked" / "zorb"
    (chosen / "10_zorb").mkdir(parents=True)
    (chosen / "10_zorb" / "a.png").write_bytes(_png((200, 10, 10)))
    (chosen / "10_zorb" / "a.txt").write_text("a zorb, red")
    (chosen / "b.png").write_bytes(_png((10, 200, 10)))
    (chosen / "b.caption").write_text("a zorb, green")
    (chosen / "notes.md").write_text("not data")
    graph = tmp_path / "dataset.json"
    graph.write_text(json.dumps(GRAPH))
    with editor_page(tmp_path) as (page, errors):
        page.set_input_files("[data-testid=load-input]", str(graph))
        page.wait_for_selector("[data-testid=upload-folder-button-data-folder]")
        page.set_input_files("[data-testid=upload-folder-data-folder]", str(chosen))
        page.wait_for_function("() => document.body.innerText.includes('Uploaded 2 images and 2 captions into zorb')")
        assert "skipped 1 other file" in page.inner_text("body")
        page.wait_for_function("() => window.nodegraph.graph().nodes.data.inputs.folder === 'zorb'")
        assert page.input_value("[data-testid=widget-data-folder]") == "zorb"
    stored = tmp_path / "input" / "zorb"
    assert sorted(str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file()) == \
        ["10_zorb/a.png", "10_zorb/a.txt", "b.caption", "b.png"]
    assert (stored / "10_zorb" / "a.png").read_bytes() == (chosen / "10_zorb" / "a.png").read_bytes()
    assert (stored / "10_zorb" / "a.txt").read_text() == "a zorb, red"
    assert not errors, errors


def test_a_wav_saveaudio_wrote_opens_as_its_graph(tmp_path):
    wav = ROOT / "web" / "test" / "fixtures" / "saved.wav"      # made by waveform.append_wav_text
    with editor_page(tmp_path) as (page, errors):
        page.set_input_files("[data-testid=load-input]", str(wav))
        page.wait_for_function("() => window.nodegraph.graph().metadata.title === 'é 3d'")
    assert not errors, errors
