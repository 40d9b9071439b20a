"""Keep-masks of the paper's five confident-learning methods, from labels and pred_probs.

Vocabulary (``docs/architecture.md``): N examples, K classes; ``labels`` (N,) are the given,
possibly noisy, labels in [0, K); ``pred_probs`` (N, K) are out-of-sample predicted
probabilities (rows of the fold combiner, or the seed's published ``pyx``). A *keep-mask*
is ``bool (N,)`` with **True = keep** (train on it), the negation of a label-issue mask,
exactly like the seed's ``train_pruned_<id>/train_mask.npy``.

The five methods, by the seed's folder ids (paper: Northcutt et al., JAIR 2021, §4 and
Table 2; ``../shared/notes/confident-learning.md`` §2):

============================  =====================  =========================================
id                            paper row              label issue when
============================  =====================  =========================================
``argmax``                    CL: C_confusion        argmax(pred_probs) != label
``conf_joint_only``           CL: C_{y~,y*}          the example is counted off the diagonal
                                                     of the confident joint
``cl_pbc``                    CL: PBC                prune by class
``cl_pbnr``                   CL: PBNR               prune by noise rate
``cl_both``                   CL: C+NR               flagged by both PBC and PBNR
============================  =====================  =========================================

Two semantics (``compat``):

* ``None`` -- **cleanlab 2.9**, the calls of the notes' §2 table (``find_label_issues`` with
  ``filter_by`` ``predicted_neq_given``/``prune_by_class``/``prune_by_noise_rate``/``both``;
  C_{y~,y*} from ``compute_confident_joint(..., return_indices_of_off_diagonals=True)``, not
  ``filter_by="confident_learning"``, which also drops rows whose argmax is the label).
  ``n_jobs=1``: at 50 000 x 10 worker processes only add start-up time (notes §7).
* ``"cleanlab-2021"`` -- the early-2021 ``get_noise_indices`` semantics that produced the
  seed's published masks, see :mod:`.compat2021`.

dtypes: float16, float32 and float64 are accepted and **never converted** before use,
because a cast changes results (float16 holds many exact ties; notes §3 item 4). In 2.9
mode cleanlab computes in the given dtype. In 2021 mode the confident joint, C_{y~,y*},
C_confusion and the final argmax step use the given dtype, and PBC/PBNR use a float32
copy (exact for float16, rounding float64), as the old multi-core code did. Masks made
from the same probabilities stored in different dtypes can therefore differ slightly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..common.checks import check_labels, check_pred_probs, check_same_rows
from ..common.errors import InputError
from ..common.methods import CL_METHODS, PAPER_NAMES
from .compat2021 import label_issues_2021

#: Method ids in the seed's order of the paper's table (names in ``common.methods``).
ALL_METHODS: tuple[str, ...] = CL_METHODS
#: ``compat`` value of the seed's semantics; ``None`` means today's cleanlab 2.9.
COMPAT_2021 = "cleanlab-2021"
SEMANTICS_29 = "cleanlab-2.9"
#: cleanlab 2.9 ``find_label_issues(filter_by=...)`` of each method that uses it.
_FILTER_BY_29 = {
    "argmax": "predicted_neq_given",
    "cl_pbc": "prune_by_class",
    "cl_pbnr": "prune_by_noise_rate",
    "cl_both": "both",
}


def semantics_name(compat: str | None) -> str:
    """The ``semantics`` value of ``summary.json`` for a ``compat`` setting."""
    return COMPAT_2021 if compat == COMPAT_2021 else SEMANTICS_29


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """The requested method ids, de-duplicated in order; unknown or none is an InputError."""
    unknown = [m for m in methods if m not in PAPER_NAMES]
    if unknown:
        raise InputError("methods", "", f"unknown method id(s) {unknown}; known: {list(ALL_METHODS)}")
    if not methods:
        raise InputError("methods", "", f"no method given; known: {list(ALL_METHODS)}")
    return tuple(dict.fromkeys(methods))


def check_compat(compat: str | None) -> None:
    if compat not in (None, COMPAT_2021):
        raise InputError("compat", "", f"must be {COMPAT_2021!r} or unset (cleanlab 2.9), got {compat!r}")


def check_inputs(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    labels_source: str = "labels",
    pred_probs_source: str = "pred_probs",
) -> None:
    """Raises :class:`InputError` naming the file and array for anything CL cannot use.

    The shared checks of :mod:`~..common.checks` (pred_probs: shape, dtype, finite, non-negative,
    rows summing to 1; labels: 1-D integers in [0, K) with K from pred_probs), plus what confident
    learning needs on top: the same N rows, and every class given at least once (the per-class
    threshold is the mean self-confidence of that class, notes §2).
    """
    check_pred_probs(pred_probs, pred_probs_source)
    check_labels(labels, pred_probs.shape[1], labels_source, every_class=True,
                 classes_from=f"{pred_probs_source} (its columns)")
    check_same_rows(len(labels), len(pred_probs), labels_source, pred_probs_source)


def make_masks(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    methods: Sequence[str] = ALL_METHODS,
    compat: str | None = None,
    labels_source: str = "labels",
    pred_probs_source: str = "pred_probs",
) -> dict[str, np.ndarray]:
    """Keep-masks (True = keep) of the requested methods.

    Args:
        labels: (N,) integer given labels in [0, K).
        pred_probs: (N, K) float16/32/64 out-of-sample probabilities, used in their dtype.
        methods: Method ids out of :data:`ALL_METHODS`.
        compat: ``None`` for cleanlab 2.9 semantics, :data:`COMPAT_2021` for the seed's.
        labels_source, pred_probs_source: Names used in :class:`InputError` messages.

    Returns:
        ``{method id: bool (N,) keep-mask}`` in the order of ``methods``.

    Raises:
        InputError: for invalid inputs, unknown methods or compat values (checked first).
    """
    methods = check_methods(methods)
    check_compat(compat)
    check_inputs(labels, pred_probs, labels_source=labels_source, pred_probs_source=pred_probs_source)
    labels = labels.astype(np.int64, copy=False)
    if compat == COMPAT_2021:
        issues = label_issues_2021(labels, pred_probs)
    else:
        issues = {m: label_issues_29(labels, pred_probs, m) for m in methods}
    return {m: ~issues[m] for m in methods}


def label_issues_29(labels: np.ndarray, pred_probs: np.ndarray, method: str) -> np.ndarray:
    """Label-issue mask of one method by the cleanlab 2.9 call of the notes' §2 table."""
    from cleanlab.count import compute_confident_joint
    from cleanlab.filter import find_label_issues

    if method == "conf_joint_only":
        _, off_diagonal = compute_confident_joint(labels, pred_probs, return_indices_of_off_diagonals=True)
        issues = np.zeros(len(labels), dtype=bool)
        issues[off_diagonal] = True
        return issues
    return find_label_issues(labels, pred_probs, filter_by=_FILTER_BY_29[method], n_jobs=1)


def summarize(keep_masks: Mapping[str, np.ndarray], labels: np.ndarray, n_classes: int) -> dict[str, dict]:
    """Per method: paper name, removed and kept counts, removed per class (by given label)."""
    return {
        method: {
            "paper_name": PAPER_NAMES[method],
            "removed": int((~keep).sum()),
            "kept": int(keep.sum()),
            "removed_per_class": np.bincount(labels[~keep], minlength=n_classes).tolist(),
        }
        for method, keep in keep_masks.items()
    }
