"""Labelled image files: ImageFolders and manifests, listed in ImageFolder order and decoded once.

Two ways to say which image has which label:

(a) **ImageFolder** ``ROOT/<split>/<class>/<file>`` (torchvision's layout, the seed's): the
    folder is the label. Files with the endings of :data:`~.imaging.IMAGE_ENDINGS` count, at
    any depth below the class folder; hidden files (``.DS_Store``, ``._x.jpg``) do not.
(b) **Manifest**: a ``.csv`` (with a header) or ``.jsonl`` file, one row per image, with an
    image column (:data:`IMAGE_COLUMNS`: a path relative to the manifest's folder, an
    absolute path, or any fsspec URL) and a ``label`` column holding a class *name* or an
    integer class *id*. With ids, classes are named by their zero-padded number
    (``07``), unless a ``classes.txt`` next to the manifest names them (line i = id i).

Rows are put into **ImageFolder order** (``datasets.py``): classes sorted by name, label k =
k-th name, then rows sorted by name as a string. A row's *name* (the key of the seed's label
JSON and the ``file`` column of ``label_issues.csv``) is ``<class>/<path below the class
folder>`` for an ImageFolder and the image column as written for a manifest; its *file* is
the full path or URL the pixels are read from.

Decoding (:func:`decode_files`) goes through :func:`~.imaging.decode_image` on a thread pool
(Pillow releases the GIL while decoding and resizing) and is cached on local disk, keyed on
every file's path, size and modification stamp and on the resolution, so an image changed
in place is decoded again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import posixpath
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import storage
from .errors import InputError
from .imaging import IMAGE_ENDINGS, decode_image

log = logging.getLogger(__name__)

#: Accepted names of a manifest's image column, in order of preference.
IMAGE_COLUMNS = ("image", "path", "file", "url")
LABEL_COLUMN = "label"
MANIFEST_ENDINGS = (".csv", ".jsonl")
#: Optional file beside a manifest naming the classes of integer labels, one per line.
CLASSES_FILE = "classes.txt"
#: Bump when decoding changes, so cached arrays from an older decoder are not reused.
DECODER_VERSION = "1"
#: Files fetched per request batch (object stores serve them concurrently).
READ_CHUNK = 256
_MAX_LISTED = 5
_INTEGER = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class Listing:
    """The labelled files of one split in ImageFolder order (no pixels read yet).

    Attributes:
        source: The ImageFolder split folder or manifest it came from.
        names: (N,) row names (see the module docstring).
        files: (N,) full path or URL of each row's image.
        labels: (N,) int64 class indices into ``classes``.
        classes: Class names, sorted.
    """

    source: str
    names: np.ndarray
    files: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]


def _listing(items: Sequence[object]) -> str:
    shown = ", ".join(repr(x) for x in list(items)[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def is_manifest(url: str) -> bool:
    return url.lower().endswith(MANIFEST_ENDINGS)


def _ordered(source: str, names: list[str], files: list[str], class_of_row: list[str],
             classes: tuple[str, ...]) -> Listing:
    """Rows sorted into ImageFolder order (class index, then name as a string)."""
    index = {c: k for k, c in enumerate(classes)}
    labels = np.array([index[c] for c in class_of_row], dtype=np.int64)
    names_array = np.array(names, dtype=str)
    order = np.lexsort((names_array, labels))
    return Listing(source, names_array[order], np.array(files, dtype=str)[order], labels[order], classes)


def _check_known(source: str, found: Sequence[str], known: tuple[str, ...] | None, what: str) -> None:
    if known is None:
        return
    unknown = sorted(set(found) - set(known))
    if unknown:
        raise InputError(source, what, f"unknown class(es) {_listing(unknown)}; the dataset's classes are "
                         f"{_listing(known)} ({len(known)} in all)")


# --- (a) ImageFolder --------------------------------------------------------------------------------


def list_imagefolder(url: str, known_classes: tuple[str, ...] | None = None) -> Listing:
    """The images of ``url/<class>/...``; ``known_classes`` (the train split's) fixes the class list."""
    fs, root = storage.url_to_fs(url)
    root = root.rstrip("/")
    folders = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False) if fs.isdir(p))
    folders = [c for c in folders if not c.startswith(".")]
    if not folders:
        raise InputError(url, "", "no class folders found (expected <split>/<class>/<image file>)")
    _check_known(url, folders, known_classes, "class folders")
    names, files, class_of_row = [], [], []
    for cls in folders:
        for path in fs.find(f"{root}/{cls}"):
            rel = posixpath.relpath(path, f"{root}/{cls}")
            if any(part.startswith(".") for part in rel.split("/")) or not rel.lower().endswith(IMAGE_ENDINGS):
                continue
            names.append(f"{cls}/{rel}")
            files.append(storage.join(url, cls, *rel.split("/")))
            class_of_row.append(cls)
    if not names:
        raise InputError(url, "", f"no image files ({', '.join(IMAGE_ENDINGS)}) found under the class folders")
    return _ordered(url, names, files, class_of_row, known_classes or tuple(folders))


# --- (b) manifests ----------------------------------------------------------------------------------


def _manifest_records(url: str) -> Iterator[tuple[int, dict]]:
    """(line number, record) of a CSV (with header) or JSONL manifest."""
    text = storage.read_bytes(url)
    try:
        text = text.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(url, "", f"not UTF-8 text ({e})") from None
    if url.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise InputError(url, "", "empty manifest: expected a header line such as 'image,label'")
        for record in reader:
            yield reader.line_num, record
        return
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(url, f"line {line_number}", f"not valid JSON ({e})") from None
        if not isinstance(record, dict):
            raise InputError(url, f"line {line_number}", "expected a JSON object such as "
                             '{"image": "a.jpg", "label": "cat"}')
        yield line_number, record


def _image_column(url: str, record: dict, line: int) -> str:
    for key in IMAGE_COLUMNS:
        if key in record:
            return key
    raise InputError(url, f"line {line}", f"no image column: expected one of {list(IMAGE_COLUMNS)}, "
                     f"found {sorted(record)}")


def _declared_classes(url: str) -> tuple[str, ...] | None:
    """The names in ``classes.txt`` beside the manifest (line i = class id i), if there is one."""
    path = storage.join(posixpath.dirname(url) if "://" in url else os.path.dirname(url), CLASSES_FILE)
    if not storage.exists(path):
        return None
    names = [line.strip() for line in storage.read_bytes(path).decode("utf-8").splitlines() if line.strip()]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if len(names) < 2 or duplicated:
        raise InputError(path, "", f"expected at least 2 distinct class names, one per line; "
                         f"got {len(names)}{', repeated: ' + _listing(duplicated) if duplicated else ''}")
    return tuple(names)


def read_manifest(url: str, known_classes: tuple[str, ...] | None = None) -> Listing:
    """The rows of a manifest (see the module docstring); ``known_classes`` fixes the class list."""
    base = posixpath.dirname(url) if "://" in url else os.path.dirname(os.path.abspath(url))
    paths, raw_labels, lines = [], [], []
    column = None
    for line, record in _manifest_records(url):
        column = column or _image_column(url, record, line)
        image, label = record.get(column), record.get(LABEL_COLUMN)
        if not isinstance(image, str) or not image.strip():
            raise InputError(url, f"line {line}: {column}", f"expected a path or URL, got {image!r}")
        if label is None or isinstance(label, (bool, float, list, dict)) or (isinstance(label, str) and not label.strip()):
            raise InputError(url, f"line {line}: {LABEL_COLUMN}", f"expected a class name or an integer id, "
                             f"got {label!r}")
        paths.append(image.strip())
        raw_labels.append(label.strip() if isinstance(label, str) else label)
        lines.append(line)
    if not paths:
        raise InputError(url, "", "no rows")
    _refuse_duplicates(url, paths, lines)
    class_of_row, classes = _manifest_classes(url, raw_labels, lines, known_classes)
    files = [p if "://" in p or os.path.isabs(p) else _normalised(storage.join(base, *p.split("/"))) for p in paths]
    return _ordered(url, paths, files, class_of_row, classes)


def _normalised(url: str) -> str:
    """``a/b/../c`` -> ``a/c`` (object stores take ``..`` literally)."""
    if "://" not in url:
        return os.path.normpath(url)
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{posixpath.normpath(rest)}"


def _refuse_duplicates(url: str, paths: list[str], lines: list[int]) -> None:
    first: dict[str, int] = {}
    repeated = []
    for path, line in zip(paths, lines):
        if path in first:
            repeated.append(f"{path} (lines {first[path]} and {line})")
        first.setdefault(path, line)
    if repeated:
        raise InputError(url, "image", f"{len(repeated)} rows repeat an image: {_listing(repeated)}; each image "
                         "must appear once, with one label")


def _manifest_classes(url: str, raw: list, lines: list[int], known: tuple[str, ...] | None
                      ) -> tuple[list[str], tuple[str, ...]]:
    """(class name of each row, sorted class names) from names or integer ids."""
    declared = _declared_classes(url)
    as_ids = all(isinstance(v, int) or (isinstance(v, str) and _INTEGER.match(v)) for v in raw)
    if not as_ids:
        names = [str(v) for v in raw]
        _check_known(url, names, declared or known, LABEL_COLUMN)
        return names, tuple(sorted(known or declared or set(names)))
    ids = np.array([int(v) for v in raw], dtype=np.int64)
    if declared is not None:
        outside = np.flatnonzero(ids >= len(declared))
        if len(outside):
            row = outside[0]
            raise InputError(url, f"line {lines[row]}: {LABEL_COLUMN}", f"class id {ids[row]} outside "
                             f"[0, {len(declared)}) of {CLASSES_FILE}")
        names = [declared[i] for i in ids]
        _check_known(url, names, known, LABEL_COLUMN)
        return names, tuple(sorted(known or declared))
    k = int(ids.max()) + 1
    width = len(str(k - 1))
    names = [str(i).zfill(width) for i in ids]
    if known is not None:
        _check_known(url, names, known, LABEL_COLUMN)
        return names, known
    missing = np.flatnonzero(np.bincount(ids, minlength=k) == 0)
    if len(missing):
        raise InputError(url, LABEL_COLUMN, f"integer labels 0..{k - 1} leave class id(s) {_listing(missing.tolist())} "
                         f"without examples; name the classes in {CLASSES_FILE} beside the manifest, or use "
                         "class names as labels")
    return names, tuple(sorted(set(names)))


# --- decoding, cached -------------------------------------------------------------------------------


def decode_files(files: Sequence[str], resolution: int | None, *, workers: int | None = None) -> np.ndarray:
    """(N, R, R, 3) uint8 pixels of ``files`` (native size: all must share one), cached on disk.

    The cache key covers each file's URL, size and modification stamp, the resolution and
    :data:`DECODER_VERSION`; a changed, added or removed file gives a new key.
    """
    key = hashlib.sha256(f"{DECODER_VERSION}\n{resolution}\n".encode())
    for url, stamp in zip(files, file_stamps(files)):
        key.update(f"{url}\t{stamp}\n".encode())
    cache_file = os.path.join(storage.cache_dir(), f"images-{key.hexdigest()[:24]}.npy")
    if os.path.exists(cache_file):
        return np.load(cache_file)
    images = None
    for i, pixels in enumerate(iter_decoded(files, resolution, workers=workers)):
        if images is None:
            images = np.empty((len(files), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != images.shape[1:]:
            raise InputError(files[i], "", f"is {pixels.shape[1]}x{pixels.shape[0]} px, but {files[0]} is "
                             f"{images.shape[2]}x{images.shape[1]}: images of different sizes need a "
                             "training resolution (clpipe data prepare --resolution R) to be resized and cropped")
        images[i] = pixels
    os.makedirs(storage.cache_dir(), exist_ok=True)
    storage.save_npy(cache_file, images)
    return images


def iter_decoded(files: Sequence[str], resolution: int | None, *, workers: int | None = None
                 ) -> Iterator[np.ndarray]:
    """Decoded pixels of ``files`` in order, read in batches and decoded on a thread pool."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(files), READ_CHUNK):
            batch = list(files[start:start + READ_CHUNK])
            contents = read_files(batch)
            yield from pool.map(decode_image, [contents[f] for f in batch], batch, [resolution] * len(batch))


def read_files(urls: Sequence[str]) -> dict[str, bytes]:
    """URL -> bytes, one batched request per filesystem; a missing file is an InputError naming it."""
    out: dict[str, bytes] = {}
    for fs, paths, by_path in _by_filesystem(urls):
        contents = fs.cat(paths, on_error="return")
        for path in paths:
            data = contents.get(path, FileNotFoundError(path))
            if isinstance(data, FileNotFoundError):
                raise InputError(by_path[path], "", "image file not found")
            if isinstance(data, PermissionError):
                raise InputError(by_path[path], "", f"permission denied; {storage.CREDENTIALS_HINT}")
            if isinstance(data, BaseException):
                raise InputError(by_path[path], "", f"cannot be read ({type(data).__name__}: {data})")
            out[by_path[path]] = data
    return out


def _by_filesystem(urls: Sequence[str]):
    """(filesystem, its paths, path -> URL) for the URLs, grouped by filesystem."""
    groups: dict[int, tuple[object, list[str], dict[str, str]]] = {}
    for url in urls:
        fs, path = storage.url_to_fs(url)
        fs_group = groups.setdefault(id(fs), (fs, [], {}))
        fs_group[1].append(path)
        fs_group[2][path] = url
    return groups.values()


def file_stamps(urls: Sequence[str]) -> list[str]:
    """``size:modified`` of each file, from one listing per folder (not one request per file)."""
    listed: dict[str, dict[str, dict]] = {}
    stamps = []
    for url in urls:
        fs, path = storage.url_to_fs(url)
        folder = posixpath.dirname(path)
        cache_key = f"{id(fs)}:{folder}"
        if cache_key not in listed:
            try:
                listed[cache_key] = {info["name"].rstrip("/"): info for info in fs.ls(folder, detail=True)}
            except FileNotFoundError:
                listed[cache_key] = {}
        info = listed[cache_key].get(path.rstrip("/"))
        if info is None:
            raise InputError(url, "", "image file not found")
        modified = next((info[k] for k in ("mtime", "LastModified", "updated", "ETag", "md5Hash") if k in info), "")
        stamps.append(f"{info.get('size')}:{modified}")
    return stamps
