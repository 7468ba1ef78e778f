"""Image and mask nodes (thin adapters over pixels.py, masks.py, adjust.py).

    files       LoadImage (alpha → MASK), LoadImageMask (one channel → MASK), SaveImage (PNG with the graph /
                JPEG / WebP), PreviewImage
    transform   ImageScale, ImageScaleBy (factor / megapixels), ImageCrop, ImagePad (outpainting canvas + mask),
                ImageFlipRotate
    colour      ImageBlend, ImageAdjust;  batches: ImageGrid, ImageBatch, ImagePick
    masks       ImageToMask, MaskToImage, MaskOperation (invert / grow / shrink / feather / threshold),
                CombineMasks, MaskFromColor
    compose     CompositeImages, CropToMask (→ REGION) and PasteToRegion
    preprocess  ControlNet hints (preprocess.py): CannyEdges, ForegroundMask, DistanceDepth
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Literal

from nodegraph import Input, Node, NodeContext, NodeInputError, NodeInputs, Output, PortType, api, hookimpl
from nodegraph.graph import EXIF_IMAGE_DESCRIPTION     # the tag `nodegraph run image.jpg` reads back
from nodegraph.provenance import run_record


MAX_IMAGE_VALUES = 16384 * 16384 * 3     # the largest IMAGE a node makes: one 16384² RGB image (3.2 GB float32)


def _check_result_size(name: str, batch: int, height: int, width: int) -> None:
    """Refuse, before allocating it, an IMAGE result over MAX_IMAGE_VALUES (a chain of pads or batches grows
    without bound otherwise, until the process is killed for memory); names the input to change."""
    if batch * height * width * 3 > MAX_IMAGE_VALUES:
        raise NodeInputError(name, f"the result would be {batch} image(s) of {width}×{height}, "
                                   f"{batch * height * width * 3 / 1e9:.3f} G values, over the limit of one "
                                   f"16384×16384 RGB image ({MAX_IMAGE_VALUES / 1e9:.2f} G); make it smaller or "
                                   f"split the batch")
    from nodegraph.memory import ensure_free      # within the limit, but does the machine have it now?

    # float32, and about one more copy while it is made (resampling reads one layout and writes another)
    ensure_free(2 * batch * height * width * 3 * 4, f"the result, {batch} image(s) of {width}×{height},")


def _check_image(name: str, image: Any) -> None:
    shape = getattr(image, "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        raise NodeInputError(name, f"expected an IMAGE tensor (B, H, W, 3), found {type(image).__name__} "
                                   f"with shape {tuple(shape) if shape is not None else None}")


class LoadImage(Node):
    """Load an image from the input folder; its alpha channel becomes the mask (transparent = 1)."""

    category = "image"
    version = "1.0.2"     # 1.0.1: 16-bit and float grey images keep their tones (they loaded as white); 1.0.2: a
    #                       file declaring over 8192×8192 pixels is refused from its header (not a raw PIL error)

    class Inputs(NodeInputs):
        image: str = Input(description="file name in the input folder (upload it from the editor); a subfolder "
                                       "of it too (clipspace/mask.png, as ComfyUI's mask editor saves)",
                           min_length=1, max_length=255, upload="image", subfolders=True)

    outputs = (Output("image", "IMAGE"), Output("mask", "MASK"))

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Callable[[str, str], Any]) -> str | None:
        return _input_file_fingerprint(literals["image"], resolve_file)

    def run(self, image: str) -> dict:
        pixels, mask = _load_input_image(self.context, image)
        return {"image": pixels, "mask": mask}


def _input_file_fingerprint(name: str, resolve_file: Callable[[str, str], Any]) -> str:
    """The content fingerprint of an input-folder file (a new file under the same name runs the node again)."""
    from nodegraph.files import content_fingerprint

    try:
        return content_fingerprint(resolve_file("input", name))
    except LookupError:
        return "missing"


def _load_input_image(context: NodeContext, image: str) -> tuple[Any, Any]:
    """(IMAGE, MASK = 1 - alpha) of the input-folder file `image`, for LoadImage and LoadImageMask: the name
    confined to the input folder, and each way it fails a NodeInputError on `image` that names the file (never
    where the input folder is); a warning when the file has several frames."""
    from nodegraph.paths import confine

    from .pixels import ImageTooLargeError, load_image_file

    confine(context.service("input_dir"), image, what="image name", input_name="image", subfolders=True)
    try:
        path = context.service("resolve_file")("input", image)
    except LookupError as exc:
        raise NodeInputError("image", str(exc)) from None
    try:
        pixels, mask = load_image_file(path)
    except ImageTooLargeError as exc:
        raise NodeInputError("image", f"{image!r} is too large to load: {_without_path(exc, path)}") from None
    except OSError as exc:
        from PIL import UnidentifiedImageError

        detail = "not an image format Pillow knows (PNG, JPEG, WebP, TIFF, BMP, GIF...)" if isinstance(
            exc, UnidentifiedImageError) else _without_path(exc, path)
        raise NodeInputError("image", f"{image!r} is not a readable image: {detail}") from None
    frames = _frame_count(path)
    if frames > 1:
        context.warn(f"{image!r} has {frames} frames (an animation, or pages); only the first is loaded")
    return pixels, mask


class LoadImageMask(Node):
    """Load a mask from an image file in the input folder: one of its channels (ComfyUI's "Load Image (as Mask)").

    `alpha` gives 1 - alpha, as LoadImage's mask (transparent = 1, to change; a file without alpha gives an
    empty mask); `red`, `green` or `blue` gives that channel as it is (white = 1), for a black-and-white mask
    painted in another program. The file is read as LoadImage reads it (EXIF rotation applied; 16-bit grey
    keeps its tones; a PNG colour key is transparency)."""

    category = "mask"

    class Inputs(NodeInputs):
        image: str = Input(description="file name in the input folder (upload it from the editor); a subfolder "
                                       "of it too", min_length=1, max_length=255, upload="image", subfolders=True)
        channel: Literal["alpha", "red", "green", "blue"] = Input(
            "alpha", description="alpha: 1 - alpha (transparent = masked, as LoadImage's mask); a colour: its "
                                 "value (white = masked)")

    outputs = (Output("mask", "MASK"),)

    @classmethod
    def fingerprint(cls, literals: dict[str, Any], resolve_file: Callable[[str, str], Any]) -> str | None:
        return _input_file_fingerprint(literals["image"], resolve_file)

    def run(self, image: str, channel: str) -> dict:
        pixels, mask = _load_input_image(self.context, image)
        if channel == "alpha":
            return {"mask": mask}
        return {"mask": pixels[..., ("red", "green", "blue").index(channel)].clone()}


def _frame_count(path: Any) -> int:
    """How many frames an image file holds (GIF, APNG, WebP, TIFF pages); 1 when it cannot tell."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return int(getattr(picture, "n_frames", 1))
    except Exception:  # noqa: BLE001 — the image itself loaded; the count is only for a warning
        return 1


def _without_path(exc: BaseException, path: Any) -> str:
    """An exception's text with the file's absolute path taken out (Pillow puts it there; a server sends node
    errors to its clients, who must not learn where its input folder is)."""
    return str(exc).replace(str(path), "the file").replace(repr(str(path)), "the file")


class SaveImage(Node):
    """Save images in the output folder: PNG with the graph embedded (drop it on the editor to reload it), or JPEG / WebP.

    `filename_prefix` passes nodegraph.paths.confine (subfolders allowed, nothing outside the
    output folder); files are numbered PREFIX_00001.png, ... and never replace an existing file. ComfyUI's
    prefix tokens are expanded: %date:yyyy-MM-dd%, %year% … %second%, %width%, %height%, %batch_num%,
    %NODE.INPUT% (nodegraph/prefix_tokens.py).
    """

    category = "image"
    output_node = True

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        filename_prefix: str = Input("nodegraph", file_name_in="output", subfolders=True, min_length=1, max_length=120,
                                     description="files are named PREFIX_00001.png, ...; may contain subfolders (a/b/name) "
                                                 "and ComfyUI's tokens (%date:yyyy-MM-dd%, %KSampler.seed%)")
        format: Literal["png", "jpeg", "webp"] = Input("png", description="PNG carries the graph of any size; JPEG "
                                                                          "and WebP up to ~60 KB of it (in EXIF)")
        quality: int = Input(95, ge=1, le=100, description="JPEG / WebP quality")

    outputs = ()

    def run(self, images: Any, filename_prefix: str, format: str, quality: int) -> dict:
        from nodegraph.paths import confine
        from nodegraph.prefix_tokens import PrefixTokenError, expand_at_save

        def named(batch_num: int | None = None) -> str:
            try:        # ComfyUI's save-time tokens (the run-start ones, %date:…% %KSampler.seed%, already are)
                prefix = expand_at_save(filename_prefix, width=images.shape[2], height=images.shape[1],
                                        batch_num=batch_num)
            except PrefixTokenError as exc:
                raise NodeInputError("filename_prefix", str(exc)) from None
            confine(self.context.service("output_dir"), prefix, what="file-name prefix",
                    input_name="filename_prefix", subfolders=True)
            return prefix

        if "%batch_num%" not in filename_prefix:
            return {"files": api.save_image(self.context, images, named(), format=format, quality=quality)}
        files = []
        for index in range(images.shape[0]):        # each image its own name, as ComfyUI's SaveImage
            files += api.save_image(self.context, images[index:index + 1], named(index), format=format,
                                    quality=quality)
        return {"files": files}


class PreviewImage(Node):
    """Show images in the editor (written to the output folder's previews/, without the graph)."""

    category = "image"
    output_node = True

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")

    outputs = ()

    def run(self, images: Any) -> dict:
        prefix = f"previews/preview_{self.context.run_id[:8] or 'run'}"
        return {"files": api.save_image(self.context, images, prefix, embed_graph=False)}


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
        count, height, width, _ = images.shape
        columns_used = max(1, min(columns or math.ceil(math.sqrt(count)), count))
        rows = math.ceil(count / columns_used)
        _check_result_size("images", 1, rows * height + (rows + 1) * padding,
                           columns_used * width + (columns_used + 1) * padding)
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
        _check_result_size("width", images.shape[0], height, width)
        return {"image": resize_image(images, width, height, method, crop)}




# --- image operations and masks -------------------------------------------------------------------

REGION = PortType("REGION", "A rectangle of an image: {'x', 'y', 'width', 'height'} in pixels.", color="#bcaaa4")


def _image(name: str, images: Any) -> Any:
    _check_image(name, images)
    return images


def _mask(name: str, mask: Any) -> Any:
    shape = getattr(mask, "shape", None)
    if shape is None or len(shape) != 3:
        raise NodeInputError(name, f"expected a MASK (B, H, W), found shape {shape}")
    return mask


def _batch_fits(name: str, value: Any, destination: Any) -> None:
    """A source, patch or mask batch must be 1 (used for every destination image) or the destination's."""
    if value.shape[0] not in (1, destination.shape[0]):
        raise NodeInputError(name, f"{name} has a batch of {value.shape[0]} but the destination "
                                   f"{destination.shape[0]}; give one {name} for all, or one per destination image "
                                   f"(ImagePick picks one)")


def _same_size(name: str, mask: Any, image: Any) -> None:
    if tuple(mask.shape[-2:]) != tuple(image.shape[1:3]):
        raise NodeInputError(name, f"the mask is {mask.shape[-1]}×{mask.shape[-2]} but the image "
                                   f"{image.shape[2]}×{image.shape[1]} (width×height); resize the mask with "
                                   f"ScaleMask (or the image with ImageScale) first")


class ImageScaleBy(Node):
    """Resize images by a factor, or to a total number of megapixels, keeping the aspect ratio."""

    category = "image/transform"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        mode: Literal["factor", "megapixels"] = Input("factor")
        amount: float = Input(2.0, gt=0.0, le=64.0, step=0.05, description="the factor, or the megapixels")
        method: Literal["nearest", "bilinear", "bicubic", "area", "lanczos"] = Input("bicubic")
        multiple_of: int = Input(1, ge=1, le=64, description="round the new sides to a multiple (8 for latents)")

    outputs = (Output("image", "IMAGE"),)

    def run(self, images: Any, mode: str, amount: float, method: str, multiple_of: int) -> dict:
        from .pixels import resize_image

        _, h, w, _ = _image("images", images).shape
        factor = amount if mode == "factor" else (amount * 1e6 / (h * w)) ** 0.5
        new_w = max(multiple_of, round(w * factor / multiple_of) * multiple_of)
        new_h = max(multiple_of, round(h * factor / multiple_of) * multiple_of)
        if new_w * new_h > 16384 * 16384:
            raise NodeInputError("amount", f"{new_w}×{new_h} is larger than 16384×16384")
        _check_result_size("amount", images.shape[0], new_h, new_w)
        return {"image": resize_image(images, new_w, new_h, method)}


class ImageCrop(Node):
    """Cut a rectangle out of images (clamped to the image)."""

    category = "image/transform"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        x: int = Input(0, ge=0, le=16384)
        y: int = Input(0, ge=0, le=16384)
        width: int = Input(512, ge=1, le=16384)
        height: int = Input(512, ge=1, le=16384)

    outputs = (Output("image", "IMAGE"),)

    def run(self, images: Any, x: int, y: int, width: int, height: int) -> dict:
        _, h, w, _ = _image("images", images).shape
        if x >= w or y >= h:
            raise NodeInputError("x" if x >= w else "y", f"the crop starts outside the {w}×{h} image")
        return {"image": images[:, y:y + height, x:x + width].clone()}


class ImagePad(Node):
    """Extend the canvas (for outpainting): new pixels repeat the edge; the mask marks them, feathered inwards."""

    category = "image/transform"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        left: int = Input(0, ge=0, le=8192, step=8)
        top: int = Input(0, ge=0, le=8192, step=8)
        right: int = Input(0, ge=0, le=8192, step=8)
        bottom: int = Input(0, ge=0, le=8192, step=8)
        feather: int = Input(16, ge=0, le=1024)

    outputs = (Output("image", "IMAGE"), Output("mask", "MASK"))

    def run(self, images: Any, left: int, top: int, right: int, bottom: int, feather: int) -> dict:
        from .masks import pad_image

        batch, height, width, _ = _image("images", images).shape
        _check_result_size("images", batch, height + top + bottom, width + left + right)
        image, mask = pad_image(images, left, top, right, bottom, feather)
        return {"image": image, "mask": mask}


class ImageFlipRotate(Node):
    """Flip horizontally / vertically, or rotate by 90° steps."""

    category = "image/transform"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        operation: Literal["flip horizontal", "flip vertical", "rotate 90", "rotate 180", "rotate 270"] = Input(
            "flip horizontal")

    outputs = (Output("image", "IMAGE"),)

    def run(self, images: Any, operation: str) -> dict:
        import torch

        images = _image("images", images)
        if operation.startswith("flip"):
            return {"image": torch.flip(images, dims=[2 if operation.endswith("horizontal") else 1])}
        turns = int(operation.split()[1]) // 90
        return {"image": torch.rot90(images, k=-turns, dims=(1, 2)).contiguous()}   # clockwise


class ImageBlend(Node):
    """Blend two images (b resized to a): normal, multiply, screen, overlay, difference, add."""

    category = "image/color"

    class Inputs(NodeInputs):
        a: Any = Input(port="IMAGE")
        b: Any = Input(port="IMAGE")
        factor: float = Input(0.5, ge=0.0, le=1.0, step=0.05)
        mode: Literal["normal", "multiply", "screen", "overlay", "difference", "add"] = Input("normal")

    outputs = (Output("image", "IMAGE"),)

    def run(self, a: Any, b: Any, factor: float, mode: str) -> dict:
        from .adjust import blend
        from .pixels import resize_image

        a, b = _image("a", a), _image("b", b)
        _check_result_size("b", a.shape[0] + b.shape[0], a.shape[1], a.shape[2])
        if b.shape[1:3] != a.shape[1:3]:
            b = resize_image(b, a.shape[2], a.shape[1], "bicubic")
        if b.shape[0] not in (1, a.shape[0]):
            raise NodeInputError("b", f"batch {b.shape[0]} does not match a's batch {a.shape[0]}")
        return {"image": blend(a, b, factor, mode)}


class ImageAdjust(Node):
    """Brightness, contrast, saturation and gamma."""

    category = "image/color"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        brightness: float = Input(0.0, ge=-1.0, le=1.0, step=0.01)
        contrast: float = Input(1.0, ge=0.0, le=4.0, step=0.01)
        saturation: float = Input(1.0, ge=0.0, le=4.0, step=0.01)
        gamma: float = Input(1.0, gt=0.0, le=8.0, step=0.01)

    outputs = (Output("image", "IMAGE"),)

    def run(self, images: Any, brightness: float, contrast: float, saturation: float, gamma: float) -> dict:
        from .adjust import adjust

        return {"image": adjust(_image("images", images), brightness, contrast, saturation, gamma)}


class ImageBatch(Node):
    """Join two image batches into one (b resized to a's size)."""

    category = "image/batch"

    class Inputs(NodeInputs):
        a: Any = Input(port="IMAGE")
        b: Any = Input(port="IMAGE")

    outputs = (Output("images", "IMAGE"),)

    def run(self, a: Any, b: Any) -> dict:
        import torch

        from .pixels import resize_image

        a, b = _image("a", a), _image("b", b)
        _check_result_size("b", a.shape[0] + b.shape[0], a.shape[1], a.shape[2])
        if b.shape[1:3] != a.shape[1:3]:
            b = resize_image(b, a.shape[2], a.shape[1], "bicubic")
        return {"images": torch.cat([a, b])}


class ImagePick(Node):
    """Pick images from a batch: `index` and `count` consecutive ones."""

    category = "image/batch"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        index: int = Input(0, ge=0, le=4095)
        count: int = Input(1, ge=1, le=4096)

    outputs = (Output("images", "IMAGE"),)

    def run(self, images: Any, index: int, count: int) -> dict:
        images = _image("images", images)
        if index >= images.shape[0]:
            raise NodeInputError("index", f"the batch has {images.shape[0]} images (0 … {images.shape[0] - 1})")
        return {"images": images[index:index + count].clone()}


class ImageToMask(Node):
    """Use one channel of an image as a mask (e.g. a black-and-white mask painted elsewhere)."""

    category = "mask"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        channel: Literal["red", "green", "blue", "luminance"] = Input("luminance")

    outputs = (Output("mask", "MASK"),)

    def run(self, images: Any, channel: str) -> dict:
        import torch

        from .adjust import LUMA

        images = _image("images", images)
        if channel == "luminance":
            return {"mask": (images * torch.tensor(LUMA, dtype=images.dtype)).sum(dim=-1)}
        return {"mask": images[..., ("red", "green", "blue").index(channel)].clone()}


class MaskToImage(Node):
    """Show a mask as a grey image."""

    category = "mask"

    class Inputs(NodeInputs):
        mask: Any = Input(port="MASK")

    outputs = (Output("image", "IMAGE"),)

    def run(self, mask: Any) -> dict:
        return {"image": _mask("mask", mask)[..., None].expand(-1, -1, -1, 3).clone()}


class ScaleMask(Node):
    """Resize masks to a width and height, e.g. to the size of the image they go with (an inpainting or
    compositing node refuses a mask of another size)."""

    category = "mask"

    class Inputs(NodeInputs):
        mask: Any = Input(port="MASK")
        width: int = Input(512, ge=1, le=16384, step=8)
        height: int = Input(512, ge=1, le=16384, step=8)
        method: Literal["nearest", "bilinear", "area"] = Input(
            "bilinear", description="nearest keeps a hard mask hard; bilinear and area give soft edges")

    outputs = (Output("mask", "MASK"),)

    def run(self, mask: Any, width: int, height: int, method: str) -> dict:
        from .pixels import resize_image

        mask = _mask("mask", mask)
        _check_result_size("width", mask.shape[0], height, width)
        scaled = resize_image(mask[..., None].float(), width, height, method, "disabled")     # one channel
        return {"mask": scaled[..., 0].contiguous()}


class MaskOperation(Node):
    """Change a mask: invert, grow (or shrink with negative pixels), feather, or threshold.

    Grow gives each pixel the largest value within `amount` pixels (shrink: the smallest): within a square, or
    with `tapered_corners` a diamond (|dx| + |dy| ≤ amount, corners cut at 45°) — ComfyUI GrowMask's default,
    whose `expand` is our `amount`."""

    category = "mask"
    version = "1.1.0"      # 1.1: tapered_corners (grow / shrink by a diamond, as ComfyUI's GrowMask)

    class Inputs(NodeInputs):
        mask: Any = Input(port="MASK")
        operation: Literal["invert", "grow", "feather", "threshold"] = Input("grow")
        amount: float = Input(8.0, ge=-1024.0, le=1024.0, step=1.0,
                              description="grow: pixels (negative shrinks); feather: radius; threshold: level 0–1")
        tapered_corners: bool = Input(False, description="grow / shrink by a diamond (corners cut at 45°, ComfyUI "
                                                         "GrowMask's default) instead of a square")

    outputs = (Output("mask", "MASK"),)

    def run(self, mask: Any, operation: str, amount: float, tapered_corners: bool) -> dict:
        from .masks import feather_mask, grow_mask, threshold_mask

        mask = _mask("mask", mask)
        if operation == "invert":
            return {"mask": 1.0 - mask}
        if operation == "grow":
            return {"mask": grow_mask(mask, int(amount), tapered_corners)}
        if operation == "feather":
            if amount < 0:
                raise NodeInputError("amount", "a feather radius cannot be negative")
            return {"mask": feather_mask(mask, amount)}
        if not 0 <= amount <= 1:
            raise NodeInputError("amount", f"a threshold is a level in [0, 1], found {amount}")
        return {"mask": threshold_mask(mask, amount)}


class CombineMasks(Node):
    """Combine two masks: add, subtract, multiply, max (union) or min (intersection)."""

    category = "mask"

    class Inputs(NodeInputs):
        a: Any = Input(port="MASK")
        b: Any = Input(port="MASK")
        operation: Literal["add", "subtract", "multiply", "max", "min"] = Input("max")

    outputs = (Output("mask", "MASK"),)

    def run(self, a: Any, b: Any, operation: str) -> dict:
        from .masks import combine_masks

        try:
            return {"mask": combine_masks(_mask("a", a), _mask("b", b), operation)}
        except ValueError as exc:
            raise NodeInputError("b", str(exc)) from None


class MaskFromColor(Node):
    """A mask of the pixels close to a colour (#rrggbb)."""

    category = "mask"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        color: str = Input("#ffffff", min_length=7, max_length=7)
        tolerance: float = Input(0.05, ge=0.0, le=1.0, step=0.01)

    outputs = (Output("mask", "MASK"),)

    def run(self, images: Any, color: str, tolerance: float) -> dict:
        from .masks import mask_from_colour

        try:
            rgb = tuple(int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
        except ValueError:
            raise NodeInputError("color", f"expected #rrggbb, found {color!r}") from None
        return {"mask": mask_from_colour(_image("images", images), rgb, tolerance)}


class CannyEdges(Node):
    """ControlNet hint: Canny edges, white on black (needs the `preprocess` extra: scikit-image)."""

    category = "image/preprocess"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        low_threshold: float = Input(0.1, ge=0.0, le=1.0, step=0.01)
        high_threshold: float = Input(0.2, ge=0.0, le=1.0, step=0.01)
        sigma: float = Input(1.0, ge=0.0, le=20.0, step=0.1, description="Gaussian blur before edge finding")

    outputs = (Output("image", "IMAGE"),)

    def run(self, images: Any, low_threshold: float, high_threshold: float, sigma: float) -> dict:
        from .preprocess import canny_edges

        if low_threshold > high_threshold:
            raise NodeInputError("low_threshold", f"must not exceed high_threshold ({high_threshold})")
        return {"image": canny_edges(_image("images", images), low_threshold, high_threshold, sigma)}


class ForegroundMask(Node):
    """Segmentation hint: the pixels that differ from the image's border colour (objects on a flat background)."""

    category = "image/preprocess"

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        threshold: float = Input(0.15, ge=0.0, le=2.0, step=0.01, description="RGB distance counted as different")

    outputs = (Output("mask", "MASK"),)

    def run(self, images: Any, threshold: float) -> dict:
        from .preprocess import foreground_mask

        return {"mask": foreground_mask(_image("images", images), threshold)}


class DistanceDepth(Node):
    """Depth-like hint: distance to the mask's edge, normalised (needs the `preprocess` extra: SciPy)."""

    category = "image/preprocess"

    class Inputs(NodeInputs):
        mask: Any = Input(port="MASK")

    outputs = (Output("image", "IMAGE"),)

    def run(self, mask: Any) -> dict:
        from .preprocess import distance_depth

        return {"image": distance_depth(_mask("mask", mask).float())}


class CompositeImages(Node):
    """Paste `source` onto `destination` at (x, y), through an optional mask (source-sized)."""

    category = "image/compose"

    class Inputs(NodeInputs):
        destination: Any = Input(port="IMAGE")
        source: Any = Input(port="IMAGE")
        mask: Any = Input(None, port="MASK")
        x: int = Input(0, ge=-16384, le=16384)
        y: int = Input(0, ge=-16384, le=16384)

    outputs = (Output("image", "IMAGE"),)

    def run(self, destination: Any, source: Any, mask: Any, x: int, y: int) -> dict:
        from .masks import composite

        destination, source = _image("destination", destination), _image("source", source)
        _batch_fits("source", source, destination)
        if mask is not None:
            _same_size("mask", _mask("mask", mask), source)
            _batch_fits("mask", mask, destination)
        return {"image": composite(destination, source, mask, x, y)}


class CropToMask(Node):
    """Crop images (and the mask) to the masked area plus some context, for inpainting at full detail.

    The crop's sides are multiples of `multiple_of`, so a VAE encoder takes it. Near an image edge whose side is
    not a multiple, the crop shrinks to the largest multiple that fits, centred on the masked area: up to
    multiple_of - 1 pixels of the mask's outer edge may then stay as they are (as ComfyUI's VAE encoders crop an
    image to a multiple of 8), and the region never leaves the image, so PasteToRegion puts back exactly what
    was cut. An image smaller than multiple_of on a side is refused."""

    category = "image/compose"
    version = "1.1.0"      # 1.1: sides always multiples of multiple_of (61×45 at the image's edges was 61×45)

    class Inputs(NodeInputs):
        images: Any = Input(port="IMAGE")
        mask: Any = Input(port="MASK")
        context: int = Input(32, ge=0, le=4096, description="pixels of surroundings kept around the mask")
        multiple_of: int = Input(8, ge=1, le=64, description="the crop's sides are multiples of it (8 for SD's VAE); "
                                                             "at an image edge it shrinks to fit")

    outputs = (Output("image", "IMAGE"), Output("mask", "MASK"), Output("region", "REGION"))

    def run(self, images: Any, mask: Any, context: int, multiple_of: int) -> dict:
        from .masks import crop, mask_bounds

        images, mask = _image("images", images), _mask("mask", mask)
        _same_size("mask", mask, images)
        try:
            bounds = mask_bounds(mask, context, multiple_of)
        except ValueError as exc:
            raise NodeInputError("multiple_of", str(exc)) from None
        if bounds is None:
            raise NodeInputError("mask", "the mask is empty: nothing to crop to (paint the area to change)")
        region = dict(zip(("x", "y", "width", "height"), bounds))
        return {"image": crop(images, bounds).clone(), "mask": crop(mask[..., None], bounds)[..., 0].clone(),
                "region": region}


class PasteToRegion(Node):
    """Paste a (processed) crop back where CropToMask took it, through its mask."""

    category = "image/compose"

    class Inputs(NodeInputs):
        destination: Any = Input(port="IMAGE")
        patch: Any = Input(port="IMAGE")
        region: Any = Input(port="REGION")
        mask: Any = Input(None, port="MASK", description="destination-sized; only masked pixels change")

    outputs = (Output("image", "IMAGE"),)

    def run(self, destination: Any, patch: Any, region: Any, mask: Any) -> dict:
        from .masks import paste

        destination, patch = _image("destination", destination), _image("patch", patch)
        _batch_fits("patch", patch, destination)
        if mask is not None:
            _same_size("mask", _mask("mask", mask), destination)
            _batch_fits("mask", mask, destination)
        bounds = (region["x"], region["y"], region["width"], region["height"])
        return {"image": paste(destination, patch, bounds, mask)}


IMAGE_OPERATIONS = [ImageScaleBy, ImageCrop, ImagePad, ImageFlipRotate, ImageBlend, ImageAdjust, ImageBatch,
                    ImagePick, ImageToMask, MaskToImage, ScaleMask, MaskOperation, CombineMasks, MaskFromColor,
                    CompositeImages, CropToMask, PasteToRegion, CannyEdges, ForegroundMask, DistanceDepth]


def api_save_image(context: NodeContext, images: Any, prefix: str, *, format: str, quality: int,
                   embed_graph: bool) -> list[dict]:
    """nodegraph.api.save_image: each image of the batch as PNG (with the graph when asked) / JPEG / WebP."""
    from .pixels import image_to_pils, save_png

    graph = json.dumps(context.graph_as_run(), separators=(",", ":")) \
        if embed_graph and context.graph is not None else None     # a RandomInt's seed pinned: it repeats
    record = run_record(context) if embed_graph else None
    pils = image_to_pils(images)

    def writer(pil: Any, index: int) -> Callable[[Path], None]:
        run = json.dumps({**record, "batch_index": index, "batch_size": len(pils)}, separators=(",", ":")) \
            if record is not None else None
        if format == "png":
            text = {key: value for key, value in (("nodegraph", graph), ("nodegraph_run", run)) if value is not None}
            return lambda path: save_png(pil, path, text, compress_level=4 if embed_graph else 1)
        exif = exif_record(graph, run)
        if index == 0 and graph is not None and exif is not None and b"graph_omitted" in exif:
            kept = "nothing of them" if b"record_omitted" in exif else "only the run record"
            context.warn(f"the graph and run record ({(len(graph) + len(run or '')) / 1000:.0f} KB together) are too "
                         f"large for a {format.upper()}'s EXIF (at most {MAX_EXIF_TEXT // 1000} KB): the image keeps "
                         f"{kept}; save as PNG to keep the graph in the image")
        return lambda path: pil.save(path, format=format.upper(), quality=quality, **({"exif": exif} if exif else {}))

    return api.save_files(context, [writer(pil, k) for k, pil in enumerate(pils)], kind="image", prefix=prefix,
                          suffix="." + ("jpg" if format == "jpeg" else format),
                          fields=[{"width": pil.width, "height": pil.height} for pil in pils])


MAX_EXIF_TEXT = 60_000        # a JPEG's EXIF segment holds at most 64 KB


def exif_record(graph: str | None, run: str | None) -> bytes | None:
    """EXIF for a JPEG/WebP: ImageDescription = {"nodegraph": graph, "nodegraph_run": record} as ASCII JSON (the
    graph left out when the two do not fit in an EXIF segment); None when there is nothing to record."""
    from PIL import Image

    if run is None and graph is None:
        return None
    parts = {"nodegraph": json.loads(graph) if graph else None, "nodegraph_run": json.loads(run) if run else None}
    text = json.dumps(parts, separators=(",", ":"))
    if len(text) > MAX_EXIF_TEXT:
        text = json.dumps({"nodegraph_run": parts["nodegraph_run"], "graph_omitted": "too large for EXIF; save as PNG"},
                          separators=(",", ":"))
    if len(text) > MAX_EXIF_TEXT:      # the record alone is too large too (hundreds of input files hashed)
        text = json.dumps({"graph_omitted": "too large for EXIF; save as PNG",
                           "record_omitted": "too large for EXIF; save as PNG"}, separators=(",", ":"))
    exif = Image.Exif()
    exif[EXIF_IMAGE_DESCRIPTION] = text
    return exif.tobytes()


@hookimpl
def register_api() -> dict[str, Any]:
    return {"save_image": api_save_image}


@hookimpl
def register_types() -> list[PortType]:
    return [REGION]


@hookimpl
def register_nodes() -> list[type[Node]]:
    return [LoadImage, LoadImageMask, SaveImage, PreviewImage, ImageGrid, ImageScale, *IMAGE_OPERATIONS]
