"""``clpipe data prepare``: a dataset from any source, at its training resolution, in the form trainers read fast.

Decoding, resizing and cropping happen here, once (:func:`~.imaging.decode_image`), not on
every epoch or in every fold task. The output is itself a dataset URL that every stage opens
with :func:`~.datasets.open_split`, rows in the same ImageFolder order and with the same names
and class names as the source:

- ``npz`` (the in-memory path, small datasets): ``OUT/train.npz`` and ``OUT/test.npz`` with
  ``images``, ``labels``, ``classes``, ``names``, ``image_size`` and ``files`` (where each
  image came from, for label_issues.csv and the gallery); trainers hold the split on the GPU
  as today;
- ``shards`` (larger than memory): ``OUT/train/`` and ``OUT/test/`` packed splits
  (:mod:`.shards`, litdata), streamed to the trainers;
- ``auto`` (default): ``shards`` when a split's pixels at the resolution exceed
  :data:`IN_MEMORY_MAX_BYTES`, else ``npz``.

Plus ``OUT/prepared.json``: source, resolution, format and per split the row count, class names,
fingerprint (the same fingerprint as the source's rows: names and labels are unchanged) and
the per-channel ``mean`` and ``std`` of its pixels scaled to [0, 1] (the train split's are the
input normalisation a trainer uses and an exported model's card records: :func:`train_statistics`).
Published all at once (nothing on failure).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Literal

import numpy as np

from . import image_files, shards, storage
from .datasets import SPLITS, Split, open_split
from .errors import InputError

log = logging.getLogger("clpipe.data")

#: Largest split (uint8 pixels at the training resolution) that ``auto`` keeps on the in-memory
#: path. Trainers hold it on the GPU as float16, twice this size, next to the network.
IN_MEMORY_MAX_BYTES = 4 << 30
PREPARED_INFO = "prepared.json"
Format = Literal["auto", "npz", "shards"]


def prepare(*, dataset: str, out: str, resolution: int | None = None, format: Format = "auto") -> dict:
    """Prepares the train (and, if present, test) split of ``dataset`` at ``resolution`` into ``out``.

    Args:
        dataset: ImageFolder root, manifest (.csv/.jsonl), .npz, or a directory of those (path or URL).
        out: Output directory (path or URL); becomes a dataset URL for every stage.
        resolution: Side R in pixels: every image is resized (shorter side to R) and centre-cropped
            to R x R; unset keeps the native size, which must then be the same for all images.
        format: npz (in memory), shards (streamed, larger than memory) or auto (by size).

    Returns:
        The contents of ``prepared.json``.
    """
    if format not in ("auto", "npz", "shards"):
        raise InputError("format", "", f"must be auto, npz or shards, got {format!r}")
    started = time.perf_counter()
    splits = _open_splits(dataset, resolution)
    info = {"stage": "prepare", "source": dataset, "resolution": resolution, "splits": {}}
    with storage.staged_output(out, stage="prepare", inputs=[dataset]) as tmp:
        for name, split in splits.items():
            chosen = _format_of(split, resolution, format)
            stats = ChannelStats()
            side = _write(split, name, chosen, resolution, tmp, stats)
            info["splits"][name] = {"format": chosen, "n_examples": len(split), "image_size": side,
                                    "classes": list(split.classes), "fingerprint": split.fingerprint(),
                                    **stats.result()}
            log.info("%s: %d images at %d px as %s", name, len(split), side, chosen)
        info["time_s"] = round(time.perf_counter() - started, 3)
        storage.save_json(os.path.join(tmp, PREPARED_INFO), info)
    log.info("wrote %s in %.1f s", out, info["time_s"])
    return info


Statistics = tuple[tuple[float, float, float], tuple[float, float, float]]


def train_statistics(dataset: str) -> Statistics | None:
    """The train split's per-channel (mean, std) from ``prepared.json``, or None for a dataset that
    ``clpipe data prepare`` did not write.

    ``dataset`` is the prepared folder, or the train split inside it (``OUT/train.npz``, the
    packed ``OUT/train``), which is what the stages are given.

    Raises:
        InputError: naming ``prepared.json`` when its statistics are missing or unusable.
    """
    url = _prepared_info_url(dataset)
    if url is None:
        return None
    train = storage.load_json(url).get("splits", {}).get("train", {})
    stats = []
    for key in ("mean", "std"):
        values = train.get(key)
        if not (isinstance(values, list) and len(values) == 3 and all(isinstance(v, (int, float)) for v in values)):
            raise InputError(url, f"splits.train.{key}", "expected 3 numbers, one per channel")
        stats.append(tuple(float(v) for v in values))
    if min(stats[1]) <= 0:
        raise InputError(url, "splits.train.std", f"a channel does not vary ({stats[1]}): its images cannot be "
                         "normalised")
    return stats[0], stats[1]


def _prepared_info_url(dataset: str) -> str | None:
    """``prepared.json`` of the prepared folder ``dataset`` or of the folder holding its train split."""
    stripped = dataset.rstrip("/")
    folders = [stripped]
    if stripped.rsplit("/", 1)[-1] in ("train", "train.npz"):
        folders.append(stripped.rsplit("/", 1)[0] if "/" in stripped else ".")
    for folder in folders:
        url = storage.join(folder, PREPARED_INFO)
        if storage.exists(url):
            return url
    return None


def _open_splits(dataset: str, resolution: int | None) -> dict[str, Split]:
    """train (required) and test (when the dataset has one); a single file is the train split."""
    splits = {"train": open_split(dataset, "train", resolution=resolution)}
    if splits["train"].source != dataset:  # a root: it may hold a test split too
        try:
            splits["test"] = open_split(dataset, "test", resolution=resolution)
        except InputError as e:
            if e.source != dataset or e.field != "test":  # a test split that is there but bad
                raise
    assert set(splits) <= set(SPLITS)
    return splits


def _format_of(split: Split, resolution: int | None, requested: Format) -> str:
    if requested != "auto":
        return requested
    side = resolution or _native_side(split)
    return "shards" if len(split) * side * side * 3 > IN_MEMORY_MAX_BYTES else "npz"


def _native_side(split: Split) -> int:
    """The side of the first image (decoding one file, not the split)."""
    if split.files is None:
        return split.images().shape[1]
    return next(image_files.iter_decoded(split.files[:1], None)).shape[1]


class ChannelStats:
    """Per-channel mean and standard deviation of pixels scaled to [0, 1], accumulated image by image."""

    def __init__(self) -> None:
        self.n, self.sum, self.sum_sq = 0, np.zeros(3), np.zeros(3)

    def add(self, images: np.ndarray) -> None:
        """Adds (..., 3) uint8 pixels."""
        pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
        self.n += len(pixels)
        self.sum += pixels.sum(axis=0)
        self.sum_sq += np.square(pixels).sum(axis=0)

    def result(self) -> dict[str, list[float]]:
        mean = self.sum / max(self.n, 1)
        std = np.sqrt(np.maximum(self.sum_sq / max(self.n, 1) - np.square(mean), 0.0))
        return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def _counted(pixels, stats: ChannelStats):
    for image in pixels:
        stats.add(image)
        yield image


def _write(split: Split, name: str, chosen: str, resolution: int | None, stage: str, stats: ChannelStats) -> int:
    """Writes one split into the staging folder; returns its image side."""
    if chosen == "npz":
        images = split.images()
        for start in range(0, len(images), 4096):
            stats.add(images[start:start + 4096])
        np.savez(os.path.join(stage, f"{name}.npz"), images=images, labels=split.labels,
                 classes=np.array(split.classes, dtype=str), names=split.names.astype(str),
                 image_size=np.array(images.shape[1]),
                 **({} if split.exact is None else {"exact": split.exact}),
                 **({} if split.files is None else {"files": split.files.astype(str)}))
        return int(images.shape[1])
    pixels = (image_files.iter_decoded(split.files, resolution) if split.files is not None
              else iter(split.images()))
    return shards.write_split(os.path.join(stage, name), names=split.names, labels=split.labels,
                              classes=split.classes, files=split.files,
                              pixels=_counted(_same_size(pixels, split), stats))


def _same_size(pixels, split: Split):
    """Passes images through, refusing one whose size differs from the first (native size)."""
    first = None
    for row, image in enumerate(pixels):
        first = first or image.shape
        if image.shape != first:
            where = split.files[row] if split.files is not None else split.names[row]
            raise InputError(str(where), "", f"is {image.shape[1]}x{image.shape[0]} px, the first image "
                             f"{first[1]}x{first[0]}: images of different sizes need a training resolution "
                             "(--resolution R)")
        yield image
