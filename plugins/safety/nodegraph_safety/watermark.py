"""Invisible watermark: embed and read a short message with the `invisible-watermark` package.

Stable Diffusion's reference scripts (``scripts/txt2img.py``) mark every output with
``WatermarkEncoder().set_watermark("bytes", b"StableDiffusionV1")`` and ``encode(img, "dwtDct")``.
We use the same package with ``dwtDctSvd`` (DWT, then DCT of 4x4 blocks, then the largest
singular value of each block quantised to carry one bit; Navas et al. 2008 style), which
round-trips far more reliably than ``dwtDct`` on small images. The package works on BGR uint8
arrays (OpenCV order) and needs at least 256x256 pixels: smaller images are refused with a
message that says to upscale first.

Map: ``encode_watermark(images, message)``, ``decode_watermark(images, length)`` on IMAGE
tensors (B, H, W, 3) in [0, 1]; ``MIN_PIXELS``; ``WatermarkError``. No engine imports.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MAX_MESSAGE_BYTES", "METHOD", "MIN_PIXELS", "WatermarkError", "decode_watermark", "encode_watermark"]

METHOD = "dwtDctSvd"
MIN_PIXELS = 256 * 256  # the package refuses smaller images (too few 4x4 DCT blocks per bit)
MAX_MESSAGE_BYTES = 32  # 256 bits; each bit is spread over many blocks, so short messages survive best


class WatermarkError(ValueError):
    """An image or message the watermark cannot carry; the message names it and the fix."""


def _package():
    try:
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError as error:
        raise WatermarkError(
            f"the invisible-watermark package is not importable ({error}); install it with "
            f"`pip install opencv-python-headless PyWavelets && pip install --no-deps invisible-watermark`") from None
    return WatermarkEncoder, WatermarkDecoder


def _to_bgr_uint8(image: torch.Tensor) -> np.ndarray:
    rgb = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return np.ascontiguousarray(rgb[..., ::-1])


def _check(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        found = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise WatermarkError(f"images: expected an IMAGE tensor (B, H, W, 3) in [0, 1], found {found}")
    height, width = images.shape[1:3]
    if height * width < MIN_PIXELS:
        raise WatermarkError(f"images: {width}x{height} is too small to carry a watermark (at least {MIN_PIXELS} "
                             f"pixels, e.g. 256x256); upscale first (ImageScaleBy / an upscaler)")


def encode_watermark(images: torch.Tensor, message: str) -> torch.Tensor:
    """Embed ``message`` (UTF-8, at most MAX_MESSAGE_BYTES) into every image; IMAGE in, IMAGE out."""
    _check(images)
    payload = message.encode("utf-8")
    if not 0 < len(payload) <= MAX_MESSAGE_BYTES:
        raise WatermarkError(f"message: expected 1 to {MAX_MESSAGE_BYTES} UTF-8 bytes, found {len(payload)}")
    encoder_class, _ = _package()
    encoder = encoder_class()
    encoder.set_watermark("bytes", payload)
    out = []
    for image in images:
        marked = encoder.encode(_to_bgr_uint8(image), METHOD)  # (H, W, 3) BGR uint8
        out.append(torch.from_numpy(np.ascontiguousarray(marked[..., ::-1])).float() / 255)
    return torch.stack(out).to(images.dtype)


def decode_watermark(images: torch.Tensor, length: int) -> list[bytes]:
    """Read a ``length``-byte watermark from every image -> raw bytes per image (garbage if none was embedded)."""
    _check(images)
    if not 0 < length <= MAX_MESSAGE_BYTES:
        raise WatermarkError(f"length: expected 1 to {MAX_MESSAGE_BYTES} bytes, found {length}")
    _, decoder_class = _package()
    decoder = decoder_class("bytes", length * 8)
    return [bytes(decoder.decode(_to_bgr_uint8(image), METHOD)) for image in images]
