"""``clpipe coteach``: Co-Teaching on the examples a confident-learning mask kept.

Writes ``OUT`` (:class:`~clpipe.components.common.artifacts.CoteachRun`, path or fsspec URL):
``metrics.json`` after every epoch and ``checkpoint.pt`` after every ``--checkpoint-every``-th
epoch and the last (the recipe's cadence: every epoch for the paper recipes, every 10th for
``fast``; docs/architecture.md), and once the run is complete the better network as an exported
model, ``model/`` (:mod:`.export`; ``clpipe predict --model OUT/model IMAGES...``).

The number of classes and the resolution come from the dataset (any R >= 28 px; the CNN's final
pooling averages whatever map is left). A recipe that normalises its inputs (``jair2021``,
``fast``) uses the dataset's own per-channel mean and std when ``clpipe data prepare`` recorded
them (``prepared.json``), CIFAR-10's otherwise, as the official code. A rerun with the same ``--out`` resumes from the checkpoint
(and refuses if the settings differ); a finished run rerun only rewrites its metrics. Bad
input (exit 2) is detected before anything is written.

A keep-mask has one row per train-view row; with ``--subset-per-class`` a mask of the whole
split is accepted too and cut to the view's rows, so masks found at full scale (e.g. from the
published pred_probs of all 50,000 images) serve a subset run.

Example (the seed's command line):
  clpipe coteach --seed 1 --batch-size 128 --lr 0.001 --epochs 250 --forget-rate 0.2 \\
      --train-labels noisy.json.gz --train-mask MASKS_DIR --method cl_pbnr --out OUT \\
      ../shared/data/cifar10
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from ..common import storage
from ..common.artifacts import CoteachRun, Masks, labels_url
from ..common.datasets import ALL_ROWS, SUBSET_SEED, Split, has_test_split, open_split, subset_rows
from ..common.errors import InputError
from ..common.labels import open_train_view
from ..common.methods import NO_PRUNING, RUN_METHODS
from .recipes import CLASS_WEIGHT_RULES, DEFAULT_RECIPE, PRECISIONS, Recipe, resolve_recipe

log = logging.getLogger("clpipe.coteach")

#: ``class_weights`` values: the recipe's own rule, or one of the rules by name.
CLASS_WEIGHT_CHOICES = ("paper", *CLASS_WEIGHT_RULES)
#: Method id of a mask file that is not in a make-masks output.
CUSTOM_MASK = "custom"


def coteach(
    *,
    dataset: str,
    train_labels: str,
    out: str,
    train_mask: str | None = None,
    method: str | None = None,
    recipe: str = DEFAULT_RECIPE,
    seed: int = 1,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    forget_rate: float | None = None,
    num_gradual: int | None = None,
    exponent: float | None = None,
    epoch_decay_start: int | None = None,
    mom2: float | None = None,
    class_weights: Literal[CLASS_WEIGHT_CHOICES] = "paper",
    cnn_width: int | None = None,
    test_dataset: str | None = None,
    subset_per_class: int = ALL_ROWS,
    subset_seed: int = SUBSET_SEED,
    test_subset_per_class: int = ALL_ROWS,
    test_subset_seed: int = SUBSET_SEED,
    device: str = "auto",
    eval_every: int | None = None,
    checkpoint_every: int | None = None,
    precision: Literal[PRECISIONS] | None = None,
    compile: bool | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> CoteachRun:
    """Trains two Co-Teaching networks on the kept rows of the train view and scores them on the test set.

    Args:
        dataset: ImageFolder root, .npz, or directory with *train.npz/*test.npz (path or URL).
        train_labels: Given (noisy) labels of the whole train split: seed JSON (.json/.json.gz), .npy in
            ImageFolder order, or a noisy-labels output directory (path or URL).
        out: Output directory (path or URL); holding a checkpoint of the same run, it is resumed. Once the run is
            complete it holds model/, the better network (clpipe predict --model OUT/model IMAGES...).
        train_mask: train_mask.npy (bool, True = keep; one row per train-view row, or per row of the whole
            split, cut to the view) or a make-masks output directory (then method picks its mask).
        method: Mask method id, one of argmax, conf_joint_only, cl_pbc, cl_pbnr, cl_both, none; none (or
            no mask) = plain Co-Teaching on all noisy labels.
        recipe: Hyperparameter preset, one of feb2020 (the paper's Feb-2020 Table 2 protocol), jair2021,
            coteaching2018, fast; the settings below override its fields.
        seed: Seeds init, batch order, augmentation, dropout.
        epochs: Schedule length E (feb2020: 250); epochs first_epoch..E-1 are trained (feb2020 and
            coteaching2018 start at 1, the official loops' epoch 0 only evaluates).
        batch_size: Examples per step (paper: 128).
        lr: Adam learning rate (paper: 0.001).
        forget_rate: Final forget rate in [0, 1) (feb2020: 0.2; jair2021: noise/2).
        num_gradual: Tk, epochs of the forget-rate ramp (paper: 10).
        exponent: c, the ramp goes to forget_rate**c (paper: 1).
        epoch_decay_start: Epoch where the lr decay and beta1 switch start (80).
        mom2: Adam beta1 from epoch_decay_start on (feb2020 0.1, jair2021 0.9).
        class_weights: Per-class loss weights: paper = the recipe's own rule (feb2020/jair2021 use the
            dataset's TRUE labels, a ground-truth leak kept for reproduction); given = the same correction
            from the given labels only; none = unweighted.
        cnn_width: Base channels of the 9-layer CNN (paper: 128; tests: 8).
        test_dataset: Where the test split comes from (default: the dataset's test split, which a single
            .npz, manifest or packed split does not have).
        subset_per_class: Use a class-stratified random subset of this many train images per class (0 = all).
        subset_seed: Seed of that subset.
        test_subset_per_class: Score a class-stratified subset of this many test images per class (0 = all).
        test_subset_seed: Seed of that test subset.
        device: auto (the GPU if present), cpu, cuda, cuda:1 ...
        eval_every: Score the test set after every N-th epoch and the last (feb2020: 1, fast: 10).
        checkpoint_every: Save the resumable state after every N-th epoch and the last (feb2020: 1, fast: 10).
        precision: GPU arithmetic (paper recipes: fp32, fast: bf16); the CPU always computes in fp32.
        compile: torch.compile the networks on a GPU (fast: on); compiled graphs are cached under
            $CLPIPE_CACHE_DIR/torchinductor (or $TORCHINDUCTOR_CACHE_DIR).
        stop_after: Stop cleanly once this many epochs are done in total (time-boxed jobs); rerun to go on.
        progress: Show a progress bar (--no-progress: logs only).
    """
    # torch: imported here, so that the command's --help and its missing-extra line need no torch
    from ..common import training
    from ..common.prepare import train_statistics
    from . import checkpoint, export, loop
    from .method import class_weights as class_weight_vector

    # --- everything that can be wrong with the input is checked before anything is written ----
    loop.check_stop_after(stop_after)
    if test_subset_per_class < 0:
        raise InputError("test_subset_per_class", "", f"must be >= 0, got {test_subset_per_class}")
    chosen = resolve_recipe(
        recipe, epochs=epochs, batch_size=batch_size, lr=lr, forget_rate=forget_rate, num_gradual=num_gradual,
        exponent=exponent, epoch_decay_start=epoch_decay_start, mom2=mom2, cnn_width=cnn_width,
        eval_every=eval_every, checkpoint_every=checkpoint_every, precision=precision, compile=compile,
        class_weights=None if class_weights == "paper" else class_weights,
    )
    mask_url, method = resolve_mask(train_mask, method)
    inputs = [u for u in (dataset, test_dataset, train_labels, train_mask) if u]
    storage.check_output(out, stage=CoteachRun.STAGE, inputs=inputs)
    torch_device = training.select_device(device)
    view, given = open_train_view(dataset, labels_url(train_labels), subset_per_class, subset_seed)
    statistics = train_statistics(dataset)
    if test_dataset is None and not has_test_split(dataset):  # else the train images would score themselves
        raise InputError(dataset, "test", "is one split with no test split beside it (a single .npz, manifest "
                         "or packed split): Co-Teaching is scored on a test split; give --test-dataset, or a "
                         "root with train/ and test/ (label errors alone need no test split: make-masks)")
    test_url = test_dataset or dataset
    test = _test_view(test_url, test_subset_per_class, test_subset_seed)
    if test.classes != view.classes:
        raise InputError(test_url, "classes", f"test classes {test.classes} differ from the train classes "
                         f"{view.classes}")
    keep = None
    if mask_url is not None:
        keep = _keep_mask(mask_url, view, dataset, subset_per_class, subset_seed, chosen)
    # Fails early (naming the mask) when a class-weight rule is undefined for this mask.
    class_weight_vector(chosen.class_weights, given, keep, num_classes=view.num_classes, true_labels=view.labels,
                        source=mask_url or train_labels)
    run = storage.resumable_output(out, stage=CoteachRun.STAGE, inputs=inputs)
    checkpoint_url = storage.join(out, CoteachRun.CHECKPOINT)
    previous = run.previous(CoteachRun.CHECKPOINT)
    resume = None if previous is None else checkpoint.load_checkpoint(previous, checkpoint_url)
    pending: dict[str, bytes] = {}  # the checkpoint is published together with the metrics that follow it

    def write_metrics(metrics: dict) -> None:
        run.publish({**pending, CoteachRun.METRICS: storage.json_bytes(metrics)})
        pending.clear()

    metadata = {
        "method": method,
        "recipe": recipe,
        "class_weight_rule": chosen.class_weights,
        # The paper's rules read the dataset's TRUE labels (a ground-truth leak, kept for reproduction).
        "class_weights_use_true_labels": keep is not None and chosen.class_weights in ("feb2020", "jair2021"),
        "dataset": dataset,
        "test_dataset": test_url,
        "train_labels": train_labels,
        "train_mask": mask_url,
        "classes": list(view.classes),
        "dataset_fingerprint": view.fingerprint(),
        "test_fingerprint": test.fingerprint(),
        "subset_per_class": subset_per_class,
        "subset_seed": subset_seed,
        "test_subset_per_class": test_subset_per_class,
        "test_subset_seed": test_subset_seed,
    }
    result = loop.train_coteaching(
        view.pixels(), given, test.pixels(), test.labels, recipe=chosen, seed=seed, device=torch_device,
        keep=keep, true_labels=view.labels, test_exact=test.exact, num_classes=view.num_classes,
        dataset_statistics=statistics, resume=resume, resume_source=checkpoint_url,
        write_checkpoint=lambda data: pending.update({CoteachRun.CHECKPOINT: data}),
        write_metrics=write_metrics,
        stop_after=stop_after, metadata=metadata, progress=progress,
    )
    if result.metrics["complete"]:
        run.publish(export.model_files(result.nets, result.metrics, chosen))
        log.info("exported network %d to %s", export.better_net(result.metrics), storage.join(out, CoteachRun.MODEL))
    _log_result(result.metrics, chosen)
    return CoteachRun(result.metrics)


def resolve_mask(train_mask: str | None, method: str | None) -> tuple[str | None, str]:
    """(URL of the keep-mask file or None, method id) from the ``train_mask`` and ``method`` parameters.

    A mask file is named after its make-masks folder when it has one (``custom`` otherwise);
    a make-masks output directory needs ``method`` to pick one of its masks.
    """
    if method is not None and method not in RUN_METHODS:
        raise InputError("method", "", f"unknown method {method!r}; choose from {RUN_METHODS}")
    if train_mask is None:
        if method not in (None, NO_PRUNING):
            raise InputError("method", "", f"method {method!r} needs `train_mask` (a train_mask.npy or a "
                             "make-masks output directory)")
        return None, NO_PRUNING
    if train_mask.endswith(".npy"):
        if method == NO_PRUNING:
            raise InputError("method", "", f"'none' trains on all examples but `train_mask` names a mask file "
                             f"({train_mask}); drop one of the two")
        return train_mask, method or Masks.method_of(train_mask) or CUSTOM_MASK
    if method is None:
        raise InputError("method", "", f"`train_mask` {train_mask} is a directory: pick a mask with `method`, "
                         f"one of {RUN_METHODS}")
    if method == NO_PRUNING:
        return None, NO_PRUNING
    return Masks.mask_url(train_mask, method), method


def _keep_mask(url: str, view: Split, dataset: str, subset_per_class: int, subset_seed: int,
               recipe: Recipe) -> np.ndarray:
    """The keep-mask at ``url`` for the train view, checked (:func:`.loop.check_keep_mask`).

    On a subset view a mask of the whole split is cut to the view's rows (the same rows
    :func:`~..common.labels.open_train_view` took); a mask of the view's own length is used as
    it is. The whole split is only opened when the mask does not match the view.
    """
    from .loop import check_keep_mask

    mask = storage.load_npy(url, field="train_mask")
    whole_split = None
    if subset_per_class and mask.ndim == 1 and len(mask) != len(view):
        split = open_split(dataset, "train")
        whole_split = len(split)
        if len(mask) == whole_split:
            mask = mask[subset_rows(split.labels, subset_per_class, subset_seed)]
            log.info("train_mask %s: the whole split's %d rows, cut to the view's %d", url, whole_split,
                     len(mask))
    return check_keep_mask(mask, len(view), url, recipe=recipe, whole_split=whole_split)


def _test_view(url: str, per_class: int, seed: int) -> Split:
    split = open_split(url, "test")
    rows = subset_rows(split.labels, per_class, seed)
    if len(rows) < len(split):
        log.info("test subset: %d of %d images (%d per class, seed %d)", len(rows), len(split), per_class, seed)
    return split.take(rows)


def _log_result(metrics: dict, recipe: Recipe) -> None:
    if metrics["complete"]:
        final, best = metrics["final"], metrics["best"]
        exact = "n/a" if final["test_exact_acc"] is None else f"{final['test_exact_acc']:.4f}"
        log.info("done: final test acc %.4f (exact subset %s), best %.4f at epoch %s (selected on the test set)",
                 final["test_acc"], exact, best["test_acc"], best["epoch"])
    else:
        log.info("stopped after %d of %d epochs; the same command with the same out continues",
                 metrics["epochs_done"], recipe.epochs - recipe.first_epoch)
