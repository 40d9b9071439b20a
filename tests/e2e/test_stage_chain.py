"""The four stages chained through their CLIs on a small real CIFAR-10 subset.

fold-train x K -> combine-folds -> make-masks -> coteach, each reading the previous
stage's output directory, exactly as the pipeline wires them. 40 % noise (the published
S=0.2, N=0.4 label file), 30 train images per class, 3 folds, 1 Co-Teaching epoch with a
narrow CNN: the point is the wiring and the contracts, not accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from clpipe.cli import main as clpipe
from tests.conftest import condition_file

pytestmark = pytest.mark.slow
SUBSET = ["--subset-per-class", "30", "--subset-seed", "1"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory, cifar10_dir):
    root = tmp_path_factory.mktemp("chain")
    labels = str(condition_file("labels", 0.2, 0.4))
    folds = []
    for k in range(3):
        out = root / f"fold{k}"
        assert clpipe(["fold-train", "--dataset", cifar10_dir, "--labels", labels, "--fold", str(k),
                       "--n-folds", "3", "--arch", "airbench-tiny", "--epochs", "2", "--batch-size", "64",
                       "--device", "cpu", "--no-progress", "--out", str(out), *SUBSET]) == 0
        folds.append(str(out))
    assert clpipe(["combine-folds", "--out", str(root / "cv"), *folds]) == 0
    assert clpipe(["make-masks", "--labels", str(root / "cv" / "labels.npy"),
                   "--pred-probs", str(root / "cv"), "--out", str(root / "masks")]) == 0
    assert clpipe(["coteach", "--train-labels", labels, "--train-mask", str(root / "masks"),
                   "--method", "cl_pbnr", "--epochs", "2", "--batch-size", "32", "--cnn-width", "16",
                   "--test-subset-per-class", "10", "--device", "cpu", "--no-progress",
                   "--out", str(root / "coteach"), *SUBSET, cifar10_dir]) == 0
    return root, labels


def test_combined_pred_probs_cover_the_subset(chain):
    root, _ = chain
    probs = np.load(root / "cv" / "pred_probs.npy")
    summary = json.loads((root / "cv" / "summary.json").read_text())
    assert probs.shape == (300, 10) and summary["n_examples"] == 300
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_given_labels_travel_with_the_predictions(chain, cifar10_dir):
    from clpipe.components.common.labels import open_train_view

    root, labels = chain
    _, given = open_train_view(cifar10_dir, labels, 30, 1)
    np.testing.assert_array_equal(np.load(root / "cv" / "labels.npy"), given)


def test_masks_have_the_seed_layout(chain):
    root, _ = chain
    summary = json.loads((root / "masks" / "summary.json").read_text())
    for method in ("argmax", "conf_joint_only", "cl_pbc", "cl_pbnr", "cl_both"):
        keep = np.load(root / "masks" / f"train_pruned_{method}" / "train_mask.npy")
        assert keep.dtype == bool and keep.shape == (300,)
        assert summary["methods"][method]["kept"] == int(keep.sum())


def test_coteaching_trained_on_the_kept_rows(chain):
    root, _ = chain
    metrics = json.loads((root / "coteach" / "metrics.json").read_text())
    kept = int(np.load(root / "masks" / "train_pruned_cl_pbnr" / "train_mask.npy").sum())
    assert metrics["method"] == "cl_pbnr" and metrics["n_train"] == kept
    assert metrics["n_test"] == 100
    curves = metrics["curves"]
    assert len(curves["test_acc_1"]) == len(curves["test_acc_2"]) >= 1
    assert 0.0 <= metrics["final"]["test_acc"] <= 1.0
