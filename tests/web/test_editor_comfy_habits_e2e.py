"""The editor for a ComfyUI user, in Chromium against a real server (a ComfyUI user's pass): an imported workflow
keeps its seed's "control after generate" and its node colours, the search leads ComfyUI names where their work is
done here, nodes are minimised and coloured from the canvas, and ComfyUI's keys (`.`, Alt+C, Ctrl+Alt+Enter) work."""

from __future__ import annotations

import json

from .test_editor_e2e import editor_page, pytestmark  # noqa: F401


def _slot(name: str, kind: str, link: int | None) -> dict:
    return {"name": name, "type": kind, "link": link}


def _out(name: str, kind: str, links: list[int]) -> dict:
    return {"name": name, "type": kind, "links": links}


#: ComfyUI's default workflow as its Save writes it: the seed on "increment", the negative prompt coloured red
WORKFLOW = {
    "last_node_id": 9, "last_link_id": 9, "version": 0.4, "groups": [],
    "links": [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"],
              [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
              [9, 8, 0, 9, 0, "IMAGE"]],
    "nodes": [
        {"id": 4, "type": "CheckpointLoaderSimple", "pos": [26, 474], "inputs": [],
         "outputs": [_out("MODEL", "MODEL", [1]), _out("CLIP", "CLIP", [3, 5]), _out("VAE", "VAE", [8])],
         "widgets_values": ["tiny_world_v6f.safetensors"]},
        {"id": 5, "type": "EmptyLatentImage", "pos": [473, 609], "inputs": [], "outputs": [_out("LATENT", "LATENT", [2])],
         "widgets_values": [64, 64, 1]},
        {"id": 6, "type": "CLIPTextEncode", "pos": [415, 186], "inputs": [_slot("clip", "CLIP", 3)],
         "outputs": [_out("CONDITIONING", "CONDITIONING", [4])], "widgets_values": ["a red circle"]},
        {"id": 7, "type": "CLIPTextEncode", "pos": [413, 389], "inputs": [_slot("clip", "CLIP", 5)],
         "outputs": [_out("CONDITIONING", "CONDITIONING", [6])], "widgets_values": ["text, watermark"],
         "color": "#322", "bgcolor": "#533"},
        {"id": 3, "type": "KSampler", "pos": [863, 186],
         "inputs": [_slot("model", "MODEL", 1), _slot("positive", "CONDITIONING", 4), _slot("negative", "CONDITIONING", 6),
                    _slot("latent_image", "LATENT", 2)],
         "outputs": [_out("LATENT", "LATENT", [7])], "widgets_values": [987654321, "increment", 8, 6.5, "euler", "normal", 1]},
        {"id": 8, "type": "VAEDecode", "pos": [1209, 188], "inputs": [_slot("samples", "LATENT", 7), _slot("vae", "VAE", 8)],
         "outputs": [_out("IMAGE", "IMAGE", [9])]},
        {"id": 9, "type": "SaveImage", "pos": [1451, 189], "inputs": [_slot("images", "IMAGE", 9)], "outputs": [],
         "widgets_values": ["ComfyUI"]},
    ],
}

EMPTY_SPOT = """() => {
  const c = document.querySelector('[data-testid=canvas]').getBoundingClientRect();
  for (let fy = 0.1; fy < 0.9; fy += 0.05) for (let fx = 0.1; fx < 0.9; fx += 0.05) {
    const x = c.left + c.width * fx, y = c.top + c.height * fy;
    const el = document.elementFromPoint(x, y);
    if (el && el.classList.contains('react-flow__pane')) return [x, y];
  }
  return null;
}"""


def _graph(page) -> dict:
    return page.evaluate("window.nodegraph.graph()")


def _search(page, query: str) -> None:
    x, y = page.evaluate(EMPTY_SPOT)
    page.mouse.dblclick(x, y)
    page.wait_for_selector("[data-testid=search-popup]")
    page.fill("[data-testid=search-input]", query)


def test_a_comfyui_users_habits(tmp_path):
    """Import keeps increment and the red node; search hints; minimise, colour, '.', Alt+C and the help panel."""
    path = tmp_path / "cf_increment.json"
    path.write_text(json.dumps(WORKFLOW))
    with editor_page(tmp_path, viewport={"width": 1600, "height": 900}) as (page, errors):
        page.set_input_files("[data-testid=load-input]", str(path))
        page.wait_for_function("() => '7' in window.nodegraph.graph().nodes")

        # the seed's "control after generate" and ComfyUI's node colours came with the workflow
        page.wait_for_selector("[data-testid=seed-mode-3-seed][data-mode=increment]")
        assert page.inner_text("[data-testid=seed-mode-3-seed]") == "+1 / run"
        ui = _graph(page)["ui"]["nodes"]
        assert ui["3"]["seed_modes"] == {"seed": "increment"}
        assert (ui["7"]["color"], ui["7"]["bgcolor"]) == ("#322", "#533")
        body = page.eval_on_selector("[data-testid=node-7]", "e => getComputedStyle(e).backgroundColor")
        header = page.eval_on_selector("[data-testid=node-7] .ng-node-header", "e => getComputedStyle(e).backgroundColor")
        assert (body, header) == ("rgb(85, 51, 51)", "rgb(51, 34, 34)")

        # search: a ComfyUI name leads where its work is done here, and no unrelated node is offered
        _search(page, "Reroute")
        assert "right-click a wire" in page.inner_text("[data-testid=search-hint]")
        page.wait_for_selector("[data-testid=search-no-good-match]")
        assert page.locator("[data-testid^=search-item-]").count() == 0
        page.fill("[data-testid=search-input]", "CLIPSetLastLayer")
        page.wait_for_selector("[data-testid=search-item-EncodeText][data-strong=true]")
        assert "clip_skip" in page.inner_text("[data-testid=search-hint]")
        page.fill("[data-testid=search-input]", "face")
        page.wait_for_selector("[data-testid=search-no-good-match]")
        assert page.locator("[data-testid^=search-item-][data-strong=true]").count() == 0
        page.keyboard.press("Escape")
        page.wait_for_selector("[data-testid=search-popup]", state="detached")

        # minimise with the title's ▾: only the title bar, its wires still drawn to it; saved as ui collapsed
        edges = page.locator(".react-flow__edge").count()
        tall = page.locator("[data-testid=node-3]").bounding_box()["height"]
        page.click("[data-testid=minimise-3]")
        page.wait_for_selector("[data-testid=node-3][data-minimised=true]")
        page.wait_for_function("h => document.querySelector('[data-testid=node-3]').getBoundingClientRect().height < h / 3", arg=tall)
        assert page.locator("[data-testid=widget-3-steps]").count() == 0
        assert page.locator(".react-flow__edge").count() == edges
        assert _graph(page)["ui"]["nodes"]["3"]["collapsed"] is True
        # Alt+C on the selected node expands it again (ComfyUI's key)
        page.click("[data-testid=node-3] .ng-node-title")
        page.keyboard.press("Alt+c")
        page.wait_for_selector("[data-testid=node-3][data-minimised=false]")
        assert "collapsed" not in _graph(page)["ui"]["nodes"]["3"]
        page.keyboard.press("Alt+c")
        page.wait_for_selector("[data-testid=node-3][data-minimised=true]")

        # the node menu's Colour… sets ComfyUI's green
        page.click("[data-testid=node-6] .ng-node-title", button="right")
        page.click("[data-testid=menu-color]")
        page.click("[data-testid=menu-color-green]")
        page.wait_for_function("() => window.nodegraph.graph().ui.nodes['6'].bgcolor === '#353'")
        assert page.eval_on_selector("[data-testid=node-6]", "e => getComputedStyle(e).backgroundColor") == "rgb(51, 85, 51)"

        # '.' fits the graph in view after zooming in
        page.click(".react-flow__pane", position={"x": 5, "y": 5})
        viewport = ".react-flow__viewport"
        fitted = page.eval_on_selector(viewport, "e => e.style.transform")
        for _ in range(3):
            page.click(".react-flow__controls-zoomin")
        page.wait_for_function("t => document.querySelector('.react-flow__viewport').style.transform !== t", arg=fitted)
        zoomed = page.eval_on_selector(viewport, "e => e.style.transform")
        page.click(".react-flow__pane", position={"x": 5, "y": 5})     # the focus off the zoom button (its own keys)
        page.keyboard.press(".")
        page.wait_for_function("t => document.querySelector('.react-flow__viewport').style.transform !== t", arg=zoomed)

        # Ctrl+Alt+Enter with nothing running does nothing (and never runs the graph, as Ctrl+Enter would)
        page.keyboard.press("Control+Alt+Enter")
        page.wait_for_timeout(300)
        assert page.locator("[data-testid^=history-row-]").count() == 0

        # the help panel lists ComfyUI's keys
        page.keyboard.press("?")
        help_text = page.inner_text("[data-testid=help-panel]")
        for key in ("Alt+C", ". (full stop)", "Ctrl+O", "Ctrl+Alt+Enter", "Colour…"):
            assert key in help_text, key
        page.keyboard.press("Escape")
        assert not errors, errors
