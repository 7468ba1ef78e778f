"""ControlNet hint preprocessors: pure functions from images / masks to hint images or masks.

    canny_edges(images, low, high, sigma)     white Canny edges on black (scikit-image's canny on luminance)
    foreground_mask(images, threshold)        pixels whose colour differs from the border's median colour
                                              (a segmentation hint for flat backgrounds; torch only)
    distance_depth(masks)                     a depth-like hint: each pixel's distance to its region's edge,
                                              normalised per image (shapes bulge towards the viewer)

IMAGE tensors are (B, H, W, 3) in [0, 1], MASK tensors (B, H, W) in [0, 1]. Canny and the
distance transform come from scikit-image / SciPy (the `preprocess` extra); without them
`PreprocessorUnavailable` says what to install.
"""

from __future__ import annotations

import numpy as np
import torch


class PreprocessorUnavailable(RuntimeError):
    """A preprocessor's library is not installed."""


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise PreprocessorUnavailable(f"this preprocessor needs {module.split('.')[0]}: "
                                      f"pip install 'nodegraph[preprocess]' (scikit-image and SciPy)") from None


def canny_edges(images: torch.Tensor, low: float = 0.1, high: float = 0.2, sigma: float = 1.0) -> torch.Tensor:
    """Canny (1986) edges of each image's luminance: (B, H, W, 3) white-on-black, thresholds in [0, 1]."""
    feature = _require("skimage.feature")
    luminance = (images[..., :3].double() * torch.tensor([0.2126, 0.7152, 0.0722], dtype=torch.float64)).sum(-1)
    edges = [feature.canny(frame.numpy(), sigma=sigma, low_threshold=low, high_threshold=high)
             for frame in luminance]
    out = torch.from_numpy(np.stack(edges).astype(np.float32))
    return out.unsqueeze(-1).expand(*out.shape, 3).contiguous().to(images.dtype)


def foreground_mask(images: torch.Tensor, threshold: float = 0.15) -> torch.Tensor:
    """1 where a pixel's RGB distance from the median colour of the image's 2-px border exceeds `threshold`."""
    rgb = images[..., :3].float()
    border = torch.cat([rgb[:, :2].flatten(1, 2), rgb[:, -2:].flatten(1, 2),
                        rgb[:, :, :2].flatten(1, 2), rgb[:, :, -2:].flatten(1, 2)], dim=1)   # (B, N, 3)
    background = border.median(dim=1).values                                                # (B, 3)
    distance = (rgb - background[:, None, None, :]).norm(dim=-1)                            # (B, H, W)
    return (distance > threshold).to(images.dtype)


def distance_depth(masks: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of each masked pixel to the nearest unmasked one, scaled to [0, 1] per image,
    as a grey (B, H, W, 3) image: near (white) at the middle of shapes, far (black) outside."""
    ndimage = _require("scipy.ndimage")
    frames = []
    for mask in masks:
        distance = ndimage.distance_transform_edt(mask.numpy() > 0.5)
        peak = distance.max()
        frames.append(np.sqrt(distance / peak) if peak > 0 else distance)
    out = torch.from_numpy(np.stack(frames).astype(np.float32))
    return out.unsqueeze(-1).expand(*out.shape, 3).contiguous().to(masks.dtype)
