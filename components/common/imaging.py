"""One image file -> one (R, R, 3) uint8 array: the only place clpipe turns pixels into arrays.

Every reader of user images goes through :func:`decode_image` -- preparing a dataset, the
in-memory ImageFolder/manifest path, ``clpipe predict`` and the review gallery's thumbnails --
so a model sees at prediction time exactly the preprocessing it was trained with.

What happens to an image, in order:

1. decoded by Pillow (PNG, JPEG, WebP, GIF, BMP, TIFF: whatever Pillow reads), first frame;
2. rotated by its EXIF orientation tag (phone photos are stored sideways and tagged);
3. made RGB: grayscale and palette images are expanded; an image with transparency (RGBA,
   LA, a palette with a transparent index) is composited over **white** -- ``convert("RGB")``
   would keep whatever colour the transparent pixels happen to hold, often black, which
   turns a transparent background into a class feature;
4. at a training ``resolution`` R: resized so that its shorter side is R (bicubic, with
   Pillow's antialiasing) and centre-cropped to R x R (``ImageOps.fit``, the same as
   torchvision's ``Resize(R)`` + ``CenterCrop(R)``). An image already R x R is returned
   untouched (bit for bit: CIFAR-10 at 32 px stays what it is). Without a resolution
   (``None``) the native size is kept.
"""

from __future__ import annotations

import io

import numpy as np

from .errors import InputError

#: Resampling filter of the resize to the training resolution.
RESAMPLE = "BICUBIC"
#: What transparent pixels become.
BACKGROUND = (255, 255, 255)
#: File endings read as images in an ImageFolder (lower case).
IMAGE_ENDINGS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
#: Smallest and largest training resolution accepted.
MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024


def check_resolution(resolution: int | None, name: str = "resolution") -> None:
    """None (native size) or an int in [MIN_RESOLUTION, MAX_RESOLUTION]."""
    if resolution is None:
        return
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not (
        MIN_RESOLUTION <= resolution <= MAX_RESOLUTION
    ):
        raise InputError(name, "", f"must be an integer in [{MIN_RESOLUTION}, {MAX_RESOLUTION}] (pixels), "
                         f"got {resolution!r}")


def decode_image(data: bytes, source: str, resolution: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 pixels of one encoded image (see the module docstring for the steps).

    Args:
        data: The file's bytes.
        source: Its path or URL, named in errors.
        resolution: R for an R x R result, or None for the native size.

    Raises:
        InputError: naming ``source`` when Pillow cannot read the image (not an image,
            truncated, unsupported format).
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = to_rgb(ImageOps.exif_transpose(im))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # UnidentifiedImageError is an OSError; a truncated file raises OSError on load().
        raise InputError(source, "", f"not a readable image ({type(e).__name__}: {e})") from None
    return np.asarray(_fit(rgb, resolution), dtype=np.uint8)


def fit_array(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """An (H, W, 3) uint8 array resized and centre-cropped to R x R like a decoded file."""
    from PIL import Image

    if pixels.shape[:2] == (resolution, resolution):
        return pixels
    return np.asarray(_fit(Image.fromarray(pixels), resolution), dtype=np.uint8)


def _fit(im, resolution: int | None):
    """Shorter side to R, then the centre R x R (untouched when already R x R or R is None)."""
    from PIL import Image, ImageOps

    if resolution is None or im.size == (resolution, resolution):
        return im
    return ImageOps.fit(im, (resolution, resolution), method=getattr(Image.Resampling, RESAMPLE))


def to_rgb(im):
    """A Pillow image as RGB, transparency composited over :data:`BACKGROUND`."""
    from PIL import Image

    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits
        array = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or array.max() > 255 else 255.0
        return Image.fromarray(np.clip(array * (255.0 / peak), 0, 255).round().astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def png_bytes(pixels: np.ndarray) -> bytes:
    """Lossless PNG of an (H, W, 3) uint8 array (thumbnails, exported ImageFolders)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
