"""fold-train and combine-folds through their CLIs: outputs, exit codes, no partial output."""

import json

import numpy as np
import pytest
from clpipe.components.combine_folds import cli as combine_cli
from clpipe.components.fold_train import cli as fold_cli

FAST = ["--arch", "airbench-tiny", "--epochs", "1", "--batch-size", "64", "--subset-per-class", "12",
        "--n-folds", "3", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def fold_dirs(tmp_path_factory, cifar10_dir, clean_labels):
    root = tmp_path_factory.mktemp("folds")
    dirs = []
    for fold in range(3):
        out = root / f"fold{fold}"
        assert fold_cli.main(["--dataset", cifar10_dir, "--labels", clean_labels, "--fold", str(fold),
                              "--out", str(out), *FAST]) == 0
        dirs.append(out)
    return dirs


def test_fold_outputs_follow_the_contract(fold_dirs):
    out = fold_dirs[0]
    assert sorted(p.name for p in out.iterdir()) == [
        "clpipe-manifest.json", "indices.npy", "labels.npy", "metrics.json", "pred_probs.npy"
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_examples"] == 120 and metrics["n_folds"] == 3 and metrics["fold"] == 0
    assert metrics["dataset_fingerprint"] and metrics["labels_fingerprint"]
    # The seed's CIFAR-10 files carry no prepared.json: the seed's CIFAR-10 normalisation, at 32 px.
    assert metrics["normalisation"] == {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
    assert metrics["resolution"] == 32 and metrics["arch"] == metrics["arch_requested"] == "airbench-tiny"
    assert np.load(out / "pred_probs.npy").dtype == np.float32


def test_combine_cli(fold_dirs, tmp_path):
    out = tmp_path / "combined"
    assert combine_cli.main(["--out", str(out), *map(str, fold_dirs[::-1])]) == 0
    probs = np.load(out / "pred_probs.npy")
    assert probs.shape == (120, 10)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_folds"] == 3


def test_combine_refuses_a_fold_given_twice(fold_dirs, tmp_path, capsys):
    out = tmp_path / "combined"
    assert combine_cli.main(["--out", str(out), str(fold_dirs[0]), str(fold_dirs[0]), str(fold_dirs[1])]) == 2
    assert "ERROR combine-folds:" in capsys.readouterr().err
    assert not out.exists()


def test_combine_refuses_a_missing_fold_dir(fold_dirs, tmp_path, capsys):
    out = tmp_path / "combined"
    assert combine_cli.main(["--out", str(out), str(tmp_path / "nope"), *map(str, fold_dirs[1:])]) == 2
    assert "nope: output not found" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--fold", "7"], "fold: must lie in [0, 3)"),
    (["--fold", "0", "--labels", "/nonexistent/labels.json"], "/nonexistent/labels.json: file not found"),
    (["--fold", "0", "--epochs", "0"], "epochs: must be > 0"),
])
def test_fold_train_bad_input_exits_2_without_output(cifar10_dir, clean_labels, tmp_path, capsys, extra, message):
    out = tmp_path / "fold"
    args = ["--dataset", cifar10_dir, "--labels", clean_labels, "--out", str(out), *FAST]
    assert fold_cli.main(args + extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_fold_train_labels_of_another_dataset(cifar10_dir, tmp_path, capsys):
    labels = tmp_path / "l.json"
    labels.write_text(json.dumps({"train/airplane/1_airplane.png": 0}))
    out = tmp_path / "fold"
    assert fold_cli.main(["--dataset", cifar10_dir, "--labels", str(labels), "--fold", "0",
                          "--out", str(out), *FAST]) == 2
    assert "dataset files have no label" in capsys.readouterr().err
    assert not out.exists()
