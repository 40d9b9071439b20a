"""``clpipe coteach``: Co-Teaching on the examples a confident-learning mask kept.

Writes ``--out DIR`` (path or fsspec URL): ``metrics.json`` after every epoch and
``checkpoint.pt`` at the end of every epoch (docs/architecture.md). A rerun with the same
``--out`` resumes from the checkpoint (and refuses if the settings differ); a finished run
rerun only rewrites its metrics. Bad input (exit 2) is detected before anything is written.

Example (the seed's command line):
  clpipe coteach --seed 1 --batch-size 128 --lr 0.001 --epochs 250 --forget-rate 0.2 \\
      --train-labels noisy.json.gz --train-mask MASKS_DIR --method cl_pbnr --out OUT \\
      ../shared/data/cifar10
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from ..common import cli, storage, training
from ..common.datasets import Split, open_split, subset_rows
from ..common.errors import InputError
from . import logic

log = logging.getLogger("clpipe")

STAGE = "coteach"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clpipe coteach", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", metavar="DATASET",
                   help="ImageFolder root, .npz, or directory with *train.npz/*test.npz (path or URL)")
    p.add_argument("--test-dataset", help="where the test split comes from (default: DATASET)")
    p.add_argument("--train-labels", required=True,
                   help="given (noisy) labels: seed JSON (.json/.json.gz) or .npy in ImageFolder order")
    p.add_argument("--train-mask",
                   help="train_mask.npy (bool, True = keep, one row per train-view row) or a make-masks "
                        "output directory (then --method picks DIR/train_pruned_<method>/train_mask.npy)")
    p.add_argument("--method", help=f"mask method id, one of {logic.METHODS}; 'none' (or no mask) = "
                                    "plain Co-Teaching on all noisy labels")
    p.add_argument("--recipe", default=logic.DEFAULT_RECIPE,
                   help=f"hyperparameter preset, one of {tuple(logic.RECIPES)} "
                        f"(default {logic.DEFAULT_RECIPE}, the paper's Feb-2020 Table 2 protocol); "
                        "the flags below override its fields")
    p.add_argument("--seed", type=int, default=1,
                   help="seeds init, batch order, augmentation, dropout (default 1)")
    p.add_argument("--epochs", type=int,
                   help="schedule length E (feb2020: 250); epochs first_epoch..E-1 are trained "
                        "(feb2020/coteaching2018 start at 1, the official loops' epoch 0 only evaluates)")
    p.add_argument("--batch-size", type=int, help="examples per step (paper: 128)")
    p.add_argument("--lr", type=float, help="Adam learning rate (paper: 0.001)")
    p.add_argument("--forget-rate", type=float,
                   help="final forget rate in [0, 1) (feb2020: 0.2; jair2021: noise/2)")
    p.add_argument("--num-gradual", type=int, help="Tk, epochs of the forget-rate ramp (paper: 10)")
    p.add_argument("--exponent", type=float, help="c, the ramp goes to forget_rate**c (paper: 1)")
    p.add_argument("--epoch-decay-start", type=int,
                   help="epoch where the lr decay and beta1 switch start (80)")
    p.add_argument("--mom2", type=float,
                   help="Adam beta1 from --epoch-decay-start on (feb2020 0.1, jair2021 0.9)")
    p.add_argument("--class-weights", default="paper",
                   choices=("paper", *logic.CLASS_WEIGHT_RULES),
                   help="per-class loss weights: paper = the recipe's own rule (feb2020/jair2021 use the "
                        "dataset's TRUE labels, a ground-truth leak kept for reproduction); given = the same "
                        "correction from the given labels only; none = unweighted")
    p.add_argument("--cnn-width", type=int, help="base channels of the 9-layer CNN (paper: 128; tests: 8)")
    cli.add_subset_arguments(p)
    p.add_argument("--test-subset-per-class", type=int, default=0,
                   help="score a class-stratified subset of this many test images per class (0 = all)")
    p.add_argument("--test-subset-seed", type=int, default=0, help="seed of that test subset")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1 ...")
    p.add_argument("--checkpoint-every", type=int, default=1, help="epochs between checkpoints (default 1)")
    p.add_argument("--stop-after", type=int,
                   help="stop cleanly once this many epochs are done in total (time-boxed jobs); "
                        "rerun to go on")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--out", required=True, help="output directory (path or URL)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def resolve_mask(train_mask: str | None, method: str | None) -> tuple[str | None, str]:
    """(URL of the train_mask.npy or None, method id) from ``--train-mask`` and ``--method``."""
    if method is not None and method not in logic.METHODS:
        raise InputError("--method", "", f"unknown method {method!r}; choose from {logic.METHODS}")
    if train_mask is None:
        if method not in (None, "none"):
            raise InputError("--method", "", f"method {method!r} needs --train-mask (a train_mask.npy "
                             "or a make-masks output directory)")
        return None, "none"
    if train_mask.endswith(".npy"):
        if method == "none":
            raise InputError("--method", "", f"'none' trains on all examples but --train-mask names a "
                             f"mask file ({train_mask}); drop one of the two")
        if method is None:  # name it after its make-masks folder when it has one
            folder = os.path.basename(os.path.dirname(train_mask.rstrip("/")))
            inferred = folder.removeprefix("train_pruned_")
            known = folder.startswith("train_pruned_") and inferred in logic.METHODS
            method = inferred if known else "custom"
        return train_mask, method
    if method is None:
        raise InputError("--method", "", f"--train-mask {train_mask} is a directory: pick a mask with "
                         f"--method, one of {logic.METHODS}")
    if method == "none":
        return None, "none"
    name = f"train_pruned_{method}/train_mask.npy"
    masks = storage.open_output(train_mask, stage="make-masks")
    if name not in masks.files:
        found = sorted(masks.files)
        raise InputError(masks.url_of(name), "", f"not found (make-masks writes DIR/train_pruned_<method>/"
                         f"train_mask.npy; {train_mask} holds {found[:10]})")
    return masks.url_of(name), method


def open_test_view(url: str, per_class: int, seed: int) -> Split:
    split = open_split(url, "test")
    rows = subset_rows(split.labels, per_class, seed)
    if len(rows) < len(split):
        log.info("test subset: %d of %d images (%d per class, seed %d)",
                 len(rows), len(split), per_class, seed)
    return split.take(rows)


def run(args: argparse.Namespace) -> None:
    # --- everything that can be wrong with the input is checked before anything is written ----
    cli.check_positive("--checkpoint-every", args.checkpoint_every)
    if args.test_subset_per_class < 0:
        raise InputError("--test-subset-per-class", "", f"must be >= 0, got {args.test_subset_per_class}")
    recipe = logic.resolve_recipe(
        args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, forget_rate=args.forget_rate,
        num_gradual=args.num_gradual, exponent=args.exponent, epoch_decay_start=args.epoch_decay_start,
        mom2=args.mom2, cnn_width=args.cnn_width,
        class_weights=None if args.class_weights == "paper" else args.class_weights,
    )
    mask_url, method = resolve_mask(args.train_mask, args.method)
    inputs = [u for u in (args.dataset, args.test_dataset, args.train_labels, args.train_mask) if u]
    storage.check_output(args.out, stage=STAGE, inputs=inputs)
    device = training.select_device(args.device)
    view, given = cli.open_train_view(args.dataset, args.train_labels, args.subset_per_class,
                                      args.subset_seed)
    test_url = args.test_dataset or args.dataset
    test = open_test_view(test_url, args.test_subset_per_class, args.test_subset_seed)
    if test.classes != view.classes:
        raise InputError(test_url, "classes",
                         f"test classes {test.classes} differ from the train classes {view.classes}")
    keep = None
    if mask_url is not None:
        mask = storage.load_npy(mask_url, field="train_mask")
        # The whole split's size only feeds the error hint for a mask made without the subset.
        mismatch = args.subset_per_class and mask.shape != (len(view),)
        full = len(open_split(args.dataset, "train")) if mismatch else None
        keep = logic.check_keep_mask(mask, len(view), mask_url, recipe=recipe, full_split=full)
    # Fails early (naming the mask) when a class-weight rule is undefined for this mask.
    logic.class_weights(recipe.class_weights, given, keep, num_classes=view.num_classes,
                        true_labels=view.labels, source=mask_url or args.train_labels)
    out = storage.resumable_output(args.out, stage=STAGE, inputs=inputs)
    checkpoint_url = storage.join(args.out, CHECKPOINT)
    previous = out.previous(CHECKPOINT)
    resume = None if previous is None else logic.load_checkpoint(previous, checkpoint_url)
    pending: dict[str, bytes] = {}  # the checkpoint is published together with the metrics that follow it

    def write_metrics(m: dict) -> None:
        out.publish({**pending, METRICS: storage.json_bytes(m)})
        pending.clear()

    train_images, test_images = view.images(), test.images()
    metadata = {
        "method": method,
        "recipe": args.recipe,
        "class_weight_rule": recipe.class_weights,
        # The paper's rules read the dataset's TRUE labels (a ground-truth leak, kept for reproduction).
        "class_weights_use_true_labels": keep is not None and recipe.class_weights in ("feb2020", "jair2021"),
        "dataset": args.dataset,
        "test_dataset": test_url,
        "train_labels": args.train_labels,
        "train_mask": mask_url,
        "classes": list(view.classes),
        "dataset_fingerprint": view.fingerprint(),
        "test_fingerprint": test.fingerprint(),
        "subset_per_class": args.subset_per_class,
        "subset_seed": args.subset_seed,
        "test_subset_per_class": args.test_subset_per_class,
        "test_subset_seed": args.test_subset_seed,
    }
    result = logic.train_coteaching(
        train_images, given, test_images, test.labels, keep=keep, true_labels=view.labels,
        test_exact=test.exact, recipe=recipe, seed=args.seed, num_classes=view.num_classes, device=device,
        resume=resume, resume_source=checkpoint_url,
        write_checkpoint=lambda data: pending.update({CHECKPOINT: data}),
        write_metrics=write_metrics,
        checkpoint_every=args.checkpoint_every, stop_after=args.stop_after, metadata=metadata,
        progress=not args.no_progress,
    )
    m = result.metrics
    if m["complete"]:
        log.info("done: final test acc %.4f (exact subset %s), best %.4f at epoch %s "
                 "(selected on the test set)", m["final"]["test_acc"], _fmt(m["final"]["test_exact_acc"]),
                 m["best"]["test_acc"], m["best"]["epoch"])
    else:
        log.info("stopped after %d of %d epochs; rerun with the same --out to continue",
                 m["epochs_done"], recipe.epochs - recipe.first_epoch)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_stage(STAGE, build_parser(), argv, run)


if __name__ == "__main__":
    import sys

    sys.exit(main())

