"""``clpipe fold-train``: one cross-validation fold -> its out-of-sample pred_probs.

Writes ``--out DIR`` with ``indices.npy``, ``pred_probs.npy``, ``labels.npy`` and
``metrics.json`` (docs/architecture.md), published only when the fold finished.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np

from ..common import cli, storage, training
from ..common.labels import LABELS_FILE
from . import logic
from .models import ARCHS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clpipe fold-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_view_arguments(p)
    p.add_argument("--fold", type=int, required=True, help="fold to hold out, 0 <= fold < n-folds")
    p.add_argument("--n-folds", type=int, default=4, help="K of the K-fold split (default 4, the paper's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, init, order and augmentation")
    p.add_argument("--stratify-by", choices=("given", "dataset"), default="given",
                   help="stratify folds by the given labels (default) or the dataset's labels (the seed's choice)")
    p.add_argument("--arch", choices=ARCHS, default="resnet50", help="network (default: the paper's resnet50)")
    p.add_argument("--recipe", choices=tuple(logic.RECIPES), help="hyperparameter preset (default: the arch's)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--lr", type=float, help="override the recipe's learning rate")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--out", required=True, help="output directory (path or URL)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


STAGE = "fold-train"


def run(args: argparse.Namespace) -> None:
    inputs = [args.dataset, args.labels]
    storage.check_output(args.out, stage=STAGE, inputs=inputs)
    device = training.select_device(args.device)
    recipe = logic.resolve_recipe(args.arch, args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    view, given = cli.open_train_view(args.dataset, args.labels, args.subset_per_class, args.subset_seed)
    result = logic.train_fold(
        view.images(), given, fold=args.fold, n_folds=args.n_folds, seed=args.seed, arch=args.arch,
        recipe=recipe, stratify_labels=view.labels if args.stratify_by == "dataset" else None,
        num_classes=view.num_classes, device=device, progress=not args.no_progress,
    )
    result.metrics.update(
        dataset=args.dataset, labels=args.labels, classes=list(view.classes),
        dataset_fingerprint=view.fingerprint(), stratify_by=args.stratify_by,
        subset_per_class=args.subset_per_class, subset_seed=args.subset_seed,
    )
    write_fold(args.out, result, inputs)


def write_fold(out: str, result: logic.FoldResult, inputs: Sequence[str]) -> None:
    """Publishes one fold's output directory (all files or none)."""
    with storage.staged_output(out, stage=STAGE, inputs=inputs) as tmp:
        storage.save_npy(os.path.join(tmp, "indices.npy"), result.indices)
        storage.save_npy(os.path.join(tmp, "pred_probs.npy"), result.pred_probs.astype(np.float32))
        storage.save_npy(os.path.join(tmp, LABELS_FILE), result.labels)
        storage.save_json(os.path.join(tmp, "metrics.json"), result.metrics)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_stage(STAGE, build_parser(), argv, run)
