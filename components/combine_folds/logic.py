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
from dataclasses import dataclass

import numpy as np

from ..common.errors import InputError

#: Default tolerance of a row sum; float32 softmax is within 1e-6, float16 within 3e-3.
DEFAULT_SUM_ATOL = 1e-3
_AGREED_FIELDS = ("n_examples", "n_classes", "n_folds", "dataset_fingerprint", "labels_fingerprint")
#: Carried from the fold metrics into the summary, for the report's protocol and cost sections.
_TIMING_FIELDS = ("train_time_s", "total_time_s", "device")
_TRAINING_FIELDS = ("arch", "epochs", "batch_size", "seed", "stratify_by")


@dataclass
class FoldOutput:
    """One fold task's output, as read from its directory.

    Attributes:
        source: Where it was read from (used in error messages).
        indices: (n_k,) int rows of the view held out in this fold.
        pred_probs: (n_k, K) float probabilities for those rows.
        labels: (n_k,) int given labels of those rows.
        metrics: The fold's ``metrics.json`` (fold, n_folds, n_examples, fingerprints...).
    """

    source: str
    indices: np.ndarray
    pred_probs: np.ndarray
    labels: np.ndarray
    metrics: dict


@dataclass
class Combined:
    """pred_probs (N, K), given labels (N,) and a summary for the report."""

    pred_probs: np.ndarray
    labels: np.ndarray
    summary: dict


def combine_folds(folds: Sequence[FoldOutput], *, sum_atol: float = DEFAULT_SUM_ATOL) -> Combined:
    """Joins fold outputs (any order) into row order, after checking they fit together.

    Args:
        folds: The K fold outputs of one cross-validation.
        sum_atol: How far a row's probabilities may sum from 1.

    Raises:
        InputError: naming the fold source and field of the first problem found.
    """
    if not folds:
        raise InputError("folds", "", "no fold outputs given")
    for fold in folds:
        _check_fold(fold, sum_atol)
    agreed = _check_agreement(folds)
    n, k = agreed["n_examples"], agreed["n_classes"]
    _check_coverage(folds, n)
    dtype = np.result_type(*(f.pred_probs.dtype for f in folds))
    pred_probs = np.empty((n, k), dtype=dtype)
    labels = np.empty(n, dtype=np.int64)
    for fold in folds:
        pred_probs[fold.indices] = fold.pred_probs
        labels[fold.indices] = fold.labels
    return Combined(pred_probs, labels, _summary(folds, pred_probs, labels, agreed))


def _check_fold(fold: FoldOutput, sum_atol: float) -> None:
    src = fold.source
    if fold.pred_probs.ndim != 2:
        raise InputError(src, "pred_probs.npy", f"expected a 2-D (rows, classes) array, got shape {fold.pred_probs.shape}")
    if not np.issubdtype(fold.pred_probs.dtype, np.floating):
        raise InputError(src, "pred_probs.npy", f"expected floating-point probabilities, got {fold.pred_probs.dtype}")
    n_rows = len(fold.pred_probs)
    for name, array in (("indices.npy", fold.indices), ("labels.npy", fold.labels)):
        if array.ndim != 1 or len(array) != n_rows or not np.issubdtype(array.dtype, np.integer):
            raise InputError(src, name, f"expected {n_rows} integers (one per pred_probs row), got {array.dtype} {array.shape}")
    finite = np.isfinite(fold.pred_probs)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise InputError(src, "pred_probs.npy", f"contains NaN or inf, first in row {row} (dataset row {fold.indices[row]})")
    if (fold.pred_probs < 0).any():
        row = int(np.flatnonzero((fold.pred_probs < 0).any(axis=1))[0])
        raise InputError(src, "pred_probs.npy", f"negative probability in row {row}")
    sums = fold.pred_probs.sum(axis=1, dtype=np.float64)
    off = np.flatnonzero(np.abs(sums - 1) > sum_atol)
    if len(off):
        raise InputError(src, "pred_probs.npy",
                         f"{len(off)} rows do not sum to 1 within {sum_atol}, first row {off[0]} sums to {sums[off[0]]:.6f}")
    for field in ("fold", *_AGREED_FIELDS):
        if field not in fold.metrics:
            raise InputError(src, f"metrics.json: {field}", "missing")
    k = fold.metrics["n_classes"]
    if fold.pred_probs.shape[1] != k:
        raise InputError(src, "pred_probs.npy", f"has {fold.pred_probs.shape[1]} columns, metrics.json says {k} classes")
    if n_rows and (fold.labels.min() < 0 or fold.labels.max() >= k):
        raise InputError(src, "labels.npy", f"labels must lie in [0, {k})")


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
        ({"fold": f.metrics["fold"], "n_heldout": int(len(f.indices)), "source": f.source,
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
