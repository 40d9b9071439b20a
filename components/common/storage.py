"""Reading and writing by path or URL, through fsspec.

Every input and output location in clpipe is a local path or an fsspec URL: ``file://``,
``gs://`` (gcsfs), ``s3://`` (s3fs), ``memory://`` and ``minio://``. fsspec has no
``minio://`` protocol; KFP uses it for its bundled object store, so it is mapped to
``s3://`` with the endpoint from ``AWS_ENDPOINT_URL`` (default: the in-cluster KFP
store). Credentials come only from the environment (``AWS_*``,
``GOOGLE_APPLICATION_CREDENTIALS``), never from arguments.

Outputs are published atomically: single files go to a temporary name and are renamed
(one PUT on object stores, which is atomic per object), and multi-file outputs are staged
in a local directory and published only when the stage finished (:func:`staged_output`),
so a failed stage leaves no half-written output behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import numpy as np

from .errors import InputError

#: Endpoint of the object store that KFP >= 2.16 deploys (SeaweedFS, S3 API on 9000).
DEFAULT_MINIO_ENDPOINT = "http://seaweedfs.kubeflow:9000"
#: Where big inputs read by URL (datasets) are cached on local disk.
CACHE_DIR_ENV = "CLPIPE_CACHE_DIR"


def _fs_url(url: str) -> tuple[str, dict[str, Any]]:
    """Maps ``minio://`` to ``s3://`` plus its endpoint; other URLs pass unchanged."""
    url = os.fspath(url)
    if url.startswith("minio://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get(
            "MINIO_ENDPOINT", DEFAULT_MINIO_ENDPOINT
        )
        return "s3://" + url[len("minio://") :], {"client_kwargs": {"endpoint_url": endpoint}}
    return url, {}


def url_to_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Returns the filesystem and the protocol-less path for ``url``."""
    fs_url, options = _fs_url(url)
    return fsspec.core.url_to_fs(fs_url, **options)


def is_local(url: str) -> bool:
    """True for plain paths and ``file://`` URLs."""
    fs, _ = url_to_fs(url)
    return "file" in _protocols(fs)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def join(url: str, *parts: str) -> str:
    """Joins path parts onto a path or URL with ``/`` (URLs never use ``os.sep``)."""
    url = os.fspath(url)
    if "://" not in url:
        return os.path.join(url, *parts)
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


#: Where the credentials of a refused request come from (never from arguments).
CREDENTIALS_HINT = "check the credentials in the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS)"


@contextlib.contextmanager
def _access(url: str) -> Iterator[None]:
    """Turns a refused request (what s3fs/gcsfs raise for bad credentials) into an error naming ``url``."""
    try:
        yield
    except PermissionError as e:
        raise InputError(url, "", f"permission denied ({e}); {CREDENTIALS_HINT}") from None


def exists(url: str) -> bool:
    fs, path = url_to_fs(url)
    with _access(url):
        return fs.exists(path)


def isdir(url: str) -> bool:
    fs, path = url_to_fs(url)
    with _access(url):
        return fs.isdir(path)


def listdir(url: str) -> list[str]:
    """Base names of the entries directly under ``url``, sorted."""
    fs, path = url_to_fs(url)
    with _access(url):
        return sorted(os.path.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))


def read_bytes(url: str) -> bytes:
    """Reads a whole file; a missing or refused file is an :class:`InputError` naming it."""
    fs, path = url_to_fs(url)
    try:
        with _access(url), fs.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError(url, "", "file not found") from None
    except IsADirectoryError:
        raise InputError(url, "", "is a directory, expected a file") from None


def write_bytes(url: str, data: bytes) -> None:
    """Writes a whole file atomically: a temporary name, then a rename (local) or one PUT."""
    fs, path = url_to_fs(url)
    if "file" in _protocols(fs):
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    else:
        with _access(url):
            fs.pipe_file(path, data)


def load_npy(url: str, *, field: str = "") -> np.ndarray:
    """Loads a ``.npy`` array (never pickles); unreadable content names the file."""
    data = read_bytes(url)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        raise InputError(url, field, f"not a readable .npy array ({e})") from None


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def save_npy(url: str, array: np.ndarray) -> None:
    write_bytes(url, npy_bytes(array))


def load_json(url: str) -> Any:
    """Loads JSON, also gzip-compressed (``.gz``); bad JSON names the file."""
    data = read_bytes(url)
    if url.endswith(".gz"):
        import gzip

        try:
            data = gzip.decompress(data)
        except OSError as e:
            raise InputError(url, "", f"not a gzip file ({e})") from None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(url, "", f"not valid JSON ({e})") from None


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()


def save_json(url: str, obj: Any) -> None:
    write_bytes(url, json_bytes(obj))


def cache_dir() -> str:
    """Where remote inputs and decoded datasets are cached: ``$CLPIPE_CACHE_DIR`` or ``~/.cache/clpipe``."""
    return os.environ.get(CACHE_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "clpipe")


def local_copy(url: str) -> str:
    """A local path for ``url``: local files as they are, remote ones cached on disk.

    Big inputs (datasets) are read by URL instead of being copied into every pipeline
    task; the cache (``$CLPIPE_CACHE_DIR``, default ``~/.cache/clpipe``) keeps one copy per
    machine and re-downloads only when the remote object changed.
    """
    fs, path = url_to_fs(url)
    if "file" in _protocols(fs):
        return path
    fs_url, options = _fs_url(url)
    protocol = fs_url.split("://", 1)[0]
    if not exists(url):
        raise InputError(url, "", "file not found")
    with _access(url):
        return fsspec.open_local(
            f"filecache::{fs_url}",
            filecache={"cache_storage": cache_dir(), "check_files": True},
            **{protocol: options},
        )


@contextlib.contextmanager
def staged_output(url: str) -> Iterator[str]:
    """Stages a multi-file output in a local directory and publishes it only on success.

    Yields a local directory to write into. When the block ends without an exception its
    files are published under ``url``: locally by renaming a sibling temporary directory
    into place (replacing an older output), remotely by uploading each file, with the
    files named in ``.publish_last`` (e.g. a summary that marks completion) uploaded last.
    On an exception nothing is published.
    """
    stage = tempfile.mkdtemp(prefix="clpipe-out-")
    os.chmod(stage, 0o777 & ~_umask())  # published as is: not mkdtemp's private 0700
    try:
        yield stage
        publish_dir(stage, url)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    """The process umask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_dir(local_dir: str, url: str, *, last: tuple[str, ...] = ("summary.json", "metrics.json")) -> None:
    """Publishes the files of ``local_dir`` under ``url`` (see :func:`staged_output`)."""
    fs, path = url_to_fs(url)
    if "file" in _protocols(fs):
        target = os.path.abspath(path)
        parent = os.path.dirname(target)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(target)}.partial-{uuid.uuid4().hex[:8]}")
        shutil.copytree(local_dir, tmp)
        old = None
        if os.path.isdir(target):
            old = os.path.join(parent, f".{os.path.basename(target)}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return
    files = []
    for root, _, names in os.walk(local_dir):
        for name in names:
            files.append(os.path.relpath(os.path.join(root, name), local_dir))
    files.sort(key=lambda rel: (rel in last, rel))
    with _access(url):
        for rel in files:
            fs.put_file(os.path.join(local_dir, rel), f"{path.rstrip('/')}/{rel}")
