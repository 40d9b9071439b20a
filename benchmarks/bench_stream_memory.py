"""The trainers' two loaders on a split larger than the memory they may use: in memory vs streamed from shards.

Packs CIFAR-10 train images (``--per-class``, resized to ``--resolution``) twice with ``clpipe data
prepare``'s own code: as ``.npz`` (the in-memory path) and as litdata shards (streamed). Then, each in a
fresh process, runs one epoch of the loader a fold trainer builds (``training.make_loader``: shuffled,
augmented, normalised batches of 512; no network, so the loader's cost is what is measured), first without
a limit and then under a data-segment limit (``RLIMIT_DATA``: the process's anonymous memory, which is
what a container's memory limit bounds; the chunk files litdata maps are page cache the kernel can drop).
Also prints how fast litdata reads rows in a random order (what the streamed loader asks for) with its
default decode window and with ``batch_decode=0``, the setting ``shards.ShardReader`` uses.
Prints per run: images/s, peak anonymous RSS (``RssAnon`` of /proc/self/status, sampled every 20 ms),
peak RSS, and whether the epoch completed. Figures go to docs/benchmarks.md ("Training from shards").

    OMP_NUM_THREADS=1 python benchmarks/bench_stream_memory.py --per-class 5000 --resolution 64 --limit-mb 1500
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from timing import DATA

BATCH = 512


def pack(per_class: int, resolution: int, root: str) -> dict[str, str]:
    """The CIFAR-10 subset prepared at ``resolution`` as .npz and as shards; format -> dataset folder."""
    from clpipe.components.common import datasets, prepare

    split = datasets.open_split(str(DATA / "cifar10"), "train")
    split = split.take(datasets.subset_rows(split.labels, per_class, 0))
    source = os.path.join(root, "source")
    os.makedirs(source)
    np.savez(os.path.join(source, "train.npz"), images=split.images(), labels=split.labels,
             classes=np.array(split.classes))
    out = {}
    for fmt in ("npz", "shards"):
        out[fmt] = os.path.join(root, fmt)
        prepare.prepare(dataset=source, out=out[fmt], resolution=resolution, format=fmt)
    return out


class PeakMemory:
    """Peak ``RssAnon`` and ``VmRSS`` of this process, sampled on a thread."""

    def __init__(self) -> None:
        self.anon = self.rss = 0
        self._stop = threading.Event()
        self.read()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.read()

    def read(self) -> None:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        self.anon = max(self.anon, int(fields["RssAnon"].split()[0]) << 10)
        self.rss = max(self.rss, int(fields["VmRSS"].split()[0]) << 10)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.read()


def one_epoch(dataset: str, limit_mb: int | None) -> dict:
    """One epoch of the fold trainer's loader over ``dataset`` (run in a fresh process)."""
    import torch
    from clpipe.components.common import datasets, training
    from clpipe.components.common.prepare import train_statistics

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    memory = PeakMemory()
    baseline = memory.anon
    if limit_mb:
        resource.setrlimit(resource.RLIMIT_DATA, (limit_mb << 20, limit_mb << 20))
    started = time.perf_counter()
    seen, error = 0, None
    try:
        split = datasets.open_split(dataset, "train")
        mean, std = training.input_normalisation(train_statistics(dataset))
        loader = training.make_loader(split.pixels(), split.labels, batch_size=BATCH, device=torch.device("cpu"),
                                      shuffle=True, augment=training.Augment(pad=4), mean=mean, std=std)
        for _, y, _ in loader:
            seen += len(y)
    except (MemoryError, RuntimeError) as e:  # numpy's MemoryError, torch's "can't allocate memory"
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    seconds = time.perf_counter() - started
    memory.stop()
    return {"images": seen, "images_per_s": seen / seconds if seen else 0.0, "seconds": seconds,
            "peak_anon_mb": memory.anon / 2**20, "start_anon_mb": baseline / 2**20,
            "peak_rss_mb": memory.rss / 2**20, "completed": error is None, "error": error}


def random_access(shards_split: str, n: int = 5000) -> dict[str, float]:
    """images/s of litdata reading ``n`` rows of a packed split in a random order, per decode setting."""
    from litdata import StreamingDataset

    rates = {}
    for name, batch_decode in (("litdata default (decode window)", "auto"), ("batch_decode=0 (clpipe)", 0)):
        dataset = StreamingDataset(shards_split, shuffle=False, batch_decode=batch_decode,
                                   cache_dir=tempfile.mkdtemp(prefix="bench-stream-cache-"))
        rows = np.random.default_rng(0).permutation(len(dataset))[:n]
        dataset[0]  # opens the index and maps the first chunk
        started = time.perf_counter()
        for row in rows:
            dataset[int(row)]
        rates[name] = len(rows) / (time.perf_counter() - started)
    return rates


def in_child(dataset: str, limit_mb: int | None) -> dict:
    """:func:`one_epoch` in a fresh interpreter (peak memory is per process)."""
    code = ["--child", dataset] + (["--limit-mb", str(limit_mb)] if limit_mb else [])
    done = subprocess.run([sys.executable, __file__, *code], capture_output=True, text=True, check=False,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"completed": False, "error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=5000, help="CIFAR-10 train images per class (5000 = all)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--limit-mb", type=int, default=1500, help="RLIMIT_DATA of the limited runs")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(one_epoch(args.child, args.limit_mb if "--limit-mb" in sys.argv else None)))
        return
    root = tempfile.mkdtemp(prefix="bench-stream-memory-")
    try:
        started = time.perf_counter()
        folders = pack(args.per_class, args.resolution, root)
        n = args.per_class * 10
        pixels_mb = n * args.resolution**2 * 3 / 2**20
        print(f"# {n:,} CIFAR-10 train images at {args.resolution} px ({pixels_mb:,.0f} MB of uint8 pixels), packed "
              f"in {time.perf_counter() - started:.0f} s; {platform.machine()}, {os.cpu_count()} CPUs, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
        for name, rate in random_access(os.path.join(folders["shards"], "train")).items():
            print(f"random-order reads, {name}: {rate:,.0f} images/s")
        for limit in (None, args.limit_mb):
            for fmt, folder in folders.items():
                r = in_child(folder, limit)
                label = f"{'in memory (.npz)' if fmt == 'npz' else 'streamed (shards)'}, limit {limit or 'none'} MB"
                if r.get("images_per_s"):
                    print(f"{label}: {r['images']:,} images in {r['seconds']:.1f} s = {r['images_per_s']:,.0f} "
                          f"images/s; peak anonymous memory {r['peak_anon_mb']:,.0f} MB (at start "
                          f"{r['start_anon_mb']:,.0f}), peak RSS {r['peak_rss_mb']:,.0f} MB; "
                          f"{'completed' if r['completed'] else 'FAILED: ' + r['error']}")
                else:
                    print(f"{label}: FAILED: {r['error']}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
