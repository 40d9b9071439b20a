"""Packed shards: a split larger than memory, at its training resolution, streamed to the trainers.

Written once by ``clpipe data prepare --format shards`` (:mod:`.prepare`), read by URL from a
local disk or object storage (``s3://``, ``minio://``, ``gs://``) through **litdata**
(Lightning AI's ``litdata.streaming``). litdata was chosen over mosaicml-streaming and
webdataset after measuring all three on this machine (``benchmarks/bench_streaming.py``,
docs/benchmarks.md "Streaming shards"):

- *order*: clpipe does not use a library's shuffle: the trainers draw one seeded permutation
  per epoch and read those rows by number (:class:`ShardReader`, litdata's random access), so
  a streamed split is trained on in exactly the order the in-memory path uses, whatever the
  number of loader workers, and a checkpoint restores it (:class:`~.training.StreamLoader`);
  each sample carries its ``row``, checked on every read;
- *resumption*: follows from the order (a checkpoint at an epoch boundary holds the generator
  that draws the next permutation); litdata's ``StreamingDataLoader.state_dict()`` also resumes
  mid-epoch exactly (measured), mosaicml-streaming can too, webdataset has no loader state;
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
from collections.abc import Iterable

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


#: Rows read per call when a whole view is read into memory (:meth:`ShardImages.read`).
READ_ROWS = 4096


class ShardReader:
    """Random access to the rows of a packed split, by row number, through litdata.

    litdata's ``StreamingDataset`` downloads a chunk (from object storage, into clpipe's cache
    directory) the first time one of its rows is asked for and reads single rows from it by
    offset. clpipe asks for rows by number, in the order *it* chose, rather than iterating
    litdata's own shuffle: the trainers' batch order is then one seeded permutation, the same
    whether the rows are in memory or streamed, whatever the number of loader workers, and
    restored exactly from a checkpoint (:class:`~.training.StreamLoader`).
    ``batch_decode=0`` makes litdata decode the one row asked for; its default decodes a
    window of ~256 rows per read (made for sequential reads), which costs 24-74x under random
    access (``benchmarks/bench_stream_memory.py``: 369 vs 8,998 images/s at 64 px, 527 vs 39,151
    at 32 px, one process; docs/benchmarks.md "Training from shards").

    Picklable before first use (it holds the URL only), so loader worker processes each open
    their own.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._dataset = None

    def _open(self):
        from litdata import StreamingDataset

        input_dir, options = _litdata_url(self.url)
        _allow_http_endpoints()
        return StreamingDataset(input_dir, shuffle=False, batch_decode=0, cache_dir=_cache_dir(self.url),
                                storage_options=options)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), R, R, 3) uint8 images of the packed rows ``rows``, in that order."""
        if self._dataset is None:
            self._dataset = self._open()
        items = [self._dataset[int(row)] for row in rows]
        for row, item in zip(rows, items):
            if item["row"] != row:  # an index.json that does not belong to these chunks
                raise InputError(storage.join(self.url, INDEX_FILE), "row",
                                 f"position {row} holds row {item['row']}: index and chunks do not match")
        return np.stack([item["image"] for item in items])

    def __getstate__(self) -> dict:
        return {"url": self.url, "_dataset": None}


class ShardImages:
    """The images of some rows of a packed split, not read: what the trainers stream batch by batch.

    Behaves like the (N, R, R, 3) uint8 array it stands for where the trainers need it to:
    ``len``, ``shape``, indexing by row arrays (another view, nothing read), and
    ``np.asarray`` (reads every row: only for what is small). ``rows`` are rows of the packed
    split, in the view's order.
    """

    def __init__(self, url: str, rows: np.ndarray, side: int) -> None:
        self.url = url
        self.rows = np.asarray(rows, dtype=np.int64)
        self.side = side

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.rows), self.side, self.side, 3)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> ShardImages:
        return ShardImages(self.url, self.rows[index], self.side)

    def reader(self) -> ShardReader:
        return ShardReader(self.url)

    def read(self) -> np.ndarray:
        """Every image of the view, in its order (the whole view in memory)."""
        images = np.empty(self.shape, dtype=np.uint8)
        reader = self.reader()
        for start in range(0, len(self.rows), READ_ROWS):
            images[start : start + READ_ROWS] = reader.read(self.rows[start : start + READ_ROWS])
        return images

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        images = self.read()
        return images if dtype is None else images.astype(dtype)


def open_shards(url: str, resolution: int | None):
    """A :class:`~.datasets.Split` of a packed split whose pixels stay where they are
    (:class:`ShardImages`) until a stage reads them."""
    from .datasets import Split

    rows = read_rows(url)
    side = int(rows["image_size"])
    if resolution not in (None, side):
        raise InputError("resolution", "", f"{url} is packed at {side} px; shards are not resized again: "
                         f"prepare the source at {resolution} instead")
    n = len(rows["labels"])
    files = rows["files"] if len(rows["files"]) == n else None
    every_row = ShardImages(url, np.arange(n), side)
    return Split(url, rows["names"], rows["labels"], tuple(rows["classes"].tolist()), None, np.arange(n),
                 lambda: every_row, files=files)
