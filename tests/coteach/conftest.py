"""Small real CIFAR-10 views for the Co-Teaching tests (data in ../shared next to the repo)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from clpipe.components.common.datasets import open_split, subset_rows
from clpipe.components.common.labels import load_labels

from tests.conftest import CIFAR10
from tests.conftest import SHARED as DATA

#: Published noisy labels of the 20 % noise, sparsity 0 condition (real seed JSON).
NOISY_LABELS = (DATA / "cl-reproduce"
                / "cifar10_noisy_labels__frac_zero_noise_rates__0.0__noise_amount__0.2.json.gz")

TRAIN_PER_CLASS = 100  # 1000 train images
TEST_PER_CLASS = 50  # 500 test images


@dataclass(frozen=True)
class SmallCifar:
    train_images: np.ndarray
    given: np.ndarray  # noisy labels of the view
    true: np.ndarray  # dataset labels (the class folders = ground truth)
    test_images: np.ndarray
    test_labels: np.ndarray
    test_exact: np.ndarray
    keep: np.ndarray  # a mask in the make-masks convention (True = keep)


@pytest.fixture(scope="session")
def small_cifar() -> SmallCifar:
    if not (CIFAR10 / "cifar10_train.npz").exists() or not NOISY_LABELS.exists():
        pytest.skip(f"shared CIFAR-10 data not found under {DATA}")
    train = open_split(str(CIFAR10), "train")
    given = load_labels(str(NOISY_LABELS), train)
    rows = subset_rows(train.labels, TRAIN_PER_CLASS, 0)
    view = train.take(rows)
    test = open_split(str(CIFAR10), "test")
    test = test.take(subset_rows(test.labels, TEST_PER_CLASS, 0))
    # A pruning-like mask: drop a fixed random tenth of the rows.
    keep = np.random.default_rng(0).random(len(rows)) >= 0.1
    return SmallCifar(view.images(), given[rows], view.labels, test.images(), test.labels, test.exact, keep)
