"""Notes on the canvas in real Chromium (web/src/editor/NoteNode.tsx, `ui.notes`; a ComfyUI user's pass: a workflow's
Note was dropped silently on import, and nodegraph had no note).

`test_notes_on_the_canvas` adds a note from the canvas menu and one from the search ("Note"), types into it (the
text stays text: an `<img onerror>` typed in makes no image and runs nothing), undoes and redoes the typing, scrolls
a long text inside the note (the note keeps its size), moves it by its bar and resizes it, copies and pastes it,
deletes it, saves and loads the file back with the notes exactly as saved, then imports a ComfyUI workflow with a
Note and a collapsed node: the banner counts the note, it is shown with its text, and the node is minimised.

Every wait is on a state with a ceiling, never a fixed sleep.
"""

from __future__ import annotations

import json

from .test_editor_e2e import _save, editor_page, pytestmark  # noqa: F401

NOTES = "() => (window.nodegraph.graph().ui || {}).notes || []"
SELECTED = "() => Object.keys(window.nodegraph.app.editor.state.selectedNodes).sort()"
HOSTILE = "<img src=x onerror=\"window.__pwned = 1\">"

WORKFLOW = {
    "last_node_id": 12, "last_link_id": 0, "links": [], "version": 0.4,
    "nodes": [
        {"id": 5, "type": "EmptyLatentImage", "pos": [400, 100], "size": [315, 106], "flags": {"collapsed": True},
         "order": 0, "mode": 0, "inputs": [], "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}],
         "widgets_values": [64, 64, 1]},
        {"id": 12, "type": "Note", "pos": [30, 100], "size": [300, 120], "flags": {}, "order": 1, "mode": 0,
         "inputs": [], "outputs": [], "widgets_values": ["Remember: use 64x64 for tiny world.\nSecond line."]},
    ],
}


def _notes(page) -> list[dict]:
    return page.evaluate(NOTES)


def _wait_notes(page, count: int) -> None:
    page.wait_for_function(f"() => ({NOTES})().length === {count}")


def _canvas_menu(page) -> None:
    """The canvas's own menu, from the keyboard (Shift+F10 with the canvas focused): no node under the pointer."""
    page.focus("[data-testid=canvas]")
    page.keyboard.press("Shift+F10")
    page.wait_for_selector("[data-testid=context-menu][data-target=canvas]")


def _drag(page, selector: str, dx: float, dy: float) -> None:
    box = page.locator(selector).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=4)
    page.mouse.move(x + dx, y + dy, steps=4)
    page.mouse.up()


def test_notes_on_the_canvas(tmp_path):
    """Add (menu, search), type, undo, scroll, move, resize, copy / paste, delete, save / load, import a Note."""
    with editor_page(tmp_path, viewport={"width": 1400, "height": 850}) as (page, errors):
        # --- add one from the canvas menu: the cursor is in its text, which stays text ---
        _canvas_menu(page)
        page.click("[data-testid=menu-add-note]")
        _wait_notes(page, 1)
        note_id = _notes(page)[0]["id"]
        field = f"[data-testid=note-text-{note_id}]"
        page.wait_for_function(f"() => document.activeElement === document.querySelector('{field}')")
        page.keyboard.type(f"Tiny world: 64x64. {HOSTILE}")
        assert _notes(page)[0]["text"] == f"Tiny world: 64x64. {HOSTILE}"
        assert page.locator(f"[data-testid=note-{note_id}] img").count() == 0
        assert page.evaluate("() => window.__pwned") is None
        assert page.input_value(field) == f"Tiny world: 64x64. {HOSTILE}"

        # --- Ctrl+Z in the note is the graph's undo (the typing one step), Ctrl+Shift+Z redoes it ---
        page.keyboard.press("Control+z")
        page.wait_for_function(f"() => ({NOTES})()[0].text === ''")
        page.keyboard.press("Control+Shift+z")
        page.wait_for_function(f"() => ({NOTES})()[0].text.startsWith('Tiny world')")

        # --- a long text scrolls inside the note; the note keeps its size ---
        long_text = "\n".join(f"line {i}" for i in range(200))
        page.fill(field, long_text)
        assert _notes(page)[0]["text"] == long_text
        bounds = _notes(page)[0]["bounds"]
        scrolls = f"() => {{ const t = document.querySelector('{field}'); return t.scrollHeight > t.clientHeight + 100; }}"
        assert page.evaluate(scrolls)
        assert _notes(page)[0]["bounds"] == bounds

        # --- move by its bar (one undo step), resize by its corner when selected ---
        _drag(page, f"[data-testid=note-bar-{note_id}]", 120, 60)
        page.wait_for_function(f"() => ({NOTES})()[0].bounds[0] > {bounds[0] + 40}")
        moved = _notes(page)[0]["bounds"]
        assert moved[2:] == bounds[2:] and moved[1] > bounds[1]
        page.focus("[data-testid=canvas]")
        page.keyboard.press("Control+z")
        page.wait_for_function(f"() => ({NOTES})()[0].bounds[0] === {bounds[0]}")
        page.keyboard.press("Control+y")
        page.wait_for_function(f"() => ({NOTES})()[0].bounds[0] === {moved[0]}")
        page.click(f"[data-testid=note-bar-{note_id}]")
        assert page.evaluate(SELECTED) == [f"note:{note_id}"]
        corner = f".react-flow__node[data-id='note:{note_id}'] .react-flow__resize-control.handle.bottom.right"
        _drag(page, corner, 80, 60)
        page.wait_for_function(f"() => ({NOTES})()[0].bounds[2] > {moved[2] + 30}")
        assert _notes(page)[0]["bounds"][3] > moved[3] + 20

        # --- copy and paste it (a new id, the same text), delete the copy ---
        page.click(f"[data-testid=note-bar-{note_id}]")
        page.keyboard.press("Control+c")
        page.keyboard.press("Control+v")
        _wait_notes(page, 2)
        copy = _notes(page)[1]
        assert copy["id"] != note_id and copy["text"] == long_text
        page.wait_for_function(f"() => ({SELECTED})().join() === 'note:{copy['id']}'")
        page.focus(f".react-flow__node[data-id='note:{copy['id']}']")
        page.keyboard.press("Delete")
        _wait_notes(page, 1)

        # --- one from the search: "Note" offers "Add a note here", Enter adds it ---
        _canvas_menu(page)
        page.click("[data-testid=menu-add-node]")
        page.fill("[data-testid=search-input]", "Note")
        page.wait_for_selector("[data-testid=search-add-note][aria-selected=true]")
        page.keyboard.press("Enter")
        _wait_notes(page, 2)

        # --- saved and loaded back exactly; never run (no node for it) ---
        saved = _save(page)
        assert saved["ui"]["notes"] == _notes(page)
        assert not any(n["type"].lower().endswith("note") for n in saved["nodes"].values())
        page.evaluate("(g) => window.nodegraph.load(g)", json.loads(json.dumps(saved)))
        page.wait_for_function("() => document.querySelectorAll('.react-flow__node-note').length === 2")
        assert _notes(page) == saved["ui"]["notes"]

        # --- a ComfyUI workflow's Note is kept and counted; a collapsed node comes in minimised ---
        path = tmp_path / "cf_note.json"
        path.write_text(json.dumps(WORKFLOW))
        page.set_input_files("[data-testid=load-input]", str(path))
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=info-banner]')]"
                               ".some((b) => b.textContent.includes('(1 note kept)'))", timeout=30_000)
        page.wait_for_selector("[data-testid=note-text-comfyui-note-12]")
        assert page.input_value("[data-testid=note-text-comfyui-note-12]") == WORKFLOW["nodes"][1]["widgets_values"][0]
        assert page.evaluate("() => window.nodegraph.graph().ui.nodes['5'].collapsed") is True
        assert errors == []
