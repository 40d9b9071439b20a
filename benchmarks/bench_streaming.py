"""Shard formats for datasets larger than memory: litdata vs mosaicml-streaming vs webdataset.

Packs a real CIFAR-10 subset (at its native 32 px or upsampled, ``--resolution``) into each
library's shard format, then reads one shuffled epoch the way a trainer would (uint8 batches
with their row ids, converted to float, normalised and augmented by clpipe's own
``training.augment_batch``) and prints for each library and worker count:

- write time and size on disk, read throughput in images/s;
- **order**: every row exactly once per epoch, the same order for the same seed and epoch, a
  different one for the next epoch (rows keep their identity: each sample carries its row);
- **resumption**: stop halfway, save the loader state, resume in a fresh loader; the rows seen
  must be exactly those of the uninterrupted epoch.

The baseline is today's in-memory path, ``training.DeviceLoader`` on the CPU (the whole split
as one tensor, batches by index lookup). Prints, never asserts; figures go to
docs/benchmarks.md ("Streaming shards"). mosaicml-streaming imports ``transformers`` at
import time and pins numpy < 2.2; it is measured from a side install
(``pip install --target /tmp/mds --no-deps mosaicml-streaming transformers ...``), when
``--mds-path`` names one.

    OMP_NUM_THREADS=1 python benchmarks/bench_streaming.py --per-class 1000 --workers 0 2
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator

import numpy as np
import torch
from clpipe.components.common import datasets, training
from timing import DATA

BATCH = 500
#: Bytes per chunk/shard file, the same for the three libraries (--chunk-mb). A loader worker reads
#: whole chunks, so a split needs several chunks per worker for the workers to share it: with
#: one 30 MB chunk, litdata's two workers delivered 262 images/s, with eight 4 MB chunks 22,000.
CHUNK_BYTES = 4 << 20


def as_batches(images: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor):
    """What a trainer does with a streamed uint8 batch: float, normalise, augment (as DeviceLoader)."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(training.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(training.CIFAR10_STD).view(1, 3, 1, 1)
    x = training.augment_batch((x - mean) / std, training.Augment(pad=4), torch.Generator().manual_seed(0))
    return x, labels, rows


# --- the three libraries: write(images, labels, out) and loader(out, seed, epoch, workers) ---------


class Litdata:
    name = "litdata"

    @staticmethod
    def write(images: np.ndarray, labels: np.ndarray, out: str) -> None:
        from litdata.streaming.writer import BinaryWriter

        writer = BinaryWriter(out, chunk_bytes=CHUNK_BYTES)
        for i, (image, label) in enumerate(zip(images, labels)):
            writer.add_item(i, {"row": i, "label": int(label), "image": image})
        writer.done()
        writer.merge()

    @staticmethod
    def loader(out: str, seed: int, epoch: int, workers: int):
        from litdata import StreamingDataLoader, StreamingDataset

        dataset = StreamingDataset(out, shuffle=True, seed=seed)
        dataset.set_epoch(epoch)
        return StreamingDataLoader(dataset, batch_size=BATCH, num_workers=workers)

    @staticmethod
    def batches(loader) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for b in loader:
            yield b["image"], b["label"], b["row"]

    @staticmethod
    def state(loader) -> dict:
        return loader.state_dict()

    @staticmethod
    def resume(out: str, seed: int, epoch: int, workers: int, state: dict):
        loader = Litdata.loader(out, seed, epoch, workers)
        loader.load_state_dict(state)
        return loader


class Mosaic:
    name = "mosaicml-streaming"

    @staticmethod
    def write(images: np.ndarray, labels: np.ndarray, out: str) -> None:
        from streaming import MDSWriter

        shape = ",".join(map(str, images.shape[1:]))
        columns = {"row": "int64", "label": "int64", "image": f"ndarray:uint8:{shape}"}
        with MDSWriter(out=out, columns=columns, size_limit=CHUNK_BYTES) as writer:
            for i, (image, label) in enumerate(zip(images, labels)):
                writer.write({"row": i, "label": int(label), "image": image})

    @staticmethod
    def loader(out: str, seed: int, epoch: int, workers: int, state: dict | None = None):
        from streaming import StreamingDataLoader, StreamingDataset
        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()
        dataset = StreamingDataset(local=out, shuffle=True, shuffle_seed=seed, batch_size=BATCH)
        loader = StreamingDataLoader(dataset, batch_size=BATCH, num_workers=workers)
        if state is not None:
            loader.load_state_dict(state)
        return loader

    @staticmethod
    def batches(loader):
        for b in loader:
            yield b["image"], b["label"], b["row"]

    @staticmethod
    def state(loader) -> dict:
        return loader.state_dict()

    @staticmethod
    def resume(out: str, seed: int, epoch: int, workers: int, state: dict):
        return Mosaic.loader(out, seed, epoch, workers, state)


class Webdataset:
    name = "webdataset"

    @staticmethod
    def write(images: np.ndarray, labels: np.ndarray, out: str) -> None:
        import webdataset as wds

        os.makedirs(out, exist_ok=True)
        per_shard = max(1, CHUNK_BYTES // images[0].nbytes)
        with wds.ShardWriter(os.path.join(out, "shard-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
            for i, (image, label) in enumerate(zip(images, labels)):
                sink.write({"__key__": f"{i:09d}", "image.npy": image, "label.cls": int(label)})

    @staticmethod
    def loader(out: str, seed: int, epoch: int, workers: int):
        """Shard and sample shuffles seeded per epoch: webdataset has no epoch of its own, so the
        trainer would re-create the pipeline each epoch; this wrapper does that on every iter()."""
        import webdataset as wds

        shards = sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".tar"))

        class Epochs:
            epoch = 0

            def __iter__(self):
                s = seed * 1000 + self.epoch
                self.epoch += 1
                pipeline = (wds.WebDataset(shards, shardshuffle=len(shards), seed=s, empty_check=False)
                            .shuffle(5000, rng=random.Random(s))
                            .decode().to_tuple("image.npy", "label.cls", "__key__").batched(BATCH))
                return iter(wds.WebLoader(pipeline, batch_size=None, num_workers=workers))

        return Epochs()

    @staticmethod
    def batches(loader):
        for images, labels, keys in loader:
            yield (torch.as_tensor(np.asarray(images)), torch.as_tensor(labels),
                   torch.as_tensor([int(k) for k in keys]))

    state = None  # no resumable loader state: a trainer would have to skip batches itself
    resume = None


LIBRARIES = {"litdata": Litdata, "mosaicml-streaming": Mosaic, "webdataset": Webdataset}


def epoch_rows(lib, loader, convert: bool = False) -> tuple[np.ndarray, float]:
    """Rows of one epoch in the order delivered, and images/s (delivery only, or with the
    trainer-side conversion when ``convert``)."""
    started, rows = time.perf_counter(), []
    for images, labels, row in lib.batches(loader):
        if convert:
            as_batches(images, labels, row)
        rows.append(np.asarray(row))
    return np.concatenate(rows), 0.0 if not rows else sum(map(len, rows)) / (time.perf_counter() - started)


def resumed_rows(lib, out: str, workers: int, n: int) -> np.ndarray | None:
    """Rows of epoch 0 when interrupted after half of it and resumed in a fresh loader."""
    if lib.state is None:
        return None
    loader, seen = lib.loader(out, 0, 0, workers), []
    for b, (_, _, row) in enumerate(lib.batches(loader)):
        seen.append(np.asarray(row))
        if (b + 1) * BATCH >= n // 2:
            break
    state = lib.state(loader)
    del loader
    rest = [np.asarray(row) for _, _, row in lib.batches(lib.resume(out, 0, 0, workers, state))]
    return np.concatenate(seen + rest)


def bench_library(lib, images: np.ndarray, labels: np.ndarray, workers: list[int], root: str) -> list[dict]:
    out = os.path.join(root, lib.name)
    started = time.perf_counter()
    lib.write(images, labels, out)
    write_s = time.perf_counter() - started
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    results = []
    for w in workers:
        loader = lib.loader(out, 0, 0, w)
        first, speed = epoch_rows(lib, loader)
        other, converted = epoch_rows(lib, loader, convert=True)  # the same loader's next epoch
        again, _ = epoch_rows(lib, lib.loader(out, 0, 0, w))
        resumed = resumed_rows(lib, out, w, len(labels))
        results.append({
            "library": lib.name, "workers": w, "write_s": write_s, "size_mb": size / 2**20,
            "delivered_per_s": speed, "with_conversion_per_s": converted,
            "each_row_once": bool(len(first) == len(labels) and np.array_equal(np.sort(first), np.arange(len(labels)))),
            "same_seed_same_order": bool(np.array_equal(first, again)),
            "next_epoch_new_order": bool(not np.array_equal(first, other)),
            "resume_exact": None if resumed is None else bool(np.array_equal(resumed, first)),
        })
    return results


def in_memory(images: np.ndarray, labels: np.ndarray, augment: bool) -> float:
    """images/s of today's path: DeviceLoader on the CPU (index lookups of the prepared tensor),
    with or without its augmentation."""
    loader = training.DeviceLoader(images, labels, batch_size=BATCH, device=torch.device("cpu"), shuffle=True,
                                   augment=training.Augment(pad=4) if augment else None,
                                   mean=training.CIFAR10_MEAN, std=training.CIFAR10_STD)
    started = time.perf_counter()
    n = sum(len(y) for _, y, _ in loader)
    return n / (time.perf_counter() - started)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=1000, help="CIFAR-10 train images per class")
    p.add_argument("--resolution", type=int, default=None, help="pack at this size (default: native 32)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--libraries", nargs="+", choices=tuple(LIBRARIES), default=list(LIBRARIES))
    p.add_argument("--mds-path", default="/tmp/mds", help="side install of mosaicml-streaming")
    p.add_argument("--chunk-mb", type=int, default=4, help="chunk/shard size of every library")
    args = p.parse_args()
    global CHUNK_BYTES
    CHUNK_BYTES = args.chunk_mb << 20
    if os.path.isdir(args.mds_path):
        sys.path.append(args.mds_path)
    split = datasets.open_split(str(DATA / "cifar10"), "train", resolution=args.resolution)
    split = split.take(datasets.subset_rows(split.labels, args.per_class, 0))
    images, labels = split.images(), split.labels
    print(f"# {len(labels)} CIFAR-10 train images at {images.shape[1]} px; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"in-memory DeviceLoader (today's path): {in_memory(images, labels, False):,.0f} images/s delivered, "
          f"{in_memory(images, labels, True):,.0f} with its augmentation")
    root = tempfile.mkdtemp(prefix="bench-streaming-")
    try:
        for name in args.libraries:
            try:
                rows = bench_library(LIBRARIES[name], images, labels, args.workers, root)
            except ImportError as e:
                print(f"{name}: not importable ({e})")
                continue
            for r in rows:
                print(" | ".join(f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
