"""Given (possibly noisy) labels in the seed's formats, checked against the dataset.

Formats: the seed's JSON (``{file path: label}``, e.g.
``/datasets/.../train/airplane/10008_airplane.png -> 3``), the same gzip-compressed
(``.json.gz``), or a ``.npy`` integer array already in ImageFolder row order. JSON keys are
matched to the dataset by their last two path components, ``<class>/<file>``, so the
absolute prefix of the machine that wrote them does not matter. Every mismatch is
reported: keys missing from the file, keys the dataset does not have, non-integer and
out-of-range values, and duplicate keys after prefix removal.
"""

from __future__ import annotations

import logging

import numpy as np

from . import storage
from .checks import check_labels
from .datasets import Split, open_split, subset_rows
from .errors import InputError

log = logging.getLogger(__name__)

_MAX_LISTED = 5
#: Endings of the label file formats read here.
LABEL_FILE_ENDINGS = (".npy", ".json", ".json.gz")
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def _listing(items: list[str]) -> str:
    shown = ", ".join(repr(x) for x in items[:_MAX_LISTED])
    more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"{shown}{more}"


def file_key(path: str) -> str:
    """``.../train/airplane/10008_airplane.png`` -> ``airplane/10008_airplane.png``."""
    parts = path.replace("\\", "/").rstrip("/").split("/")
    return "/".join(parts[-2:])


def row_key(key: str, names: set[str]) -> str:
    """The dataset row a JSON key names: the longest tail of its path that is a row name (a manifest's
    rows are named by their path as written, of any depth), else ``<class>/<file>`` (the seed's rule)."""
    parts = key.replace("\\", "/").rstrip("/").split("/")
    for start in range(len(parts)):
        tail = "/".join(parts[start:])
        if tail in names:
            return tail
    return file_key(key)


def _json_labels(url: str) -> dict[str, int]:
    data = storage.load_json(url)
    if not isinstance(data, dict):
        raise InputError(url, "", f"expected a JSON object mapping file names to labels, got {type(data).__name__}")
    bad = [k for k, v in data.items() if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise InputError(url, f"value of {bad[0]!r}", f"labels must be integers, got {data[bad[0]]!r}; "
                         f"{len(bad)} are not: {_listing(bad)}")
    huge = [k for k, v in data.items() if not _INT64_MIN <= v <= _INT64_MAX]
    if huge:  # numpy cannot hold them (OverflowError); no class index is that large anyway
        raise InputError(url, f"value of {huge[0]!r}", f"{data[huge[0]]} is no class index (outside the 64-bit "
                         f"integers); {len(huge)} such labels: {_listing(huge)}")
    return data


def load_labels(url: str, split: Split) -> np.ndarray:
    """(N,) int64 given labels aligned with the rows of ``split``.

    Args:
        url: ``.json``, ``.json.gz`` or ``.npy`` (see the module docstring).
        split: The dataset split the labels belong to; JSON keys must match its files.

    Raises:
        InputError: naming ``url`` and the offending key or field.
    """
    if url.endswith(".npy"):
        values = storage.load_npy(url, field="labels")
        if values.ndim == 1 and len(values) != len(split):
            raise InputError(url, "labels", f"has {len(values)} rows, the dataset {split.source} has {len(split)}")
        return check_labels(values, split.num_classes, url, "labels")
    if not url.endswith(LABEL_FILE_ENDINGS[1:]):
        raise InputError(url, "", "labels must be .json, .json.gz or .npy")
    data = _json_labels(url)
    by_key: dict[str, int] = {}
    duplicates = []
    names_set = set(split.names.tolist())
    for k, v in data.items():
        key = row_key(k, names_set)
        if key in by_key:
            duplicates.append(k)
        by_key[key] = v
    if duplicates:
        raise InputError(url, "keys", f"{len(duplicates)} keys name the same <class>/<file>: {_listing(duplicates)}")
    names = split.names.tolist()
    missing = [n for n in names if n not in by_key]
    extra = sorted(set(by_key) - set(names))
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"{len(missing)} dataset files have no label: {_listing(missing)}")
        if extra:
            problems.append(f"{len(extra)} keys are not files of {split.source}: {_listing(extra)}")
        raise InputError(url, "keys", "; ".join(problems))
    values = np.array([by_key[n] for n in names], dtype=np.int64)
    return check_labels(values, split.num_classes, url, "labels")


def load_labels_in_file_order(url: str, num_classes: int | None = None) -> np.ndarray:
    """Labels without a dataset: ``.npy`` as stored, JSON in sorted-key order.

    Sorted keys are ImageFolder order when all keys share one prefix, which is how the
    seed's files are written (their key order is already sorted).
    """
    if url.endswith(".npy"):
        values = storage.load_npy(url, field="labels")
    elif url.endswith(LABEL_FILE_ENDINGS[1:]):
        data = _json_labels(url)
        values = np.array([data[k] for k in sorted(data, key=file_key)], dtype=np.int64)
    else:
        raise InputError(url, "", "labels must be .json, .json.gz or .npy")
    k = num_classes if num_classes is not None else (int(values.max()) + 1 if values.size else 0)
    return check_labels(values, k, url, "labels")


def open_train_view(dataset: str, labels_url: str, per_class: int, seed: int) -> tuple[Split, np.ndarray]:
    """The train split and its given labels, restricted to the class-stratified subset (if any).

    Labels are checked against the *whole* split first, so a subset run uses the same
    label files as a full run.
    """
    split = open_split(dataset, "train")
    given = load_labels(labels_url, split)
    rows = subset_rows(split.labels, per_class, seed)
    if len(rows) < len(split):
        log.info("subset: %d of %d train images (%d per class, seed %d)", len(rows), len(split), per_class, seed)
    return split.take(rows), given[rows]
