"""Sizes the demo's Co-Teaching step for the CPU: accuracy with and without CL pruning (prints, never asserts).

The demo (``pipelines/configs/demo.yaml``) trains Co-Teaching twice on a class-stratified CIFAR-10 subset of a
published condition: once on every noisy label (method ``none``) and once on the rows a confident-learning method
kept, the mask computed at full scale (50,000 rows, the published ``pred_probs``) and restricted to the subset.
This script runs exactly that with the stages' own code (``make_masks.logic.make_masks``,
``coteach.logic.train_coteaching``) for one setting and prints, per method: kept rows, real label noise among
them, final and best test accuracy, wall time; then the gap. It runs the two trainings one after the other
with the thread count ``clpipe run`` gives each training task (``local_run.task_threads()``), so each run's
time is what it costs when the demo runs both side by side on an otherwise idle machine.

    python benchmarks/tune_demo.py --per-class 500 --width 16 --epochs 20 --batch 64 --lr 0.002
    python benchmarks/tune_demo.py --recipe fast --epochs 15 ...      # any knob the pipeline exposes

One experiment at a time: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from clpipe.pipelines.local_run import task_threads

os.environ.setdefault("OMP_NUM_THREADS", str(task_threads()))

import numpy as np
import torch
from clpipe.components.common import datasets, labels
from clpipe.components.coteach import logic
from clpipe.components.make_masks.logic import make_masks
from timing import DATA


def published(kind: str, noise: float, sparsity: float) -> str:
    stem = f"frac_zero_noise_rates__{sparsity:.1f}__noise_amount__{noise:.1f}"
    name = {"labels": f"cifar10_noisy_labels__{stem}.json.gz", "pyx": f"pyx__{stem}.npy"}[kind]
    return str(DATA / "cl-reproduce" / name)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noise", type=float, default=0.4)
    p.add_argument("--sparsity", type=float, default=0.2)
    p.add_argument("--method", default="cl_pbnr", help="the CL method compared with no pruning")
    p.add_argument("--per-class", type=int, default=500, help="train images per class")
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--subset-seed", type=int, default=0)
    p.add_argument("--recipe", default="feb2020")
    p.add_argument("--epochs", type=int, default=20, help="schedule length (feb2020 trains epochs 1..E-1)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--forget-rate", type=float, help="default: the recipe's")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    dataset = str(DATA / "cifar10")
    split = datasets.open_split(dataset, "train")
    given = labels.load_labels(published("labels", args.noise, args.sparsity), split)
    pyx = np.load(published("pyx", args.noise, args.sparsity))
    started = time.perf_counter()
    mask = make_masks(given, pyx, methods=[args.method])[args.method]
    masks_s = time.perf_counter() - started
    rows = datasets.subset_rows(split.labels, args.per_class, args.subset_seed)
    view = split.take(rows)
    test = datasets.open_split(dataset, "test")
    test = test.take(datasets.subset_rows(test.labels, args.test_per_class, args.subset_seed))
    train_x, test_x = view.images(), test.images()
    recipe = logic.resolve_recipe(
        args.recipe,
        epochs=args.epochs,
        batch_size=args.batch,
        lr=args.lr,
        cnn_width=args.width,
        forget_rate=args.forget_rate,
    )
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, {torch.get_num_threads()} thread(s) per run"
    )
    print(
        f"# condition N={args.noise} S={args.sparsity}: {len(split)} rows, real errors "
        f"{int((given != split.labels).sum())}; {args.method} mask at full scale in {masks_s:.1f} s, "
        f"removes {int((~mask).sum())}"
    )
    print(
        f"# subset {args.per_class}/class = {len(rows)} train, {len(test)} test; recipe {args.recipe} "
        f"epochs {recipe.epochs} batch {recipe.batch_size} lr {recipe.lr} width {recipe.cnn_width} "
        f"forget {recipe.forget_rate}"
    )
    results = {}
    for method in ("none", args.method):
        keep = None if method == "none" else mask[rows]
        kept = np.ones(len(rows), bool) if keep is None else keep
        noise = float((given[rows][kept] != view.labels[kept]).mean())
        started, cpu_started = time.perf_counter(), time.process_time()
        run = logic.train_coteaching(
            train_x,
            given[rows],
            test_x,
            test.labels,
            keep=keep,
            true_labels=view.labels,
            test_exact=test.exact,
            recipe=recipe,
            seed=args.seed,
            num_classes=split.num_classes,
            device=torch.device("cpu"),
            progress=False,
        ).metrics
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        curve = np.maximum(run["curves"]["test_acc_1"], run["curves"]["test_acc_2"])
        results[method] = run["final"]["test_acc"]
        print(
            f"{method:>8}: train {int(kept.sum()):5d} rows, real noise {noise:.3f}; final acc "
            f"{run['final']['test_acc']:.4f}, best {run['best']['test_acc']:.4f} (epoch {run['best']['epoch']}); "
            f"{wall:.0f} s wall, {cpu:.0f} s CPU; curve {' '.join(f'{a:.2f}' for a in curve)}",
            flush=True,
        )
    print(
        f"gap ({args.method} - none, final epoch): {100 * (results[args.method] - results['none']):+.1f} points"
    )


if __name__ == "__main__":
    main()
