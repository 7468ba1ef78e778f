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


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(header: bytes, body: bytes, extra: bytes = b"", broken: bool = False) -> bytes:
    """A PNG written byte by byte; `broken`: the pixels' second half in a chunk whose type is not letters, so
    the header opens and loading the pixels raises SyntaxError ("broken PNG file")."""
    pixels = _png_chunk(b"IDAT", body)
    if broken:
        pixels = _png_chunk(b"IDAT", body[:len(body) // 2]) + _png_chunk(b"\x00\x80\x0b\x00", body[len(body) // 2:])
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + extra + pixels + _png_chunk(b"IEND", b""))


def test_a_palette_alpha_table_longer_than_the_palette_is_thumbnailed_with_its_alpha(server, tmp_path):
    """A 2-colour palette PNG with a 300-byte tRNS (a hostile pass): LoadImage failed on it and its thumbnail was
    a 404 "not a readable image", though browsers show it. The extra entries are ignored, as libpng does: the
    thumbnail keeps colour 0's transparency."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 80, 40, 8, 3, 0, 0, 0)
    body = zlib.compress(b"".join(b"\0" + bytes([0] * 40 + [1] * 40) for _ in range(40)))
    extra = _png_chunk(b"PLTE", b"\xff\xff\xff\x00\x00\xff") + _png_chunk(b"tRNS", b"\x00\xff" + b"\x00" * 298)
    (tmp_path / "in" / "long.png").write_bytes(_png(header, body, extra))
    status, kind, body = fetch(server.port, "/files/input/long.png?size=64")
    assert status == 200 and kind == "image/webp"
    with Image.open(io.BytesIO(body)) as thumb:
        alpha = np.asarray(thumb.getchannel("A"))
    assert thumb.size == (64, 32) and alpha[:, :28].max() == 0 and alpha[:, 36:].min() == 255


def test_a_png_with_a_broken_chunk_is_not_a_readable_image_without_a_traceback(server, tmp_path, caplog):
    """A damaged PNG copied into the input folder (the upload refuses one): Pillow's SyntaxError ("broken PNG
    file") escaped make_thumbnail, so the answer was a bare 404 and the log had a traceback."""
    import logging
    import struct
    import zlib

    from nodegraph.server import make_thumbnail

    caplog.set_level(logging.INFO)
    header = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    body = zlib.compress(b"".join(b"\0" + bytes(range(48)) for _ in range(16)))
    (tmp_path / "in" / "broken.png").write_bytes(_png(header, body, broken=True))
    assert make_thumbnail(tmp_path / "in" / "broken.png", 64) is None
    status, _kind, text = fetch(server.port, "/files/input/broken.png?size=64")
    assert status == 404 and text == b"the file is not a readable image\n"
    assert "Traceback" not in caplog.text and "SyntaxError" not in caplog.text
