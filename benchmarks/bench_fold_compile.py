"""Fold trainer eager vs ``torch.compile``: compile time, time per epoch, agreement (prints, never asserts).

Trains one fold of a real CIFAR-10 subset for ``--epochs`` epochs with the recipe's
``compile`` setting ``off`` and then ``on``, on the GPU when there is one (else the CPU), and
prints each epoch's wall time (the compiled run's first epoch includes compiling; airbench
recompiles once more when the whitening bias freezes after epoch 3), the steady time per
epoch (median of the epochs after the 4th) and how far the compiled run's held-out
probabilities are from the eager run's. Compiled kernels are cached in
``$TORCHINDUCTOR_CACHE_DIR`` (default: torch's own cache): point it at an empty folder for a
cold-cache figure, run again for a warm one.

    cd benchmarks && TORCHINDUCTOR_CACHE_DIR=/tmp/inductor OMP_NUM_THREADS=1 \\
        python bench_fold_compile.py --arch airbench-tiny --per-class 200 --batch-size 256 --device cpu
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from clpipe.components.common import datasets, training
from clpipe.components.fold_train.loop import train_fold
from clpipe.components.fold_train.recipes import resolve_recipe
from timing import DATA


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="airbench-tiny")
    p.add_argument("--per-class", type=int, default=200, help="train-view images per class")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=6, help="at least 5: the steady time is taken after epoch 4")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = training.select_device(args.device)
    split = datasets.open_split(str(DATA / "cifar10"), "train")
    view = split.take(datasets.subset_rows(split.labels, args.per_class, seed=0))
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.node()} {training.device_name(device)} "
        f"torch {torch.__version__} cache={os.environ.get('TORCHINDUCTOR_CACHE_DIR', '(torch default)')}"
    )
    results = {}
    for mode in ("off", "on"):
        recipe = resolve_recipe(args.arch, epochs=args.epochs, batch_size=args.batch_size, compile=mode)
        results[mode] = train_fold(
            view.images(), view.labels, fold=0, n_folds=4, seed=0, fold_split="sklearn", arch=args.arch,
            recipe=recipe, device=device, progress=False,
        )
    print(f"{args.arch}, {results['off'].metrics['n_train']} training images, batch {args.batch_size}")
    print("| compile | epoch times (s) | steady s/epoch | first epoch minus steady (s) |")
    print("|---|---|---|---|")
    for mode, result in results.items():
        times = result.metrics["epoch_times_s"]
        steady = statistics.median(times[4:])
        print(f"| {mode} | {' '.join(f'{t:.1f}' for t in times)} | {steady:.2f} | {times[0] - steady:.1f} |")
    eager, compiled = results["off"].pred_probs, results["on"].pred_probs
    print(f"after {args.epochs} epochs: max |p_compiled - p_eager| = {np.abs(eager - compiled).max():.2e}, "
          f"same argmax for {(eager.argmax(1) == compiled.argmax(1)).mean():.4f} of held-out rows")


if __name__ == "__main__":
    main()
