"""A ComfyUI import's layout in real Chromium, measured on the canvas (flow coordinates), not only looked at.

ComfyUI draws nodes shorter than ours and we keep its positions, so the import pushes overlapping boxes apart. These
check what that push-apart now includes (graph/layout.ts `pushGrown` with notes, `besideTheirNode`;
nodegraph/comfyui.py `expand_subgraphs`):
  * notes are boxes too: none is left under a node (a note under a loader whose missing-file error makes it tall);
  * the nodes a split KSamplerAdvanced becomes (`10.schedule`, `10.guider`, ...) end in a column under their Sample,
    inside its group frame, not in one column right of the whole graph;
  * an expanded subgraph is one block where its instance stood, the outer Save Image right of it, the definition's
    group kept around its node, and the banner names the expansion.
"""

from __future__ import annotations

import json

from .test_editor_e2e import editor_page, pytestmark  # noqa: F401

SUB = "5c0ffee0-1234-4abc-8def-000000000002"


def _node(node_id, node_type, pos, widgets=None, inputs=(), outputs=(), size=(315, 100)):
    return {"id": node_id, "type": node_type, "pos": list(pos), "size": list(size), "flags": {}, "order": 0, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": n, "type": t, "links": links} for n, t, links in outputs],
            **({"widgets_values": widgets} if widgets is not None else {})}


def split_workflow() -> dict:
    """SDXL's base + refiner shape: two KSamplerAdvanced over parts of one schedule in a "Sampling" group, notes
    right under a checkpoint loader (its missing file makes it much taller here) and under the prompts."""
    nodes = [
        _node(4, "CheckpointLoaderSimple", (0, 0), ["missing_base.safetensors"],
              outputs=[("MODEL", "MODEL", [3, 7]), ("CLIP", "CLIP", [1, 2]), ("VAE", "VAE", [12])]),
        _node(36, "Note", (0, 110), ["This loads the base model."], size=(315, 120)),
        _node(6, "CLIPTextEncode", (400, 0), ["a cat"], [("clip", "CLIP", 1)], [("CONDITIONING", "CONDITIONING", [4, 8])]),
        _node(7, "CLIPTextEncode", (400, 90), ["blurry"], [("clip", "CLIP", 2)], [("CONDITIONING", "CONDITIONING", [5, 9])]),
        _node(39, "Note", (400, 180), ["These are the prompts."], size=(210, 80)),
        _node(5, "EmptyLatentImage", (400, 300), [64, 64, 1], outputs=[("LATENT", "LATENT", [6])]),
        _node(10, "KSamplerAdvanced", (800, 0), ["enable", 1, "fixed", 25, 8, "euler", "normal", 0, 20, "enable"],
              [("model", "MODEL", 3), ("positive", "CONDITIONING", 4), ("negative", "CONDITIONING", 5),
               ("latent_image", "LATENT", 6)], [("LATENT", "LATENT", [10])], size=(300, 334)),
        _node(11, "KSamplerAdvanced", (1200, 0), ["disable", 0, "fixed", 25, 8, "euler", "normal", 20, 10000, "disable"],
              [("model", "MODEL", 7), ("positive", "CONDITIONING", 8), ("negative", "CONDITIONING", 9),
               ("latent_image", "LATENT", 10)], [("LATENT", "LATENT", [11])], size=(300, 334)),
        _node(17, "VAEDecode", (1600, 0), None, [("samples", "LATENT", 11), ("vae", "VAE", 12)], [("IMAGE", "IMAGE", [13])]),
        _node(19, "SaveImage", (1900, 0), ["cat"], [("images", "IMAGE", 13)]),
    ]
    links = [[1, 4, 1, 6, 0, "CLIP"], [2, 4, 1, 7, 0, "CLIP"], [3, 4, 0, 10, 0, "MODEL"], [4, 6, 0, 10, 1, "CONDITIONING"],
             [5, 7, 0, 10, 2, "CONDITIONING"], [6, 5, 0, 10, 3, "LATENT"], [7, 4, 0, 11, 0, "MODEL"],
             [8, 6, 0, 11, 1, "CONDITIONING"], [9, 7, 0, 11, 2, "CONDITIONING"], [10, 10, 0, 11, 3, "LATENT"],
             [11, 11, 0, 17, 0, "LATENT"], [12, 4, 2, 17, 1, "VAE"], [13, 17, 0, 19, 0, "IMAGE"]]
    groups = [{"title": "Sampling", "bounding": [780, -40, 760, 400], "color": "#3f789e"}]
    return {"last_node_id": 39, "last_link_id": 13, "nodes": nodes, "links": links, "groups": groups, "version": 0.4}


def subgraph_workflow() -> dict:
    """An instance (530×660) of a 6-node text-to-image subgraph about 1400 wide, its Save Image right of it."""
    inner = [
        _node(4, "CheckpointLoaderSimple", (110, 200), ["tiny.safetensors"],
              outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [4])]),
        _node(6, "CLIPTextEncode", (430, 200), ["a red circle"], [("clip", "CLIP", 2)], [("CONDITIONING", "CONDITIONING", [5])]),
        _node(7, "CLIPTextEncode", (430, 420), ["blurry"], [("clip", "CLIP", 3)], [("CONDITIONING", "CONDITIONING", [6])]),
        _node(13, "EmptyLatentImage", (110, 630), [64, 64, 1], outputs=[("LATENT", "LATENT", [7])]),
        _node(3, "KSampler", (880, 270), [1234, "fixed", 6, 7.5, "euler", "normal", 1],
              [("model", "MODEL", 1), ("positive", "CONDITIONING", 5), ("negative", "CONDITIONING", 6),
               ("latent_image", "LATENT", 7)], [("LATENT", "LATENT", [8])]),
        _node(8, "VAEDecode", (1220, 160), None, [("samples", "LATENT", 8), ("vae", "VAE", 4)], [("IMAGE", "IMAGE", [9])]),
    ]
    inner_links = [{"id": i, "origin_id": o, "origin_slot": os, "target_id": t, "target_slot": ts, "type": "*"}
                   for i, o, os, t, ts in ((1, 4, 0, 3, 0), (2, 4, 1, 6, 0), (3, 4, 1, 7, 0), (4, 4, 2, 8, 1), (5, 6, 0, 3, 1),
                                           (6, 7, 0, 3, 2), (7, 13, 0, 3, 3), (8, 3, 0, 8, 0), (9, 8, 0, -20, 0))]
    definition = {"id": SUB, "name": "SD Text to Image", "nodes": inner, "links": inner_links,
                  "inputNode": {"id": -10}, "outputNode": {"id": -20}, "inputs": [],
                  "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
                  "groups": [{"id": 2, "title": "Step2 - Image size", "bounding": [100, 560, 290, 200], "color": "#3f789e"}]}
    nodes = [_node(83, SUB, (130, -210), [], outputs=[("IMAGE", "IMAGE", [1])], size=(530, 660)),
             _node(60, "SaveImage", (690, -210), ["sg-test"], [("images", "IMAGE", 1)], size=(900, 800))]
    return {"last_node_id": 83, "last_link_id": 1, "nodes": nodes, "links": [[1, 83, 0, 60, 0, "IMAGE"]], "groups": [],
            "definitions": {"subgraphs": [definition]}, "version": 0.4}


def _import(page, path) -> str:
    """Open a ComfyUI file with Load; once its push-apart ran, the banner's text."""
    page.set_input_files("[data-testid=load-input]", str(path))
    page.wait_for_function("(name) => [...document.querySelectorAll('[data-testid=info-banner]')].some((b) => b.textContent.includes(name))",
                           arg=path.name, timeout=30_000)
    page.wait_for_function("() => !window.nodegraph.app.canvas.separateWhenShown", timeout=15_000)
    return page.evaluate("() => [...document.querySelectorAll('[data-testid=info-banner]')].map((b) => b.textContent).join(' ')")


def _overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def _box(bounds) -> dict:
    return dict(zip(("x", "y", "width", "height"), bounds))


def test_import_keeps_notes_clear_helpers_beside_their_sample_and_subgraphs_as_blocks(tmp_path):
    with editor_page(tmp_path, viewport={"width": 1600, "height": 1000}) as (page, errors):
        path = tmp_path / "sdxl_split.json"
        path.write_text(json.dumps(split_workflow()))
        _import(page, path)
        rects = page.evaluate("() => window.nodegraph.app.canvas.rects()")
        graph = page.evaluate("() => window.nodegraph.graph()")
        notes = {n["id"]: _box(n["bounds"]) for n in graph["ui"]["notes"]}
        assert set(notes) == {"comfyui-note-36", "comfyui-note-39"}
        hidden = [(note, node) for note, box in notes.items() for node, r in rects.items() if _overlap(box, r)]
        assert hidden == [], f"notes under nodes: {hidden}"
        # the loader is taller than ComfyUI's (its missing file), so its note really had to move
        assert rects["4"]["height"] > 110 and notes["comfyui-note-36"]["y"] >= rects["4"]["y"] + rects["4"]["height"]
        frame = _box(next(g for g in graph["ui"]["groups"] if g["title"] == "Sampling")["bounds"])
        for sample in ("10", "11"):
            helpers = [node for node in rects if node.startswith(f"{sample}.")]
            assert len(helpers) >= 4, helpers
            s = rects[sample]
            for node in helpers:
                r = rects[node]
                # a column under its Sample: the same x, starting below it, within 1200 px (5 short nodes)
                assert r["x"] == s["x"] and s["y"] + s["height"] <= r["y"] <= s["y"] + s["height"] + 1200, (node, r, s)
                inside = frame["x"] <= r["x"] and r["x"] + r["width"] <= frame["x"] + frame["width"] and \
                    frame["y"] <= r["y"] and r["y"] + r["height"] <= frame["y"] + frame["height"]
                assert inside, (node, r, frame)
        boxes = list(rects.items())
        assert not [(a, b) for i, (a, ra) in enumerate(boxes) for b, rb in boxes[i + 1:] if _overlap(ra, rb)]

        path = tmp_path / "subgraph.json"
        path.write_text(json.dumps(subgraph_workflow()))
        banner = _import(page, path)
        assert 'expanded subgraph "SD Text to Image" (6 nodes)' in banner
        rects = page.evaluate("() => window.nodegraph.app.canvas.rects()")
        graph = page.evaluate("() => window.nodegraph.graph()")
        inner = {node: r for node, r in rects.items() if node.startswith("83:")}
        assert len(inner) == 6
        assert rects["60"]["x"] >= max(r["x"] + r["width"] for r in inner.values()), "Save Image interleaved with the block"
        group = _box(next(g for g in graph["ui"]["groups"] if g["title"] == "Step2 - Image size")["bounds"])
        latent = rects["83:13"]
        assert group["x"] <= latent["x"] and latent["x"] + latent["width"] <= group["x"] + group["width"]
        assert group["y"] <= latent["y"] and latent["y"] + latent["height"] <= group["y"] + group["height"]
        assert errors == []
