"""Reading and writing by path or URL, through fsspec; stage outputs with manifests.

Every input and output location in clpipe is a local path or an fsspec URL: ``file://``,
``gs://`` (gcsfs), ``s3://`` (s3fs), ``memory://`` and ``minio://``. fsspec has no
``minio://`` protocol; KFP uses it for its bundled object store, so it is mapped to
``s3://`` with the endpoint from ``AWS_ENDPOINT_URL`` (default: the in-cluster KFP
store). Credentials come only from the environment (``AWS_*``,
``GOOGLE_APPLICATION_CREDENTIALS``), never from arguments. A location that cannot be
used (unknown scheme, no credentials, unreachable endpoint, refused request) is an
:class:`InputError` naming the URL and what to set, after a bounded number of retries.

Stage outputs (folders) follow three rules (docs/architecture.md, "Publishing and manifests"):

1. **A stage never deletes what it did not write.** :func:`check_output` refuses an output
   location that is an existing file, a non-empty folder that is not an earlier output of the
   same stage (recognised by its manifest, whose files must be unchanged), or one that equals,
   lies inside or contains an input. Overwriting an earlier output of the same stage replaces
   exactly the files that output listed; anything else in the folder is left alone.
2. **Every output carries a manifest written last** (:data:`MANIFEST`: stage, clpipe version,
   input fingerprints, and the size and sha256 of every file). Readers
   (:func:`open_output`, and :func:`load_npy`/:func:`load_json` for a file inside an output)
   read only what a manifest lists and verify it; an output without one is refused.
3. **Publishing is a small journaled protocol** that works the same on a local disk and on
   object stores, where there is no rename but each PUT is atomic (:func:`_publish`): a
   journal naming every file the publish may touch, then the old manifest removed, stale
   files removed, new files moved or uploaded, the new manifest, the journal removed. An
   interruption at any point leaves either the previous complete output (verified by its
   manifest), the new complete output, or an output a reader refuses as incomplete (journal,
   no manifest), which a rerun of the same stage replaces. Never a mix that passes as complete.

The stage writes its files into a local staging folder first (:func:`staged_output`), which
lives inside the output folder for local outputs (so moving a file is a rename) and under
``$CLPIPE_CACHE_DIR/staging`` for remote ones. Staging folders carry a recognisable name and
are locked by their process; folders left by a killed process are swept on the next start.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import io
import json
import logging
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from .errors import InputError

#: Endpoint of the object store that KFP >= 2.16 deploys (SeaweedFS, S3 API on 9000).
DEFAULT_MINIO_ENDPOINT = "http://seaweedfs.kubeflow:9000"
#: Where big inputs read by URL (datasets) are cached on local disk.
CACHE_DIR_ENV = "CLPIPE_CACHE_DIR"
#: Attempts per S3 request: botocore's "standard" retry mode with its default of 3 (the AWS SDKs'
#: default) instead of the legacy mode's 5, so an unreachable endpoint is reported after 1-3 s
#: instead of 5-12 s, while a store's transient 500/503 still gets two retries. s3fs retries
#: throttling and connections dropped mid-request on its own. ``AWS_MAX_ATTEMPTS`` /
#: ``AWS_RETRY_MODE`` in the environment take precedence.
S3_MAX_ATTEMPTS = 3
#: Where the credentials of a refused request come from (never from arguments).
CREDENTIALS_HINT = "check the credentials in the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS)"
#: Schemes clpipe reads and writes (others fsspec knows work too, but are not tested).
KNOWN_SCHEMES = ("file", "s3", "minio", "gs", "memory")

#: The manifest of a stage output: written last, read first.
MANIFEST = "clpipe-manifest.json"
#: Present while a publish is under way (and after one was interrupted): the files it may touch.
JOURNAL = ".clpipe-publishing.json"
#: Value of the manifest's ``format`` field; readers refuse any other.
MANIFEST_FORMAT = "clpipe-output/1"
#: Prefix of staging folders (inside a local output folder, or under the cache for remote ones).
STAGING_PREFIX = ".clpipe-staging-"
#: Files of an output lie at most this many path parts below it (``train_pruned_<m>/train_mask.npy``,
#: ``plots/x.png``): a reader given a single file looks for the manifest this many folders up.
MAX_OUTPUT_DEPTH = 2


# --- URLs and filesystems ----------------------------------------------------------------------


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


def _fs_url(url: str) -> tuple[str, dict[str, Any]]:
    """The fsspec URL and options for ``url``: ``minio://`` becomes ``s3://`` at its endpoint,
    and S3 requests get a bounded number of attempts."""
    url = os.fspath(url)
    scheme = _scheme(url)
    if scheme not in ("s3", "minio"):
        return url, {}
    options: dict[str, Any] = {}
    if not (os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE")):
        options["config_kwargs"] = {"retries": {"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"}}
    if scheme == "minio":
        options["client_kwargs"] = {"endpoint_url": _s3_endpoint(url)}
        url = "s3://" + url[len("minio://") :]
    return url, options


def _s3_endpoint(url: str) -> str | None:
    """The S3 endpoint ``url`` is sent to (None: AWS itself)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if _scheme(url) == "minio":
        return endpoint or os.environ.get("MINIO_ENDPOINT", DEFAULT_MINIO_ENDPOINT)
    return endpoint


def url_to_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Returns the filesystem and the protocol-less path for ``url``.

    Raises:
        InputError: for a scheme fsspec does not know, naming the URL and the known schemes.
    """
    fs_url, options = _fs_url(url)
    if "://" in fs_url and not fs_url.startswith(("file://", "memory://")):
        _quiet_aiohttp_write_noise()
    with _known_scheme(url):
        return fsspec.core.url_to_fs(fs_url, **options)


@contextlib.contextmanager
def _known_scheme(url: str) -> Iterator[None]:
    """fsspec's errors for a scheme it does not know, or whose package is missing, as an InputError naming ``url``."""
    try:
        yield
    except ValueError as e:
        if "Protocol not known" not in str(e):
            raise
        raise InputError(
            os.fspath(url),
            "",
            f"unknown URL scheme {_scheme(url)!r}: use a path or one of "
            + ", ".join(f"{s}://" for s in KNOWN_SCHEMES),
        ) from None
    except ImportError as e:  # a scheme fsspec knows whose package is not installed
        raise InputError(os.fspath(url), "", f"the {_scheme(url)}:// scheme needs a package: {e}") from None


class _AiohttpWriteNoise(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for aiohttp's request-writing task.

    aiohttp 3.14 lets a connection reset during a request's ``Expect: 100-continue`` preamble (which
    botocore sends for uploads) escape that task, so asyncio logs it with a traceback; the request
    itself fails too, s3fs/botocore retry it, and what remains reaches the user as one
    :class:`InputError` line (:func:`_access`). The duplicate traceback is dropped, nothing else.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        aiohttp = _optional_module("aiohttp")
        noise = (
            str(record.msg).startswith("Task exception was never retrieved")
            and aiohttp is not None
            and isinstance(exc, (aiohttp.ClientConnectionError, ConnectionResetError))
            and "write_bytes" in str(record.msg)
        )
        return not noise


def _quiet_aiohttp_write_noise() -> None:
    """Installs :class:`_AiohttpWriteNoise` on the ``asyncio`` logger (once)."""
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _AiohttpWriteNoise) for f in asyncio_log.filters):
        asyncio_log.addFilter(_AiohttpWriteNoise())


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _fs_is_local(fs: fsspec.AbstractFileSystem | type[fsspec.AbstractFileSystem]) -> bool:
    return "file" in _protocols(fs)


def is_local(url: str) -> bool:
    """True for plain paths and ``file://`` URLs.

    Told by the URL's filesystem class, without making a filesystem: making one can take seconds (gcsfs looks
    for Google credentials first, 15 s on a machine outside Google Cloud without them), and the pipeline asks
    this of every dataset URL when it is built.
    """
    fs_url, _ = _fs_url(url)
    with _known_scheme(url):
        return _fs_is_local(fsspec.get_filesystem_class(fsspec.utils.get_protocol(fs_url)))


def join(url: str, *parts: str) -> str:
    """Joins path parts onto a path or URL with ``/`` (URLs never use ``os.sep``)."""
    url = os.fspath(url)
    if "://" not in url:
        return os.path.join(url, *parts)
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def _parent(url: str) -> str | None:
    """The folder holding ``url`` (None at the top: ``/`` or a bucket), spelt like ``url`` where possible."""
    if "://" in url:
        scheme, rest = url.rstrip("/").split("://", 1)
        return f"{scheme}://{rest.rsplit('/', 1)[0]}" if "/" in rest else None
    path = url.rstrip(os.sep)
    parent = os.path.dirname(path)
    if parent and parent != path and os.path.basename(path) not in (".", ".."):
        return parent
    absolute = os.path.abspath(url)
    return None if os.path.dirname(absolute) == absolute else os.path.dirname(absolute)


# --- errors of a location ---------------------------------------------------------------------


@contextlib.contextmanager
def _access(url: str) -> Iterator[None]:
    """Turns what the storage clients raise for an unusable location into one line naming ``url``:
    refused credentials, missing credentials, an unreachable endpoint."""
    try:
        yield
    except InputError:
        raise
    except Exception as e:
        problem = _location_problem(e, url)
        if problem is None:
            raise
        raise InputError(os.fspath(url), "", problem) from None


def _location_problem(e: Exception, url: str) -> str | None:
    """What to tell the user about ``e``, or None when ``e`` is not about the location."""
    if isinstance(e, PermissionError):
        return f"permission denied ({e}); {CREDENTIALS_HINT}"
    botocore = _optional_module("botocore.exceptions")
    if botocore is not None:
        if isinstance(e, (botocore.NoCredentialsError, botocore.PartialCredentialsError)):
            return f"no S3 credentials ({e}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        endpoint = _s3_endpoint(url)
        where = f"the S3 endpoint {endpoint}" if endpoint else "AWS S3"
        hint = (
            f"minio:// URLs go to AWS_ENDPOINT_URL (default {DEFAULT_MINIO_ENDPOINT}, inside a KFP cluster)"
            if _scheme(url) == "minio"
            else "for an S3-compatible store set AWS_ENDPOINT_URL"
        )
        if isinstance(e, botocore.ConnectionError):  # refused, unknown host, connect time-out, TLS
            return f"cannot reach {where} ({type(e).__name__}, also on retries); {hint}"
        if isinstance(e, botocore.HTTPClientError):  # connection closed or timed out mid-request
            return f"lost the connection to {where} ({type(e).__name__}, also on retries); {hint}"
    google_auth = _optional_module("google.auth.exceptions")
    if google_auth is not None and isinstance(e, google_auth.DefaultCredentialsError):
        return f"no Google Cloud credentials ({e}): set GOOGLE_APPLICATION_CREDENTIALS"
    aiohttp = _optional_module("aiohttp")
    if aiohttp is not None and isinstance(e, aiohttp.ClientConnectorError):
        host = "STORAGE_EMULATOR_HOST" if os.environ.get("STORAGE_EMULATOR_HOST") else "the network"
        return f"cannot reach the storage service ({e}); check {host}"
    return None


def _optional_module(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# --- files -------------------------------------------------------------------------------------


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
    """Reads a whole file as it is; a missing or refused file is an :class:`InputError` naming it.

    Stage inputs go through :func:`load_npy`, :func:`load_json` or :func:`read_input`, which also
    verify a file that belongs to a clpipe output.
    """
    fs, path = url_to_fs(url)
    try:
        with _access(url):
            return fs.cat_file(path)  # one GET: not pinned to an ETag seen earlier, unlike fs.open
    except FileNotFoundError:
        raise InputError(url, "", "file not found") from None
    except IsADirectoryError:
        raise InputError(url, "", "is a directory, expected a file") from None


def _read_if_exists(url: str) -> bytes | None:
    try:
        return read_bytes(url)
    except InputError as e:
        if e.problem == "file not found":
            return None
        raise


def write_bytes(url: str, data: bytes) -> None:
    """Writes a whole file atomically: a temporary name, then a rename (local) or one PUT."""
    fs, path = url_to_fs(url)
    if _fs_is_local(fs):
        _write_local(path, data)
    else:
        with _access(url):
            fs.pipe_file(path, data)


def _write_local(path: str, data: bytes, tmp_dir: str | None = None) -> None:
    """Writes ``path`` through a temporary file in ``tmp_dir`` (default: its folder) and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_input(url: str) -> bytes:
    """Reads a file given as a stage input, verified when it belongs to a clpipe output.

    A file inside a clpipe output (its manifest lies at most :data:`MAX_OUTPUT_DEPTH` folders
    up) is read only if the manifest lists it, and checked against the listed size and sha256;
    a file inside an incomplete output (an interrupted publish) is refused. Any other file
    (a label file, a dataset) is read as it is.
    """
    found = _enclosing_output(url)
    if found is None:
        return read_bytes(url)
    output, name = found
    return output.read_bytes(name)


def load_npy(url: str, *, field: str = "") -> np.ndarray:
    """Loads a ``.npy`` array (never pickles) given as an input (:func:`read_input`)."""
    return _npy(read_input(url), url, field)


def _npy(data: bytes, url: str, field: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):  # numpy's advice to unpickle an unknown file is never passed on
            raise InputError(url, field, "not a readable .npy array: neither numpy's .npy format nor a "
                             "numeric array (it would have to be unpickled, which clpipe never does)") from None
        raise InputError(url, field, f"not a readable .npy array ({e})") from None


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def save_npy(url: str, array: np.ndarray) -> None:
    write_bytes(url, npy_bytes(array))


def load_json(url: str) -> Any:
    """Loads JSON given as an input (:func:`read_input`), also gzip-compressed (``.gz``)."""
    return _json(read_input(url), url)


def _json(data: bytes, url: str) -> Any:
    if url.endswith(".gz"):
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
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
    if _fs_is_local(fs):
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


# --- manifests and reading outputs --------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One file of an output as its manifest lists it."""

    size: int
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> FileEntry:
        return cls(len(data), hashlib.sha256(data).hexdigest())

    @classmethod
    def of_file(cls, path: str) -> FileEntry:
        with open(path, "rb") as f:
            return cls(os.fstat(f.fileno()).st_size, hashlib.file_digest(f, "sha256").hexdigest())


@dataclass(frozen=True)
class Manifest:
    """What a stage output holds; written last by :func:`_publish`, checked by every reader.

    Attributes:
        stage: The stage that wrote the output (e.g. ``make-masks``); an output is only ever
            overwritten by the same stage.
        files: Relative ``/``-separated path -> size and sha256, for every file of the output.
        inputs: One fingerprint per input (:func:`input_fingerprint`).
        clpipe_version: The clpipe version that wrote it.
        published: UTC time of the publish (ISO 8601).
    """

    stage: str
    files: Mapping[str, FileEntry]
    inputs: tuple[Mapping[str, Any], ...] = ()
    clpipe_version: str = ""
    published: str = ""

    def to_bytes(self) -> bytes:
        return json_bytes(
            {
                "format": MANIFEST_FORMAT,
                "stage": self.stage,
                "clpipe_version": self.clpipe_version,
                "published": self.published,
                "inputs": list(self.inputs),
                "files": {
                    name: {"size": e.size, "sha256": e.sha256} for name, e in sorted(self.files.items())
                },
            }
        )

    @classmethod
    def parse(cls, data: bytes, url: str) -> Manifest:
        """The manifest in ``data`` (read from ``url``); anything malformed is an :class:`InputError`."""
        try:
            raw = json.loads(data)
            if raw.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {MANIFEST_FORMAT!r}")
            files = {
                str(name): FileEntry(int(e["size"]), str(e["sha256"])) for name, e in raw["files"].items()
            }
            return cls(
                stage=str(raw["stage"]),
                files=files,
                inputs=tuple(raw.get("inputs", ())),
                clpipe_version=str(raw.get("clpipe_version", "")),
                published=str(raw.get("published", "")),
            )
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as e:
            raise InputError(url, "", f"not a readable clpipe manifest ({e!r})") from None


class Output:
    """A published stage output, opened through its manifest (:func:`open_output`).

    Reads go only to files the manifest lists, and each is checked against its listed size
    and sha256, so a file replaced since the manifest was written (a rewrite in progress, a
    hand edit, stale files of an earlier run) is refused rather than mixed in.
    """

    def __init__(self, url: str, manifest: Manifest, digest: str) -> None:
        self.url = os.fspath(url)
        self.manifest = manifest
        #: sha256 of the manifest's bytes: identifies this exact output.
        self.digest = digest

    @property
    def stage(self) -> str:
        return self.manifest.stage

    @property
    def files(self) -> Mapping[str, FileEntry]:
        return self.manifest.files

    def url_of(self, name: str) -> str:
        return join(self.url, *name.split("/"))

    def entry(self, name: str) -> FileEntry:
        """What the manifest lists for file ``name``; a file it does not list is an :class:`InputError`."""
        if name not in self.files:
            raise InputError(
                self.url_of(name),
                "",
                f"not listed in the manifest of {self.url} ({self.stage} output); "
                f"it lists {_listing(sorted(self.files))}",
            )
        return self.files[name]

    def read_bytes(self, name: str) -> bytes:
        """The verified content of file ``name`` (a relative path the manifest lists)."""
        url, entry = self.url_of(name), self.entry(name)
        data = _read_if_exists(url)
        if data is None:
            raise InputError(
                url,
                "",
                f"listed in the manifest of {self.url} but missing: the output is "
                f"damaged or being rewritten; rerun {self.stage}",
            )
        if FileEntry.of(data) != entry:
            raise InputError(
                url,
                "",
                f"does not match the manifest of {self.url} (size {len(data)} vs "
                f"{entry.size}, or sha256): the file changed after {self.stage} wrote it, or "
                "the output is being rewritten",
            )
        return data

    def load_npy(self, name: str, *, field: str = "") -> np.ndarray:
        return _npy(self.read_bytes(name), self.url_of(name), field)

    def load_json(self, name: str) -> Any:
        return _json(self.read_bytes(name), self.url_of(name))

    def verify(self) -> None:
        """Reads and checks every listed file (:meth:`read_bytes` checks only what it reads)."""
        for name in self.files:
            self.read_bytes(name)

    def fingerprint(self) -> dict[str, Any]:
        """What a consumer records about this input: where, which stage, which exact output."""
        return {"url": self.url, "stage": self.stage, "manifest_sha256": self.digest}


def open_output(url: str, stage: str | Iterable[str] | None = None) -> Output:
    """Opens the stage output at ``url`` through its manifest.

    Args:
        url: The output folder (path or URL).
        stage: The stage (or stages) that may have written it; None accepts any.

    Returns:
        The output; its files are verified as they are read.

    Raises:
        InputError: naming ``url`` when there is no output, when a publish of it was interrupted
            (or is under way), when it has no manifest (not a clpipe output, or written by a clpipe
            before manifests), when another stage wrote it, or when a listed file is missing or
            has another size (a partial output).
    """
    url = os.fspath(url)
    loc = _Location(url)
    data = loc.read(MANIFEST)
    if data is None:
        raise InputError(url, "", _missing_manifest(loc))
    manifest = Manifest.parse(data, join(url, MANIFEST))
    _check_stage(url, manifest.stage, stage)
    sizes = loc.listing()
    wrong = [n for n, e in sorted(manifest.files.items()) if sizes.get(n) != e.size]
    if wrong:
        raise InputError(
            url,
            "",
            f"incomplete {manifest.stage} output: {len(wrong)} listed files missing or "
            f"of another size ({_listing(wrong)}); rerun {manifest.stage}",
        )
    return Output(url, manifest, hashlib.sha256(data).hexdigest())


def _missing_manifest(loc: _Location) -> str:
    """Why there is no manifest at ``loc``: never written, interrupted, or no output at all."""
    data = loc.read(JOURNAL)
    if data is not None:
        journal = _parse_journal(data, join(loc.url, JOURNAL))
        who, started = journal.get("stage", "a stage"), journal.get("started", "?")
        return (
            f"incomplete output: a publish by {who} started {started} was interrupted or is still "
            f"running; rerun {who} with this output location"
        )
    kind = loc.kind()
    if kind == "missing":
        return "output not found"
    if kind == "file":
        return "is a file, expected a stage output folder"
    if not loc.listing():
        return "output not found (an empty folder: a run writing it may have been interrupted)"
    return (
        f"not a clpipe output: no {MANIFEST} (written by another tool, by a clpipe older than "
        "manifests, or an interrupted run); rerun the stage that writes it"
    )


def _check_stage(url: str, found: str, expected: str | Iterable[str] | None) -> None:
    if expected is None:
        return
    allowed = (expected,) if isinstance(expected, str) else tuple(expected)
    if found not in allowed:
        raise InputError(url, "", f"is an output of {found}, expected an output of {' or '.join(allowed)}")


def _enclosing_output(url: str) -> tuple[Output, str] | None:
    """The clpipe output a file belongs to and its name there, looking up to
    :data:`MAX_OUTPUT_DEPTH` folders up; None for a file outside any output."""
    folder, parts = os.fspath(url).rstrip("/"), []
    for _ in range(MAX_OUTPUT_DEPTH):
        parent = _parent(folder)
        if parent is None:
            return None
        parts.insert(0, folder.replace(os.sep, "/").rsplit("/", 1)[-1])
        folder = parent
        loc = _Location(folder, reported_as=url)
        if loc.read(MANIFEST) is None and loc.read(JOURNAL) is None:
            continue
        return open_output(folder), "/".join(parts)
    return None


def input_fingerprint(url: str) -> dict[str, Any]:
    """What an output's manifest records about one input.

    A clpipe output: its stage and the sha256 of its manifest (which covers every file); a file
    inside one: that plus the file's sha256; any other file: its size and the version the store
    gives it (mtime, ETag, generation), not its content (datasets are big, and the stages record
    content fingerprints of what they read themselves); a folder: only its URL.

    Raises:
        InputError: for a missing input or one inside an incomplete output.
    """
    url = os.fspath(url)
    loc = _Location(url)
    if loc.read(MANIFEST) is not None or loc.read(JOURNAL) is not None:
        return open_output(url).fingerprint()
    found = _enclosing_output(url)
    if found is not None:
        output, name = found
        return {**output.fingerprint(), "url": url, "output": output.url, "sha256": output.entry(name).sha256}
    info = loc.info()
    if info is None:
        raise InputError(url, "", "not found")
    if info.get("type") == "directory":
        return {"url": url, "type": "directory"}
    version = next(
        (info[k] for k in ("ETag", "generation", "md5Hash", "mtime", "created") if k in info), None
    )
    return {"url": url, "type": "file", "size": info.get("size"), "version": str(version)}


# --- where an output lives -----------------------------------------------------------------------


class _Location:
    """An output folder on a local disk or an object store, with the few operations publishing needs.

    Local files are moved with ``os.replace`` (a rename: atomic); remote ones uploaded with one
    PUT each (atomic per object). Listings bypass fsspec's listing cache, since other processes
    may have written the folder.
    """

    def __init__(self, url: str, reported_as: str | None = None) -> None:
        self.url = os.fspath(url)
        #: The URL an unusable location is reported as: the input a folder above it is looked at for.
        self.reported_as = reported_as or self.url
        self.fs, path = url_to_fs(self.url)
        self.local = _fs_is_local(self.fs)
        self.path = os.path.abspath(path) if self.local else path.rstrip("/")

    def child(self, name: str) -> str:
        return os.path.join(self.path, *name.split("/")) if self.local else f"{self.path}/{name}"

    def info(self) -> dict | None:
        """fsspec's info of the folder itself; None when nothing is there."""
        with _access(self.reported_as):
            self.fs.invalidate_cache(self.path)
            try:
                return self.fs.info(self.path)
            except FileNotFoundError:
                return None
            except NotADirectoryError:
                raise InputError(self.url, "", "cannot be a folder: a folder above it is a file") from None

    def kind(self) -> str:
        """``missing``, ``file`` or ``dir``."""
        info = self.info()
        if info is None:
            return "missing"
        return "dir" if info.get("type") == "directory" else "file"

    def read(self, name: str) -> bytes | None:
        with _access(self.reported_as):
            try:
                return self.fs.cat_file(self.child(name))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None

    def listing(self) -> dict[str, int]:
        """Relative path -> size of every file below the folder, staging folders left out."""
        with _access(self.reported_as):
            self.fs.invalidate_cache(self.path)
            try:
                found = self.fs.find(self.path, detail=True)
            except FileNotFoundError:
                return {}
        sizes = {}
        for path, info in found.items():
            rel = posixpath.relpath(path.replace(os.sep, "/"), self.path.replace(os.sep, "/"))
            if not rel.startswith(STAGING_PREFIX) and rel != ".":
                sizes[rel] = int(info.get("size") or 0)
        return sizes

    def put(self, local_file: str, name: str) -> None:
        target = self.child(name)
        if self.local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(local_file, target)
        else:
            with _access(self.reported_as):
                self.fs.put_file(local_file, target)

    def write(self, name: str, data: bytes, tmp_dir: str) -> None:
        if self.local:
            _write_local(self.child(name), data, tmp_dir)
        else:
            with _access(self.reported_as):
                self.fs.pipe_file(self.child(name), data)

    def delete(self, name: str) -> None:
        target = self.child(name)
        if self.local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            _remove_empty_dirs(os.path.dirname(target), self.path)
        else:
            with _access(self.reported_as), contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(target)


def _remove_empty_dirs(directory: str, root: str) -> None:
    """Removes ``directory`` and its parents up to (not including) ``root`` while they are empty."""
    while os.path.abspath(directory) != os.path.abspath(root):
        try:
            os.rmdir(directory)
        except OSError:
            return
        directory = os.path.dirname(directory)


# --- checking an output location ---------------------------------------------------------------


@dataclass
class _Claim:
    """What an output location holds that the publishing stage may replace."""

    owned: set[str] = field(default_factory=set)  # files of our earlier output or interrupted publish
    listing: dict[str, int] = field(default_factory=dict)  # every file there (relative path -> size)
    manifest: Manifest | None = None  # the earlier complete output's manifest
    digest: str | None = None  # sha256 of its bytes
    interrupted: bool = False  # a journal of an earlier publish was found


def check_output(url: str, *, stage: str, inputs: Iterable[str] = ()) -> None:
    """Refuses an output location that ``stage`` must not write; call it before any work.

    Raises:
        InputError: naming ``url`` when it equals, lies inside or contains one of ``inputs``,
            is an existing file, is a non-empty folder that is not an earlier output of ``stage``
            (no manifest, another stage's manifest, or files changed since), or another live
            process is writing it.
    """
    _check_not_overlapping(url, inputs)
    _claim(_Location(url), stage)
    _check_no_live_writer(url)


def check_new_file(url: str, *, inputs: Iterable[str] = ()) -> None:
    """Refuses a single-file output (``clpipe predict --out``, ``clpipe data subset``) where something already is.

    A single file carries no manifest that would say clpipe wrote it, so an existing one is never replaced
    (a stage never deletes what it did not write): the user removes it or names another file.

    Raises:
        InputError: naming ``url`` when it is one of ``inputs`` or something is already there.
    """
    _check_not_overlapping(url, inputs)
    kind = _Location(url).kind()
    if kind != "missing":
        raise InputError(url, "", f"a {'folder' if kind == 'dir' else 'file'} is already there; clpipe never "
                         "replaces a file it cannot tell it wrote: remove it or choose another name")


def _check_not_overlapping(url: str, inputs: Iterable[str]) -> None:
    out_key = _location_key(url)
    for input_url in inputs:
        in_key = _location_key(input_url)
        if out_key[0] != in_key[0]:
            continue
        out_path, in_path = out_key[1], in_key[1]
        if out_path == in_path:
            problem = f"is also an input ({input_url}); a stage never writes over its inputs"
        elif _inside(out_path, in_path):
            problem = f"lies inside the input {input_url}; a stage never writes into its inputs"
        elif _inside(in_path, out_path):
            problem = f"contains the input {input_url}; a stage never writes over its inputs"
        else:
            continue
        raise InputError(os.fspath(url), "", f"{problem}: choose another output location")


def _location_key(url: str) -> tuple[tuple[str, str | None], str]:
    """(store, normalised path): two URLs name the same place iff their keys are equal.

    Local paths resolve symlinks; ``minio://b/x`` and ``s3://b/x`` are the same place when they
    go to the same endpoint.
    """
    fs, path = url_to_fs(url)
    if _fs_is_local(fs):
        return ("file", None), os.path.realpath(path)
    protocol = _protocols(fs)[0]
    endpoint = _s3_endpoint(url) if protocol in ("s3", "s3a") else None
    return (protocol, endpoint), "/" + path.strip("/")


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def _claim(loc: _Location, stage: str, *, trusted: str | None = None) -> _Claim:
    """What ``stage`` may replace at ``loc``, or an :class:`InputError` when the location is not its.

    ``trusted``: the manifest digest this process published last; an unchanged manifest then
    needs no re-reading of its files.
    """
    kind = loc.kind()
    if kind == "file":
        raise InputError(
            loc.url,
            "",
            f"is an existing file; an output location must be a new folder or an earlier output of {stage}",
        )
    if kind == "missing":
        return _Claim()
    listing = loc.listing()
    claim = _Claim(listing=listing)
    if JOURNAL in listing:
        journal = _parse_journal(loc.read(JOURNAL) or b"{}", join(loc.url, JOURNAL))
        _refuse_other_stage(loc.url, journal.get("stage"), stage)
        claim.owned |= set(journal.get("files", ())) | {JOURNAL}
        claim.interrupted = True
    if MANIFEST in listing:
        data = loc.read(MANIFEST) or b""
        manifest = Manifest.parse(data, join(loc.url, MANIFEST))
        _refuse_other_stage(loc.url, manifest.stage, stage)
        claim.manifest, claim.digest = manifest, hashlib.sha256(data).hexdigest()
        if claim.digest != trusted:
            _refuse_changed(loc, manifest, listing)
        claim.owned |= set(manifest.files) | {MANIFEST}
    if listing and not claim.owned:
        raise InputError(
            loc.url,
            "",
            f"exists and is not an output of {stage} (no {MANIFEST}; it holds "
            f"{_listing(sorted(listing))}); a stage never deletes what it did not write: choose "
            "another output location, or empty this one yourself",
        )
    return claim


def _refuse_other_stage(url: str, found: str | None, stage: str) -> None:
    if found != stage:
        raise InputError(
            url,
            "",
            f"holds an output of {found}, not of {stage}; a stage never deletes what "
            "it did not write: choose another output location",
        )


def _refuse_changed(loc: _Location, manifest: Manifest, listing: Mapping[str, int]) -> None:
    """Refuses to replace an earlier output whose files changed after it was published."""
    for name, entry in sorted(manifest.files.items()):
        if name not in listing:
            continue  # already gone: nothing to protect
        data = loc.read(name)
        if data is not None and FileEntry.of(data) != entry:
            raise InputError(
                join(loc.url, name),
                "",
                f"changed after {manifest.stage} wrote it (its manifest lists another size or "
                "sha256); refusing to overwrite it: move it away or choose another output location",
            )


def _parse_journal(data: bytes, url: str) -> dict:
    try:
        journal = json.loads(data)
        if not isinstance(journal, dict):
            raise TypeError("not a JSON object")
        return journal
    except (ValueError, TypeError) as e:
        raise InputError(url, "", f"not a readable clpipe publish journal ({e})") from None


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown


# --- publishing ---------------------------------------------------------------------------------


def _clpipe_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("clpipe")
    except metadata.PackageNotFoundError:
        return "unknown"


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _staged_files(staging: str) -> dict[str, str]:
    """Relative ``/`` path -> local path of every file the stage wrote into ``staging``."""
    files = {}
    for root, dirs, names in os.walk(staging):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            files[os.path.relpath(path, staging).replace(os.sep, "/")] = path
    reserved = {MANIFEST, JOURNAL} & set(files)
    deep = [rel for rel in files if rel.count("/") >= MAX_OUTPUT_DEPTH]
    if reserved or deep:
        raise ValueError(
            f"a stage wrote reserved names {sorted(reserved)} or files more than "
            f"{MAX_OUTPUT_DEPTH} levels deep {deep}: the output layout is a bug"
        )
    return files


def _conflicts(new: Iterable[str], claim: _Claim) -> list[str]:
    """New files that would replace, or be put inside or above, a file not ours."""
    foreign = set(claim.listing) - claim.owned
    bad = []
    for rel in new:
        parents = {"/".join(rel.split("/")[:i]) for i in range(1, rel.count("/") + 1)}
        if rel in foreign or parents & foreign or any(_inside(f, rel) for f in foreign):
            bad.append(rel)
    return bad


def _publish(
    staging: str,
    loc: _Location,
    stage: str,
    inputs: tuple[Mapping[str, Any], ...],
    *,
    keep: Mapping[str, FileEntry] | None = None,
    trusted: str | None = None,
) -> str:
    """Publishes the files in ``staging`` at ``loc`` with a manifest written last; returns its digest.

    The steps, each atomic on its own (a rename locally, one PUT or DELETE on an object store):

    1. claim the location again (it may have changed since :func:`check_output`);
    2. write the journal: every file this publish may replace or remove;
    3. remove the old manifest (from here on readers refuse the output as incomplete);
    4. remove files of the old output that the new one does not list (nothing else);
    5. move (local) or upload (remote) the new files;
    6. write the new manifest: the output is complete again;
    7. remove the journal.

    ``keep``: files of the earlier output to list again unchanged (a resumable output that
    replaces only some files per publish).
    """
    claim = _claim(loc, stage, trusted=trusted)
    new = _staged_files(staging)
    entries = {rel: FileEntry.of_file(path) for rel, path in new.items()}
    files = {**{k: v for k, v in (keep or {}).items() if k not in entries}, **entries}
    conflicts = _conflicts(new, claim)
    if conflicts:
        raise InputError(
            loc.url,
            "",
            f"holds files that are not part of the earlier {stage} output and would "
            f"be replaced ({_listing(conflicts)}); move them away or choose another output location",
        )
    touched = sorted((claim.owned | set(files)) - {MANIFEST, JOURNAL})
    loc.write(
        JOURNAL,
        json_bytes({"stage": stage, "started": _utc_now(), "pid": os.getpid(), "files": touched}),
        staging,
    )
    if claim.manifest is not None:
        loc.delete(MANIFEST)
    for rel in sorted(claim.owned - set(files) - {MANIFEST, JOURNAL}):
        loc.delete(rel)
    for rel, path in new.items():
        loc.put(path, rel)
    manifest = Manifest(stage, files, inputs, _clpipe_version(), _utc_now()).to_bytes()
    loc.write(MANIFEST, manifest, staging)
    loc.delete(JOURNAL)
    return hashlib.sha256(manifest).hexdigest()


@contextlib.contextmanager
def staged_output(url: str, *, stage: str, inputs: Iterable[str] = ()) -> Iterator[str]:
    """Stages a stage's output folder locally and publishes it, manifest last, only on success.

    Usage (the files' layout below the folder is the stage's)::

        with storage.staged_output(out, stage="make-masks", inputs=[labels, pred_probs]) as tmp:
            storage.save_npy(storage.join(tmp, "train_pruned_argmax", "train_mask.npy"), mask)

    On entry the location is checked (:func:`check_output`) and the inputs fingerprinted, so a
    refusal comes before the block runs. The block writes into ``tmp``, a local folder (inside
    the output folder for a local output, so publishing is a rename; under the cache for a
    remote one). When it ends without an exception, the files are published by
    :func:`_publish`; on an exception nothing is published, ``tmp`` is removed, and so is the
    output folder if this call created it.
    """
    inputs = tuple(os.fspath(u) for u in inputs)
    check_output(url, stage=stage, inputs=inputs)
    fingerprints = tuple(input_fingerprint(u) for u in inputs)
    loc = _Location(url)
    with _staging(loc) as tmp:
        yield tmp
        _publish(tmp, loc, stage, fingerprints)


class ResumableOutput:
    """An output that one run publishes many times (a trainer's checkpoint and metrics per epoch).

    Each :meth:`publish` replaces some files and keeps the others, with the same protocol and
    guarantees as :func:`staged_output`. A rerun reads the earlier run's files with
    :meth:`previous` to resume. Get one with :func:`resumable_output`.
    """

    def __init__(
        self, loc: _Location, stage: str, inputs: tuple[Mapping[str, Any], ...], claim: _Claim
    ) -> None:
        self._loc, self.stage, self._inputs = loc, stage, inputs
        self._files: dict[str, FileEntry] = {}
        self._digest: str | None = None
        if claim.manifest is not None:
            self._files = dict(claim.manifest.files)
            self._digest = claim.digest
        elif claim.interrupted:
            self._files = self._adopt(claim)

    @property
    def url(self) -> str:
        return self._loc.url

    def _adopt(self, claim: _Claim) -> dict[str, FileEntry]:
        """After an interrupted publish, the files it left that are ours: each is complete (renames and
        PUTs are atomic) but they may come from different publishes; the resuming stage must
        rewrite whatever derives from another (coteach resumes from the checkpoint and rewrites
        the metrics)."""
        adopted = {}
        for name in sorted(claim.owned - {MANIFEST, JOURNAL}):
            data = self._loc.read(name) if name in claim.listing else None
            if data is not None:
                adopted[name] = FileEntry.of(data)
        return adopted

    def previous(self, name: str) -> bytes | None:
        """The earlier run's file ``name`` (verified), or None when it has none."""
        if name not in self._files:
            return None
        data = self._loc.read(name)
        if data is None or FileEntry.of(data) != self._files[name]:
            raise InputError(
                join(self.url, name),
                "",
                "changed since it was published; rerun to start over after removing this output",
            )
        return data

    def publish(self, files: Mapping[str, bytes]) -> None:
        """Replaces ``files`` (relative path -> content) and keeps the output's other files."""
        with _staging(self._loc) as tmp:
            for name, data in files.items():
                _write_local(os.path.join(tmp, *name.split("/")), data)
            self._digest = _publish(
                tmp, self._loc, self.stage, self._inputs, keep=self._files, trusted=self._digest
            )
        self._files = {**self._files, **{n: FileEntry.of(d) for n, d in files.items()}}


def resumable_output(url: str, *, stage: str, inputs: Iterable[str] = ()) -> ResumableOutput:
    """Checks ``url`` like :func:`staged_output` and returns a :class:`ResumableOutput` there."""
    inputs = tuple(os.fspath(u) for u in inputs)
    check_output(url, stage=stage, inputs=inputs)
    loc = _Location(url)
    return ResumableOutput(loc, stage, tuple(input_fingerprint(u) for u in inputs), _claim(loc, stage))


def copy_output(src: str, dst: str) -> Output:
    """Publishes a verified copy of the output at ``src`` under ``dst`` (same stage); returns it."""
    source = open_output(src)
    with staged_output(dst, stage=source.stage, inputs=[src]) as tmp:
        for name in source.files:
            _write_local(os.path.join(tmp, *name.split("/")), source.read_bytes(name))
    return open_output(dst)


# --- staging folders -----------------------------------------------------------------------------


def _boot_id() -> str | None:
    """This kernel's boot id: a staging folder's owner can only be proven dead on the same kernel."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip().replace("-", "")[:12]
    except OSError:
        return None


def _staging_parent(loc: _Location) -> str:
    """Where ``loc``'s staging folders live: inside a local output, under the cache for a remote one."""
    return loc.path if loc.local else os.path.join(cache_dir(), "staging")


@contextlib.contextmanager
def _staging(loc: _Location) -> Iterator[str]:
    """A fresh staging folder for ``loc``, locked (``flock``) by this process while it exists.

    Its name (``.clpipe-staging-<boot id>-<random>``) says on which kernel it was made; one with
    this kernel's boot id whose lock is free belongs to a dead process and is swept
    (:func:`_sweep_staging`). Folders created for it (up to the output folder) are removed
    again when nothing was published.
    """
    parent = _staging_parent(loc)
    created = _makedirs(parent)
    _sweep_staging(parent)
    path, fd = _locked_folder(parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)
        for directory in reversed(created):  # left empty when nothing was published
            with contextlib.suppress(OSError):
                os.rmdir(directory)


def _locked_folder(parent: str) -> tuple[str, int]:
    """Creates and locks a staging folder; (path, fd holding the lock).

    A sweeper may lock and remove a folder between its ``mkdir`` and our ``flock``: then the
    lock is refused or the locked folder is no longer at ``path``, and we try another name.
    """
    while True:
        path = os.path.join(parent, f"{STAGING_PREFIX}{_boot_id() or 'noboot'}-{uuid.uuid4().hex[:12]}")
        os.mkdir(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except OSError:  # a filesystem without flock: never swept, removed by its owner
            pass
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return path, fd
        os.close(fd)


def _makedirs(path: str) -> list[str]:
    """``os.makedirs`` that returns the folders it created (outermost first)."""
    missing = []
    while path and not os.path.exists(path):
        missing.insert(0, path)
        path = os.path.dirname(path)
    for directory in missing:
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
    return missing


def _sweep_staging(parent: str) -> list[str]:
    """Removes the staging folders under ``parent`` whose process is provably dead; returns the
    ones a live process holds.

    Provably dead: made on this kernel (same boot id in the name) and its ``flock`` is free (the
    kernel drops a process's locks when it dies, also for a process in another container on this
    machine). Anything else (another kernel, a filesystem without ``flock``) is left alone.
    """
    try:
        names = sorted(n for n in os.listdir(parent) if n.startswith(STAGING_PREFIX))
    except (FileNotFoundError, NotADirectoryError):
        return []
    boot, held = _boot_id(), []
    for name in names:
        if boot is None or not name.startswith(f"{STAGING_PREFIX}{boot}-"):
            continue
        path = os.path.join(parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(path)
        except OSError:
            pass
        else:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
    return held


def _check_no_live_writer(url: str) -> None:
    """Refuses a local output that another live process is staging into right now."""
    loc = _Location(url)
    if not loc.local:
        return  # concurrent remote writers: readers refuse the result (it does not match its manifest)
    held = _sweep_staging(loc.path)
    if held:
        raise InputError(
            url,
            "",
            f"another process is writing this output right now ({held[0]}); wait for "
            "it or choose another output location",
        )
