import gzip
import json

import numpy as np
import pytest
from clpipe.components.common import datasets, labels
from clpipe.components.common.errors import InputError

from tests.conftest import condition_file


@pytest.fixture(scope="module")
def train(cifar10_dir):
    return datasets.open_split(cifar10_dir, "train")


@pytest.fixture(scope="module")
def published():
    with gzip.open(condition_file("labels", 0.2, 0.4), "rt") as f:
        return json.load(f)


def test_published_json_lines_up_with_the_dataset(train):
    url = str(condition_file("labels", 0.2, 0.4))
    given = labels.load_labels(url, train)
    with gzip.open(url, "rt") as f:
        in_file_order = np.array(list(json.load(f).values()))
    np.testing.assert_array_equal(given, in_file_order)  # the file's own order is ImageFolder order
    assert 0.39 < (given != train.labels).mean() < 0.41  # 40 % noise, true labels = class folders
    np.testing.assert_array_equal(labels.load_labels_in_file_order(url), given)


def test_npy_labels(train, tmp_path):
    path = tmp_path / "y.npy"
    np.save(path, train.labels)
    np.testing.assert_array_equal(labels.load_labels(str(path), train), train.labels)
    np.save(path, train.labels[:10])
    with pytest.raises(InputError, match=r"y.npy: labels: has 10 rows"):
        labels.load_labels(str(path), train)


def test_missing_and_extra_keys_are_both_reported(train, published, tmp_path):
    data = dict(published)
    removed = next(iter(data))
    del data[removed]
    data["/x/train/airplane/99999_airplane.png"] = 0
    path = tmp_path / "l.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as e:
        labels.load_labels(str(path), train)
    msg = str(e.value)
    assert "l.json: keys:" in msg and "1 dataset files have no label" in msg and "99999_airplane.png" in msg
    assert removed.split("/train/")[1] in msg


def test_out_of_range_and_non_integer_values(train, published, tmp_path):
    data = dict(published)
    key = next(iter(data))
    path = tmp_path / "l.json"
    path.write_text(json.dumps({**data, key: 10}))
    with pytest.raises(InputError, match=r"labels outside \[0, 10\)"):
        labels.load_labels(str(path), train)
    path.write_text(json.dumps({**data, key: "cat"}))
    with pytest.raises(InputError, match=r"value of .*labels must be integers"):
        labels.load_labels(str(path), train)


def test_unreadable_files(train, tmp_path):
    path = tmp_path / "l.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        labels.load_labels(str(path), train)
    with pytest.raises(InputError, match="file not found"):
        labels.load_labels(str(tmp_path / "nope.json"), train)
    with pytest.raises(InputError, match=r"must be .json, .json.gz or .npy"):
        labels.load_labels(str(tmp_path / "y.csv"), train)
