"""Confident learning with the semantics of early-2021 cleanlab, for bit-exact seed masks.

The published ``train_pruned_<method>/train_mask.npy`` files of the seed were made with
cleanlab as of early 2021 (``cleanlab.pruning.get_noise_indices`` and
``cleanlab.latent_estimation.compute_confident_joint``, commit d941d19f), called with the
default ``n_jobs`` on a multi-core machine, from the published **float16** ``pred_probs``
(``../shared/notes/confident-learning.md`` §1 and §3). Today's cleanlab (2.9) counts
differently, so this module re-implements the old rules from their description; no cleanlab
code is used or copied. Vocabulary as in :mod:`.logic`: N examples, K classes, given
(noisy) labels ``s``, ``pred_probs`` (N, K) out-of-sample probabilities.

What differs from cleanlab 2.9 (notes §3), and where it lives here:

1. *Value thresholds instead of exact counts* (§3 item 2): :func:`prune_by_class_2021`
   flags the examples strictly below a cut-off value, :func:`prune_by_noise_rate_2021` the
   examples at or above one, so ties at a cut-off change how many are flagged.
2. *dtype of the pruning step* (§3 item 3): with ``n_jobs > 1`` the old code shared the
   probabilities with its worker processes through a C ``float`` buffer, so PBC and PBNR
   ran on a **float32 copy** (exact for float16 input, rounded for float64 input), while
   the confident joint and the final argmax step used the array as given.
3. *Final argmax step* (§3 item 4): plain ``argmax`` (ties go to the lowest class index), no
   1e-6 nudge towards the given label.
4. *Minimum per class* (§3 item 5): classes with at most :data:`MIN_NUM_PER_CLASS` examples
   are not pruned, and the prune-count matrix keeps at least that many per class.
5. *Calibrated confident joint of that era* (§2): per-class thresholds are the mean
   self-confidence computed and compared **in the dtype of pred_probs**; an example counts
   in column ``argmax`` when several classes clear their thresholds; rows are rescaled to
   the label counts and rounded preserving row totals; no diagonal clip at 1.

Verified bit for bit against PyPI ``cleanlab==1.0`` (same pruning and latent-estimation
rules as d941d19f), run with the sort order of 2021 numpy, on all 13 published conditions
x 5 methods; see ``tests/make_masks/published_mask_facts.json`` and
``test_compat2021.py``.
"""

from __future__ import annotations

import numpy as np

#: Classes with at most this many given labels are never pruned (2021 ``MIN_NUM_PER_CLASS``).
MIN_NUM_PER_CLASS = 5
#: Slack below each per-class threshold when counting confident examples (2021 and 2.9 alike).
THRESHOLD_SLACK = 1e-6


def confident_joint_2021(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated confident joint C[s][y] and the rows counted off its diagonal.

    Computed in the dtype of ``pred_probs`` (float16 stays float16): the per-class threshold
    is ``mean(pred_probs[labels == k, k])`` rounded to that dtype, as ``np.mean`` returns it,
    and the comparison ``p >= threshold - 1e-6`` happens in that dtype too.

    Returns:
        (calibrated (K, K) int64 confident joint, rows of the off-diagonal examples sorted
        ascending) -- the second is the paper's C_{y~,y*} label-issue set.
    """
    n_classes = pred_probs.shape[1]
    thresholds = np.array(
        [pred_probs[labels == k, k].mean() for k in range(n_classes)], dtype=pred_probs.dtype
    )
    confident = pred_probs >= thresholds - THRESHOLD_SLACK
    n_confident = confident.sum(axis=1)
    guess = np.where(n_confident > 1, pred_probs.argmax(axis=1), confident.argmax(axis=1))
    counted = np.flatnonzero(n_confident > 0)
    joint = np.bincount(
        labels[counted] * n_classes + guess[counted], minlength=n_classes * n_classes
    ).reshape(n_classes, n_classes)
    off_diagonal = counted[guess[counted] != labels[counted]]
    return _calibrate(joint, np.bincount(labels, minlength=n_classes)), off_diagonal


def _calibrate(joint: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """Rescales each row to its label count and the whole to N, then rounds per row (§2)."""
    scaled = (joint.T / joint.sum(axis=1) * label_counts).T
    scaled = scaled / scaled.sum() * label_counts.sum()
    return np.stack([round_preserving_sum(row) for row in scaled])


def round_preserving_sum(values: np.ndarray) -> np.ndarray:
    """Rounds floats to ints whose sum is the rounded sum of the floats (2021 rule).

    Values are rounded half-to-even; while the total is off, the ``|difference|`` entries
    with the largest rounding loss (when short) or the smallest (when over) move by one.
    Ties in that order follow a stable ascending sort, read backwards when short -- what
    numpy's default sort did for the K <= 16 rows of the time (insertion sort).
    """
    floats = np.asarray(values, dtype=np.float64)
    ints = floats.round()
    target = floats.sum().round()
    while abs(ints.sum().round() - target) > 1e-6:
        diff = target - ints.sum().round()
        step = 1 if diff > 0 else -1
        order = np.argsort(floats - ints, kind="stable")[::-step]
        ints[order[: min(int(abs(diff)), len(ints))]] += step
    return ints.astype(np.int64)


def prune_counts_2021(confident_joint: np.ndarray) -> np.ndarray:
    """The prune-count matrix ``P[y][s]``: the transposed joint, keeping >= 5 per class.

    Where a diagonal entry (examples kept in class s) is below :data:`MIN_NUM_PER_CLASS` it is
    raised to it and the increase is taken evenly from that column's non-zero off-diagonal
    entries (floored at 0, then truncated to int, as the old ``astype(int)`` did).
    """
    counts = confident_joint.T.astype(np.float64)
    diagonal = np.diagonal(counts)
    raised = np.maximum(diagonal, MIN_NUM_PER_CLASS)
    per_column = np.maximum(np.count_nonzero(counts, axis=0) - 1.0, 1.0)
    counts = np.maximum(counts - (raised - diagonal) / per_column, 0.0)
    np.fill_diagonal(counts, raised)
    return counts.astype(np.int64)


def prune_by_class_2021(labels: np.ndarray, pred_probs32: np.ndarray, prune_counts: np.ndarray) -> np.ndarray:
    """PBC flags (before the argmax step): low self-confidence within each given class.

    For given class k with ``n_k = count_k - P[k][k]`` examples to remove, the cut-off is the
    value at 0-based position ``n_k`` of the sorted class-k self-confidences; examples
    **strictly below** it are flagged, so ties at the cut-off keep fewer than ``n_k`` out.
    """
    flagged = np.zeros(len(labels), dtype=bool)
    for k, rows in _prunable_classes(labels):
        n_remove = len(rows) - prune_counts[k, k]
        self_confidence = pred_probs32[rows, k]
        cut = np.partition(self_confidence, n_remove)[n_remove]
        flagged[rows[self_confidence < cut]] = True
    return flagged


def prune_by_noise_rate_2021(
    labels: np.ndarray, pred_probs32: np.ndarray, prune_counts: np.ndarray
) -> np.ndarray:
    """PBNR flags (before the argmax step): large margins towards each other class.

    For given class k and each other class j with ``m = P[j][k] > 0``, the margin
    ``p_j - p_k`` (computed in the float32 copy) of the class-k examples is cut at its m-th
    largest value; margins **at or above** the cut are flagged (union over j), so ties at
    the cut flag more than m.
    """
    flagged = np.zeros(len(labels), dtype=bool)
    for k, rows in _prunable_classes(labels):
        probs = pred_probs32[rows]
        for j in np.flatnonzero(prune_counts[:, k]):
            if j == k:
                continue
            m = prune_counts[j, k]
            margin = probs[:, j] - probs[:, k]
            cut = -np.partition(-margin, m - 1)[m - 1]
            flagged[rows[margin >= cut]] = True
    return flagged


def _prunable_classes(labels: np.ndarray):
    """(class, its rows) for the classes with more than MIN_NUM_PER_CLASS given labels."""
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels))
    for k, rows in enumerate(np.split(order, bounds[:-1])):
        if len(rows) > MIN_NUM_PER_CLASS:
            yield k, rows


def label_issues_2021(labels: np.ndarray, pred_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Label-issue masks (True = issue) of the five methods, 2021 semantics.

    ``argmax`` and ``conf_joint_only`` were computed outside ``get_noise_indices`` in the
    seed (plain ``argmax != label``; the raw off-diagonal rows of the confident joint), so
    they get no extra step; PBC, PBNR and C+NR drop flags whose plain argmax on the array
    *as given* equals the label.
    """
    joint, off_diagonal = confident_joint_2021(labels, pred_probs)
    prune_counts = prune_counts_2021(joint)
    probs32 = pred_probs.astype(np.float32)
    disagrees = pred_probs.argmax(axis=1) != labels
    by_class = prune_by_class_2021(labels, probs32, prune_counts) & disagrees
    by_noise_rate = prune_by_noise_rate_2021(labels, probs32, prune_counts) & disagrees
    conf_joint_only = np.zeros(len(labels), dtype=bool)
    conf_joint_only[off_diagonal] = True
    return {
        "argmax": disagrees,
        "conf_joint_only": conf_joint_only,
        "cl_pbc": by_class,
        "cl_pbnr": by_noise_rate,
        "cl_both": by_class & by_noise_rate,
    }
