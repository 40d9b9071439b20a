"""Which rows each fold holds out: ``StratifiedKFold(K, shuffle=True, random_state=seed)``, two ways.

The seed split its train set with ``StratifiedKFold(n_splits=K, shuffle=True,
random_state=cv_seed)`` stratified by the class folders. That call does not give the same
rows in every scikit-learn: its shuffling changed twice (0.19, 0.21) and its algorithm once
(0.22). ``split`` picks the rule:

- ``sklearn``: the installed scikit-learn's ``StratifiedKFold`` (the version is pinned in
  ``pyproject.toml``; the algorithm has been the same since 0.22).
- ``sklearn-0.20``: the assignment scikit-learn 0.19.0-0.20.4 made, re-implemented here
  (:func:`_sklearn_020_test_folds`), the split behind the paper's published ``pred_probs``.
  In those versions ``StratifiedKFold._make_test_folds`` ran one ``KFold(K, shuffle=True,
  random_state=seed)`` per class over ``max(count, K)`` placeholders and passed the *integer*
  seed to each, so every class was shuffled by a fresh ``RandomState(seed)``: classes of
  equal size got the same within-class permutation (scikit-learn PR #13124 changed that in
  0.21 to one ``RandomState`` shared across classes; #14704 replaced the algorithm in 0.22).
  0.20.x was the last scikit-learn for Python 2.7, which the seed ran.

The evidence (``tests/fold_train/test_folds.py``, all 13 published ``pred_probs``): per
class, the between-fold variance of the mean max-probability under the ``sklearn-0.20``
split stands out against 200 random stratified splits (mean z over classes 1-9: 17 to 574),
while today's split and the 0.21 rule look random (|z| < 1). A label-based statistic
misleads here: the seed's noisy labels were drawn from the same ``RandomState(0)``
permutations in class order as the 0.21 rule, so the 0.21 folds differ wildly in noise
rate and "accuracy against the given labels" points at the wrong rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..common.errors import InputError

#: Fold-split rules (see the module docstring).
FOLD_SPLITS = ("sklearn", "sklearn-0.20")


def check_n_folds(n_folds: int) -> None:
    """K-fold cross-validation needs K >= 2 (the one place this is checked: the pipeline's parameters, its
    fold plan and the fold trainer all call it)."""
    if n_folds < 2:
        raise InputError("n_folds", "", f"must be >= 2, got {n_folds}")


def fold_indices(
    stratify_labels: np.ndarray, n_folds: int, seed: int, *, split: str = "sklearn",
    classes: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Held-out rows of each fold, sorted, for a stratified shuffled K-fold split.

    Args:
        stratify_labels: (N,) int labels the folds are stratified by.
        n_folds: K, at least 2, at most the size of the smallest class.
        seed: ``random_state`` of the split.
        split: One of :data:`FOLD_SPLITS`.
        classes: Class names, to name the classes that are too small in the error (default: their ids).

    Returns:
        K arrays of row indices; together they hold every row exactly once.

    Raises:
        InputError: naming ``n_folds``, ``fold_split`` or the labels when the split is impossible.
    """
    check_n_folds(n_folds)
    if split not in FOLD_SPLITS:
        raise InputError("fold_split", "", f"must be one of {FOLD_SPLITS}, got {split!r}")
    stratify_labels = np.asarray(stratify_labels)
    counts = np.bincount(stratify_labels)
    smallest = counts[counts > 0].min()
    if smallest < n_folds:
        short = np.flatnonzero((counts > 0) & (counts < n_folds))
        named = [f"{k}" if classes is None else f"{k} ({classes[k]!r})" for k in short[:5]]
        listed = ", ".join(f"class {name} has {counts[k]} examples" for name, k in zip(named, short))
        more = f" and {len(short) - 5} more classes" if len(short) > 5 else ""
        raise InputError("labels", "", f"{listed}{more}, fewer than {n_folds} folds: lower n_folds or add examples")
    if split == "sklearn-0.20":
        test_fold = _sklearn_020_test_folds(stratify_labels, n_folds, seed)
        return [np.flatnonzero(test_fold == k) for k in range(n_folds)]
    from sklearn.model_selection import StratifiedKFold  # imported here: folds.py stays light

    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(stratify_labels)), stratify_labels)]


def _sklearn_020_test_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """(N,) fold of each row as scikit-learn 0.19-0.20 assigned it (read, not copied, from its
    ``StratifiedKFold._make_test_folds`` and ``KFold._iter_test_indices``).

    For each class in sorted order: its rows in row order are positions 0..count-1; a fresh
    ``RandomState(seed)`` shuffles ``range(max(count, n_folds))``; the shuffled sequence is
    cut into ``n_folds`` consecutive runs, the first ``len % n_folds`` runs one longer; a
    position in run k is held out by fold k (placeholders beyond ``count`` are dropped).
    """
    test_fold = np.empty(len(y), dtype=np.int64)
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        n_slots = max(len(rows), n_folds)
        shuffled = np.arange(n_slots)
        np.random.RandomState(seed).shuffle(shuffled)  # a fresh stream per class: the 0.19/0.20 behaviour
        sizes = np.full(n_folds, n_slots // n_folds)
        sizes[: n_slots % n_folds] += 1
        fold_of_position = np.empty(n_slots, dtype=np.int64)
        fold_of_position[shuffled] = np.repeat(np.arange(n_folds), sizes)
        test_fold[rows] = fold_of_position[: len(rows)]
    return test_fold
