"""clpipe combine-folds --given-pred-probs through its CLI: the view's rows, bad input -> exit 2."""

import json

import numpy as np

from clpipe import cli as clpipe_cli
from tests.conftest import condition_file


def make(dataset: str, out, *flags: str) -> int:
    """``clpipe noisy-labels`` with ``flags``; returns the exit code."""
    return clpipe_cli.main(["noisy-labels", "--dataset", dataset, *flags, "--out", str(out)])


def given_pred_probs(dataset: str, labels, pred_probs, out, *flags: str) -> int:
    """``clpipe combine-folds --given-pred-probs`` with ``flags``; returns the exit code."""
    argv = ["combine-folds", "--dataset", dataset, "--labels", str(labels)]
    return clpipe_cli.main([*argv, "--given-pred-probs", str(pred_probs), *flags, "--out", str(out)])


def test_given_labels_and_pred_probs(cifar10_dir, tmp_path):
    labels = tmp_path / "labels"
    given = condition_file("labels", 0.0, 0.2)
    assert make(cifar10_dir, labels, "--name", "pub", "--labels", str(given)) == 0
    assert json.loads((labels / "summary.json").read_text())["generated"] is False
    out = tmp_path / "probs"
    pyx = condition_file("pyx", 0.0, 0.2)
    assert given_pred_probs(cifar10_dir, labels, pyx, out, "--subset-per-class", "10") == 0
    assert np.load(out / "pred_probs.npy").shape == (100, 10)
    assert json.loads((out / "summary.json").read_text())["n_examples"] == 100


def test_given_pred_probs_for_another_split_size_exit_2(cifar10_dir, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((10, 10), 0.1, dtype=np.float32))
    labels = tmp_path / "labels"
    assert make(cifar10_dir, labels, "--name", "a", "--noise", "0.2") == 0
    out = tmp_path / "probs"
    assert given_pred_probs(cifar10_dir, labels, bad, out) == 2
    assert "bad.npy: pred_probs: expected shape (50000, 10)" in capsys.readouterr().err
    assert not out.exists()
