"""The fold split: today's scikit-learn rule and the 0.19-0.20 rule behind the published pred_probs."""

import numpy as np
import pytest
from clpipe.components.common.errors import InputError
from clpipe.components.fold_train.folds import FOLD_SPLITS, fold_indices
from sklearn.model_selection import KFold

from tests.conftest import CL_REPRODUCE

#: ImageFolder order of the seed's CIFAR-10 train split: 5,000 rows per class folder, classes in order.
TRUE_CLASSES = np.repeat(np.arange(10), 5000)
PUBLISHED = sorted(CL_REPRODUCE.glob("pyx__*.npy"))


def as_fold_of_row(held_out: list[np.ndarray], n: int) -> np.ndarray:
    fold = np.full(n, -1)
    for k, rows in enumerate(held_out):
        fold[rows] = k
    return fold


@pytest.mark.parametrize("split", FOLD_SPLITS)
def test_every_rule_is_a_stratified_partition(split):
    y = np.repeat(np.arange(5), [40, 41, 42, 43, 44])
    held_out = fold_indices(y, 4, seed=3, split=split)
    np.testing.assert_array_equal(np.sort(np.concatenate(held_out)), np.arange(len(y)))
    for rows in held_out:
        assert np.all(np.diff(rows) > 0)
        assert np.abs(np.bincount(y[rows], minlength=5) - np.bincount(y) / 4).max() <= 1


def test_sklearn_020_rule_is_one_kfold_per_class_each_with_a_fresh_stream():
    """Cross-check against scikit-learn's own KFold (its shuffling is unchanged since 0.19): in
    0.19-0.20 every class got ``KFold(K, shuffle=True, random_state=seed)`` over its rows."""
    y = np.repeat(np.arange(3), [13, 10, 13])[np.random.default_rng(0).permutation(36)]
    fold = as_fold_of_row(fold_indices(y, 4, seed=7, split="sklearn-0.20"), len(y))
    for cls in range(3):
        rows = np.flatnonzero(y == cls)
        expected = np.empty(len(rows), dtype=int)
        for k, (_, test) in enumerate(KFold(4, shuffle=True, random_state=7).split(np.zeros(len(rows)))):
            expected[test] = k
        np.testing.assert_array_equal(fold[rows], expected)
    # Classes of equal size are permuted alike: the 0.19-0.20 quirk that scikit-learn 0.21 removed.
    np.testing.assert_array_equal(fold[y == 0], fold[y == 2])


def test_the_rules_differ_on_the_seed_split():
    today = as_fold_of_row(fold_indices(TRUE_CLASSES, 4, 0, split="sklearn"), 50_000)
    old = as_fold_of_row(fold_indices(TRUE_CLASSES, 4, 0, split="sklearn-0.20"), 50_000)
    assert 0.7 < (today != old).mean() < 0.8  # about 3 in 4 rows change fold, as for unrelated splits


def test_unknown_rule_names_the_parameter():
    with pytest.raises(InputError, match="fold_split: must be one of"):
        fold_indices(TRUE_CLASSES, 4, 0, split="sklearn-0.21")


# --- the signature of the published pred_probs -----------------------------------------------------
#
# Each fold's held-out rows were scored by that fold's model, and four models differ a little in
# confidence. So under the split that produced a pred_probs file, the rows' mean max-probability
# differs between folds more than under a random split. Per class, the between-fold variance of that
# mean is compared with its distribution over random stratified splits (a z-score); classes 1-9 are
# averaged, because class 0 gets the same permutation under the 0.20 and 0.21 rules (both start with
# RandomState(0)). The statistic uses no labels: the seed's noisy labels were drawn from the same
# RandomState(0) permutations as the 0.21 rule's, so label-based statistics flag that rule too.

N_RANDOM_SPLITS = 200


def between_fold_variance(values: np.ndarray, fold: np.ndarray, n_folds: int = 4) -> np.ndarray:
    """Variance over folds of the per-fold mean, per class: (..., 10) for fold (..., 50000)."""
    fold = np.atleast_2d(fold)
    groups = (TRUE_CLASSES * n_folds + fold) + np.arange(len(fold))[:, None] * 10 * n_folds
    size = len(fold) * 10 * n_folds
    means = np.bincount(groups.ravel(), np.tile(values, len(fold)), size) / np.bincount(
        groups.ravel(), None, size
    )
    return means.reshape(len(fold), 10, n_folds).var(axis=2)


def random_stratified_folds(rng: np.random.Generator, n: int) -> np.ndarray:
    within = np.tile(np.arange(5000) % 4, (n, 10))
    return np.concatenate(
        [rng.permuted(within[:, c * 5000 : (c + 1) * 5000], axis=1) for c in range(10)], axis=1
    )


def shared_stream_folds(seed: int) -> np.ndarray:
    """The 0.21 rule, for contrast: one RandomState shared by the classes' KFold shuffles."""
    rng, fold = np.random.RandomState(seed), np.empty(50_000, dtype=int)
    for cls in range(10):
        order = np.arange(5000)
        rng.shuffle(order)
        fold[cls * 5000 + order] = np.arange(5000) // 1250
    return fold


@pytest.fixture(scope="module")
def random_folds():
    return random_stratified_folds(np.random.default_rng(0), N_RANDOM_SPLITS)


@pytest.mark.parametrize("pyx", PUBLISHED, ids=lambda p: p.stem.removeprefix("pyx__frac_zero_noise_rates__"))
def test_published_pred_probs_carry_the_sklearn_020_split(pyx, random_folds):
    confidence = np.load(pyx).astype(np.float32).max(axis=1)
    null = between_fold_variance(confidence, random_folds)
    candidates = {
        "sklearn-0.20": as_fold_of_row(fold_indices(TRUE_CLASSES, 4, 0, split="sklearn-0.20"), 50_000),
        "sklearn": as_fold_of_row(fold_indices(TRUE_CLASSES, 4, 0, split="sklearn"), 50_000),
        "0.21 rule": shared_stream_folds(0),
    }
    z = {
        name: ((between_fold_variance(confidence, f)[0] - null.mean(0)) / null.std(0))[1:].mean()
        for name, f in candidates.items()
    }
    print(pyx.stem, {k: round(float(v), 1) for k, v in z.items()})
    # A mean of nine z-scores of unrelated splits has a spread of about 1/3: 10 is far out of chance.
    assert z["sklearn-0.20"] > 10
    assert abs(z["sklearn"]) < 3 and abs(z["0.21 rule"]) < 3


def test_the_published_files_are_there():
    assert len(PUBLISHED) == 13, f"expected the 13 published pyx files in {CL_REPRODUCE}"
