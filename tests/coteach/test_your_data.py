"""clpipe coteach on a user's own data: classes (2 .. 1000) and resolution from the dataset, the dataset's
normalisation, and the better network exported with the run and applied by ``clpipe predict``."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from clpipe.components.common.datasets import open_split
from clpipe.components.common.model_files import load_model, read_card
from clpipe.components.coteach import cli as coteach_cli
from clpipe.components.coteach.checkpoint import load_checkpoint
from clpipe.components.coteach.export import better_net
from clpipe.components.predict.logic import normalise

from clpipe.cli import main as clpipe_main
from tests.prepared_data import colour_root, digits_root, prepared
from tests.stderr import not_logs

FAST = ["--cnn-width", "8", "--batch-size", "16", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def digits_32(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits32")
    return prepared(digits_root(root / "src", train_per_class=8, test_per_class=3), root / "p", 32)


@pytest.fixture(scope="module")
def digits_64_two_classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits64")
    return prepared(digits_root(root / "src", train_per_class=20, test_per_class=5, classes=2), root / "p", 64)


@pytest.fixture(scope="module")
def hundred_classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return prepared(colour_root(root / "src", classes=100, train_per_class=1, test_per_class=1), root / "p", 32)


def _run(data, out, *extra) -> dict:
    assert coteach_cli.main(["--train-labels", data.labels, "--out", str(out), *FAST, *extra, data.dataset]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def digits_run(digits_32, tmp_path_factory):
    """The fast recipe (normalised inputs), one epoch on digits at 32 px."""
    out = tmp_path_factory.mktemp("run") / "out"
    return out, _run(digits_32, out, "--recipe", "fast", "--epochs", "1")


def test_classes_resolution_and_normalisation_come_from_the_dataset(digits_run, digits_32):
    _, metrics = digits_run
    stats = digits_32.info["splits"]["train"]
    assert (metrics["n_classes"], metrics["resolution"], metrics["complete"]) == (10, 32, True)
    assert metrics["normalisation"] == {"mean": stats["mean"], "std": stats["std"]}


def test_the_better_network_is_exported_with_the_run(digits_run, digits_32):
    out, metrics = digits_run
    manifest = json.loads((out / "clpipe-manifest.json").read_text())
    assert {"model/model.safetensors", "model/model.json"} <= set(manifest["files"])
    card = read_card(str(out / "model"))
    net = better_net(metrics)
    assert card.architecture == "coteaching-cnn" and card.classes == tuple(digits_32.info["splits"]["train"]["classes"])
    assert (card.resolution, list(card.mean), list(card.std)) == (32, metrics["normalisation"]["mean"],
                                                                   metrics["normalisation"]["std"])
    assert card.arch_kwargs == {"width": 8, "dropout": 0.25, "dropout_at_eval": False}
    assert card.trained["net"] == net and card.trained["final_test_acc"] == metrics["curves"][f"test_acc_{net}"][-1]
    assert card.trained["dataset_fingerprint"] == metrics["dataset_fingerprint"] and card.trained["stage"] == "coteach"
    network, _ = load_model(str(out / "model"))
    trained = load_checkpoint((out / "checkpoint.pt").read_bytes(), "checkpoint.pt")[f"model{net}"]
    for name, tensor in trained.items():
        assert torch.equal(network.state_dict()[name], tensor), name


def test_better_net_ties_go_to_net_1():
    assert better_net({"curves": {"test_acc_1": [0.1, 0.5], "test_acc_2": [0.9, 0.5]}}) == 1
    assert better_net({"curves": {"test_acc_1": [0.9, 0.4], "test_acc_2": [0.1, 0.5]}}) == 2


def test_predict_applies_the_exported_model_as_trained(digits_run, digits_32, tmp_path, capsys):
    """The source PNGs (8x8) through clpipe predict give the probabilities of the exported network on the
    prepared test pixels: the same resize, the same normalisation, the same weights."""
    out, _ = digits_run
    test = open_split(digits_32.dataset, "test")
    assert clpipe_main(["predict", "--model", str(out / "model"), "--top-k", "10", *test.files.tolist()]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    network, card = load_model(str(out / "model"))
    with torch.no_grad():
        expected = torch.softmax(network(normalise(test.images(), card)), dim=1).numpy()
    assert [r["file"] for r in rows] == test.files.tolist()
    assert [r["predicted_label"] for r in rows] == [card.classes[k] for k in expected.argmax(1)]
    np.testing.assert_allclose([float(r["probability"]) for r in rows], expected.max(1), rtol=1e-4)


def test_two_classes_at_64_px_unnormalised_recipe(digits_64_two_classes, tmp_path):
    metrics = _run(digits_64_two_classes, tmp_path / "out", "--epochs", "2")  # feb2020: trains epoch 1
    assert (metrics["n_classes"], metrics["resolution"], metrics["normalisation"]) == (2, 64, None)
    card = read_card(str(tmp_path / "out" / "model"))
    assert card.classes == ("one", "zero") and card.resolution == 64
    assert (card.mean, card.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # feb2020 feeds pixels / 255


def test_a_hundred_classes(hundred_classes, tmp_path):
    metrics = _run(hundred_classes, tmp_path / "out", "--epochs", "2")
    assert metrics["n_classes"] == 100 and metrics["n_test"] == 100
    network, card = load_model(str(tmp_path / "out" / "model"))
    assert card.num_classes == 100 and network.l_c1.out_features == 100


def test_images_smaller_than_the_cnn_takes_are_refused(tmp_path, capsys):
    data = prepared(digits_root(tmp_path / "src", train_per_class=4, test_per_class=1, classes=2), tmp_path / "p", 16)
    assert coteach_cli.main(["--train-labels", data.labels, "--out", str(tmp_path / "out"), *FAST, "--epochs", "2",
                             data.dataset]) == 2
    err = not_logs(capsys.readouterr().err)
    assert len(err) == 1 and "16 px" in err[0] and "at least 28" in err[0], err
    assert not (tmp_path / "out").exists()


def test_packed_shards_train_exactly_as_the_npz(digits_64_two_classes, tmp_path_factory):
    """The same dataset prepared as litdata shards (the larger-than-memory form) gives the same run."""
    root = tmp_path_factory.mktemp("shards")
    source = digits_root(root / "src", train_per_class=20, test_per_class=5, classes=2)
    shards = prepared(source, root / "p", 64, format="shards")
    runs = {name: _run(data, root / name, "--recipe", "fast", "--epochs", "1")
            for name, data in (("npz", digits_64_two_classes), ("shards", shards))}
    for key in ("test_acc_1", "test_acc_2", "train_loss_1", "train_loss_2"):
        assert runs["npz"]["curves"][key] == runs["shards"]["curves"][key], key
    assert runs["npz"]["normalisation"] == runs["shards"]["normalisation"] is not None
