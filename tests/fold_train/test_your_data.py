"""fold-train on a user's own data: the network follows the dataset's resolution (arch auto), its
head the number of classes (2 .. 1000), its input normalisation the dataset's own statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clpipe.components.common.errors import InputError
from clpipe.components.fold_train import cli as fold_cli
from clpipe.components.fold_train.recipes import network_for

from tests.prepared_data import colour_root, digits_root, prepared
from tests.stderr import not_logs

FAST = ["--epochs", "1", "--batch-size", "32", "--n-folds", "2", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def digits_32(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits32")
    return prepared(digits_root(root / "src", train_per_class=6, test_per_class=2), root / "p", 32)


@pytest.fixture(scope="module")
def digits_64_two_classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits64")
    return prepared(digits_root(root / "src", train_per_class=10, test_per_class=4, classes=2), root / "p", 64)


@pytest.fixture(scope="module")
def hundred_classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return prepared(colour_root(root / "src", classes=100, train_per_class=2, test_per_class=1), root / "p", 32)


def _train(data, out, *extra) -> dict:
    assert fold_cli.main(["--dataset", data.dataset, "--labels", data.labels, "--fold", "0", "--out", str(out),
                          *FAST, *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def _check_fold(out, metrics, data, n_classes):
    stats = data.info["splits"]["train"]
    assert metrics["n_classes"] == n_classes and metrics["classes"] == stats["classes"]
    assert metrics["normalisation"] == {"mean": stats["mean"], "std": stats["std"]}
    probs = np.load(out / "pred_probs.npy")
    assert probs.shape == (metrics["n_heldout"], n_classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_auto_at_32_px_is_airbench94_with_the_datasets_normalisation(digits_32, tmp_path):
    metrics = _train(digits_32, tmp_path / "f", "--arch", "auto")
    assert (metrics["arch"], metrics["arch_requested"], metrics["resolution"]) == ("airbench94", "auto", 32)
    assert metrics["recipe"]["schedule"] == "airbench"
    _check_fold(tmp_path / "f", metrics, digits_32, 10)


def test_auto_at_64_px_with_two_classes_is_a_resnet18(digits_64_two_classes, tmp_path):
    metrics = _train(digits_64_two_classes, tmp_path / "f", "--arch", "auto")
    assert (metrics["arch"], metrics["resolution"], metrics["n_classes"]) == ("resnet18", 64, 2)
    _check_fold(tmp_path / "f", metrics, digits_64_two_classes, 2)


def test_a_hundred_classes(hundred_classes, tmp_path):
    metrics = _train(hundred_classes, tmp_path / "f", "--arch", "airbench-tiny")
    assert metrics["arch"] == "airbench-tiny" and metrics["n_heldout"] == 100
    _check_fold(tmp_path / "f", metrics, hundred_classes, 100)


def test_airbench_on_64_px_is_refused_naming_the_flag(digits_64_two_classes, tmp_path, capsys):
    out = tmp_path / "f"
    assert fold_cli.main(["--dataset", digits_64_two_classes.dataset, "--labels", digits_64_two_classes.labels,
                          "--fold", "0", "--out", str(out), *FAST, "--arch", "airbench-tiny"]) == 2
    err = not_logs(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("ERROR fold-train: --arch") and "32 px" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(("arch", "resolution", "network"), [
    ("auto", 32, "airbench94"), ("auto", 64, "resnet18"), ("auto", 96, "resnet18"), ("auto", 224, "resnet50"),
    ("resnet50", 32, "resnet50"), ("airbench-tiny", 32, "airbench-tiny"), ("resnet18", 32, "resnet18"),
])
def test_network_for(arch, resolution, network):
    assert network_for(arch, resolution) == network


@pytest.mark.parametrize(("arch", "resolution", "field"), [
    ("auto", 16, "dataset"), ("airbench94", 64, "arch"), ("vgg", 32, "arch"),
])
def test_network_for_refuses(arch, resolution, field):
    with pytest.raises(InputError) as e:
        network_for(arch, resolution)
    assert e.value.source == field


def test_packed_shards_train_exactly_as_the_npz(digits_64_two_classes, tmp_path_factory):
    """The same dataset prepared as litdata shards (the larger-than-memory form) gives the same fold."""
    root = tmp_path_factory.mktemp("shards")
    source = digits_root(root / "src", train_per_class=10, test_per_class=4, classes=2)
    shards = prepared(source, root / "p", 64, format="shards")
    assert shards.info["splits"]["train"]["format"] == "shards"
    outs = {}
    for name, data in (("npz", digits_64_two_classes), ("shards", shards)):
        outs[name] = root / name
        _train(data, outs[name], "--arch", "auto")
    for file in ("indices.npy", "pred_probs.npy"):
        np.testing.assert_array_equal(np.load(outs["npz"] / file), np.load(outs["shards"] / file))


def test_classes_too_small_for_the_folds_are_named(digits_64_two_classes, tmp_path, capsys):
    data = digits_64_two_classes
    argv = ["--dataset", data.dataset, "--labels", data.labels, "--fold", "0", "--out", str(tmp_path / "f"),
            "--epochs", "1", "--n-folds", "11", "--no-progress", "--device", "cpu"]
    assert fold_cli.main(argv) == 2
    err = not_logs(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("ERROR fold-train: --labels: "), err
    assert "class 0 ('one') has 10 examples, class 1 ('zero') has 10 examples, fewer than 11 folds" in err[0]
    assert not (tmp_path / "f").exists()
