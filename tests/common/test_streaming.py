"""Training from packed shards (a split larger than memory): the trainers stream the rows batch by batch
and compute exactly what they compute on the same split in memory.

The proof is equality, not similarity: on the CPU the streamed loader draws the same order and the same
augmentation as the in-memory one, so a fold trained from shards predicts bit for bit what the fold
trained from the .npz predicts, and a Co-Teaching run ends with the same metrics. "Never whole in
memory" is checked by recording every read: no read asks for the whole split.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from clpipe.components.common import datasets, training
from clpipe.components.common.shards import ShardImages, ShardReader
from clpipe.components.coteach import cli as coteach_cli
from clpipe.components.fold_train import cli as fold_cli

from tests.prepared_data import digits_root, prepared

CPU = torch.device("cpu")
#: Train rows of the fixture; no read may ask for them all.
N_TRAIN = 600


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """600 train and 100 test digits at 32 px, prepared twice from one source: .npz and shards."""
    root = tmp_path_factory.mktemp("stream")
    source = digits_root(root / "src", train_per_class=60, test_per_class=10)
    return {fmt: prepared(source, root / fmt, 32, format=fmt) for fmt in ("npz", "shards")}


@pytest.fixture
def reads(monkeypatch):
    """The number of rows of every shard read made while the test runs."""
    sizes: list[int] = []
    read = ShardReader.read

    def recorded(self, rows):
        sizes.append(len(rows))
        return read(self, rows)

    monkeypatch.setattr(ShardReader, "read", recorded)
    return sizes


def _loader(pixels, labels, **kwargs):
    return training.make_loader(pixels, labels, batch_size=64, device=CPU, shuffle=True,
                                augment=training.Augment(pad=4, pad_mode="black"),
                                mean=(0.3, 0.3, 0.3), std=(0.3, 0.3, 0.3), order_seed=7, aug_seed=8,
                                min_last_batch=16, **kwargs)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_streamed_loader_gives_the_in_memory_loaders_batches(digits, workers):
    split = {fmt: datasets.open_split(p.dataset) for fmt, p in digits.items()}
    rows = np.arange(0, 600, 3)[::-1]  # a fold's rows, in a view's order
    labels = split["npz"].labels[rows]
    in_memory = _loader(split["npz"].pixels()[rows], labels)
    streamed = _loader(split["shards"].pixels()[rows], labels, workers=workers)
    assert isinstance(in_memory, training.DeviceLoader) and isinstance(streamed, training.StreamLoader)
    assert len(streamed) == len(in_memory) == 3  # 64 + 64 + 64; the last 8 are under min_last_batch
    for _ in range(2):  # a new order each epoch, the same in both
        for (x, y, r), (sx, sy, sr) in zip(in_memory, streamed, strict=True):
            assert torch.equal(sx, x) and torch.equal(sy, y) and torch.equal(sr, r)
    torch.testing.assert_close(streamed.head(5), in_memory.head(5), rtol=0, atol=0)


def test_a_fold_trained_from_shards_predicts_bit_for_bit_what_the_npz_fold_predicts(digits, reads, tmp_path):
    outs = {}
    for fmt, data in digits.items():
        outs[fmt] = tmp_path / fmt
        assert fold_cli.main(["--dataset", data.dataset, "--labels", data.labels, "--fold", "1", "--n-folds", "2",
                              "--arch", "resnet18", "--epochs", "1", "--batch-size", "32", "--no-progress",
                              "--device", "cpu", "--out", str(outs[fmt])]) == 0
    for name in ("indices.npy", "pred_probs.npy", "labels.npy"):
        np.testing.assert_array_equal(np.load(outs["shards"] / name), np.load(outs["npz"] / name))
    metrics = json.loads((outs["shards"] / "metrics.json").read_text())
    assert metrics["holdout_accuracy"] == json.loads((outs["npz"] / "metrics.json").read_text())["holdout_accuracy"]
    assert reads and max(reads) <= N_TRAIN // 2  # batches, the held-out half, the fingerprint's sample


def test_co_teaching_from_shards_ends_where_the_npz_run_ends(digits, reads, tmp_path):
    metrics = {}
    for fmt, data in digits.items():
        out = tmp_path / fmt
        assert coteach_cli.main(["--train-labels", data.labels, "--out", str(out), "--recipe", "fast", "--epochs",
                                 "1", "--cnn-width", "4", "--batch-size", "32", "--no-progress", "--device", "cpu",
                                 data.dataset]) == 0
        metrics[fmt] = json.loads((out / "metrics.json").read_text())
    for key in ("test_acc_1", "test_acc_2", "train_loss_1", "train_loss_2"):
        assert metrics["shards"]["curves"][key] == metrics["npz"]["curves"][key], key
    assert reads and max(reads) <= N_TRAIN // 2  # batches, the test split, the fingerprint's sample


def test_packed_images_fingerprint_like_the_same_images_in_memory(digits):
    from clpipe.components.common.checkpoints import image_fingerprint

    npz, shards = (datasets.open_split(p.dataset) for p in (digits["npz"], digits["shards"]))
    assert isinstance(shards.pixels(), ShardImages)
    assert image_fingerprint(shards.pixels()[5:400]) == image_fingerprint(npz.images()[5:400])
