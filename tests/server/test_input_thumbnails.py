"""Input thumbnails show what LoadImage loads: upright (EXIF orientation) and with the mask's transparency kept
(LoadImage's preview looked like a sideways photo with no mask, #3)."""

from __future__ import annotations

import http.client
import io

import numpy as np
import pytest
from PIL import Image

from .test_server import RunningServer


def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.getheader("Content-Type"), response.read()


@pytest.fixture
def server(tmp_path):
    (tmp_path / "in").mkdir()
    running = RunningServer(tmp_path)
    yield running
    running.stop()


def test_an_exif_rotated_photo_is_thumbnailed_upright(server, tmp_path):
    """A JPEG stored 64×48 with Orientation 6 (turn 90° clockwise) is 48×64 to LoadImage and the mask editor; its
    thumbnail was landscape, the blue corner top-left instead of top-right."""
    stored = np.full((48, 64, 3), 255, dtype=np.uint8)
    stored[:12, :16] = (20, 20, 220)                                   # blue, top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "in" / "turned.jpg", exif=exif.tobytes(), quality=95)
    status, kind, body = fetch(server.port, "/files/input/turned.jpg?size=64")
    assert status == 200 and kind == "image/jpeg"
    with Image.open(io.BytesIO(body)) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (48, 64)
        pixels = np.asarray(thumb.convert("RGB")).astype(int)
    assert pixels[4, 44, 2] > 180 and pixels[4, 44, 0] < 80            # blue top-right, as displayed
    assert pixels[4, 4].min() > 200                                    # white top-left


@pytest.mark.parametrize("name", ["masked.png", "keyed.png"])
def test_a_transparent_input_keeps_its_alpha_in_a_webp_thumbnail(server, tmp_path, name):
    """A mask saved by the mask editor (alpha) or a PNG colour key (tRNS) is LoadImage's mask; its thumbnail was
    a JPEG, flattened, so the preview showed no mask. It is a WebP with that alpha, said by its Content-Type."""
    picture = np.full((40, 80, 3), 255, dtype=np.uint8)
    picture[:, 40:] = (200, 30, 30)
    if name == "masked.png":
        alpha = np.full((40, 80), 255, dtype=np.uint8)
        alpha[:, :40] = 0                                              # the white half masked
        Image.fromarray(np.dstack([picture, alpha])).save(tmp_path / "in" / name)
    else:
        Image.fromarray(picture).save(tmp_path / "in" / name, transparency=(255, 255, 255))
    status, kind, body = fetch(server.port, f"/files/input/{name}?size=64")
    assert status == 200 and kind == "image/webp"
    with Image.open(io.BytesIO(body)) as thumb:
        assert thumb.format == "WEBP" and thumb.mode == "RGBA" and thumb.size == (64, 32)
        alpha = np.asarray(thumb.getchannel("A"))
    assert alpha[:, :28].max() == 0 and alpha[:, 36:].min() == 255
    assert fetch(server.port, f"/files/input/{name}?size=64")[2] == body       # cached, the same bytes


def test_an_opaque_image_with_an_alpha_band_stays_a_small_jpeg(server, tmp_path):
    """An RGBA file whose alpha is all 255 (as many generators write) has no mask: a JPEG, as before."""
    Image.new("RGBA", (80, 40), (10, 200, 30, 255)).save(tmp_path / "in" / "opaque.png")
    status, kind, body = fetch(server.port, "/files/input/opaque.png?size=64")
    assert status == 200 and kind == "image/jpeg" and body[:2] == b"\xff\xd8"
