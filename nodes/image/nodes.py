"""Image nodes: LoadImage, SaveImage, PreviewImage, ImageGrid, ImageScale (thin adapters over pixels.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Literal

from nodegraph import Input, Node, NodeInputError, NodeInputs, Output, hookimpl


def _check_image(name: str, image: Any) -> None:
    shape = getattr(image, "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        raise NodeInputError(name, f"expected an IMAGE tensor (B, H, W, 3), found {type(image).__name__} "
                                   f"with shape {tuple(shape) if shape is not None else None}")


class LoadImage(Node):
    """Load an image from the input folder; its alpha channel becomes the mask (transparent = 1)."""

    category = "image"

    class Inputs(NodeInputs):
        image: str = Input(description="file name in the input folder (upload it from the editor)",
                           min_length=1, max_length=255, upload="image")

    outputs = (Output("image", "IMAGE"), Output("mask", "MASK"))

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Callable[[str, str], Any]) -> str | None:
        try:
            stat = resolve_file("input", literals["image"]).stat()
        except (OSError, LookupError):
            return "missing"
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def run(self, image: str) -> dict:
        from .pixels import load_image_file

        try:
            path = self.context.service("resolve_file")("input", image)
        except LookupError as exc:
            raise NodeInputError("image", f"{exc}; upload the file or copy it into the input folder") from None
        try:
            pixels, mask = load_image_file(path)
        except OSError as exc:
            raise NodeInputError("image", f"{image!r} is not a readable image: {exc}") from None
        return {"image": pixels, "mask": mask}


def _next_path(folder: Path, prefix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(Path(prefix).name) + r"_(\d{5})\.png$")
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return folder / f"{Path(prefix).name}_{max(numbers, default=0) + 1:05d}.png"


class SaveImage(Node):
    """Save images as PNG in the output folder, with the graph embedded (drop the PNG on the editor to reload it)."""

    category = "image"
    output_node = True

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        filename_prefix: str = Input("nodegraph", min_length=1, max_length=120,
                                     description="files are named PREFIX_00001.png, ...; may contain one subfolder")

    outputs = ()

    def run(self, images: Any, filename_prefix: str) -> dict:
        from .pixels import image_to_pils, save_png

        _check_image("images", images)
        if ".." in Path(filename_prefix).parts or Path(filename_prefix).is_absolute():
            raise NodeInputError("filename_prefix", "must stay inside the output folder (no '..' or absolute path)")
        out_dir = Path(self.context.service("output_dir")) / Path(filename_prefix).parent
        text = {}
        if self.context.graph is not None:
            text["nodegraph"] = json.dumps(self.context.graph.to_dict(), separators=(",", ":"))
        files = []
        for pil in image_to_pils(images):
            path = _next_path(out_dir, filename_prefix)
            save_png(pil, path, text)
            files.append({"path": str(path), "kind": "image", "format": "png"})
        return {"files": files}


class PreviewImage(Node):
    """Show images in the editor (written to the output folder's previews/, without the graph)."""

    category = "image"
    output_node = True

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")

    outputs = ()

    def run(self, images: Any) -> dict:
        from .pixels import image_to_pils, save_png

        _check_image("images", images)
        out_dir = Path(self.context.service("output_dir")) / "previews"
        files = []
        for pil in image_to_pils(images):
            path = _next_path(out_dir, f"preview_{self.context.run_id[:8]}")
            save_png(pil, path, compress_level=1)
            files.append({"path": str(path), "kind": "image", "format": "png"})
        return {"files": files}


class ImageGrid(Node):
    """Tile a batch of images into one grid image."""

    category = "image"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        columns: int = Input(0, ge=0, le=64, description="0 = as square as possible")
        padding: int = Input(2, ge=0, le=256)

    outputs = (Output("image", "IMAGE"),)

    def run(self, images: Any, columns: int, padding: int) -> dict:
        from .pixels import image_grid

        _check_image("images", images)
        return {"image": image_grid(images, columns, padding)}


class ImageScale(Node):
    """Resize images to a width and height (optionally centre-cropping to keep the aspect ratio)."""

    category = "image"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        width: int = Input(512, ge=1, le=16384, step=8)
        height: int = Input(512, ge=1, le=16384, step=8)
        method: Literal["nearest", "bilinear", "bicubic", "area", "lanczos"] = Input("bilinear")
        crop: Literal["disabled", "center"] = Input("disabled")

    outputs = (Output("image", "IMAGE"),)

    def run(self, images: Any, width: int, height: int, method: str, crop: str) -> dict:
        from .pixels import resize_image

        _check_image("images", images)
        return {"image": resize_image(images, width, height, method, crop)}


@hookimpl
def register_nodes() -> list[type[Node]]:
    return [LoadImage, SaveImage, PreviewImage, ImageGrid, ImageScale]
