"""Small datasets prepared the way a user's own are (``clpipe data prepare``), for the trainers' tests.

- :func:`digits_root`: scikit-learn's ``load_digits`` (real 8x8 grayscale scans, data nobody here
  made) as an ImageFolder with ``train/`` and ``test/``, the first classes only if asked;
- :func:`colour_root`: K classes (up to 1,000) of noisy images whose mean colour depends on
  the class, for the many-class cases digits cannot give;
- :func:`prepared`: either, prepared at a training resolution (``OUT/train.npz``,
  ``OUT/test.npz``, ``OUT/prepared.json`` with the train split's mean and std), plus a ``.npy``
  of the given labels (the dataset's own) in ImageFolder order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.your_data import DIGIT_NAMES, png


@dataclass(frozen=True)
class Prepared:
    dataset: str  # the prepared folder: what every stage is given
    labels: str  # given labels (.npy, ImageFolder order of the train split)
    info: dict  # prepared.json


def _write_split(root: Path, split: str, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> None:
    for i, (image, label) in enumerate(zip(images, labels)):
        path = root / split / classes[label] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(image))


def digits_root(root: Path, *, train_per_class: int, test_per_class: int, classes: int = 10) -> Path:
    """``root/{train,test}/<digit name>/<n>.png`` (8x8 RGB PNGs of sklearn's digits, classes 0..classes-1)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = np.round(digits.images * (255 / 16)).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    names = DIGIT_NAMES[:classes]
    for split, start, count in (("train", 0, train_per_class), ("test", train_per_class, test_per_class)):
        rows = np.concatenate([np.flatnonzero(digits.target == k)[start:start + count] for k in range(classes)])
        _write_split(root, split, rgb[rows], digits.target[rows], names)
    return root


def colour_root(root: Path, *, classes: int, train_per_class: int, test_per_class: int, side: int = 12,
                seed: int = 0) -> Path:
    """``root/{train,test}/c<k>/<n>.png``: class k's images are noise around a colour of its own."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 225, size=(classes, 3))
    names = tuple(f"c{k:03d}" for k in range(classes))
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = np.repeat(np.arange(classes), per_class)
        noise = rng.normal(0, 25, size=(len(labels), side, side, 3))
        images = np.clip(colours[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
        _write_split(root, split, images, labels, names)
    return root


def prepared(source: Path, out: Path, resolution: int, format: str = "npz") -> Prepared:
    """``source`` prepared at ``resolution`` into ``out`` (``npz`` or litdata ``shards``), with its labels
    as the given labels."""
    from clpipe.components.common import datasets, prepare

    info = prepare.prepare(dataset=str(source), out=str(out), resolution=resolution, format=format)
    labels = out.parent / f"{out.name}-labels.npy"
    np.save(labels, datasets.open_split(str(out), "train").labels)
    return Prepared(str(out), str(labels), info)
