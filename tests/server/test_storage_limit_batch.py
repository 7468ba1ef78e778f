"""A SaveImage batch that passes its user's storage limit keeps the images that fitted, with the failed run (an
attacker's pass, finding 7: 7 of 10 images fitted, none was kept and the run listed no files)."""

from __future__ import annotations

import json

from nodegraph import Session
from nodegraph.users import User, UserBook

from .test_server import Client, RunningServer

BATCH_OF_THREE = {"format_version": 2, "nodes": {     # three noise images (~50 KB each: noise does not compress)
    "render": {"type": "RenderTinyWorld", "inputs": {"caption": "a red circle on a white background", "size": 128}},
    "noise": {"type": "ForwardDiffuseImage", "inputs": {"images": {"node": "render", "output": "image"},
                                                        "timesteps": "999,998,997"}},
    "save": {"type": "SaveImage", "inputs": {"images": {"node": "noise", "output": "images"},
                                             "filename_prefix": "batch"}}}}


def test_a_batch_past_the_storage_limit_keeps_and_lists_the_images_that_fitted(tmp_path):
    """Two of three images fit: they stay in the user's folder, the failed run lists them, delete_run removes them."""
    sizes = [path.stat().st_size for path in _saved(tmp_path / "measure", BATCH_OF_THREE)]
    assert len(sizes) == 3 and max(sizes) > 4 * len(json.dumps(BATCH_OF_THREE))
    book = UserBook(path=tmp_path / "users.json")      # the graph and two images fit, the third does not
    token = book.add(User("ivy", max_bytes=2 * len(json.dumps(BATCH_OF_THREE)) + int(2.5 * max(sizes))))
    running = RunningServer(tmp_path, users=book)
    try:
        ivy = Client(running.url(f"/ws?token={token}"))
        ivy.send({"type": "submit", "graph": BATCH_OF_THREE})
        run_id = ivy.next_of("submitted")["run_id"]
        message = ivy.next_of("node_error", run_id=run_id)["message"]
        assert "storage limit" in message and "the 2 file(s) it wrote before this one fitted" in message, message
        ivy.next_of("run_failed", run_id=run_id)
        folder = running.session.output_dir / "ivy"
        assert sorted(path.name for path in folder.glob("*.png")) == ["batch_00001.png", "batch_00002.png"]
        ivy.send({"type": "get_outputs", "run_id": run_id})
        outputs = ivy.next_of("outputs")
        assert outputs["status"] == "failed"
        assert [f["file_id"] for f in outputs["files"]] == ["output/batch_00001.png", "output/batch_00002.png"]
        ivy.send({"type": "delete_run", "run_id": run_id})
        assert ivy.next_of("run_deleted")["files_deleted"] == 2
        assert not list(folder.glob("*.png"))
        ivy.close()
    finally:
        running.stop()


def _saved(folder, graph):
    """The files `graph` saves in a session of its own (no limit): what each image takes."""
    session = Session(output_dir=folder, input_dir=folder.parent / "in")
    session.run(graph)
    return sorted(folder.rglob("*.png"))
