"""Publishing to a real object store under faults: SeaweedFS on loopback (killed with SIGKILL and started
again on the same data), a throttling proxy between the stage and the store that sees every request
and injects the fault at an exact one (tests/storage/faults.py), the real ``make-masks`` CLI in a
subprocess as the client. After each fault a reader looks (directly, not through the proxy), then the
same command is run again. A reader must see the earlier complete output, the new one, or a refusal;
never a mix. The rerun must end with exactly the new output and no stale object."""

import os
import re
import signal
import threading
import uuid

import pytest
import s3fs
from clpipe.components.common import storage
from clpipe.components.common.errors import InputError
from clpipe.components.coteach.stage import resolve_mask

from clpipe.cli import main as clpipe_main
from tests.object_stores import restartable_seaweed

from . import faults

pytestmark = pytest.mark.storage

BUCKET = "clpipe-faults"
#: Bytes per second the proxy passes each way: a slow link, so requests overlap with the faults.
RATE = 200_000
DATA_PUT = r"/masks/(summary\.json|train_pruned_\w+/train_mask\.npy)"
JOURNAL = r"/masks/\.clpipe-publishing\.json"
MANIFEST = r"/masks/clpipe-manifest\.json"
STALE = r"/masks/train_pruned_\w+/train_mask\.npy"


@pytest.fixture(scope="module")
def weed():
    """A SeaweedFS of its own: these tests kill it."""
    with restartable_seaweed(BUCKET, "clpipe-fault-key", "clpipe-fault-secret") as server:
        yield server


@pytest.fixture
def direct(weed, monkeypatch):
    """This process talks to the store directly (readers, earlier runs); the server is up."""
    if weed.proc is None or weed.proc.poll() is not None:
        weed.start()
    for name, value in weed.server.env().items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield weed
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return faults.reference_runs(str(tmp_path_factory.mktemp("fault-inputs")))


class Fault:
    """Acts on the ``n``-th request with ``method`` whose path matches ``pattern``, before forwarding it."""

    def __init__(self, method: str, pattern: str, n: int, act) -> None:
        self.method, self.pattern, self.n, self.act, self.count = method, pattern, n, act, 0

    def __call__(self, method: str, path: str) -> str | None:
        if method == self.method and re.search(self.pattern, path.split("?")[0]):
            self.count += 1
            if self.count == self.n:
                return self.act()
        return None


def client_env(weed, proxy, tmp_path) -> dict[str, str]:
    return {
        **weed.server.env(),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
        storage.CACHE_DIR_ENV: str(tmp_path / "cache"),
    }


#: (earlier run or None, the run, its methods, who is killed, at which request, what a reader sees after it)
SCENARIOS = {
    "first publish, server killed during the 3rd of 6 PUTs": (
        None,
        "b",
        (),
        "server",
        ("PUT", DATA_PUT, 3),
        "incomplete output",
    ),
    "overwrite, client killed during the 3rd of 6 PUTs": (
        "a",
        "b",
        (),
        "client",
        ("PUT", DATA_PUT, 3),
        "incomplete output",
    ),
    "overwrite, client killed before its journal reached the store": (
        "a",
        "b",
        (),
        "client",
        ("PUT", JOURNAL, 1),
        "a",
    ),
    "overwrite, server killed while the new manifest was sent": (
        "a",
        "b",
        (),
        "server",
        ("PUT", MANIFEST, 1),
        "incomplete output",
    ),
    "overwrite, client killed after the new manifest, before removing its journal": (
        "a",
        "b",
        (),
        "client",
        ("DELETE", JOURNAL, 1),
        "b",
    ),
    "overwrite with fewer methods, server killed removing the 2nd stale mask": (
        "a",
        "b",
        ("argmax",),
        "server",
        ("DELETE", STALE, 2),
        "incomplete output",
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_fault_during_an_object_store_publish(direct, runs, tmp_path, monkeypatch, scenario):
    inputs, refs = runs
    earlier, run, methods, victim, (method, pattern, n), expected = SCENARIOS[scenario]
    out = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/masks"
    if earlier:
        assert clpipe_main(faults.make_masks_argv(inputs, earlier, out)) == 0
    argv = faults.make_masks_argv(inputs, run, out, *methods)
    client, proxies = [], []

    def kill():
        if victim == "server":
            direct.kill()
            proxies[0].refuse()  # its port is gone with it
        else:
            os.kill(client[0].pid, signal.SIGKILL)
        return "drop"

    fault = Fault(method, pattern, n, kill)
    with (
        faults.ThrottlingProxy(direct.ports["s3"], RATE, fault) as proxy,
        faults.started(argv, client_env(direct, proxy, tmp_path)) as proc,
    ):
        client.append(proc)
        proxies.append(proxy)
        _, stderr = proc.communicate(timeout=180)
    assert fault.count >= n, proxy.requests  # the fault happened at the request it names
    if victim == "server":  # the stage gives up after bounded retries, with one line naming the URL
        assert proc.returncode == 2, stderr
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR ")]
        assert (
            len(errors) == 1
            and errors[0].startswith(f"ERROR make-masks: {out}")
            and "Traceback" not in stderr
        )
        direct.start()
        s3fs.S3FileSystem.clear_instance_cache()
    else:
        assert proc.returncode == -signal.SIGKILL

    after_fault = faults.seen(out)
    if expected in refs:
        assert after_fault == refs[expected]
    else:  # a refusal naming the output, never a mix of two runs
        assert isinstance(after_fault, str) and after_fault.startswith(f"{out}: {expected}"), after_fault
        with pytest.raises(InputError, match=expected):  # what coteach --train-mask OUT --method cl_pbnr does
            resolve_mask(out, "cl_pbnr")

    monkeypatch.setenv(storage.CACHE_DIR_ENV, str(tmp_path / "cache"))  # where the killed client staged
    assert clpipe_main(argv) == 0  # the same command again
    new = "b argmax" if methods else "b"
    assert faults.seen(out) == refs[new]
    fs, path = storage.url_to_fs(out)
    fs.invalidate_cache()
    stored = {p[len(path) + 1 :] for p in fs.find(path)}
    assert stored == {*refs[new], storage.MANIFEST}  # no stale mask, no journal
    staging = tmp_path / "cache" / "staging"
    assert not staging.exists() or not os.listdir(staging)  # the killed client's staging folder is swept


def test_a_reader_during_a_rewrite_gets_old_files_or_a_refusal(direct, runs, tmp_path):
    """A reader holding the old manifest while the (throttled) writer is held at its 3rd file."""
    inputs, refs = runs
    out = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/masks"
    assert clpipe_main(faults.make_masks_argv(inputs, "a", out)) == 0
    reader = storage.open_output(out, stage="make-masks")
    held, release = threading.Event(), threading.Event()

    def hold():
        held.set()
        release.wait(60)

    fault = Fault("PUT", DATA_PUT, 3, hold)
    with (
        faults.ThrottlingProxy(direct.ports["s3"], RATE, fault) as proxy,
        faults.started(faults.make_masks_argv(inputs, "b", out), client_env(direct, proxy, tmp_path)) as proc,
    ):
        assert held.wait(120)
        results = {}
        for name in sorted(reader.files):
            try:
                results[name] = reader.read_bytes(name)
            except InputError as e:
                results[name] = str(e)
        release.set()
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    # the two files replaced by then are refused; the others are still the old run's and verified
    refused = [n for n, r in results.items() if isinstance(r, str)]
    assert refused == ["summary.json", "train_pruned_argmax/train_mask.npy"], results
    assert all("does not match the manifest" in results[n] for n in refused), results
    assert all(results[n] == refs["a"][n] for n in results if n not in refused)
    assert faults.seen(out) == refs["b"]


def test_a_publish_sends_journal_first_and_manifest_last(direct, runs, tmp_path):
    """The protocol as the store sees it, for an overwrite with fewer methods over a throttled link."""
    inputs, refs = runs
    out = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/masks"
    assert clpipe_main(faults.make_masks_argv(inputs, "a", out)) == 0
    with faults.ThrottlingProxy(direct.ports["s3"], RATE) as proxy:
        result = faults.clpipe(
            faults.make_masks_argv(inputs, "b", out, "argmax"), client_env(direct, proxy, tmp_path)
        )
    assert result.returncode == 0, result.stderr
    writes = [
        (m, p.split("?")[0].split("/masks/", 1)[1]) for m, p in proxy.requests if m in ("PUT", "DELETE")
    ]
    stale = [f"train_pruned_{m}/train_mask.npy" for m in ("cl_both", "cl_pbc", "cl_pbnr", "conf_joint_only")]
    assert writes == [
        ("PUT", storage.JOURNAL),
        ("DELETE", storage.MANIFEST),
        *(("DELETE", name) for name in stale),
        ("PUT", "summary.json"),
        ("PUT", "train_pruned_argmax/train_mask.npy"),
        ("PUT", storage.MANIFEST),
        ("DELETE", storage.JOURNAL),
    ]
    assert faults.seen(out) == refs["b argmax"]
