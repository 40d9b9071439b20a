"""The input normalisation a trainer reads from a prepared dataset (prepared.json), and the CIFAR-10 fallback."""

from __future__ import annotations

import json

import pytest
from clpipe.components.common import storage
from clpipe.components.common.errors import InputError
from clpipe.components.common.prepare import PREPARED_INFO, train_statistics
from clpipe.components.common.training import CIFAR10_MEAN, CIFAR10_STD, input_normalisation

from tests.prepared_data import digits_root, prepared


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    return digits_root(root / "src", train_per_class=3, test_per_class=1, classes=2), root


@pytest.mark.parametrize("form", ["npz", "shards"])
def test_read_from_the_prepared_folder_or_its_train_split(digits, form):
    source, root = digits
    data = prepared(source, root / form, 32, format=form)
    stats = data.info["splits"]["train"]
    expected = (tuple(stats["mean"]), tuple(stats["std"]))
    split = "train.npz" if form == "npz" else "train"
    assert train_statistics(data.dataset) == train_statistics(f"{data.dataset}/{split}") == expected
    assert input_normalisation(expected) == expected


def test_a_dataset_that_was_not_prepared_has_none_and_trains_with_cifar10s(digits, cifar10_dir):
    source, _ = digits
    assert train_statistics(str(source)) is None and train_statistics(cifar10_dir) is None
    assert input_normalisation(None) == (CIFAR10_MEAN, CIFAR10_STD)


def test_a_channel_that_does_not_vary_is_refused(tmp_path):
    info = {"splits": {"train": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.0, 0.2]}}}
    with storage.staged_output(str(tmp_path / "p"), stage="prepare") as tmp:
        storage.write_bytes(storage.join(tmp, PREPARED_INFO), json.dumps(info).encode())
    with pytest.raises(InputError) as e:
        train_statistics(str(tmp_path / "p"))
    assert e.value.field == "splits.train.std" and e.value.source.endswith(PREPARED_INFO)
