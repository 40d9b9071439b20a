"""clpipe data prepare: once at a training resolution, as .npz (in memory) or litdata shards (streamed),
rows and names unchanged; every bad dataset input one ERROR line, exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clpipe.components.common import datasets, prepare
from clpipe.components.common.errors import InputError
from clpipe.components.common.shards import ShardImages

from clpipe.cli import main as clpipe_main
from tests.your_data import digits_imagefolder, mixed_imagefolder, png, write_manifest


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_imagefolder(tmp_path_factory.mktemp("digits"), noise=0.1)


def _same_rows(a: datasets.Split, b: datasets.Split) -> None:
    np.testing.assert_array_equal(a.names, b.names)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.classes == b.classes and a.fingerprint() == b.fingerprint()


def test_prepare_npz_keeps_rows_names_and_pixels(digits, tmp_path):
    info = prepare.prepare(dataset=str(digits.root), out=str(tmp_path / "p"), resolution=32)
    assert info["splits"]["train"]["format"] == "npz" and info["splits"]["train"]["image_size"] == 32
    assert json.loads((tmp_path / "p" / "prepared.json").read_text()) == info
    pixels = datasets.open_split(str(tmp_path / "p")).images() / 255.0
    np.testing.assert_allclose(info["splits"]["train"]["mean"], pixels.mean(axis=(0, 1, 2)), atol=1e-6)
    np.testing.assert_allclose(info["splits"]["train"]["std"], pixels.std(axis=(0, 1, 2)), atol=1e-6)
    packed = datasets.open_split(str(tmp_path / "p"))
    source = datasets.open_split(str(digits.root), resolution=32)
    _same_rows(packed, source)
    np.testing.assert_array_equal(packed.images(), source.images())


def test_cifar10_packs_bit_for_bit_at_native_size(cifar10_dir, tmp_path):
    split = datasets.open_split(cifar10_dir, "train")
    small = split.take(datasets.subset_rows(split.labels, 20, seed=0))
    datasets.export_imagefolder(small, str(tmp_path / "folder"), "train")
    prepare.prepare(dataset=str(tmp_path / "folder"), out=str(tmp_path / "p"), resolution=32)
    packed = datasets.open_split(str(tmp_path / "p"))
    _same_rows(packed, small)
    np.testing.assert_array_equal(packed.images(), small.images())


def test_prepare_shards_streams_the_same_rows(tmp_path):
    root = mixed_imagefolder(tmp_path / "mixed")
    in_memory_info = prepare.prepare(dataset=str(root), out=str(tmp_path / "npz"), resolution=24, format="npz")
    streamed_info = prepare.prepare(dataset=str(root), out=str(tmp_path / "sh"), resolution=24, format="shards")
    for key in ("mean", "std", "fingerprint", "n_examples", "classes"):
        assert streamed_info["splits"]["train"][key] == in_memory_info["splits"]["train"][key]
    in_memory = datasets.open_split(str(tmp_path / "npz"))
    streamed = datasets.open_split(str(tmp_path / "sh"))
    _same_rows(streamed, in_memory)
    np.testing.assert_array_equal(streamed.images(), in_memory.images())
    np.testing.assert_array_equal(streamed.files, in_memory.files)  # where each image came from
    assert streamed.files[0] == str(root / "train" / streamed.names[0])


def test_packed_pixels_stay_in_their_shards_and_views_read_the_rows_asked_for(tmp_path):
    for k in range(3):
        (tmp_path / "src" / "train" / f"c{k}").mkdir(parents=True)
        for i in range(40):
            (tmp_path / "src" / "train" / f"c{k}" / f"{i:02d}.png").write_bytes(
                png(np.full((8, 8, 3), 40 * k + i % 40, np.uint8)))
    prepare.prepare(dataset=str(tmp_path / "src"), out=str(tmp_path / "sh"), format="shards")
    split = datasets.open_split(str(tmp_path / "sh" / "train"))
    pixels = split.pixels()
    assert isinstance(pixels, ShardImages) and pixels.shape == (120, 8, 8, 3)  # nothing read yet
    images = split.images()
    assert images[:, 0, 0, 0].tolist() == [40 * k + i for k in range(3) for i in range(40)]
    rows = np.array([117, 3, 64, 3, 0])  # any order, repeats allowed: a trainer's batch
    view = pixels[rows]
    assert isinstance(view, ShardImages) and len(view) == 5
    np.testing.assert_array_equal(np.asarray(view), images[rows])
    np.testing.assert_array_equal(np.asarray(split.take(rows[::-1]).pixels()), images[rows[::-1]])


def test_shards_whose_samples_are_not_in_row_order_are_refused(tmp_path):
    """Shards written by hand with litdata (not by clpipe data prepare): each sample's ``row`` must be its
    position, or every per-row output (pred_probs, masks) would be attached to the wrong image."""
    from litdata.streaming.writer import BinaryWriter

    writer = BinaryWriter(str(tmp_path), chunk_bytes="1MB")
    for position in range(4):
        writer.add_item(position, {"row": 3 - position, "label": 0, "image": np.zeros((4, 4, 3), np.uint8)})
    writer.done()
    writer.merge()
    with pytest.raises(InputError, match="position 0 holds row 3: index and chunks do not match"):
        ShardImages(str(tmp_path), np.arange(4), 4).read()


# --- bad inputs through the command line ---------------------------------------------------------


def _bad_datasets(tmp):
    """case -> (arguments of clpipe data prepare without --out, text the ERROR line must contain)."""
    truncated = tmp / "truncated" / "train"
    for cls in ("a", "b"):
        (truncated / cls).mkdir(parents=True)
        (truncated / cls / "ok.png").write_bytes(png(np.zeros((8, 8, 3), np.uint8)))
    (truncated / "b" / "cut.png").write_bytes(png(np.full((8, 8, 3), 9, np.uint8))[:50])
    (tmp / "imgs").mkdir()
    for i in range(3):
        (tmp / "imgs" / f"{i}.png").write_bytes(png(np.full((8, 8, 3), i, np.uint8)))
    write_manifest(tmp / "m" / "train.csv", [("../imgs/0.png", "cat"), ("../imgs/1.png", "dog")])
    write_manifest(tmp / "m" / "test.csv", [("../imgs/2.png", "cta")])
    write_manifest(tmp / "dup.csv", [("imgs/0.png", "cat"), ("imgs/1.png", "dog"), ("imgs/0.png", "dog")])
    (tmp / "notzip_train.npz").write_bytes(b"PK\x03\x04garbage")
    return {
        "unreadable image": (["--dataset", str(tmp / "truncated")], f"{truncated / 'b' / 'cut.png'}: not a readable image"),
        "unknown class in a manifest": (["--dataset", str(tmp / "m")], "test.csv: label: unknown class(es) 'cta'"),
        "duplicate paths": (["--dataset", str(tmp / "dup.csv")], "dup.csv: image: 1 rows repeat an image"),
        "mixed sizes without a resolution": (["--dataset", str(mixed_imagefolder(tmp / "mixed"))],
                                             "need a training resolution"),
        "resolution too small": (["--dataset", str(tmp / "m"), "--resolution", "2"],
                                 "--resolution: must be an integer in [8, 1024]"),
        "npz that is not a zip": (["--dataset", str(tmp / "notzip_train.npz")], "not a readable .npz file"),
        "missing dataset": (["--dataset", str(tmp / "nowhere")], "not found"),
        "unknown format": (["--dataset", str(tmp / "m"), "--format", "zip"], "invalid choice: 'zip'"),
    }


CASES = ["unreadable image", "unknown class in a manifest", "duplicate paths", "mixed sizes without a resolution",
         "resolution too small", "npz that is not a zip", "missing dataset", "unknown format"]


@pytest.mark.parametrize("case", CASES)
def test_bad_dataset_one_error_line_exit_2_nothing_written(case, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    args, message = _bad_datasets(inputs)[case]
    out = tmp_path / "packed"
    assert clpipe_main(["data", "prepare", *args, "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ERROR") or "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
