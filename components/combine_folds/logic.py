"""Fold combiner: K out-of-sample fold outputs -> one (N, K) ``pred_probs`` (step 2).

cleanlab wants one call on the concatenated out-of-fold rows (cleanlab/examples#80), so
the fold outputs are put back into row order. Everything that would silently corrupt the
masks downstream is refused, with the fold source and field named: a row covered twice or
never, folds that disagree on the number of classes or examples, or come from different
datasets or label files (fingerprints), NaN/inf, negative probabilities, rows not summing
to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..common.artifacts import FoldOutput, PredProbs
from ..common.checks import fingerprint
from ..common.errors import InputError

_AGREED_FIELDS = FoldOutput.AGREED
#: Carried from the fold metrics into the summary, for the report's protocol and cost sections.
_TIMING_FIELDS = ("train_time_s", "total_time_s", "device")
_TRAINING_FIELDS = ("arch", "epochs", "batch_size", "seed", "stratify_by")


def combine_folds(folds: Sequence[FoldOutput]) -> PredProbs:
    """Joins fold outputs (any order) into row order, after checking they fit together.

    Args:
        folds: The K fold outputs of one cross-validation.

    Raises:
        InputError: naming the fold source and field of the first problem found.
    """
    if not folds:
        raise InputError("folds", "", "no fold outputs given")
    for fold in folds:
        fold.validate()
    agreed = _check_agreement(folds)
    n, k = agreed["n_examples"], agreed["n_classes"]
    _check_coverage(folds, n)
    dtype = np.result_type(*(f.pred_probs.dtype for f in folds))
    pred_probs = np.empty((n, k), dtype=dtype)
    labels = np.empty(n, dtype=np.int64)
    for fold in folds:
        pred_probs[fold.indices] = fold.pred_probs
        labels[fold.indices] = fold.labels
    return PredProbs(pred_probs, labels, _summary(folds, pred_probs, labels, agreed))


def _check_agreement(folds: Sequence[FoldOutput]) -> dict:
    first = folds[0]
    for field in _AGREED_FIELDS:
        for fold in folds[1:]:
            if fold.metrics[field] != first.metrics[field]:
                raise InputError(
                    fold.source, f"metrics.json: {field}",
                    f"{fold.metrics[field]!r} differs from {first.metrics[field]!r} in {first.source}; "
                    "all folds must come from one cross-validation of one dataset and label file",
                )
    agreed = {field: first.metrics[field] for field in _AGREED_FIELDS}
    if len(folds) != agreed["n_folds"]:
        raise InputError("folds", "", f"got {len(folds)} fold outputs for a {agreed['n_folds']}-fold split")
    seen: dict[int, str] = {}
    for fold in folds:
        f = fold.metrics["fold"]
        if f in seen:
            raise InputError(fold.source, "metrics.json: fold", f"fold {f} given twice (also {seen[f]})")
        seen[f] = fold.source
    return agreed


def _check_coverage(folds: Sequence[FoldOutput], n: int) -> None:
    """Every row 0..n-1 exactly once over all folds."""
    owner = np.full(n, -1, dtype=np.int64)
    for i, fold in enumerate(folds):
        idx = fold.indices
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise InputError(fold.source, "indices.npy", f"rows must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
        unique, counts = np.unique(idx, return_counts=True)
        if (counts > 1).any():
            raise InputError(fold.source, "indices.npy", f"row {unique[counts > 1][0]} appears {counts.max()} times")
        taken = owner[idx] >= 0
        if taken.any():
            row = int(idx[taken][0])
            raise InputError(fold.source, "indices.npy",
                             f"row {row} is covered twice (also by {folds[owner[row]].source}); "
                             f"{int(taken.sum())} rows overlap")
        owner[idx] = i
    missing = np.flatnonzero(owner < 0)
    if len(missing):
        raise InputError("folds", "indices.npy",
                         f"{len(missing)} of {n} rows are covered by no fold, first {missing[:5].tolist()}")


def _summary(folds: Sequence[FoldOutput], pred_probs: np.ndarray, labels: np.ndarray, agreed: dict) -> dict:
    k = agreed["n_classes"]
    predicted = pred_probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_fold = sorted(
        ({"fold": f.metrics["fold"], "n_heldout": len(f.indices), "source": f.source,
          "holdout_accuracy": float((f.pred_probs.argmax(1) == f.labels).mean()) if len(f.labels) else None,
          **{key: f.metrics.get(key) for key in _TIMING_FIELDS}}
         for f in folds),
        key=lambda d: d["fold"],
    )
    return {
        "stage": "combine-folds",
        **agreed,
        "classes": folds[0].metrics.get("classes"),
        "training": {key: folds[0].metrics.get(key) for key in _TRAINING_FIELDS},
        "pred_probs_dtype": str(pred_probs.dtype),
        "accuracy": float((predicted == labels).mean()),
        "confusion_matrix": confusion.tolist(),
        "folds": per_fold,
    }


def given_pred_probs(
    pred_probs: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    *,
    source: str,
    num_classes: int,
    dataset_fingerprint: str,
) -> PredProbs:
    """Pre-computed pred_probs of the whole split (e.g. the seed's published ``pyx``) for the view.

    Replaces cross-validation for a condition that names its pred_probs. The view's rows are
    taken out and joined as one "fold" holding every row, so they pass the same checks and
    get the same summary (with the confusion matrix) as a combined cross-validation. The dtype
    is kept: the masks depend on it (float16 ties).

    Args:
        pred_probs: (N_split, K) probabilities of the whole train split.
        labels: (N_split,) the condition's given labels.
        rows: Rows of the view (``datasets.subset_rows``).
        source: URL of ``pred_probs`` (error messages, summary).
        num_classes: K of the dataset.
        dataset_fingerprint: Fingerprint of the view.
    """
    if pred_probs.ndim != 2 or pred_probs.shape != (len(labels), num_classes):
        raise InputError(source, "pred_probs", f"expected shape {(len(labels), num_classes)} (the whole "
                         f"train split x its classes), got {pred_probs.shape}")
    view_labels = labels[rows]
    block = FoldOutput(
        source=source,
        indices=np.arange(len(rows)),
        pred_probs=pred_probs[rows],
        labels=view_labels,
        metrics={
            "fold": 0,
            "n_folds": 1,
            "n_examples": len(rows),
            "n_classes": num_classes,
            "dataset_fingerprint": dataset_fingerprint,
            "labels_fingerprint": fingerprint(view_labels),
        },
    )
    combined = combine_folds([block])
    combined.summary.update(stage="given-pred-probs", source="given", url=source, n_folds=0, folds=[])
    return combined
