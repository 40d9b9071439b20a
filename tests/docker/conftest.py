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
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from clpipe.components.common.image import LOCAL_REGISTRY, Images

from clpipe import __version__
from tests.conftest import SHARED, condition_file
from tests.object_stores import GCSServer, S3Server, gcs_emulator, seaweed

#: Non-root user of the images (docker/Dockerfile).
IMAGE_UID = 1000
DATA_MOUNT = "/data"
SUBSET = ["--subset-per-class", "20", "--subset-seed", "0"]
#: The published 40 %-noise labels (S=0.2); a subset of them is a real noisy-label input.
LABELS_FILE = condition_file("labels", 0.2, 0.4)
LABELS_IN_CONTAINER = f"{DATA_MOUNT}/cl-reproduce/{LABELS_FILE.name}"
DATASET_IN_CONTAINER = f"{DATA_MOUNT}/cifar10"


def fold_train_args(dataset: str, labels: str, k: int, n_folds: int, out: str, *view: str) -> list[str]:
    """``fold-train`` for one fold: 1 epoch of the tiny network on the CPU, the smallest real run."""
    return [
        "fold-train", "--dataset", dataset, "--labels", labels, *view,
        "--fold", str(k), "--n-folds", str(n_folds),
        "--arch", "airbench-tiny", "--epochs", "1", "--device", "cpu", "--no-progress", "--out", out,
    ]


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


# --- object stores on loopback (tests/object_stores.py), reached with --network=host -------


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    """SeaweedFS ``weed mini`` on 127.0.0.1 (the store KFP >= 2.16 ships), credentials enforced."""
    with seaweed("clpipe-test", "clpipe-test-key", "clpipe-test-secret") as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server() -> GCSServer:
    """gcp-storage-emulator on 127.0.0.1 (in memory) with one bucket."""
    with gcs_emulator("clpipe-test") as server:
        yield server


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())
