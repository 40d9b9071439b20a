"""clpipe noisy-labels through its CLI: output contract, both condition syntaxes, bad input ->
exit 2 and nothing written."""

import json

import numpy as np
import pytest

from clpipe import cli as clpipe_cli


def make(dataset: str, out, *flags: str) -> int:
    """``clpipe noisy-labels`` with ``flags``; returns the exit code."""
    return clpipe_cli.main(["noisy-labels", "--dataset", dataset, *flags, "--out", str(out)])


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
