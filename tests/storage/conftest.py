"""Real object stores on loopback (tests/object_stores.py), started once per test session:
SeaweedFS ``weed mini`` for ``s3://`` and ``minio://`` (credentials enforced), a GCS emulator
for ``gs://``. The tests reach them only through the environment, as the pipeline's tasks do:
``AWS_*`` variables for S3, ``STORAGE_EMULATOR_HOST`` (plus an anonymous gcsfs token) for GCS.
"""

import fsspec
import pytest

# Also sets GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false, before any test imports gcsfs.
from tests.object_stores import gcs_emulator, seaweed

BUCKET = "clpipe-storage-test"


@pytest.fixture(scope="session")
def s3_server():
    with seaweed(BUCKET, "clpipe-test-key", "clpipe-test-secret") as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server():
    with gcs_emulator(BUCKET) as server:
        yield server


@pytest.fixture
def stores(s3_server, gcs_server, monkeypatch):
    """The environment a pipeline task gets, pointing at both servers; fresh fsspec instances."""
    for name, value in {**s3_server.env(), **gcs_server.env()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(fsspec.config.conf, "gcs", {"token": "anon", "project": "test"})
    _clear_fs_caches()
    yield {"s3": f"s3://{BUCKET}", "minio": f"minio://{BUCKET}", "gs": f"gs://{BUCKET}"}
    _clear_fs_caches()


def _clear_fs_caches() -> None:
    import gcsfs
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    gcsfs.GCSFileSystem.clear_instance_cache()
