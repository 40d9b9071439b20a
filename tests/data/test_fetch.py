"""``clpipe data fetch`` against a loopback HTTP server serving small files in the real formats: the official
CIFAR-10 python archive (pickled batches in a .tar.gz) and the published label JSON and pred_probs .npy, at the
paths the real hosts use. The download, checksum and conversion code is the real one; only URLs and sums differ."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import pickle
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from clpipe.components.common.datasets import CIFAR10_CLASSES, open_split
from clpipe.components.common.errors import InputError
from clpipe.components.common.labels import load_labels

from clpipe import cli as clpipe_cli
from clpipe import fetch

PER_BATCH = 3  # images per official batch file: 15 train, 3 test


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server over ``tmp_path / "www"``; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _cifar_archive(rng) -> tuple[bytes, dict[str, str], dict[str, np.ndarray]]:
    """A cifar-10-python.tar.gz in the official format; returns it, its files' MD5s and the arrays (HWC)."""
    files, arrays = {}, {"train_images": [], "train_labels": [], "test_images": [], "test_labels": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (PER_BATCH, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, PER_BATCH).tolist()
        planes = images.transpose(0, 3, 1, 2).reshape(PER_BATCH, 3072)  # the official R, G, B planes per row
        files[name] = pickle.dumps({"batch_label": name, "labels": labels, "data": planes})
        split = "test" if name == "test_batch" else "train"
        arrays[f"{split}_images"].append(images)
        arrays[f"{split}_labels"] += labels
    files["batches.meta"] = pickle.dumps(
        {"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": PER_BATCH}
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = {k: np.concatenate(v) if k.endswith("images") else np.array(v) for k, v in arrays.items()}
    return buf.getvalue(), {name: _md5(data) for name, data in files.items()}, out


@pytest.fixture
def cifar_source(server):
    root, url = server
    archive, md5s, arrays = _cifar_archive(np.random.default_rng(0))
    (root / "cifar-10-python.tar.gz").write_bytes(archive)
    digests = {k: fetch.array_digest(arrays[k]) for k in ("train_images", "train_labels", "test_labels")}
    source = fetch.Cifar10Source(f"{url}/cifar-10-python.tar.gz", _md5(archive), md5s, digests)
    return source, arrays


def test_cifar10_is_downloaded_checked_and_converted(tmp_path, cifar_source):
    source, arrays = cifar_source
    out = tmp_path / "data" / "cifar10"
    assert fetch.fetch_cifar10(str(out), source, log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", "cifar10_test.npz", "cifar10_train.npz"]
    with np.load(out / "cifar10_train.npz") as train:
        np.testing.assert_array_equal(train["images"], arrays["train_images"])  # official order, HWC
        np.testing.assert_array_equal(train["labels"], arrays["train_labels"])
        assert list(train["classes"]) == list(CIFAR10_CLASSES)
    with np.load(out / "cifar10_test.npz") as test:
        np.testing.assert_array_equal(test["images"], arrays["test_images"])
        assert test["exact"].all()
    for line in (out / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    split = open_split(str(out), "train")  # clpipe reads it: ImageFolder names and order
    assert len(split) == 5 * PER_BATCH and split.classes == CIFAR10_CLASSES
    row = list(split.names).index(
        f"{CIFAR10_CLASSES[arrays['train_labels'][7]]}/7_{CIFAR10_CLASSES[arrays['train_labels'][7]]}.png"
    )
    np.testing.assert_array_equal(split.images()[row], arrays["train_images"][7])
    assert not fetch.fetch_cifar10(str(out), source, log=lambda _: None)  # there already: kept
    assert not list(out.glob(".download-*"))


def test_a_cifar10_archive_with_another_md5_is_refused(tmp_path, cifar_source):
    source, _ = cifar_source
    wrong = fetch.Cifar10Source(source.url, "0" * 32, source.files_md5, source.digests)
    with pytest.raises(InputError, match="md5"):
        fetch.fetch_cifar10(str(tmp_path / "cifar10"), wrong, log=lambda _: None)
    assert not (tmp_path / "cifar10").exists()  # nothing written, not even the folder


def test_a_conversion_that_changes_the_arrays_is_refused(tmp_path, cifar_source):
    source, _ = cifar_source
    wrong = fetch.Cifar10Source(
        source.url, source.archive_md5, source.files_md5, {**source.digests, "train_images": "0" * 64}
    )
    with pytest.raises(InputError, match="train_images: converted array has sha256"):
        fetch.fetch_cifar10(str(tmp_path / "cifar10"), wrong, log=lambda _: None)


def test_the_cli_checks_a_mirror_against_the_official_md5(tmp_path, cifar_source, capsys):
    source, _ = cifar_source  # a loopback "mirror" whose archive is not the official one
    argv = ["data", "fetch", "cifar10", "--out", str(tmp_path / "data"), "--cifar10-url", source.url]
    assert clpipe_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"ERROR data fetch: {source.url}: md5:" in err
    assert not list((tmp_path / "data" / "cifar10").glob("*.npz"))


def _published(server, tmp_path):
    """Two conditions' label JSON and pyx at the upstream paths; returns their checksums (S, N) -> sums."""
    root, _ = server
    rng = np.random.default_rng(1)
    names = [f"train/{c}/{2 * k + i}_{c}.png" for k, c in enumerate(CIFAR10_CLASSES) for i in range(2)]
    sums = {}
    for s, n in (("0.0", "0.0"), ("0.2", "0.4")):
        labels = {f"/datasets/cifar10/{k}": int(rng.integers(0, 10)) for k in names}
        text = json.dumps(labels).encode()
        pyx = rng.dirichlet(np.ones(10), len(names)).astype(np.float16)
        buf = io.BytesIO()
        np.save(buf, pyx)
        stem = f"frac_zero_noise_rates__{s}__noise_amount__{n}"
        label_file = root / "cifar10_noisy_labels" / f"cifar10_noisy_labels__{stem}.json"
        pyx_file = (
            root
            / f"cifar10_noisy_labels__{stem.replace('.', '_')}"
            / "cifar10__train__model_resnet50__pyx.npy"
        )
        for path, data in ((label_file, text), (pyx_file, buf.getvalue())):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        sums[(s, n)] = (hashlib.sha256(text).hexdigest(), hashlib.sha256(buf.getvalue()).hexdigest())
    return sums


def test_published_files_are_checked_and_stored_under_the_shared_names(tmp_path, server):
    sums = _published(server, tmp_path)
    out = tmp_path / "cl-reproduce"
    written = fetch.fetch_published(str(out), base_url=server[1], checksums=sums, log=lambda _: None)
    assert (
        sorted(written)
        == sorted(p.name for p in out.iterdir())
        == [
            "cifar10_noisy_labels__frac_zero_noise_rates__0.0__noise_amount__0.0.json.gz",
            "cifar10_noisy_labels__frac_zero_noise_rates__0.2__noise_amount__0.4.json.gz",
            "pyx__frac_zero_noise_rates__0.0__noise_amount__0.0.npy",
            "pyx__frac_zero_noise_rates__0.2__noise_amount__0.4.npy",
        ]
    )
    label_file = out / "cifar10_noisy_labels__frac_zero_noise_rates__0.2__noise_amount__0.4.json.gz"
    upstream = server[0] / "cifar10_noisy_labels" / label_file.name.removesuffix(".gz")
    assert gzip.decompress(label_file.read_bytes()) == upstream.read_bytes()  # the same bytes, compressed
    assert np.load(out / "pyx__frac_zero_noise_rates__0.2__noise_amount__0.4.npy").shape == (20, 10)
    assert fetch.fetch_published(str(out), base_url=server[1], checksums=sums, log=lambda _: None) == []


def test_the_label_files_read_as_clpipe_reads_the_shared_ones(tmp_path, server):
    """The compressed JSON keys (the seed's absolute paths) match a dataset's files like the shared copy's."""
    sums = _published(server, tmp_path)
    out = tmp_path / "cl-reproduce"
    fetch.fetch_published(str(out), base_url=server[1], checksums=sums, log=lambda _: None)
    labels = np.repeat(np.arange(10), 2)
    np.savez(tmp_path / "tiny.npz", images=np.zeros((20, 32, 32, 3), np.uint8), labels=labels)
    split = open_split(str(tmp_path / "tiny.npz"))
    given = load_labels(
        str(out / "cifar10_noisy_labels__frac_zero_noise_rates__0.0__noise_amount__0.0.json.gz"), split
    )
    assert given.shape == (20,)


@pytest.mark.parametrize(
    "case, message",
    [
        ("checksum", "sha256: is "),
        ("missing", "download failed: HTTP 404"),
        ("unreachable", "download failed"),
    ],
)
def test_a_wrong_missing_or_unreachable_file_is_refused(tmp_path, server, case, message):
    sums = _published(server, tmp_path)
    base = server[1]
    if case == "checksum":
        sums[("0.0", "0.0")] = ("0" * 64, sums[("0.0", "0.0")][1])
    elif case == "missing":
        sums[("0.4", "0.6")] = ("0" * 64, "0" * 64)
    else:
        base = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(InputError, match=message):
        fetch.fetch_published(str(tmp_path / "out"), base_url=base, checksums=sums, log=lambda _: None)


def test_the_cli_refuses_files_that_are_not_the_published_ones(tmp_path, server, capsys):
    _published(server, tmp_path)  # same paths, other contents than the pinned checksums
    argv = ["data", "fetch", "cl-reproduce", "--out", str(tmp_path / "data"), "--cl-reproduce-url", server[1]]
    assert clpipe_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "ERROR data fetch:" in err and "sha256: is " in err and "not the published file" in err
    written = tmp_path / "data" / "cl-reproduce"
    assert not written.exists() or not list(written.iterdir())
