"""A user's images on object storage: a manifest whose images sit on the loopback SeaweedFS (s3:// and
minio://), packed into shards on the store and streamed back through litdata."""

from __future__ import annotations

import numpy as np
import pytest
import s3fs
from clpipe.components.common import datasets, prepare

from tests.object_stores import seaweed
from tests.your_data import digits_imagefolder, write_manifest

pytestmark = pytest.mark.storage
BUCKET = "clpipe-your-data"


@pytest.fixture(scope="module")
def store():
    with seaweed(BUCKET, "your-data-key", "your-data-secret") as server:
        yield server


@pytest.fixture
def env(store, monkeypatch):
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def uploaded(store, tmp_path_factory):
    """Digits (3 classes, 20 each) uploaded as s3://BUCKET/digits/<class>/<file>.png."""
    folder = digits_imagefolder(tmp_path_factory.mktemp("digits"), classes=3, per_class=20, noise=0.0)
    fs = store.fs()
    rows = []
    for path in sorted((folder.root / "train").rglob("*.png")):
        key = f"digits/{path.parent.name}/{path.name}"
        fs.pipe_file(f"{BUCKET}/{key}", path.read_bytes())
        rows.append((key, path.parent.name))
    return folder, rows


def test_manifest_on_the_store_with_relative_and_absolute_urls(env, store, uploaded, tmp_path):
    folder, rows = uploaded
    local = datasets.open_split(str(folder.root))
    relative = write_manifest(tmp_path / "train.csv", [(f"../{key}", label) for key, label in rows])
    store.fs().pipe_file(f"{BUCKET}/lists/train.csv", relative.read_bytes())  # paths relative to the manifest
    absolute = write_manifest(tmp_path / "abs.jsonl", [(f"minio://{BUCKET}/{key}", label) for key, label in rows])
    for url in (f"s3://{BUCKET}/lists/train.csv", str(absolute)):
        split = datasets.open_split(url)
        assert split.classes == local.classes and split.labels.tolist() == local.labels.tolist()
        np.testing.assert_array_equal(split.images(), local.images())


def test_shards_packed_on_the_store_stream_back(env, uploaded):
    folder, _ = uploaded
    out = f"s3://{BUCKET}/packed"
    prepare.prepare(dataset=str(folder.root), out=out, resolution=16, format="shards")
    streamed = datasets.open_split(out)
    local = datasets.open_split(str(folder.root), resolution=16)
    np.testing.assert_array_equal(streamed.names, local.names)
    rows = np.random.default_rng(3).permutation(60)  # a trainer's random order, read by row number
    for url in (f"{out}/train", f"minio://{BUCKET}/packed/train"):
        view = datasets.open_split(url).pixels()[rows]
        np.testing.assert_array_equal(np.asarray(view), local.images()[rows])
    np.testing.assert_array_equal(streamed.images(), local.images())


def test_a_trainers_loader_streams_shards_from_the_store_as_it_batches_them_in_memory(env, uploaded):
    """Two epochs of the fold trainer's loader (shuffled, augmented, normalised) from shards on the store:
    the same batches as from the same pixels in memory."""
    import torch
    from clpipe.components.common import training

    folder, _ = uploaded
    prepare.prepare(dataset=str(folder.root), out=f"s3://{BUCKET}/packed-for-training", resolution=16,
                    format="shards")
    streamed = datasets.open_split(f"minio://{BUCKET}/packed-for-training")
    local = datasets.open_split(str(folder.root), resolution=16)
    settings = dict(batch_size=16, device=torch.device("cpu"), shuffle=True, augment=training.Augment(pad=2),
                    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), order_seed=3, aug_seed=4)
    from_store = training.make_loader(streamed.pixels(), streamed.labels, **settings)
    in_memory = training.make_loader(local.images(), local.labels, **settings)
    assert isinstance(from_store, training.StreamLoader)
    for _ in range(2):
        for (x, y, r), (sx, sy, sr) in zip(in_memory, from_store, strict=True):
            assert torch.equal(sx, x) and torch.equal(sy, y) and torch.equal(sr, r)

