"""clpipe noisy-labels through its CLI: output contract, both condition syntaxes, given
pred_probs, bad input -> exit 2 and nothing written."""

import json

import numpy as np
import pytest

from clpipe import cli as clpipe_cli
from tests.conftest import condition_file


def make(dataset: str, out, *flags: str) -> int:
    """``clpipe noisy-labels make`` with ``flags``; returns the exit code."""
    return clpipe_cli.main(["noisy-labels", "make", "--dataset", dataset, *flags, "--out", str(out)])


def given_pred_probs(dataset: str, labels, pred_probs, out, *flags: str) -> int:
    """``clpipe noisy-labels given-pred-probs`` with ``flags``; returns the exit code."""
    argv = ["noisy-labels", "given-pred-probs", "--dataset", dataset, "--labels", str(labels)]
    return clpipe_cli.main([*argv, "--pred-probs", str(pred_probs), *flags, "--out", str(out)])


def test_make_writes_the_contract(cifar10_dir, tmp_path):
    out = tmp_path / "labels"
    assert make(cifar10_dir, out, "--name", "s0.2_n0.4", "--noise", "0.4", "--sparsity", "0.2") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "clpipe-manifest.json", "labels.npy", "noise_matrix.npy", "summary.json"
    ]
    labels = np.load(out / "labels.npy")
    assert labels.dtype == np.int64 and labels.shape == (50000,)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["condition"]["name"] == "s0.2_n0.4" and summary["trace"] == 6
    assert summary["dataset_fingerprint"] and len(summary["classes"]) == 10
    assert np.load(out / "noise_matrix.npy").shape == (10, 10)


def test_condition_json_equals_the_flags(cifar10_dir, tmp_path):
    item = {"name": "g", "noise": 0.2, "sparsity": 0.0, "seed": 3, "labels": "", "pred_probs": ""}
    assert make(cifar10_dir, tmp_path / "a", "--condition", json.dumps(item)) == 0
    assert make(cifar10_dir, tmp_path / "b", "--name", "g", "--noise", "0.2", "--seed", "3") == 0
    np.testing.assert_array_equal(
        np.load(tmp_path / "a" / "labels.npy"), np.load(tmp_path / "b" / "labels.npy")
    )


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


@pytest.mark.parametrize(
    "extra",
    [
        ["--name", "x"],  # no noise, no labels
        ["--name", "x", "--noise", "0.8"],  # trace 1
        ["--name", "x", "--labels", "/nonexistent/labels.json"],
        ["--condition", "{not json"],
        ["--condition", '{"name": "x", "noise": 0.2}', "--noise", "0.2"],  # both syntaxes
    ],
)
def test_bad_input_exits_2_and_writes_nothing(cifar10_dir, tmp_path, capsys, extra):
    out = tmp_path / "labels"
    assert make(cifar10_dir, out, *extra) == 2
    assert "ERROR noisy-labels:" in capsys.readouterr().err
    assert not out.exists()


def test_given_pred_probs_for_another_split_size_exit_2(cifar10_dir, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((10, 10), 0.1, dtype=np.float32))
    labels = tmp_path / "labels"
    assert make(cifar10_dir, labels, "--name", "a", "--noise", "0.2") == 0
    out = tmp_path / "probs"
    assert given_pred_probs(cifar10_dir, labels, bad, out) == 2
    assert "bad.npy: pred_probs: expected shape (50000, 10)" in capsys.readouterr().err
    assert not out.exists()
