"""Datasets a user brings: ImageFolders of any image size and format, manifests, packed .npz files,
and every bad input among them (one InputError naming the file)."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
from clpipe.components.common import datasets, image_files
from clpipe.components.common.errors import InputError

from tests.your_data import (
    DIGIT_NAMES,
    MIXED_FILES,
    digits_imagefolder,
    mixed_imagefolder,
    png,
    write_manifest,
)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_imagefolder(tmp_path_factory.mktemp("digits"), noise=0.1, seed=0)


# --- ImageFolder ----------------------------------------------------------------------------------


def test_digits_keep_class_names_rows_and_native_size(digits):
    split = datasets.open_split(str(digits.root), "train")
    assert len(split) == 1797
    assert split.classes == tuple(sorted(DIGIT_NAMES))  # eight, five, four, ... zero
    assert split.names[0].startswith("eight/")
    assert [split.classes[k] for k in split.labels[:3]] == [n.split("/")[0] for n in split.names[:3]]
    images = split.images()
    assert images.shape == (1797, 8, 8, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grayscale expanded to RGB
    assert split.files[0] == os.path.join(str(digits.root), "train", split.names[0])


def test_resolution_resizes_once_and_keeps_rows(digits):
    native = datasets.open_split(str(digits.root), "train")
    big = datasets.open_split(str(digits.root), "train", resolution=32)
    assert big.images().shape == (1797, 32, 32, 3)
    np.testing.assert_array_equal(big.names, native.names)
    assert big.fingerprint() == native.fingerprint()


def test_mixed_sizes_formats_and_modes_need_a_resolution(tmp_path):
    root = mixed_imagefolder(tmp_path)
    split = datasets.open_split(str(root), "train")
    assert split.classes == ("cat", "dog")
    assert len(split) == 2 * (len(MIXED_FILES) + 1)  # notes.txt is not an image
    with pytest.raises(InputError, match="different sizes need a training resolution"):
        split.images()
    images = datasets.open_split(str(root), "train", resolution=24).images()
    assert images.shape == (len(split), 24, 24, 3)


def test_transparency_becomes_white_and_exif_rotation_is_applied(tmp_path):
    from PIL import Image

    folder = tmp_path / "train" / "icons"
    folder.mkdir(parents=True)
    (folder / "clear.png").write_bytes(png(np.zeros((6, 6, 4), np.uint8), "RGBA"))
    (tmp_path / "train" / "other").mkdir()
    mixed_imagefolder(tmp_path / "m")
    rotated = (tmp_path / "m" / "train" / "cat" / "rotated.jpg").read_bytes()
    assert Image.open(__import__("io").BytesIO(rotated)).size == (40, 20)
    from clpipe.components.common.imaging import decode_image

    assert decode_image(rotated, "r.jpg").shape == (40, 20, 3)  # displayed upright: 20 wide, 40 high
    (tmp_path / "train" / "other" / "x.png").write_bytes(png(np.zeros((6, 6, 3), np.uint8)))
    images = datasets.open_split(str(tmp_path), "train").images()
    assert (images[0] == 255).all()  # 'icons/clear.png': fully transparent -> white, not black


def test_a_png_changed_in_place_is_decoded_again(tmp_path):
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    (tmp_path / "train" / "b").mkdir()
    (tmp_path / "train" / "b" / "y.png").write_bytes(png(np.zeros((4, 4, 3), np.uint8)))
    target = folder / "x.png"
    target.write_bytes(png(np.zeros((4, 4, 3), np.uint8)))
    assert datasets.open_split(str(tmp_path)).images()[0].max() == 0
    target.write_bytes(png(np.full((4, 4, 3), 200, np.uint8)))
    os.utime(target, ns=(1, 1))  # even with an older modification time: the size changed
    assert datasets.open_split(str(tmp_path)).images()[0].max() == 200


def test_truncated_png_is_named_once(tmp_path):
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    (tmp_path / "train" / "b").mkdir()
    (tmp_path / "train" / "b" / "ok.png").write_bytes(png(np.zeros((4, 4, 3), np.uint8)))
    bad = folder / "broken.png"
    bad.write_bytes(png(np.full((32, 32, 3), 7, np.uint8))[:60])
    with pytest.raises(InputError) as e:
        datasets.open_split(str(tmp_path)).images()
    assert e.value.source == str(bad)
    assert "not a readable image" in e.value.problem


def test_wrong_size_image_names_its_path_once(tmp_path):
    for cls, size in (("a", 4), ("b", 5)):
        (tmp_path / "train" / cls).mkdir(parents=True)
        (tmp_path / "train" / cls / "x.png").write_bytes(png(np.zeros((size, size, 3), np.uint8)))
    with pytest.raises(InputError) as e:
        datasets.open_split(str(tmp_path)).images()
    assert e.value.source == str(tmp_path / "train" / "b" / "x.png")
    assert str(tmp_path) not in e.value.problem.replace(str(tmp_path / "train" / "a" / "x.png"), "")


def test_two_and_a_hundred_classes(tmp_path):
    for k in range(100):
        (tmp_path / "h" / "train" / f"c{k:03d}").mkdir(parents=True)
        for i in range(2):
            (tmp_path / "h" / "train" / f"c{k:03d}" / f"{i}.png").write_bytes(png(np.full((4, 4, 3), k, np.uint8)))
    hundred = datasets.open_split(str(tmp_path / "h"))
    assert hundred.num_classes == 100 and len(hundred) == 200
    assert hundred.images()[hundred.labels == 42].max() == 42
    digits = digits_imagefolder(tmp_path / "d", classes=2, noise=0.0)
    assert datasets.open_split(str(digits.root)).classes == ("one", "zero")


def test_a_single_class_is_refused(tmp_path):
    (tmp_path / "train" / "only").mkdir(parents=True)
    (tmp_path / "train" / "only" / "x.png").write_bytes(png(np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(InputError, match="1 classes; clpipe needs between 2 and 1000"):
        datasets.open_split(str(tmp_path))


def test_test_split_uses_the_train_classes(tmp_path):
    for split, classes in (("train", ("a", "b", "c")), ("test", ("a", "c"))):
        for cls in classes:
            (tmp_path / split / cls).mkdir(parents=True)
            (tmp_path / split / cls / "x.png").write_bytes(png(np.zeros((4, 4, 3), np.uint8)))
    test = datasets.open_split(str(tmp_path), "test")
    assert test.classes == ("a", "b", "c") and test.labels.tolist() == [0, 2]
    (tmp_path / "test" / "zebra").mkdir()
    (tmp_path / "test" / "zebra" / "x.png").write_bytes(png(np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(InputError, match=r"class folders: unknown class\(es\) 'zebra'"):
        datasets.open_split(str(tmp_path), "test")


def test_too_few_examples_for_k_folds_names_the_class(digits):
    split = datasets.open_split(str(digits.root))
    datasets.check_examples_per_class(split.labels, split.classes, 4, "labels", "4 folds need 4 per class")
    labels = split.labels.copy()
    labels[labels == split.classes.index("seven")] = 0
    labels[0] = split.classes.index("seven")
    with pytest.raises(InputError, match=r"'seven' has 1\); 4 folds need 4 per class"):
        datasets.check_examples_per_class(labels, split.classes, 4, "labels", "4 folds need 4 per class")


# --- manifests -----------------------------------------------------------------------------------


def _pngs(folder, n, value=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i}.png").write_bytes(png(np.full((5, 5, 3), value + i, np.uint8)))


def test_csv_manifest_with_class_names_and_relative_paths(tmp_path):
    _pngs(tmp_path / "imgs", 4)
    manifest = write_manifest(tmp_path / "labels.csv", [("imgs/3.png", "dog"), ("imgs/0.png", "cat"),
                                                         ("imgs/1.png", "dog"), (str(tmp_path / "imgs/2.png"), "cat")])
    split = datasets.open_split(str(manifest))
    assert split.classes == ("cat", "dog")
    # ImageFolder order: class, then the name as a string ('/' sorts before 'i')
    assert split.names.tolist() == [str(tmp_path / "imgs/2.png"), "imgs/0.png", "imgs/1.png", "imgs/3.png"]
    assert split.labels.tolist() == [0, 0, 1, 1]
    assert split.images()[:, 0, 0, 0].tolist() == [2, 0, 1, 3]


def test_jsonl_manifest_with_integer_ids_and_classes_txt(tmp_path):
    _pngs(tmp_path, 3)
    manifest = write_manifest(tmp_path / "m.jsonl", [("0.png", 1), ("1.png", 0), ("2.png", 1)], column="path")
    assert datasets.open_split(str(manifest)).classes == ("0", "1")
    (tmp_path / "classes.txt").write_text("zebra\nant\n")
    split = datasets.open_split(str(manifest))
    assert split.classes == ("ant", "zebra")  # sorted; id 0 = zebra
    assert dict(zip(split.names, split.labels.tolist())) == {"0.png": 0, "1.png": 1, "2.png": 0}


def test_root_with_train_and_test_manifests(tmp_path):
    _pngs(tmp_path / "i", 4)
    write_manifest(tmp_path / "train.csv", [("i/0.png", "a"), ("i/1.png", "b")])
    write_manifest(tmp_path / "test.csv", [("i/2.png", "b")])
    assert datasets.open_split(str(tmp_path), "test").labels.tolist() == [1]
    write_manifest(tmp_path / "test.csv", [("i/2.png", "b"), ("i/3.png", "bee")])
    with pytest.raises(InputError, match=r"test.csv: label: unknown class\(es\) 'bee'"):
        datasets.open_split(str(tmp_path), "test")


def test_manifest_images_by_url(tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    for i in range(2):
        fs.pipe_file(f"/your-data/{i}.png", png(np.full((3, 3, 3), 9 * i, np.uint8)))
    manifest = write_manifest(tmp_path / "m.csv", [("memory://your-data/0.png", "x"), ("memory://your-data/1.png", "y")])
    assert datasets.open_split(str(manifest)).images()[:, 0, 0, 0].tolist() == [0, 9]


@pytest.mark.parametrize("rows, match", [
    ([("a.png", "x"), ("a.png", "y")], r"label.csv: image: 1 rows repeat an image: 'a.png \(lines 2 and 3\)'"),
    ([("a.png", "x"), ("b.png", "")], r"line 3: label: expected a class name or an integer id"),
    ([("a.png", 0), ("b.png", 2)], r"class id\(s\) 1 without examples"),
    ([("a.png", "x"), ("missing.png", "y")], r"missing.png: image file not found"),
])
def test_bad_manifests(tmp_path, rows, match):
    _pngs(tmp_path, 1)
    (tmp_path / "0.png").rename(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(png(np.zeros((5, 5, 3), np.uint8)))
    with pytest.raises(InputError, match=match):
        datasets.open_split(str(write_manifest(tmp_path / "label.csv", rows))).images()


def test_manifest_without_an_image_column(tmp_path):
    (tmp_path / "m.csv").write_text("picture,label\na.png,x\n")
    with pytest.raises(InputError, match=r"m.csv: line 2: no image column: expected one of \['image'"):
        datasets.open_split(str(tmp_path / "m.csv"))


def test_unknown_class_id_in_classes_txt(tmp_path):
    _pngs(tmp_path, 2)
    (tmp_path / "classes.txt").write_text("a\nb\n")
    manifest = write_manifest(tmp_path / "m.csv", [("0.png", 0), ("1.png", 5)])
    with pytest.raises(InputError, match=r"m.csv: line 3: label: class id 5 outside \[0, 2\) of classes.txt"):
        datasets.open_split(str(manifest))


# --- .npz ----------------------------------------------------------------------------------------


def test_npz_that_is_not_a_zip(tmp_path):
    bad = tmp_path / "x_train.npz"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip file")
    with pytest.raises(InputError, match=r"x_train.npz: not a readable .npz file \(BadZipFile"):
        datasets.open_split(str(bad))


def test_npz_with_classes_as_object_array(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.array([0, 1]),
             classes=np.array(["a", "b"], dtype=object))
    with pytest.raises(InputError, match=r"x.npz: classes: stored as an object array"):
        datasets.open_split(str(bad))


def test_npz_labels_with_a_gap_are_refused(tmp_path):
    bad = tmp_path / "x.npz"
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 12])
    np.savez(bad, images=np.zeros((10, 32, 32, 3), np.uint8), labels=labels)
    with pytest.raises(InputError, match=r"x.npz: labels: values 0..12 without a 'classes' array, but class "
                                         r"id\(s\) \[9, 10, 11\] have no examples"):
        datasets.open_split(str(bad))


def test_damaged_npz_member(tmp_path):
    good = tmp_path / "g.npz"
    np.savez_compressed(good, images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.array([0, 1]))
    data = good.read_bytes()
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("labels.npy")
    start = info.header_offset + 30 + len(info.filename) + 8
    damaged = tmp_path / "d.npz"
    damaged.write_bytes(data[:start] + bytes(len(data) - start))
    with pytest.raises(InputError, match=r"d.npz"):
        datasets.open_split(str(damaged)).images()


def test_packed_npz_with_names_and_image_size(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, images=np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3),
             labels=np.array([1, 0]), classes=np.array(["b", "a"]), names=np.array(["x/1.jpg", "y/2.jpg"]),
             image_size=np.array(8))
    split = datasets.open_split(str(path))
    assert split.classes == ("a", "b") and split.names.tolist() == ["x/1.jpg", "y/2.jpg"]
    assert split.labels.tolist() == [0, 1]  # stored 1 = "a" = sorted index 0
    assert split.images().shape == (2, 8, 8, 3)
    assert datasets.open_split(str(path), resolution=16).images().shape == (2, 16, 16, 3)


def test_resolution_out_of_range():
    with pytest.raises(InputError, match=r"resolution: must be an integer in \[8, 1024\]"):
        datasets.open_split("anything", resolution=4)


def test_listing_is_imagefolder_order_with_nested_files(tmp_path):
    (tmp_path / "b" / "sub").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    for rel in ("b/sub/z.png", "b/10.png", "b/2.png", "a/x.webp", "a/.hidden.png"):
        (tmp_path / rel).write_bytes(png(np.zeros((3, 3, 3), np.uint8)))
    listing = image_files.list_imagefolder(str(tmp_path))
    assert listing.names.tolist() == ["a/x.webp", "b/10.png", "b/2.png", "b/sub/z.png"]


def test_seed_json_labels_match_manifest_rows_of_any_depth(tmp_path):
    import json

    from clpipe.components.common.labels import load_labels

    (tmp_path / "a" / "b").mkdir(parents=True)
    for i in range(3):
        (tmp_path / "a" / "b" / f"{i}.png").write_bytes(png(np.zeros((4, 4, 3), np.uint8)))
    manifest = write_manifest(tmp_path / "m.csv", [("a/b/0.png", "x"), ("a/b/1.png", "y"), ("a/b/2.png", "x")])
    split = datasets.open_split(str(manifest))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"/machine/prefix/a/b/0.png": 1, "a/b/1.png": 0, "/other/a/b/2.png": 1}))
    assert dict(zip(split.names, load_labels(str(labels), split).tolist())) == {
        "a/b/0.png": 1, "a/b/2.png": 1, "a/b/1.png": 0}
