"""A ComfyUI power user's visual findings, measured in Chromium against a real server: the Templates menu's rows fit
the menu (titles end in an ellipsis, descriptions wrap to two lines, the source badge stays whole); every gallery tile
(image, video, sound, 3D) is the same square, the video showing its first frame without controls; a group frame is
below the wires, and grows with a node inside it that grows. The pure parts (and the download name) are
web/test/editorPolish.test.ts."""

from __future__ import annotations

from .test_editor_e2e import editor_page, pytestmark  # noqa: F401

ROWS = """() => {
  const menu = document.querySelector('[data-testid=templates-menu]').getBoundingClientRect();
  return [...document.querySelectorAll('.ng-template')].map((row) => {
    const r = row.getBoundingClientRect();
    const title = row.querySelector('.ng-template-title');
    const badge = row.querySelector('.ng-template-source');
    const description = row.querySelector('.ng-template-description');
    return {
      id: row.dataset.testid, menuRight: menu.right, right: r.right, scroll: row.scrollWidth, width: row.clientWidth,
      titleCut: title.scrollWidth > title.clientWidth, titleEllipsis: getComputedStyle(title).textOverflow, tip: row.title,
      badgeRight: badge ? badge.getBoundingClientRect().right : null, badgeWhole: badge ? badge.scrollWidth <= badge.clientWidth + 1 : true,
      lines: description ? description.getBoundingClientRect().height / parseFloat(getComputedStyle(description).lineHeight) : 0,
    };
  });
}"""


def test_templates_menu_rows_fit(tmp_path):
    with editor_page(tmp_path, viewport={"width": 1600, "height": 900}) as (page, errors):
        page.click("text=Templates")
        page.wait_for_selector(".ng-template")
        rows = page.evaluate(ROWS)
        assert rows
        for row in rows:
            assert row["scroll"] <= row["width"] + 1, row  # nothing wider than the row
            assert row["right"] <= row["menuRight"] + 1, row
            assert row["titleEllipsis"] == "ellipsis" and row["tip"], row
            assert row["badgeWhole"] and (row["badgeRight"] is None or row["badgeRight"] <= row["right"] + 1), row
            assert row["lines"] <= 2.05, row  # two lines at most, the rest an ellipsis
        assert not errors, errors


def test_gallery_tiles_are_one_size(tmp_path):
    with editor_page(tmp_path, viewport={"width": 1600, "height": 900}) as (page, errors):
        page.evaluate("""() => window.nodegraph.app.session.set((s) => ({ ...s, gallery: [
          { runId: 'r', nodeId: 'save', fileId: 'output/r/a.png', url: '/files/output/r/a.png', index: 0, kind: 'image', mime: 'image/png' },
          { runId: 'r', nodeId: 'vid', fileId: 'output/r/b.mp4', url: '/files/output/r/b.mp4', index: 0, kind: 'video', mime: 'video/mp4' },
          { runId: 'r', nodeId: 'snd', fileId: 'output/r/c.wav', url: '/files/output/r/c.wav', index: 0, kind: 'audio', mime: 'audio/wav' },
          { runId: 'r', nodeId: 'pts', fileId: 'output/r/d.ply', url: '/files/output/r/d.ply', index: 0, kind: 'pointcloud', mime: 'application/octet-stream' },
        ] }))""")
        page.wait_for_selector("[data-testid=gallery-item][data-kind=pointcloud]")
        boxes = page.evaluate("""() => [...document.querySelectorAll('[data-testid=gallery-item]')].map((item) => {
          const r = item.getBoundingClientRect(); return { kind: item.dataset.kind, w: r.width, h: r.height, top: r.top };
        })""")
        first = boxes[0]
        for box in boxes:
            assert abs(box["w"] - first["w"]) <= 1 and abs(box["h"] - first["h"]) <= 1, boxes  # one square size
        assert abs(first["w"] - first["h"]) <= 2, boxes
        video = page.locator("[data-testid=gallery-item][data-kind=video] video")
        assert video.get_attribute("controls") is None and video.get_attribute("preload") == "metadata"
        assert video.locator("source").get_attribute("src").endswith("#t=0.001")
        assert page.locator("[data-testid=gallery-item][data-kind=video] .ng-media-play").count() == 1
        assert page.locator("[data-testid=gallery-item][data-kind=audio] [data-testid=output-file-audio-play]").count() == 1
        assert page.locator("[data-testid=gallery-item][data-kind=audio] audio[controls]").count() == 0
        assert not errors, errors


def test_group_frame_below_wires_and_grows(tmp_path):
    with editor_page(tmp_path, viewport={"width": 1600, "height": 900}) as (page, errors):
        page.click('.react-flow__node[data-id="prompt"] .ng-node-title')
        page.keyboard.press("Control+g")
        page.wait_for_selector(".react-flow__node-group")
        page.click(".react-flow__pane", position={"x": 5, "y": 5})  # nothing selected
        z = page.evaluate("""() => [getComputedStyle(document.querySelector('.react-flow__node-group')).zIndex,
                                   getComputedStyle(document.querySelector('.react-flow__edge').closest('svg')).zIndex]""")
        assert int(z[0]) < int(z[1]), z  # the frame is under the wires (a node over a wire hides it, as in ComfyUI)

        page.fill('[data-testid=input-prompt-text] textarea', "\n".join(f"line {i}" for i in range(25)))
        page.wait_for_timeout(600)
        node = page.locator('.react-flow__node[data-id="prompt"]').bounding_box()
        frame = page.locator(".react-flow__node-group").bounding_box()
        assert node["y"] + node["height"] <= frame["y"] + frame["height"] + 1, (node, frame)
        assert not errors, errors
