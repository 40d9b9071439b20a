"""Datasets shaped like a user's own, for the tests and benchmarks/bench_your_data.py.

- :func:`digits_imagefolder`: scikit-learn's ``load_digits`` (1,797 real 8x8 grayscale scans
  of handwritten digits, shipped inside the sklearn wheel: data nobody here made), written as
  an ImageFolder of PNGs with class names ``zero`` .. ``nine`` and a known fraction of images
  moved into a wrong class folder (the injected label errors).
  With ``forms`` (e.g. :data:`MIXED_DIGIT_FORMS`) the scans are resized and saved as JPEGs and
  PNGs of several sizes, grayscale and RGB: a team's mixed folder, of real images.
- :func:`digit_pairs_imagefolder`: 100 classes ``00`` .. ``99``, each image two real digit scans
  side by side (the two-digit number it shows), for the many-class case.
- :func:`mixed_imagefolder`: JPEG, PNG and WebP files of different sizes and modes
  (RGB, grayscale, palette, with alpha, EXIF-rotated), the mix a team's own folder has.
- :func:`write_manifest`: a CSV or JSONL manifest of image files and labels.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class NoisyFolder:
    """An ImageFolder with injected label errors.

    Attributes:
        root: The folder holding ``train/<class>/<file>``.
        flipped: Row names (``<given class>/<file>``) whose folder is wrong.
        true_class: Row name -> the class the image really shows.
    """

    root: Path
    flipped: frozenset[str]
    true_class: dict[str, str]


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


#: (format, mode, height, width) of :func:`digits_imagefolder` ``forms=``: the 8x8 scans resized (bicubic) to
#: several sizes, square and not, saved as JPEG and PNG, grayscale (L) and RGB; the original size among them.
MIXED_DIGIT_FORMS = (
    ("PNG", "L", 8, 8),
    ("JPEG", "RGB", 24, 24),
    ("PNG", "RGB", 13, 20),
    ("JPEG", "L", 40, 30),
    ("PNG", "L", 33, 33),
    ("JPEG", "RGB", 17, 12),
)
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg"}


def _digit_file(pixels: np.ndarray, index: int, form: tuple | None) -> tuple[str, bytes]:
    """(file name, bytes) of scan ``index``: a grayscale PNG, or in ``form`` (one of :data:`MIXED_DIGIT_FORMS`)."""
    if form is None:
        return f"{index:04d}.png", png(pixels, "L")
    from PIL import Image

    fmt, mode, h, w = form
    im = Image.fromarray(pixels, mode="L").resize((w, h), Image.Resampling.BICUBIC).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return f"{index:04d}{_SUFFIX[fmt]}", buf.getvalue()


def _digit_scans() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits: (N, 8, 8) uint8 scans (0..16 scaled to 0..255) and their (N,) digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target


def digits_imagefolder(root: Path, *, noise: float = 0.1, seed: int = 0, per_class: int | None = None,
                       classes: int = 10, test_per_class: int = 0, forms: tuple | None = None) -> NoisyFolder:
    """sklearn's digits as ``root/train/<name>/<index>.png`` with ``noise`` of them in a wrong folder.

    Pixel values 0..16 are scaled to 0..255 (grayscale PNG, mode L; with ``forms``, e.g.
    :data:`MIXED_DIGIT_FORMS`, the n-th image of each class and split in ``forms[n % len(forms)]``). Each flipped image goes to a uniformly
    chosen other class. ``test_per_class`` > 0: the last that many images of each class go,
    correctly labelled, to ``root/test/<name>/`` instead (a held-out split, as Co-Teaching needs),
    the rest to train.
    """
    images, target = _digit_scans()
    counts: dict[tuple[str, int], int] = {}

    def form(split: str, k: int) -> tuple | None:
        n = counts[split, k] = counts.get((split, k), -1) + 1
        return None if forms is None else forms[n % len(forms)]

    keep = np.flatnonzero(target < classes)
    if test_per_class:
        held_out = np.concatenate([np.flatnonzero(target == k)[-test_per_class:] for k in range(classes)])
        for i in held_out:
            name, data = _digit_file(images[i], i, form("test", target[i]))
            path = root / "test" / DIGIT_NAMES[target[i]] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        keep = np.setdiff1d(keep, held_out)
    if per_class is not None:
        keep = np.concatenate([keep[target[keep] == k][:per_class] for k in range(classes)])
    rng = np.random.default_rng(seed)
    flip = set(rng.choice(keep, size=round(noise * len(keep)), replace=False).tolist())
    flipped, true_class = set(), {}
    for i in keep:
        given = target[i]
        if i in flip:
            given = rng.choice([k for k in range(classes) if k != target[i]])
        file, data = _digit_file(images[i], i, form("train", given))
        name = f"{DIGIT_NAMES[given]}/{file}"
        path = root / "train" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        true_class[name] = DIGIT_NAMES[target[i]]
        if i in flip:
            flipped.add(name)
    return NoisyFolder(root, frozenset(flipped), true_class)


def digit_pairs_imagefolder(root: Path, *, per_class: int, test_per_class: int = 0, seed: int = 0) -> Path:
    """100 classes ``00`` .. ``99``: ``root/{train,test}/<ab>/<n>.png`` shows a scan of digit a left of a
    scan of digit b (16 x 16 grayscale, the two 8 x 8 scans on rows 4..11), like a two-digit number
    written in boxes. Each image draws its two scans at random from all of that digit's scans, so the
    classes share scans but no image repeats."""
    images, target = _digit_scans()
    by_digit = [np.flatnonzero(target == d) for d in range(10)]
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, int]] = set()
    for split, count in (("train", per_class), ("test", test_per_class)):
        for a in range(10):
            for b in range(10):
                n = 0
                while n < count:
                    pair = (int(rng.choice(by_digit[a])), int(rng.choice(by_digit[b])))
                    if pair in seen:
                        continue
                    seen.add(pair)
                    canvas = np.zeros((16, 16), np.uint8)
                    canvas[4:12, :8], canvas[4:12, 8:] = images[pair[0]], images[pair[1]]
                    path = root / split / f"{a}{b}" / f"{n:02d}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(png(canvas, "L"))
                    n += 1
    return root


def _image(pixels: np.ndarray, fmt: str, mode: str, exif_rotate: bool = False) -> bytes:
    from PIL import Image

    im = Image.fromarray(pixels).convert(mode)
    buf = io.BytesIO()
    kwargs = {}
    if exif_rotate:
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
        kwargs["exif"] = exif.tobytes()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


#: (file name, format, mode, (height, width)) of each image of :func:`mixed_imagefolder`, per class.
MIXED_FILES = (
    ("a.jpg", "JPEG", "RGB", (40, 60)),
    ("b.png", "PNG", "L", (17, 23)),
    ("c.webp", "WEBP", "RGB", (64, 64)),
    ("d.png", "PNG", "RGBA", (30, 30)),
    ("e.png", "PNG", "P", (50, 20)),
    ("f.JPEG", "JPEG", "L", (33, 33)),
)


def mixed_imagefolder(root: Path, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    """``root/train/<class>/`` with the files of :data:`MIXED_FILES` (content: a per-class colour
    plus noise), one EXIF-rotated JPEG, and a non-image file that must be ignored."""
    rng = np.random.default_rng(1)
    for k, cls in enumerate(classes):
        folder = root / "train" / cls
        folder.mkdir(parents=True, exist_ok=True)
        for name, fmt, mode, (h, w) in MIXED_FILES:
            pixels = np.clip(rng.normal(80 + 90 * k, 30, size=(h, w, 3)), 0, 255).astype(np.uint8)
            (folder / name).write_bytes(_image(pixels, fmt, mode))
        rotated = np.zeros((20, 40, 3), np.uint8)
        (folder / "rotated.jpg").write_bytes(_image(rotated, "JPEG", "RGB", exif_rotate=True))
        (folder / "notes.txt").write_text("not an image")
    return root


def write_manifest(path: Path, rows: list[tuple[str, object]], *, column: str = "image") -> Path:
    """A manifest at ``path`` (``.csv`` or ``.jsonl``) with one row per (image, label)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([column, "label"])
            writer.writerows(rows)
    else:
        path.write_text("".join(json.dumps({column: image, "label": label}) + "\n" for image, label in rows))
    return path
