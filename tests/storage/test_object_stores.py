"""components/common/storage.py against real servers: s3:// and minio:// on SeaweedFS,
gs:// on a GCS emulator."""

import os
import uuid

import numpy as np
import pytest
from clpipe.components.common import storage
from clpipe.components.common.errors import InputError

pytestmark = pytest.mark.storage
SCHEMES = ("s3", "minio", "gs")


@pytest.fixture(params=SCHEMES)
def base(request, stores):
    """A fresh prefix in the bucket of one scheme."""
    return f"{stores[request.param]}/{uuid.uuid4().hex[:8]}"


def test_files_round_trip(base):
    storage.save_npy(storage.join(base, "a.npy"), np.arange(6, dtype=np.int64).reshape(2, 3))
    storage.save_json(storage.join(base, "sub", "b.json"), {"x": [1, 2]})
    storage.write_bytes(storage.join(base, "c.bin"), b"\x00\x01")
    np.testing.assert_array_equal(storage.load_npy(storage.join(base, "a.npy")), [[0, 1, 2], [3, 4, 5]])
    assert storage.load_json(storage.join(base, "sub", "b.json")) == {"x": [1, 2]}
    assert storage.read_bytes(storage.join(base, "c.bin")) == b"\x00\x01"
    assert storage.listdir(base) == ["a.npy", "c.bin", "sub"]
    assert storage.isdir(storage.join(base, "sub")) and storage.exists(storage.join(base, "a.npy"))
    assert not storage.is_local(base)
    with pytest.raises(InputError, match="file not found"):
        storage.read_bytes(storage.join(base, "missing.npy"))


def test_staged_output_publishes_everything_or_nothing(base):
    out = storage.join(base, "out")
    with pytest.raises(RuntimeError), storage.staged_output(out, stage="s") as stage:
        storage.write_bytes(os.path.join(stage, "half.txt"), b"x")
        raise RuntimeError("stage failed")
    assert not storage.exists(out)
    with storage.staged_output(out, stage="s") as stage:
        os.makedirs(os.path.join(stage, "train_pruned_argmax"))
        np.save(os.path.join(stage, "train_pruned_argmax", "train_mask.npy"), np.ones(3, bool))
        storage.save_json(os.path.join(stage, "summary.json"), {"done": True})
    assert storage.listdir(out) == [storage.MANIFEST, "summary.json", "train_pruned_argmax"]
    assert storage.load_npy(storage.join(out, "train_pruned_argmax", "train_mask.npy")).all()


def test_local_copy_caches_and_follows_changes(base, tmp_path, monkeypatch):
    monkeypatch.setenv(storage.CACHE_DIR_ENV, str(tmp_path / "cache"))
    url = storage.join(base, "big.npy")
    storage.save_npy(url, np.zeros(1000))
    first = storage.local_copy(url)
    assert first.startswith(str(tmp_path / "cache")) and np.load(first).shape == (1000,)
    assert storage.local_copy(url) == first
    storage.save_npy(url, np.ones(10))
    np.testing.assert_array_equal(np.load(storage.local_copy(url)), np.ones(10))


def test_minio_urls_are_s3_at_the_endpoint_from_the_environment(stores):
    name = f"{uuid.uuid4().hex[:8]}/m.bin"
    storage.write_bytes(f"{stores['minio']}/{name}", b"via minio")
    assert storage.read_bytes(f"{stores['s3']}/{name}") == b"via minio"


def test_credentials_come_from_the_environment(stores, monkeypatch):
    import s3fs

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    s3fs.S3FileSystem.clear_instance_cache()
    url = f"{stores['s3']}/denied.bin"
    with pytest.raises(
        InputError, match=rf"{url}: permission denied \(.*signature.*\); check the credentials"
    ):
        storage.write_bytes(url, b"x")
