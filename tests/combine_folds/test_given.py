"""Given (pre-computed) pred_probs come out in the fold combiner's form, cut to the train view."""

import numpy as np
import pytest
from clpipe.components.combine_folds import logic
from clpipe.components.common.datasets import open_split, subset_rows
from clpipe.components.common.errors import InputError
from clpipe.components.common.labels import load_labels

from tests.conftest import condition_file


@pytest.fixture(scope="module")
def train(cifar10_dir):
    return open_split(cifar10_dir, "train")


def test_given_pred_probs_take_the_view_rows_and_keep_float16(train):
    labels = load_labels(str(condition_file("labels", 0.2, 0.4)), train)
    pyx = np.load(condition_file("pyx", 0.2, 0.4))
    rows = subset_rows(train.labels, 20, 0)
    combined = logic.given_pred_probs(
        pyx,
        labels,
        rows,
        source="pyx.npy",
        num_classes=10,
        dataset_fingerprint=train.take(rows).fingerprint(),
    )
    assert combined.pred_probs.dtype == np.float16
    np.testing.assert_array_equal(combined.pred_probs, pyx[rows])
    np.testing.assert_array_equal(combined.labels, labels[rows])
    summary = combined.summary
    assert summary["stage"] == "given-pred-probs" and summary["n_examples"] == 200 and summary["n_folds"] == 0
    assert (summary["source"], summary["url"]) == ("given", "pyx.npy")
    assert np.sum(summary["confusion_matrix"]) == 200
    assert summary["accuracy"] == pytest.approx((pyx[rows].argmax(1) == labels[rows]).mean())


def test_given_pred_probs_of_the_wrong_shape_are_refused(train):
    labels = train.labels
    with pytest.raises(InputError, match="whole train split"):
        logic.given_pred_probs(
            np.full((100, 10), 0.1),
            labels,
            np.arange(10),
            source="p.npy",
            num_classes=10,
            dataset_fingerprint="x",
        )
