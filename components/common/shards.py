"""Packed shards: a split larger than memory, at its training resolution, streamed to the trainers.

Written once by ``clpipe data prepare --format shards`` (:mod:`.prepare`), read by URL from a
local disk or object storage (``s3://``, ``minio://``, ``gs://``) through **litdata**
(Lightning AI's ``litdata.streaming``). litdata was chosen over mosaicml-streaming and
webdataset after measuring all three on this machine (``benchmarks/bench_streaming.py``,
docs/benchmarks.md "Streaming shards"):

- *order*: a seeded shuffle per (seed, epoch), every row exactly once, the same order again
  for the same seed and epoch (all three can); each sample carries its ``row``, so rows keep
  their identity through folds, masks and reports whatever the order;
- *resumption*: ``StreamingDataLoader.state_dict()`` resumes mid-epoch exactly (measured);
  mosaicml-streaming can too, webdataset has no loader state;
- *speed*: the fastest single-process reader and writer of the three here;
- *object stores*: S3 (any S3-compatible endpoint through ``AWS_ENDPOINT_URL``), GCS, Azure;
  webdataset reaches S3 only through ``pipe:`` shell commands;
- *dependencies*: torch, boto3, obstore, filelock; mosaicml-streaming imports ``transformers``
  at import time and pins numpy < 2.2 (clpipe uses numpy 2.x). litdata's boto3 must be kept in
  the botocore range of s3fs's aiobotocore (``pyproject.toml``).

Layout of one packed split (a folder)::

    index.json, chunk-*.bin   litdata chunks of {"row": int, "label": int, "image": (R, R, 3) uint8}
    rows.npz                  names, labels, classes, files, image_size: what label-only stages
                              (masks, noisy labels, the report) read, without touching pixels

Samples are stored in row order (ImageFolder order), raw (no re-encoding: the pixels the
trainer sees are the packed ones, bit for bit).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Iterator

import numpy as np

from . import storage
from .errors import InputError

#: Side file with the rows' names, labels and classes.
ROWS_FILE = "rows.npz"
#: litdata's index of the chunks.
INDEX_FILE = "index.json"
#: Largest chunk file written. A loader worker reads whole chunks, so a split needs several chunks
#: per worker (a split packed as shards is > 4 GiB: 64+ chunks); benchmarks/bench_streaming.py shows
#: two workers sharing one chunk at 262 images/s, eight chunks at 22,000.
CHUNK_BYTES = "64MB"
#: URL schemes litdata reads (``minio://`` is mapped to ``s3://`` at its endpoint).
SCHEMES = ("file", "s3", "minio", "gs")


def is_shards(url: str) -> bool:
    """True for a folder holding a packed split (litdata's index and clpipe's rows file)."""
    return storage.exists(storage.join(url, INDEX_FILE)) and storage.exists(storage.join(url, ROWS_FILE))


def write_split(folder: str, *, names: np.ndarray, labels: np.ndarray, classes: tuple[str, ...],
                files: np.ndarray | None, pixels: Iterable[np.ndarray]) -> int:
    """Writes one packed split into the local ``folder``; returns the image side R.

    ``pixels`` yields the (R, R, 3) uint8 images in row order (decoded one by one, so the split
    never has to fit in memory).
    """
    from litdata.streaming.writer import BinaryWriter

    writer = BinaryWriter(folder, chunk_bytes=CHUNK_BYTES)
    side = None
    for row, (label, image) in enumerate(zip(labels, pixels)):
        side = side or image.shape[0]
        writer.add_item(row, {"row": row, "label": int(label), "image": np.ascontiguousarray(image)})
    writer.done()
    writer.merge()
    np.savez(os.path.join(folder, ROWS_FILE), names=names.astype(str), labels=labels.astype(np.int64),
             classes=np.array(classes, dtype=str), files=np.array([] if files is None else files, dtype=str),
             image_size=np.array(side or 0))
    return int(side or 0)


def _litdata_url(url: str) -> tuple[str, dict]:
    """litdata's input_dir and storage_options for ``url``."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme not in SCHEMES:
        raise InputError(url, "", f"packed shards are read from {', '.join(s + '://' for s in SCHEMES[1:])} or a "
                         f"local path, not {scheme}://")
    if scheme == "file":
        return os.path.abspath(url.removeprefix("file://")), {}
    if scheme == "minio":
        fs, _ = storage.url_to_fs(url)
        endpoint = fs.client_kwargs.get("endpoint_url") if hasattr(fs, "client_kwargs") else None
        return "s3://" + url[len("minio://"):], {"endpoint_url": endpoint} if endpoint else {}
    return url, {}


def _allow_http_endpoints() -> None:
    """Lets litdata download from ``http://`` S3 endpoints (KFP's in-cluster SeaweedFS, the loopback
    test store). litdata 0.2.76 fetches S3 chunks with obstore, whose HTTP client refuses plain
    http unless ``allow_http`` is set, and offers no option for it; its client options are a
    module constant, extended here (https endpoints are unaffected). Upstream issue to file."""
    from litdata.streaming import downloader

    downloader._OBSTORE_CLIENT_OPTIONS = {**downloader._OBSTORE_CLIENT_OPTIONS, "allow_http": "true"}


def _cache_dir(url: str) -> str:
    return os.path.join(storage.cache_dir(), "shards", hashlib.sha256(url.encode()).hexdigest()[:16])


def read_rows(url: str) -> dict[str, np.ndarray]:
    """The rows file of a packed split: names, labels, classes, files, image_size."""
    data = storage.read_bytes(storage.join(url, ROWS_FILE))
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in ("names", "labels", "classes", "files", "image_size")}
    except (ValueError, KeyError, OSError) as e:
        raise InputError(storage.join(url, ROWS_FILE), "", f"not a clpipe rows file ({e})") from None


class ShardStream:
    """Batches of a packed split: ``(images (B, R, R, 3) uint8, labels (B,), rows (B,))`` numpy arrays.

    Args:
        url: The packed split (local path or URL).
        rows: The rows to deliver (e.g. a fold's training rows), or None for all. Others are
            skipped as they stream by; batches are refilled to ``batch_size``.
        batch_size: Rows per batch (the last one may be smaller).
        shuffle: litdata's seeded shuffle (chunks, then rows within them), new each epoch.
        seed: Seed of the shuffle.
        workers: Loader worker processes (0: read in this process).

    The order is a function of (seed, epoch) alone, so a trainer that checkpoints at epoch
    boundaries resumes by asking for the next epoch.
    """

    def __init__(self, url: str, *, rows: np.ndarray | None = None, batch_size: int = 512,
                 shuffle: bool = True, seed: int = 0, workers: int = 0) -> None:
        self.url = url
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.workers = workers
        n = len(read_rows(url)["labels"])
        self.allowed = None
        if rows is not None:
            self.allowed = np.zeros(n, dtype=bool)
            self.allowed[np.asarray(rows, dtype=np.int64)] = True

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The batches of epoch ``epoch`` (0-based)."""
        from litdata import StreamingDataLoader, StreamingDataset

        input_dir, options = _litdata_url(self.url)
        _allow_http_endpoints()
        dataset = StreamingDataset(input_dir, shuffle=self.shuffle, seed=self.seed, cache_dir=_cache_dir(self.url),
                                   storage_options=options)
        loader = StreamingDataLoader(dataset, batch_size=self.batch_size, num_workers=self.workers)
        loader.current_epoch = epoch  # the loader counts epochs from 1 and adds one per iteration
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        held = 0
        for batch in loader:
            images, labels, rows = (np.asarray(batch[k]) for k in ("image", "label", "row"))
            if self.allowed is not None:
                keep = self.allowed[rows]
                images, labels, rows = images[keep], labels[keep], rows[keep]
            pending.append((images, labels, rows))
            held += len(rows)
            while held >= self.batch_size:
                out, pending, held = _take(pending, self.batch_size)
                yield out
        if held:
            out, _, _ = _take(pending, held)
            yield out


def _take(pending, n):
    """The first ``n`` rows of the pending pieces as one batch, and what is left."""
    joined = [np.concatenate([p[i] for p in pending]) for i in range(3)]
    first = tuple(a[:n] for a in joined)
    rest = tuple(a[n:] for a in joined)
    left = len(rest[2])
    return first, ([rest] if left else []), left


def open_shards(url: str, resolution: int | None):
    """A :class:`~.datasets.Split` of a packed split (pixels streamed in row order on first use)."""
    from .datasets import Split, memoize

    rows = read_rows(url)
    side = int(rows["image_size"])
    if resolution not in (None, side):
        raise InputError("resolution", "", f"{url} is packed at {side} px; shards are not resized again: "
                         f"prepare the source at {resolution} instead")
    n = len(rows["labels"])

    def load_images() -> np.ndarray:
        images = np.empty((n, side, side, 3), dtype=np.uint8)
        for batch_images, _, batch_rows in ShardStream(url, shuffle=False, batch_size=4096).epoch(0):
            images[batch_rows] = batch_images
        return images

    files = rows["files"] if len(rows["files"]) == n else None
    return Split(url, rows["names"], rows["labels"], tuple(rows["classes"].tolist()), None, np.arange(n),
                 memoize(load_images), files=files)
