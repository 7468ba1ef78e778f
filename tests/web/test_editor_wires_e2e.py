"""ComfyUI's wire habits in Chromium against a real server (a ComfyUI user's pass, editor/wireGestures.ts): a wire
picked up from a connected input follows the pointer from its source and moves to the input it is dropped on, or is
removed on empty canvas (where the search for that output opens); Shift+drag from an output onto another moves all
its links in one undo step; a double-click on an input socket adds the primitive node holding the widget's value."""

from __future__ import annotations

from .test_editor_comfy_habits_e2e import EMPTY_SPOT
from .test_editor_e2e import editor_page, pytestmark  # noqa: F401


def _socket(page, node: str, handle: str) -> tuple[float, float]:
    kind = "target" if handle.startswith("in:") else "source"
    box = page.locator(f'.react-flow__handle.{kind}[data-nodeid="{node}"][data-handleid="{handle}"]').bounding_box()
    assert box, f"no socket {node}.{handle}"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _drag(page, start: tuple[float, float], end: tuple[float, float], shift: bool = False, check=None) -> None:
    if shift:
        page.keyboard.down("Shift")
    page.mouse.move(*start)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(start[0] + (end[0] - start[0]) * i / 10, start[1] + (end[1] - start[1]) * i / 10)
    if check:
        check()
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")


def _inputs(page, node: str) -> dict:
    return page.evaluate(f"window.nodegraph.graph().nodes[{node!r}].inputs")


def test_wire_gestures(tmp_path):
    with editor_page(tmp_path, viewport={"width": 1600, "height": 900}) as (page, errors):
        page.wait_for_selector('.react-flow__handle.target[data-nodeid="sampler"][data-handleid="in:positive"]')
        prompt_link = {"node": "prompt", "output": "conditioning"}
        assert _inputs(page, "sampler")["positive"] == prompt_link

        # pick up the positive wire and drop it on negative: the link moves; while dragged the old wire is hidden and
        # the line being drawn starts at the prompt's output (its source), not at the input
        def while_dragging():
            page.wait_for_function(  # the old wire is hidden (React draws it away on the next frame)
                """() => !document.querySelector('.react-flow__edge[data-id*="prompt"][data-id*="positive"]')""", timeout=3000)
            out_x, _ = _socket(page, "prompt", "out:conditioning")
            path = page.locator(".react-flow__connection-path").get_attribute("d")
            assert path and abs(float(path.split()[0].lstrip("M").split(",")[0]) - out_x) < 400, path

        _drag(page, _socket(page, "sampler", "in:positive"), _socket(page, "sampler", "in:negative"), check=while_dragging)
        page.wait_for_function("() => !('positive' in window.nodegraph.graph().nodes.sampler.inputs)")
        assert _inputs(page, "sampler")["negative"] == prompt_link
        page.keyboard.press("Control+z")
        page.wait_for_function("() => window.nodegraph.graph().nodes.sampler.inputs.negative.node === 'negative'")
        assert _inputs(page, "sampler")["positive"] == prompt_link

        # picked up and let go on empty canvas: the link is removed and the search for the prompt's output opens
        _drag(page, _socket(page, "sampler", "in:positive"), tuple(page.evaluate(EMPTY_SPOT)))
        page.wait_for_selector("[data-testid=search-popup]")
        assert "positive" not in _inputs(page, "sampler")
        page.keyboard.press("Escape")
        page.keyboard.press("Control+z")
        page.wait_for_function("() => 'positive' in window.nodegraph.graph().nodes.sampler.inputs")

        # Shift+drag from the prompt's output onto the negative prompt's: both conditioning links now come from it
        _drag(page, _socket(page, "prompt", "out:conditioning"), _socket(page, "negative", "out:conditioning"), shift=True)
        page.wait_for_function("() => window.nodegraph.graph().nodes.sampler.inputs.positive.node === 'negative'")
        assert _inputs(page, "sampler")["negative"]["node"] == "negative"
        page.keyboard.press("Control+z")  # one step back to both as they were
        page.wait_for_function("() => window.nodegraph.graph().nodes.sampler.inputs.positive.node === 'prompt'")
        assert _inputs(page, "sampler")["negative"]["node"] == "negative"

        # double-click the steps socket: an Int holding 20, linked to it, left of the sampler and not over it
        page.mouse.dblclick(*_socket(page, "sampler", "in:steps"))
        page.wait_for_function("() => (window.nodegraph.graph().nodes.sampler.inputs.steps || {}).node !== undefined")
        graph = page.evaluate("window.nodegraph.graph()")
        added = graph["nodes"][graph["nodes"]["sampler"]["inputs"]["steps"]["node"]]
        assert added["type"] == "Int" and added["inputs"]["value"] == 20
        new_id = graph["nodes"]["sampler"]["inputs"]["steps"]["node"]
        new_box = page.locator(f'.react-flow__node[data-id="{new_id}"]').bounding_box()
        sampler_box = page.locator('.react-flow__node[data-id="sampler"]').bounding_box()
        assert new_box["x"] + new_box["width"] <= sampler_box["x"] + 1, (new_box, sampler_box)
        page.keyboard.press("Control+z")
        page.wait_for_function("() => window.nodegraph.graph().nodes.sampler.inputs.steps === 20")
        assert not errors, errors
