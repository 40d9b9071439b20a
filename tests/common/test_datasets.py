import numpy as np
import pytest
from clpipe.components.common import datasets
from clpipe.components.common.errors import InputError

from tests.conftest import CL_REPRODUCE


def test_npz_rows_follow_the_published_imagefolder_order(cifar10_dir):
    split = datasets.open_split(cifar10_dir, "train")
    perm = np.load(CL_REPRODUCE / "cifar10_train_order.npy")
    assert len(split) == 50000
    np.testing.assert_array_equal(split._order, perm)
    assert split.names[0] == "airplane/10008_airplane.png"  # string order, not numeric
    assert split.names[1] == "airplane/10010_airplane.png"
    assert split.classes == datasets.CIFAR10_CLASSES
    assert np.all(np.diff(split.labels) >= 0)  # class-major


def test_test_split_keeps_exact_flags(cifar10_dir):
    test = datasets.open_split(cifar10_dir, "test")
    assert len(test) == 10000 and test.exact.sum() == 1017


def test_subset_is_stratified_and_repeatable():
    labels = np.repeat(np.arange(10), 50)
    a = datasets.subset_rows(labels, 7, seed=3)
    b = datasets.subset_rows(labels, 7, seed=3)
    c = datasets.subset_rows(labels, 7, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.bincount(labels[a]).tolist() == [7] * 10
    assert np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(datasets.subset_rows(labels, 0, seed=0), np.arange(500))


def test_imagefolder_export_round_trip(cifar10_dir, tmp_path):
    split = datasets.open_split(cifar10_dir, "train")
    small = split.take(datasets.subset_rows(split.labels, 3, seed=0))
    datasets.export_imagefolder(small, str(tmp_path), "train")
    back = datasets.open_split(str(tmp_path), "train")
    np.testing.assert_array_equal(back.names, small.names)
    np.testing.assert_array_equal(back.labels, small.labels)
    np.testing.assert_array_equal(back.images(), small.images())
    assert back.fingerprint() == small.fingerprint()


def test_npz_with_wrong_image_shape_names_file_and_field(tmp_path):
    bad = tmp_path / "bad_train.npz"
    np.savez(bad, images=np.zeros((4, 28, 28, 3), np.uint8), labels=np.zeros(4, np.int64))
    with pytest.raises(InputError, match=r"bad_train.npz: images: expected shape"):
        datasets.open_split(str(bad))


def test_npz_missing_labels_array(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, images=np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(InputError, match=r"x.npz: labels: missing array"):
        datasets.open_split(str(bad))


def test_directory_without_a_split(tmp_path):
    with pytest.raises(InputError, match="expected an ImageFolder root"):
        datasets.open_split(str(tmp_path), "train")
