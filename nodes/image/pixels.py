"""Pixel conversions and image files, in the layouts the IMAGE and MASK port types use.

- IMAGE: float32 tensor (B, H, W, 3) in [0, 1] (channels last, as images are stored).
- MASK:  float32 tensor (B, H, W) in [0, 1]; 1 marks pixels to change (inpaint).
  An image's alpha channel becomes a mask as 1 - alpha: transparent = to be filled.

Main functions: `pil_to_image`, `image_to_pils`, `load_image_file` (→ image, mask), `opacity` (an alpha
band or a PNG colour key), `save_png` (with text chunks, e.g. the graph JSON under "nodegraph"),
`image_grid`, `resize_image`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin

from nodegraph import api
from nodegraph.files import eight_bit

RESIZE_METHODS = ("nearest", "bilinear", "bicubic", "area", "lanczos")


def pil_to_image(pil: Image.Image) -> torch.Tensor:
    """PIL image → IMAGE tensor (1, H, W, 3); 16-bit and float grey keep their tones (files.eight_bit)."""
    rgb = np.asarray(eight_bit(pil).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb.copy())[None]


def image_to_pils(image: torch.Tensor) -> list[Image.Image]:
    """IMAGE tensor (B, H, W, 3) → list of RGB PIL images (values clipped to [0, 1]): `api.to_pil`."""
    return api.to_pil(image)


MAX_FILE_PIXELS = 64 * 1024 * 1024     # 8192 × 8192, as for uploads (nodegraph/files.py MAX_UPLOAD_PIXELS)


class ImageTooLargeError(ValueError):
    """An image file declares more pixels than MAX_FILE_PIXELS (refused before decoding)."""


def damaged_file_error(exc: BaseException) -> OSError:
    """What a damaged image file is to LoadImage: an OSError (its "not a readable image") that says what Pillow
    found and what to do. Pillow raises SyntaxError or ValueError for a broken chunk, which read as a crash."""
    return OSError(f"the file is damaged ({type(exc).__name__}: {exc}); open it in an image program and save it "
                   f"again, or use the original file")


def load_image_file(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an image file → (IMAGE (1, H, W, 3), MASK (1, H, W)); EXIF rotation applied.

    The mask is 1 - alpha where the file has alpha (an A band, or a PNG colour key: `opacity`), else all
    zeros (nothing to change). A file declaring more than MAX_FILE_PIXELS is ImageTooLargeError, read from
    its header: a few bytes can claim a 30000 × 30000 image (3.6 GB decoded). A damaged file (a broken chunk
    found when it opens or while its pixels load) is an OSError that says so and what to do (`damaged_file_error`).
    """
    try:
        opened = Image.open(path)
    except Image.DecompressionBombError as exc:        # PIL's own limit, far above ours
        raise ImageTooLargeError(f"it declares too many pixels ({exc}); the limit is {MAX_FILE_PIXELS} "
                                 f"(e.g. 8192×8192): scale it down first") from None
    except (ValueError, SyntaxError) as exc:           # a damaged chunk ("Truncated tRNS chunk"): said as unreadable
        raise damaged_file_error(exc) from None
    width, height = opened.size
    # the PNG's stored form ("L;2", "1", "RGB;16B"), before loading: a colour key is compared as Pillow widened
    # or narrowed the pixels (`opacity`)
    from nodegraph.files import stored_mode

    stored = stored_mode(opened)
    if width * height > MAX_FILE_PIXELS:
        opened.close()
        raise ImageTooLargeError(f"it is {width}×{height} ({width * height} pixels), over the limit of "
                                 f"{MAX_FILE_PIXELS} (e.g. 8192×8192): scale it down first")
    with opened as pil:
        try:
            pil = ImageOps.exif_transpose(pil)
            pil.load()
        except (ValueError, SyntaxError, EOFError) as exc:     # a bad chunk in the pixels ("broken PNG file")
            raise damaged_file_error(exc) from None
        image = pil_to_image(pil)
        alpha = opacity(pil, stored)
        mask = torch.zeros(image.shape[:3]) if alpha is None else 1.0 - torch.from_numpy(alpha)[None]
    return image, mask


def opacity(pil: Image.Image, stored: str | None = None) -> np.ndarray | None:
    """An image's alpha as float32 (H, W) in [0, 1], or None when every pixel is opaque: `nodegraph.files.
    image_opacity` (an A band or a PNG colour key), which the server's thumbnails read the same way."""
    from nodegraph.files import image_opacity

    return image_opacity(pil, stored)


def save_png(pil: Image.Image, path: str | Path, text: dict[str, str] | None = None, compress_level: int = 4) -> None:
    """Write a PNG with UTF-8 text chunks (iTXt), e.g. {"nodegraph": graph JSON}."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    pil.save(path, format="PNG", pnginfo=info, compress_level=compress_level)


def image_grid(images: torch.Tensor, columns: int = 0, padding: int = 2, background: float = 1.0) -> torch.Tensor:
    """Tile a batch (B, H, W, 3) into one image (1, H', W', 3); columns=0 picks a near-square grid."""
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    grid = torch.full((rows * height + (rows + 1) * padding, columns * width + (columns + 1) * padding, channels),
                      background, dtype=images.dtype)
    for index in range(count):
        r, c = divmod(index, columns)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        grid[top:top + height, left:left + width] = images[index]
    return grid[None]


def resize_image(images: torch.Tensor, width: int, height: int, method: str = "bilinear",
                 crop: str = "disabled") -> torch.Tensor:
    """Resize a batch (B, H, W, 3) to (B, height, width, 3); crop="center" keeps the aspect ratio."""
    if method not in RESIZE_METHODS:
        raise ValueError(f"method must be one of {RESIZE_METHODS}, got {method!r}")
    x = images.movedim(-1, 1)                                    # (B, 3, H, W)
    if crop == "center":
        _, _, h, w = x.shape
        target = width / height
        if w / h > target:
            new_w = max(1, round(h * target))
            x = x[:, :, :, (w - new_w) // 2:(w - new_w) // 2 + new_w]
        else:
            new_h = max(1, round(w / target))
            x = x[:, :, (h - new_h) // 2:(h - new_h) // 2 + new_h, :]
    if method == "lanczos":
        pils = image_to_pils(x.movedim(1, -1))
        return torch.cat([pil_to_image(p.resize((width, height), Image.Resampling.LANCZOS)) for p in pils])
    kwargs = {"align_corners": False, "antialias": True} if method in ("bilinear", "bicubic") else {}
    out = torch.nn.functional.interpolate(x, size=(height, width), mode=method, **kwargs)
    return out.clamp(0, 1).movedim(1, -1)
