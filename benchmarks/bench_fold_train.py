"""Fold-trainer throughput: images/s and epoch time per architecture (prints, never asserts).

Trains each network for a few epochs on a real CIFAR-10 subset with the fold trainer's
own training loop and recipe, on the GPU when there is one (else the CPU), and reports
training throughput, the extrapolated time of one epoch over the 37,500 images of a
4-fold training split, and the seed's estimate for comparison (ResNet-50, 350 epochs,
about 2.5 GPU-hours per fold, confident-learning.md section 7).

    python benchmarks/bench_fold_train.py --archs airbench94 resnet50 --per-class 200 --epochs 2
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from clpipe.components.common import datasets, training
from clpipe.components.fold_train.loop import train_fold
from clpipe.components.fold_train.recipes import resolve_recipe
from timing import DATA

SHARED = DATA / "cifar10"
FOLD_TRAIN_IMAGES = 37_500
SEED_FOLD_HOURS = 2.5


def bench(arch: str, images, labels, epochs: int, device: torch.device) -> dict:
    recipe = resolve_recipe(arch, epochs=epochs)
    result = train_fold(images, labels, fold=0, n_folds=4, seed=0, fold_split="sklearn", arch=arch,
                        recipe=recipe, device=device,
                              progress=False)
    m = result.metrics
    epoch_s = FOLD_TRAIN_IMAGES / m["images_per_s"]
    return {"arch": arch, "epochs": epochs, "batch": recipe.batch_size, "n_train": m["n_train"],
            "images_per_s": m["images_per_s"], "epoch_37k_s": epoch_s,
            "fold_s": epoch_s * resolve_recipe(arch).epochs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["airbench-tiny", "airbench94", "resnet50"])
    p.add_argument("--per-class", type=int, default=200, help="train images per class in the subset")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = training.select_device(args.device)
    split = datasets.open_split(str(SHARED), "train")
    view = split.take(datasets.subset_rows(split.labels, args.per_class, seed=0))
    images, labels = view.images(), view.labels
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} {training.device_name(device)} torch {torch.__version__}")
    print("| arch | epochs run | batch | train images | images/s | epoch over 37.5k (s) | fold at recipe epochs (s) |")
    print("|---|---|---|---|---|---|---|")
    for arch in args.archs:
        r = bench(arch, images, labels, args.epochs, device)
        print(f"| {r['arch']} | {r['epochs']} | {r['batch']} | {r['n_train']} | {r['images_per_s']:.0f} | "
              f"{r['epoch_37k_s']:.1f} | {r['fold_s']:.0f} |")
    print(f"seed's estimate: {SEED_FOLD_HOURS} GPU-hours per ResNet-50 fold (350 epochs, batch 64)")


if __name__ == "__main__":
    main()
