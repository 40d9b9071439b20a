"""The checks of per-example arrays that every stage applies the same way.

Vocabulary (docs/architecture.md): N examples, K classes. ``labels`` are (N,) integers in
[0, K); ``pred_probs`` are (N, K) out-of-sample probabilities, each row summing to 1. Every
stage that reads one of these arrays -- from a file, a fold output or a pipeline artifact --
calls the function here, so an array is accepted or refused with the same words and the same
tolerance wherever it is read. A failed check raises :class:`~.errors.InputError` naming the
file (``source``) and the array (``field``).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .errors import InputError

#: Allowed |row sum - 1| of pred_probs, the one tolerance of clpipe. float16 rounding alone moves a
#: 10-class row by up to ~5e-3, and the seed's published rows were cut to 10 columns after saving
#: (``script_fix_pyx_sizes.py``): they sum to 0.986-1.0004. float32 softmax rows are within 1e-6.
ROW_SUM_ATOL = 0.02
#: pred_probs dtypes accepted and kept as they are (a cast changes results: float16 holds exact ties).
PROB_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def check_labels(
    values: np.ndarray, num_classes: int, source: str, field: str = "labels", *, every_class: bool = False,
    classes_from: str | None = None,
) -> np.ndarray:
    """(N,) labels as int64, after checking shape, dtype and range.

    Args:
        values: The labels as read.
        num_classes: K; every label must lie in [0, K).
        source, field: Named in the error (the file and the array in it).
        every_class: Also require each of the K classes to occur at least once (confident
            learning's per-class threshold is the mean self-confidence of the class).
        classes_from: Where K comes from when not from the labels' own dataset (e.g. the
            columns of a pred_probs file); a range error then names the class-count mismatch,
            since either file may be the wrong one (9-class pred_probs, 10-class labels).
    """
    mismatch = "" if classes_from is None else (
        f"; K = {num_classes} is the class count of {classes_from}: labels and pred_probs must count the "
        "same classes")
    values = np.asarray(values)
    if values.ndim != 1:
        raise InputError(source, field, f"expected a 1-D array of labels, got shape {values.shape}")
    if values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
        raise InputError(source, field, f"expected integer labels, got dtype {values.dtype}")
    outside = np.flatnonzero((values < 0) | (values >= num_classes))
    if len(outside):
        raise InputError(
            source, field,
            f"{len(outside)} labels outside [0, {num_classes}), first at row {outside[0]}: {values[outside[0]]}"
            + mismatch,
        )
    if every_class:
        missing = np.flatnonzero(np.bincount(values, minlength=num_classes) == 0)
        if len(missing):
            raise InputError(source, field, f"classes {missing.tolist()} have no examples; "
                             "every class needs at least one given label" + mismatch)
    return values.astype(np.int64, copy=False)


def check_pred_probs(pred_probs: np.ndarray, source: str, field: str = "pred_probs") -> None:
    """Refuses what confident learning cannot use: wrong shape or dtype, NaN/inf, negative
    values, rows not summing to 1 within :data:`ROW_SUM_ATOL` (logits instead of probabilities)."""
    if pred_probs.dtype not in PROB_DTYPES:
        raise InputError(source, field, f"expected float16/32/64 probabilities, got dtype {pred_probs.dtype}")
    if pred_probs.ndim != 2 or pred_probs.shape[0] < 1 or pred_probs.shape[1] < 2:
        raise InputError(source, field, "expected a 2-D (N, K) array: shape (N, K) with N >= 1 rows and "
                         f"K >= 2 classes, got shape {pred_probs.shape}")
    bad = np.flatnonzero(~np.isfinite(pred_probs).all(axis=1))
    if len(bad):
        raise InputError(source, field, f"contains NaN or inf, first in row {bad[0]} ({len(bad)} rows)")
    negative = np.flatnonzero((pred_probs < 0).any(axis=1))
    if len(negative):
        raise InputError(source, field, f"{len(negative)} rows hold negative values, first row {negative[0]}")
    sums = pred_probs.sum(axis=1, dtype=np.float64)
    off = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_ATOL)
    if len(off):
        raise InputError(
            source, field,
            f"{len(off)} rows do not sum to 1 (+-{ROW_SUM_ATOL}), first row {off[0]} sums to {sums[off[0]]:.6g} "
            "-- probabilities, not logits, are expected",
        )


def check_same_rows(n_labels: int, n_pred_probs: int, labels_source: str, pred_probs_source: str) -> None:
    """Labels and pred_probs must describe the same N examples."""
    if n_labels != n_pred_probs:
        raise InputError(labels_source, "labels", f"has {n_labels} rows but {pred_probs_source} has "
                         f"{n_pred_probs}: they must describe the same examples")


def fingerprint(*parts: np.ndarray | str | None) -> str:
    """Short sha256 of arrays and strings, to tell inputs apart (datasets, label files, masks).

    Arrays are hashed with their dtype and shape; integer arrays as little-endian int64, so the
    same labels stored as int32 or int64 give the same fingerprint. ``None`` hashes as a marker.
    """
    h = hashlib.sha256()
    for part in parts:
        if part is None:
            h.update(b"\0none")
        elif isinstance(part, str):
            h.update(b"\0str" + part.encode())
        else:
            array = np.ascontiguousarray(part)
            if np.issubdtype(array.dtype, np.integer):
                array = array.astype("<i8")
            h.update(b"\0arr" + str(array.dtype).encode() + str(array.shape).encode())
            h.update(array.tobytes())
    return h.hexdigest()[:16]
