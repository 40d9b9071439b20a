"""Image-classification datasets, any source, always in ImageFolder row order.

Vocabulary used across clpipe: a dataset *split* (``train`` or ``test``) has N images of
R x R x 3 uint8 (R = the training resolution; 32 for CIFAR-10) and K classes with names.
Row ``i`` of every per-example array (given labels, ``pred_probs``, keep-masks, label
issues) refers to row ``i`` of the split in **ImageFolder order**: classes sorted by name
(label k = the k-th name), then rows sorted by their name *as a string*
(``10008_airplane.png`` before ``1000_airplane.png``). That is the order of the seed's
published ``pred_probs`` and masks (``../shared/data/cl-reproduce/README.md``), and it is
what keeps a row's identity through folds, masks and reports.

Sources (a dataset URL names one split, or a root holding ``train`` and optionally ``test``):

(a) ImageFolder ``ROOT/<split>/<class>/<file>``: PNG, JPEG, WebP, ... of any size and mode
    (:mod:`.image_files`, :mod:`.imaging`);
(b) a manifest ``.csv``/``.jsonl`` (image path or URL, label as class name or integer id),
    or ``ROOT/*<split>.csv``/``*<split>.jsonl`` (:mod:`.image_files`);
(c) ``.npz`` with ``images`` (N, S, S, 3) uint8 and ``labels`` (N,), optionally
    ``classes``/``label_names`` (K,) strings, ``names`` (N,) row names, ``files`` (N,) where
    each image came from, ``image_size`` (S) and ``exact``. Without ``image_size`` the images must be 32x32 (the seed's CIFAR-10
    files). Without ``names`` rows get the seed's names ``<class>/<id>_<class>.png`` (ids
    from ``ids``, default ``0..N-1``), so an ``.npz`` of the official CIFAR-10 order lines up
    with the published files. ``clpipe data prepare`` writes this form (the in-memory path);
(d) packed shards for datasets larger than memory (:mod:`.shards`, ``clpipe data prepare
    --format shards``), streamed to the trainers.

Images are decoded lazily: stages that only need names and labels (masks, noisy labels)
never read pixels. A ``resolution`` R resizes and centre-crops every image to R x R when it
is decoded (:func:`~.imaging.decode_image`); without one, images keep their size, which
must then be the same for all (CIFAR-10 stays bit for bit what it is at its native 32 px).
Class names come from the folders, the manifest or the ``.npz`` and are kept everywhere;
the ``test`` split of a root uses the ``train`` split's classes, so a class index means the
same in both.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import image_files, storage
from .checks import fingerprint
from .errors import InputError
from .imaging import check_resolution

if TYPE_CHECKING:
    from .shards import ShardImages

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
SPLITS = ("train", "test")
#: Image shape of an ``.npz`` without ``image_size``: the seed's CIFAR-10 files.
IMAGE_SHAPE = (32, 32, 3)
#: Fewest and most classes a dataset may have.
MIN_CLASSES, MAX_CLASSES = 2, 1000


@dataclass(frozen=True)
class Split:
    """One split of a dataset, rows in ImageFolder order.

    Attributes:
        source: URL the split was read from.
        names: (N,) row names: ``"<class>/<file>"`` (the keys of the seed's label JSON) for
            ImageFolders and ``.npz`` files, the image path as written for a manifest.
        labels: (N,) int64 dataset labels, i.e. the class folder or the manifest's label (for
            the seed's noisy CIFAR-10 these are the *true* labels).
        classes: The K class names, sorted; label ``k`` is ``classes[k]``.
        exact: (N,) bool or None; for ``../shared/data/cifar10`` test rows that carry the
            official pixels (the rest are a JPEG approximation).
        files: (N,) path or URL of each row's image file, or None (an ``.npz``).
    """

    source: str
    names: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    exact: np.ndarray | None = None
    _order: np.ndarray = field(default=None, repr=False)  # rows of the stored images
    _load_images: Callable[[], np.ndarray | ShardImages] = field(default=None, repr=False)
    files: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def images(self) -> np.ndarray:
        """(N, R, R, 3) uint8 pixels in memory, decoded on first use (never for label-only stages)."""
        return np.asarray(self.pixels())

    def pixels(self) -> np.ndarray | ShardImages:
        """The pixels as the trainers take them: :meth:`images` for every source but packed shards,
        whose pixels stay in their chunks (:class:`~.shards.ShardImages`, streamed batch by batch:
        a split larger than memory is never read whole)."""
        return self._load_images()[self._order]

    def take(self, rows: np.ndarray) -> Split:
        """The sub-split of ``rows`` (indices into this split), keeping their order."""
        rows = np.asarray(rows, dtype=np.int64)
        return Split(
            source=self.source,
            names=self.names[rows],
            labels=self.labels[rows],
            classes=self.classes,
            exact=None if self.exact is None else self.exact[rows],
            _order=self._order[rows],
            _load_images=self._load_images,
            files=None if self.files is None else self.files[rows],
        )

    def fingerprint(self) -> str:
        """Fingerprint of the file names and dataset labels: tells mixed-up datasets apart."""
        return fingerprint("\n".join(self.names.tolist()), self.labels)


#: ``subset_per_class`` of the whole split (no subset), and the default seed of a subset: the
#: defaults of every stage's subset parameters.
ALL_ROWS = 0
SUBSET_SEED = 0


def subset_rows(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Rows of a class-stratified random subset, ``per_class`` rows per class, sorted.

    ``per_class=0`` (:data:`ALL_ROWS`) means all rows. A class with fewer rows keeps all of them. The same
    (labels, per_class, seed) always selects the same rows, so every pipeline stage that
    is given the same subset settings sees the same examples.
    """
    if per_class < 0:
        raise InputError("subset_per_class", "", f"must be >= 0, got {per_class}")
    if per_class == ALL_ROWS:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        chosen.append(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
    return np.sort(np.concatenate(chosen))


def check_examples_per_class(labels: np.ndarray, classes: tuple[str, ...], minimum: int, source: str,
                             why: str) -> None:
    """Every class must have at least ``minimum`` rows (e.g. K-fold cross-validation needs K).

    The error names the classes by name, with their counts, and says ``why``.
    """
    counts = np.bincount(labels, minlength=len(classes))
    short = np.flatnonzero(counts < minimum)
    if len(short):
        listed = ", ".join(f"{classes[k]!r} has {counts[k]}" for k in short[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise InputError(source, "labels", f"{len(short)} class(es) have fewer than {minimum} examples "
                         f"({listed}{more}); {why}")


def resolve_split_url(url: str, split: str) -> str:
    """The URL of one split: an ``.npz``/manifest/shards itself, ``ROOT/<split>/`` or ``ROOT/*<split>.<ext>``."""
    from . import shards

    if split not in SPLITS:
        raise InputError("split", "", f"must be one of {SPLITS}, got {split!r}")
    if url.endswith(".npz") or image_files.is_manifest(url):
        return url
    if not storage.isdir(url):
        raise InputError(url, "", "not found, or neither a .npz file, a manifest (.csv, .jsonl) nor a directory")
    if shards.is_shards(url):
        return url
    entries = storage.listdir(url)
    if split in entries and storage.isdir(storage.join(url, split)):
        return storage.join(url, split)
    endings = (".npz", *image_files.MANIFEST_ENDINGS)
    files = [e for e in entries if any(e.lower().endswith(f"{split}{end}") for end in endings)]
    if len(files) == 1:
        return storage.join(url, files[0])
    raise InputError(
        url, split,
        f"expected an ImageFolder root with '{split}/' or exactly one '*{split}.npz', '*{split}.csv' or "
        f"'*{split}.jsonl', found {len(files)} such files among {entries[:10]}",
    )


def has_test_split(dataset: str) -> bool:
    """Whether ``dataset`` (a path or URL; it must exist) holds a test split beside its train split.

    Only a root has one: ``ROOT/test/`` or one ``ROOT/*test.npz`` / ``*test.csv`` / ``*test.jsonl``
    (:func:`resolve_split_url`). A single ``.npz``, manifest or packed split is the train
    split alone, as ``clpipe data prepare`` reads it. Reads a listing, no image. Co-Teaching is scored
    on the test split, so a dataset without one can have its label errors found but trains no model
    (the pipeline asks this when it is built, ``pipelines/pipeline.py`` ``runs_coteach``).
    """
    try:
        return resolve_split_url(dataset, "test") != dataset
    except InputError as e:
        if e.source != dataset or e.field != "test":  # the dataset itself is missing or unreadable
            raise
        return False


def open_split(url: str, split: str = "train", *, resolution: int | None = None) -> Split:
    """Opens one split of the dataset at ``url`` (see the module docstring for the forms).

    Args:
        url: The dataset (path or URL).
        split: ``train`` or ``test``.
        resolution: Resize and centre-crop every image to this many pixels square when it is
            decoded; None keeps the stored size (which must then be the same for all images).
    """
    from . import shards

    check_resolution(resolution)
    split_url = resolve_split_url(url, split)
    if split_url.endswith(".npz"):
        opened = _open_npz(split_url, resolution)
    elif not image_files.is_manifest(split_url) and shards.is_shards(split_url):
        opened = shards.open_shards(split_url, resolution)
    else:
        known = _train_classes(url) if split != "train" and split_url != url else None
        listing = (image_files.read_manifest(split_url, known) if image_files.is_manifest(split_url)
                   else image_files.list_imagefolder(split_url, known))
        opened = _from_listing(listing, resolution)
    _check_class_count(opened)
    return opened


def _train_classes(root: str) -> tuple[str, ...] | None:
    """The train split's classes of a root, which the test split must use (None: no train split)."""
    from . import shards

    try:
        train_url = resolve_split_url(root, "train")
    except InputError:
        return None
    if train_url.endswith(".npz") or (not image_files.is_manifest(train_url) and shards.is_shards(train_url)):
        return None  # these carry their classes; an ImageFolder or manifest test split beside them is unusual
    listing = (image_files.read_manifest(train_url) if image_files.is_manifest(train_url)
               else image_files.list_imagefolder(train_url))
    return listing.classes


def _check_class_count(split: Split) -> None:
    if not MIN_CLASSES <= split.num_classes <= MAX_CLASSES:
        raise InputError(split.source, "classes", f"{split.num_classes} classes; clpipe needs between "
                         f"{MIN_CLASSES} and {MAX_CLASSES}")


def _from_listing(listing: image_files.Listing, resolution: int | None) -> Split:
    files = listing.files

    def load_images() -> np.ndarray:
        return image_files.decode_files(files, resolution)

    return Split(listing.source, listing.names, listing.labels, listing.classes, None,
                 np.arange(len(listing.names)), memoize(load_images), files=files)


# --- (c) .npz ---------------------------------------------------------------------------------------


def _npz_array(npz: np.lib.npyio.NpzFile, key: str, url: str) -> np.ndarray:
    """One array of an open ``.npz``, every way of being unreadable as an InputError naming it."""
    try:
        return npz[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise InputError(url, key, "stored as an object array (pickled); store it as a numeric or "
                             "string array, e.g. np.array(names, dtype=str)") from None
        raise InputError(url, key, f"not a readable array ({e})") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
        raise InputError(url, key, f"cannot be read: the .npz is damaged ({type(e).__name__}: {e})") from None


def _npz_classes(npz: np.lib.npyio.NpzFile, labels: np.ndarray, url: str) -> tuple[str, ...]:
    """Stored class names, or (none stored) the CIFAR-10 names for <= 10 classes, else zero-padded ids.

    Without stored names the labels must use every id from 0 to their maximum: a gap means the
    labels and the class count disagree (a label 12 among 10 classes), which is refused rather
    than turned into classes with no examples.
    """
    for key in ("classes", "label_names"):
        if key in npz.files:
            names = _npz_array(npz, key, url)
            if names.ndim != 1 or not (names.dtype.kind in "US" or np.issubdtype(names.dtype, np.integer)):
                raise InputError(url, key, f"expected a 1-D array of class names, got {names.dtype} {names.shape}")
            classes = tuple(str(c) for c in names.tolist())
            if len(set(classes)) != len(classes):
                raise InputError(url, key, "class names repeat")
            return classes
    k = int(labels.max()) + 1 if len(labels) else 0
    if k <= len(CIFAR10_CLASSES):
        return CIFAR10_CLASSES
    missing = np.flatnonzero(np.bincount(labels, minlength=k) == 0)
    if len(missing):
        raise InputError(url, "labels", f"values 0..{k - 1} without a 'classes' array, but class id(s) "
                         f"{missing[:10].tolist()} have no examples: store the class names as 'classes' "
                         "(then labels index into them) or relabel to 0..K-1")
    width = len(str(k - 1))
    return tuple(str(i).zfill(width) for i in range(k))


def _open_npz(url: str, resolution: int | None) -> Split:
    path = storage.local_copy(url)
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if "allow_pickle" in str(e):  # numpy's advice to unpickle an unknown file is never passed on
            raise InputError(url, "", "not a readable .npz file: neither a zip archive of arrays nor "
                             "numpy's .npy format") from None
        raise InputError(url, "", f"not a readable .npz file ({type(e).__name__}: {e})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise InputError(url, "", "a single .npy array, not an .npz with 'images' and 'labels'")
    for key in ("images", "labels"):
        if key not in npz.files:
            raise InputError(url, key, f"missing array; the file has {npz.files}")
    labels = _npz_array(npz, "labels", url)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(url, "labels", f"expected a 1-D integer array, got {labels.dtype} {labels.shape}")
    n = len(labels)
    if n and labels.min() < 0:
        raise InputError(url, "labels", f"values must be >= 0, got {labels.min()}")
    side = int(_npz_array(npz, "image_size", url)) if "image_size" in npz.files else IMAGE_SHAPE[0]
    expected = (n, side, side, 3)
    image_shape = _npz_array_shape(path, "images", url)
    if image_shape != expected:
        raise InputError(url, "images", f"expected shape {expected} uint8, got {image_shape}")
    classes = _npz_classes(npz, labels, url)
    if n and labels.max() >= len(classes):
        raise InputError(url, "labels", f"values must lie in [0, {len(classes)}), got [{labels.min()}, {labels.max()}]")
    # ImageFolder semantics: class index = position of the class name in sorted order.
    sorted_classes = tuple(sorted(classes))
    remap = np.array([sorted_classes.index(c) for c in classes], dtype=np.int64)
    labels = remap[labels.astype(np.int64)]
    names = _npz_names(npz, labels, sorted_classes, url)
    order = np.lexsort((names, labels))  # ImageFolder order: class, then name
    exact = _npz_array(npz, "exact", url)[order].astype(bool) if "exact" in npz.files else None
    files = _npz_array(npz, "files", url) if "files" in npz.files else None
    if files is not None and (files.shape != (n,) or files.dtype.kind not in "US"):
        raise InputError(url, "files", f"expected {n} strings, got {files.dtype} {files.shape}")

    def load_images() -> np.ndarray:
        images = decoded_npz_array(path, "images", url)
        if images.dtype != np.uint8:
            raise InputError(url, "images", f"expected uint8, got {images.dtype}")
        return images if resolution in (None, side) else _resized(images, resolution)

    return Split(url, names[order], labels[order], sorted_classes, exact, order, memoize(load_images),
                 files=None if files is None else files[order].astype(str))


def _npz_names(npz: np.lib.npyio.NpzFile, labels: np.ndarray, classes: tuple[str, ...], url: str) -> np.ndarray:
    """Stored row names, or the seed's ``<class>/<id>_<class>.png``; either way distinct."""
    n = len(labels)
    if "names" in npz.files:
        names = _npz_array(npz, "names", url)
        if names.shape != (n,) or names.dtype.kind not in "US":
            raise InputError(url, "names", f"expected {n} strings, got {names.dtype} {names.shape}")
        if len(np.unique(names)) != n:
            raise InputError(url, "names", f"expected {n} distinct names, got {len(np.unique(names))}")
        return names.astype(str)
    ids = _npz_array(npz, "ids", url) if "ids" in npz.files else np.arange(n)
    if len(ids) != n or len(np.unique(ids)) != n:
        raise InputError(url, "ids", f"expected {n} distinct ids, got {len(np.unique(ids))} of {len(ids)}")
    return np.array([f"{classes[k]}/{i}_{classes[k]}.png" for k, i in zip(labels, ids)])


def decoded_npz_array(path: str, key: str, source: str | None = None) -> np.ndarray:
    """Array ``key`` of the local ``.npz`` at ``path``, memory-mapped from a decoded copy.

    ``np.load`` inflates an ``.npz`` member on every call (1.6 s for the CIFAR-10 train
    images, paid by every training task); the first call here writes the array once as an
    uncompressed ``.npy`` in the cache directory (``$CLPIPE_CACHE_DIR``), and every later
    call, in any process, memory-maps it (read-only, pages shared through the OS cache). The
    cache file is keyed by the ``.npz``'s absolute path, size and modification time, so a
    changed file is decoded again; it is written atomically, so concurrent tasks never read
    half a file. An unreadable member is an InputError naming ``source`` (default ``path``).
    """
    stat = os.stat(path)
    key_text = f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{key}"
    cache_file = os.path.join(storage.cache_dir(), f"npz-{hashlib.sha256(key_text.encode()).hexdigest()[:24]}.npy")
    if not os.path.exists(cache_file):
        with np.load(path, allow_pickle=False) as npz:
            array = _npz_array(npz, key, source or path)
        storage.save_npy(cache_file, array)
    return np.load(cache_file, mmap_mode="r", allow_pickle=False)


def _npz_array_shape(path: str, key: str, url: str) -> tuple[int, ...]:
    """Shape of one array in an .npz, read from its header without loading the data."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(f)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError) as e:
        raise InputError(url, key, f"cannot be read: the .npz is damaged ({type(e).__name__}: {e})") from None
    return tuple(shape)


def _resized(images: np.ndarray, resolution: int) -> np.ndarray:
    """Stored arrays brought to ``resolution`` the way files are (:func:`~.imaging.fit_array`)."""
    from .imaging import fit_array

    return np.stack([fit_array(image, resolution) for image in images])


def memoize(fn: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """``fn`` called once, on first use (a split's pixels are decoded only by stages that need them)."""
    cache: list[np.ndarray] = []

    def wrapper() -> np.ndarray:
        if not cache:
            cache.append(fn())
        return cache[0]

    return wrapper


def export_imagefolder(split: Split, out_url: str, split_name: str) -> int:
    """Writes ``split`` as ``OUT/<split_name>/<class>/<file>.png`` (the seed's naming).

    Returns the number of files written. Because the names of an ``.npz`` split are
    ``<id>_<class>.png``, the ImageFolder read back has the same rows in the same order.
    """
    from .imaging import png_bytes

    fs, root = storage.url_to_fs(out_url)
    images = split.images()
    for cls in split.classes:
        fs.makedirs(f"{root.rstrip('/')}/{split_name}/{cls}", exist_ok=True)
    for name, image in zip(split.names, images):
        fs.pipe_file(f"{root.rstrip('/')}/{split_name}/{name}", png_bytes(image))
    return len(split)
