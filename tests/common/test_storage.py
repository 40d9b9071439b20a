import os

import numpy as np
import pytest
from clpipe.components.common import storage
from clpipe.components.common.errors import InputError


def test_npy_and_json_round_trip_on_memory_fs():
    storage.save_npy("memory://t/a.npy", np.arange(5))
    np.testing.assert_array_equal(storage.load_npy("memory://t/a.npy"), np.arange(5))
    storage.save_json("memory://t/b.json", {"x": 1})
    assert storage.load_json("memory://t/b.json") == {"x": 1}
    assert storage.join("memory://t/", "a.npy") == "memory://t/a.npy"


def test_minio_urls_map_to_s3_with_the_endpoint_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    url, options = storage._fs_url("minio://bucket/key")
    assert url == "s3://bucket/key"
    assert options["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:1"}


def test_is_local_reads_the_url_and_makes_no_filesystem(monkeypatch):
    """Making a gcsfs filesystem looks for Google credentials first (15 s outside Google Cloud)."""
    import gcsfs

    def refuse(*args, **kwargs):
        raise AssertionError("a filesystem was made")

    monkeypatch.setattr(gcsfs.GCSFileSystem, "__init__", refuse)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert [storage.is_local(u) for u in ("gs://b/x", "s3://b/x", "minio://b/x", "memory://x")] == [False] * 4
    assert all(storage.is_local(u) for u in ("/tmp/x", "rel/x", "file:///tmp/x"))
    with pytest.raises(InputError, match="unknown URL scheme 'foo'"):
        storage.is_local("foo://b/x")


def test_staged_output_publishes_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), storage.staged_output(str(out), stage="s") as stage:
        open(os.path.join(stage, "a.txt"), "w").write("half")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_staged_output_replaces_an_older_output_of_the_same_stage(tmp_path):
    out = tmp_path / "out"
    with storage.staged_output(str(out), stage="s") as stage:
        storage.write_bytes(os.path.join(stage, "old.txt"), b"old")
    with storage.staged_output(str(out), stage="s") as stage:
        open(os.path.join(stage, "new.txt"), "w").write("new")
    assert sorted(p.name for p in out.iterdir()) == [storage.MANIFEST, "new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_output_to_an_object_store_url():
    with storage.staged_output("memory://staged/run1", stage="s") as stage:
        open(os.path.join(stage, "summary.json"), "w").write("{}")
        open(os.path.join(stage, "data.npy"), "wb").write(storage.npy_bytes(np.ones(3)))
    assert storage.listdir("memory://staged/run1") == [storage.MANIFEST, "data.npy", "summary.json"]


def test_local_copy_caches_remote_files(tmp_path, monkeypatch):
    monkeypatch.setenv(storage.CACHE_DIR_ENV, str(tmp_path / "cache"))
    storage.write_bytes("memory://cache-src/big.bin", b"payload")
    local = storage.local_copy("memory://cache-src/big.bin")
    assert open(local, "rb").read() == b"payload"
    assert str(tmp_path / "cache") in local
    with pytest.raises(InputError, match="file not found"):
        storage.local_copy("memory://cache-src/missing.bin")


def test_write_bytes_is_atomic_locally(tmp_path):
    target = tmp_path / "d" / "f.bin"
    storage.write_bytes(str(target), b"abc")
    assert target.read_bytes() == b"abc"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_published_files_get_the_usual_modes(tmp_path):
    old = os.umask(0o022)
    try:
        storage.write_bytes(str(tmp_path / "f.bin"), b"x")
        with storage.staged_output(str(tmp_path / "out"), stage="s") as stage:
            storage.write_bytes(os.path.join(stage, "m.json"), b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / "m.json").stat().st_mode & 0o777 == 0o644
