"""``clpipe fold-train``: one cross-validation fold -> its out-of-sample pred_probs.

Writes ``--out DIR`` with ``indices.npy``, ``pred_probs.npy``, ``labels.npy`` and
``metrics.json`` (docs/architecture.md), published only when the fold finished. While it
trains, ``DIR/checkpoint.pt`` holds the state of the last checkpointed epoch (every
``--checkpoint-every`` epochs, the recipe's cadence by default): the same command run
again, e.g. after a ``kill -9``, resumes from it (and refuses if a setting differs); the
checkpoint is gone once the fold's output is published.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..common import cli, storage, training
from ..common.artifacts import FoldOutput
from ..common.labels import open_train_view
from . import recipes
from .folds import FOLD_SPLITS
from .loop import FoldResult, load_checkpoint, train_fold

CHECKPOINT = "checkpoint.pt"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clpipe fold-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_view_arguments(p)
    p.add_argument("--fold", type=int, required=True, help="fold to hold out, 0 <= fold < n-folds")
    p.add_argument("--n-folds", type=int, default=4, help="K of the K-fold split (default 4, the paper's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, init, order and augmentation")
    p.add_argument("--stratify-by", choices=("given", "dataset"), default="given",
                   help="stratify folds by the given labels (default) or the dataset's labels (the seed's choice)")
    p.add_argument("--fold-split", choices=FOLD_SPLITS, default="sklearn",
                   help="split rule: today's scikit-learn StratifiedKFold (default) or sklearn-0.20, the "
                        "assignment of scikit-learn 0.19-0.20 behind the paper's published pred_probs")
    p.add_argument("--arch", choices=recipes.ARCHS, default="resnet50",
                   help="network (default: the paper's resnet50)")
    p.add_argument("--recipe", choices=tuple(recipes.RECIPES), help="hyperparameter preset (default: the arch's)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--lr", type=float, help="override the recipe's learning rate")
    p.add_argument("--holdout-transform", choices=recipes.HOLDOUT_TRANSFORMS,
                   help="score held-out images clean, or once through the training crop+flip as the seed did "
                        "(paper recipe: train; airbench: clean)")
    p.add_argument("--precision", choices=recipes.PRECISIONS,
                   help="on CUDA: fp32 (the seed's; paper recipe) or bf16 autocast (airbench); the CPU is always fp32")
    p.add_argument("--compile", choices=recipes.COMPILE_MODES,
                   help="torch.compile the network: off, on CUDA only (airbench), or on (also on the CPU)")
    p.add_argument("--checkpoint-every", type=int,
                   help="epochs between checkpoints in --out (0 = none; paper recipe 10, airbench 5)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--out", required=True, help="output directory (path or URL)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def run(args: argparse.Namespace) -> None:
    device = training.select_device(args.device)
    recipe = recipes.resolve_recipe(
        args.arch, args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        holdout_transform=args.holdout_transform, precision=args.precision, compile=args.compile,
        checkpoint_every=args.checkpoint_every,
    )
    view, given = open_train_view(args.dataset, args.labels, args.subset_per_class, args.subset_seed)
    checkpoint_url = storage.join(args.out, CHECKPOINT)
    resume = None
    if storage.exists(checkpoint_url):
        resume = load_checkpoint(storage.read_bytes(checkpoint_url), checkpoint_url)
    result = train_fold(
        view.images(), given, fold=args.fold, n_folds=args.n_folds, seed=args.seed, arch=args.arch,
        recipe=recipe, fold_split=args.fold_split,
        stratify_labels=view.labels if args.stratify_by == "dataset" else None,
        num_classes=view.num_classes, device=device, resume=resume, resume_source=checkpoint_url,
        write_checkpoint=lambda data: storage.write_bytes(checkpoint_url, data), progress=not args.no_progress,
    )
    result.metrics.update(
        dataset=args.dataset, labels=args.labels, classes=list(view.classes),
        dataset_fingerprint=view.fingerprint(), stratify_by=args.stratify_by,
        subset_per_class=args.subset_per_class, subset_seed=args.subset_seed,
    )
    write_fold(args.out, result)
    _remove(checkpoint_url)


def write_fold(out: str, result: FoldResult) -> None:
    """Publishes one fold's output directory (all files or none)."""
    FoldOutput(out, result.indices, result.pred_probs, result.labels, result.metrics).write(out)


def _remove(url: str) -> None:
    """Deletes the fold's own checkpoint once its output is published (a local publish already
    replaced the directory that held it; an object store keeps it until deleted)."""
    fs, path = storage.url_to_fs(url)
    if fs.exists(path):
        fs.rm(path)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_stage("fold-train", build_parser(), argv, run)
