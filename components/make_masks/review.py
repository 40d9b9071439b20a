"""What a person acts on: ranked label issues, per-class counts, the noise estimate, cleaned labels.

Pure functions (arrays in, a :class:`~..common.artifacts.Review` out), computed from the same
given labels and out-of-sample pred_probs as the keep-masks, plus the rows' names and the
class names. Vocabulary as in :mod:`.logic`: N examples, K classes.

- **Ranking**: cleanlab's ``rank.get_label_quality_scores`` with its default
  ``self_confidence`` method, i.e. ``pred_probs[i, given_i]``: the probability an
  out-of-sample model gives the label the example carries. The table is sorted by it,
  ascending (worst first), ties by row. cleanlab's docs recommend self-confidence for ranking
  the issues that ``find_label_issues`` finds; clpipe ranks *every* row, so a reviewer can
  go past the flagged set.
- **Suggested label**: the argmax of pred_probs (cleanlab's suggestion for a flagged row).
- **Noise matrix**: ``cleanlab.count.estimate_latent`` of the calibrated confident joint:
  ``P(given = i | true = j)``, the same convention as noisy-labels' ``noise_matrix.npy``.
- **Cleaned labels**: for each method, the seed's JSON (row name -> label) without the rows
  it flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..common.artifacts import LabelIssues, Review
from ..common.errors import InputError

#: The method whose flags fill ``is_label_issue`` unless another is chosen: cleanlab's default
#: ``find_label_issues(filter_by="prune_by_noise_rate")``.
DEFAULT_ISSUE_METHOD = "cl_pbnr"


def check_issue_method(issue_method: str, methods: Sequence[str]) -> None:
    if issue_method not in methods:
        raise InputError("issue_method", "", f"{issue_method!r} is not among the computed methods {list(methods)}")


def label_quality(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """(N,) cleanlab label quality scores in [0, 1] (self-confidence), float64."""
    from cleanlab.rank import get_label_quality_scores

    return get_label_quality_scores(labels, pred_probs.astype(np.float64, copy=False)).astype(np.float64)


def estimated_noise_matrix(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """(K, K) ``P(given = i | true = j)`` estimated by confident learning."""
    from cleanlab.count import compute_confident_joint, estimate_latent

    joint = compute_confident_joint(labels, pred_probs)
    _, noise_matrix, _ = estimate_latent(joint, labels)
    return noise_matrix


def build_review(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    keep_masks: Mapping[str, np.ndarray],
    *,
    issue_method: str,
    names: np.ndarray,
    files: np.ndarray,
    classes: Sequence[str],
) -> Review:
    """The review files of one make-masks run.

    Args:
        labels: (N,) given labels in [0, K).
        pred_probs: (N, K) out-of-sample probabilities (already checked).
        keep_masks: method id -> (N,) keep-mask (True = keep), as make-masks computed them.
        issue_method: The method whose flags are ``is_label_issue``.
        names: (N,) row names (keys of the cleaned label JSON).
        files: (N,) where each image is (the ``file`` column).
        classes: The K class names.
    """
    check_issue_method(issue_method, list(keep_masks))
    classes = np.asarray(classes, dtype=str)
    quality = label_quality(labels, pred_probs)
    suggested = pred_probs.argmax(axis=1)
    order = np.lexsort((np.arange(len(labels)), quality))  # worst first, ties by row
    flagged = {m: ~keep for m, keep in keep_masks.items()}
    columns = {
        "file": np.asarray(files, dtype=str)[order],
        "given_label": classes[labels][order],
        "suggested_label": classes[suggested][order],
        "label_quality": quality[order],
        "is_label_issue": flagged[issue_method][order],
        "row": order.astype(np.int64),
        **{m: f[order] for m, f in flagged.items()},
    }
    table = LabelIssues(columns, tuple(keep_masks))
    return Review(
        label_issues=table,
        per_class=per_class_counts(labels, suggested, flagged, issue_method, classes),
        noise_matrix=estimated_noise_matrix(labels, pred_probs),
        cleaned_labels={m: cleaned_labels(names, labels, keep) for m, keep in keep_masks.items()},
    )


def per_class_counts(labels: np.ndarray, suggested: np.ndarray, flagged: Mapping[str, np.ndarray],
                     issue_method: str, classes: np.ndarray) -> dict[str, list]:
    """One row per class: given count, issues (of ``issue_method``) among them, their share, how
    many flagged rows of *other* classes are suggested to be this class, and each method's count."""
    k = len(classes)
    given = np.bincount(labels, minlength=k)
    issues = flagged[issue_method]
    n_issues = np.bincount(labels[issues], minlength=k)
    return {
        "class": classes.tolist(),
        "given": given.tolist(),
        "label_issues": n_issues.tolist(),
        "issue_fraction": [round(float(i) / g, 6) if g else 0.0 for i, g in zip(n_issues, given)],
        "suggested_here": np.bincount(suggested[issues], minlength=k).tolist(),
        **{f"flagged_{m}": np.bincount(labels[f], minlength=k).tolist() for m, f in flagged.items()},
    }


def cleaned_labels(names: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> dict[str, int]:
    """The seed's label JSON (row name -> given label) of the kept rows, in row order."""
    return {str(n): int(y) for n, y in zip(names[keep], labels[keep])}
