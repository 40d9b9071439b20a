"""Fold trainer eager vs ``torch.compile``: compile time, training time, agreement (prints, never asserts).

Trains one fold of a real CIFAR-10 subset with the recipe's ``compile`` setting ``off`` and
``on``, for 1 and ``--epochs`` epochs each, on the GPU when there is one (else the CPU), and
prints the training time of each run, the compile overhead (1-epoch compiled minus eager
1-epoch), the steady time per epoch ((E-epoch minus 1-epoch) / (E - 1)) and how far the
compiled run's held-out probabilities are from the eager run's. Compiled kernels are cached
in ``$TORCHINDUCTOR_CACHE_DIR`` (default: torch's own cache): point it at an empty folder
for a cold-cache figure, run again for a warm one.

    TORCHINDUCTOR_CACHE_DIR=/tmp/inductor OMP_NUM_THREADS=1 \\
        python benchmarks/bench_fold_compile.py --arch airbench-tiny --per-class 200 --batch-size 256
"""

from __future__ import annotations

import argparse
import os
import platform
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
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = training.select_device(args.device)
    split = datasets.open_split(str(DATA / "cifar10"), "train")
    view = split.take(datasets.subset_rows(split.labels, args.per_class, seed=0))
    images, labels = view.images(), view.labels
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} {training.device_name(device)} torch {torch.__version__}"
          f" cache={os.environ.get('TORCHINDUCTOR_CACHE_DIR', '(torch default)')}")
    results = {}
    for mode in ("off", "on"):
        for epochs in (1, args.epochs):
            recipe = resolve_recipe(args.arch, epochs=epochs, batch_size=args.batch_size, compile=mode)
            results[mode, epochs] = train_fold(images, labels, fold=0, n_folds=4, arch=args.arch, recipe=recipe,
                                               device=device, progress=False)
    n_train = results["off", 1].metrics["n_train"]
    print(f"{args.arch}, {n_train} training images, batch {args.batch_size}")
    print(f"| compile | 1 epoch (s) | {args.epochs} epochs (s) | per epoch after the first (s) |")
    print("|---|---|---|---|")
    for mode in ("off", "on"):
        one, many = (results[mode, e].metrics["train_time_s"] for e in (1, args.epochs))
        print(f"| {mode} | {one:.1f} | {many:.1f} | {(many - one) / max(args.epochs - 1, 1):.2f} |")
    overhead = results["on", 1].metrics["train_time_s"] - results["off", 1].metrics["train_time_s"]
    print(f"compile overhead (1-epoch compiled - eager): {overhead:.1f} s")
    for epochs in (1, args.epochs):
        eager, compiled = results["off", epochs].pred_probs, results["on", epochs].pred_probs
        print(f"after {epochs} epoch(s): max |p_compiled - p_eager| = {np.abs(eager - compiled).max():.2e}, "
              f"same argmax for {(eager.argmax(1) == compiled.argmax(1)).mean():.4f} of held-out rows")


if __name__ == "__main__":
    main()
