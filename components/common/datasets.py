"""Image-classification datasets in the seed's two formats, always in ImageFolder row order.

Vocabulary used across clpipe: a dataset *split* (``train`` or ``test``) has N images of
32x32x3 uint8 and K classes. Row ``i`` of every per-example array (given labels,
``pred_probs``, keep-masks) refers to row ``i`` of the split in **ImageFolder order**:
classes sorted by name, then files sorted by file name *as a string*
(``10008_airplane.png`` before ``1000_airplane.png``). That is the order of the seed's
published ``pred_probs`` and masks (``../shared/data/cl-reproduce/README.md``).

Two formats are read:

(a) ImageFolder: ``ROOT/<split>/<class>/<file>.png`` (the seed's layout);
(b) ``.npz`` with ``images`` (N, 32, 32, 3) uint8 and ``labels`` (N,), optionally ``ids``
    (the number in each file name, default ``0..N-1``) and ``classes``/``label_names``
    (default: the CIFAR-10 names when there are at most 10 classes). Its rows are given
    the seed's file names ``<class>/<id>_<class>.png`` and reordered into ImageFolder
    order, so an ``.npz`` of the official CIFAR-10 order lines up with the published files.

A dataset URL is a ``.npz`` file (one split), an ImageFolder root with ``train/`` and
``test/``, or a directory holding ``*train.npz`` and ``*test.npz`` (like
``../shared/data/cifar10``). Images are decoded lazily: stages that only need file names
and labels (masks, noisy labels) never read pixels.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import storage
from .checks import fingerprint
from .errors import InputError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
SPLITS = ("train", "test")
IMAGE_SHAPE = (32, 32, 3)


@dataclass(frozen=True)
class Split:
    """One split of a dataset, rows in ImageFolder order.

    Attributes:
        source: URL the split was read from.
        names: (N,) file keys ``"<class>/<file>"``, the keys of the seed's label JSON.
        labels: (N,) int64 dataset labels, i.e. the class folder (for the seed's noisy
            CIFAR-10 these are the *true* labels).
        classes: The K class names; label ``k`` is ``classes[k]``.
        exact: (N,) bool or None; for ``../shared/data/cifar10`` test rows that carry the
            official pixels (the rest are a JPEG approximation).
    """

    source: str
    names: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    exact: np.ndarray | None = None
    _order: np.ndarray = field(default=None, repr=False)  # rows of the stored images
    _load_images: Callable[[], np.ndarray] = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def images(self) -> np.ndarray:
        """(N, 32, 32, 3) uint8 pixels, decoded on first use (never for label-only stages)."""
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


def resolve_split_url(url: str, split: str) -> str:
    """The URL of one split: the ``.npz`` itself, ``ROOT/<split>/`` or ``DIR/*<split>.npz``."""
    if split not in SPLITS:
        raise InputError("split", "", f"must be one of {SPLITS}, got {split!r}")
    if url.endswith(".npz"):
        return url
    if not storage.isdir(url):
        raise InputError(url, "", "not found, or neither a .npz file nor a directory")
    entries = storage.listdir(url)
    if split in entries and storage.isdir(storage.join(url, split)):
        return storage.join(url, split)
    npz = [e for e in entries if e.endswith(f"{split}.npz")]
    if len(npz) == 1:
        return storage.join(url, npz[0])
    raise InputError(
        url, split,
        f"expected an ImageFolder root with '{split}/' or exactly one '*{split}.npz', "
        f"found {len(npz)} such .npz files among {entries[:10]}",
    )


def open_split(url: str, split: str = "train") -> Split:
    """Opens one split of the dataset at ``url`` (see the module docstring for forms)."""
    split_url = resolve_split_url(url, split)
    if split_url.endswith(".npz"):
        return _open_npz(split_url)
    return _open_imagefolder(split_url)


# --- (b) .npz ---------------------------------------------------------------------------

def _npz_classes(npz: np.lib.npyio.NpzFile, labels: np.ndarray) -> tuple[str, ...]:
    for key in ("classes", "label_names"):
        if key in npz.files:
            return tuple(str(c) for c in npz[key].tolist())
    k = int(labels.max()) + 1 if len(labels) else 0
    if k <= len(CIFAR10_CLASSES):
        return CIFAR10_CLASSES
    width = len(str(k - 1))
    return tuple(str(i).zfill(width) for i in range(k))


def _open_npz(url: str) -> Split:
    path = storage.local_copy(url)
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise InputError(url, "", f"not a readable .npz file ({e})") from None
    for key in ("images", "labels"):
        if key not in npz.files:
            raise InputError(url, key, f"missing array; the file has {npz.files}")
    labels = npz["labels"]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(url, "labels", f"expected a 1-D integer array, got {labels.dtype} {labels.shape}")
    n = len(labels)
    image_shape = _npz_array_shape(path, "images")
    if image_shape != (n, *IMAGE_SHAPE):
        raise InputError(url, "images", f"expected shape {(n, *IMAGE_SHAPE)} uint8, got {image_shape}")
    ids = npz["ids"] if "ids" in npz.files else np.arange(n)
    if len(ids) != n or len(np.unique(ids)) != n:
        raise InputError(url, "ids", f"expected {n} distinct ids, got {len(np.unique(ids))} of {len(ids)}")
    classes = _npz_classes(npz, labels)
    if n and (labels.min() < 0 or labels.max() >= len(classes)):
        raise InputError(url, "labels", f"values must lie in [0, {len(classes)}), got [{labels.min()}, {labels.max()}]")
    # ImageFolder semantics: class index = position of the class name in sorted order.
    sorted_classes = tuple(sorted(classes))
    remap = np.array([sorted_classes.index(c) for c in classes], dtype=np.int64)
    labels = remap[labels.astype(np.int64)]
    names = np.array([f"{sorted_classes[k]}/{i}_{sorted_classes[k]}.png" for k, i in zip(labels, ids)])
    order = np.lexsort((names,))  # names start with the class, so this is ImageFolder order
    exact = npz["exact"][order].astype(bool) if "exact" in npz.files else None

    def load_images() -> np.ndarray:
        images = decoded_npz_array(path, "images")
        if images.dtype != np.uint8:
            raise InputError(url, "images", f"expected uint8, got {images.dtype}")
        return images

    return Split(url, names[order], labels[order], sorted_classes, exact, order, _memoize(load_images))


def decoded_npz_array(path: str, key: str) -> np.ndarray:
    """Array ``key`` of the local ``.npz`` at ``path``, memory-mapped from a decoded copy.

    ``np.load`` inflates an ``.npz`` member on every call (1.6 s for the CIFAR-10 train
    images, paid by every training task); the first call here writes the array once as an
    uncompressed ``.npy`` in the cache directory (``$CLPIPE_CACHE_DIR``), and every later
    call, in any process, memory-maps it (read-only, pages shared through the OS cache). The
    cache file is keyed by the ``.npz``'s absolute path, size and modification time, so a
    changed file is decoded again; it is written atomically, so concurrent tasks never read
    half a file.
    """
    stat = os.stat(path)
    key_text = f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{key}"
    cache_file = os.path.join(storage.cache_dir(), f"npz-{hashlib.sha256(key_text.encode()).hexdigest()[:24]}.npy")
    if not os.path.exists(cache_file):
        with np.load(path, allow_pickle=False) as npz:
            array = npz[key]
        storage.save_npy(cache_file, array)
    return np.load(cache_file, mmap_mode="r", allow_pickle=False)


def _npz_array_shape(path: str, key: str) -> tuple[int, ...]:
    """Shape of one array in an .npz, read from its header without loading the data."""
    import zipfile

    with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(f)
    return tuple(shape)


# --- (a) ImageFolder --------------------------------------------------------------------

def _open_imagefolder(url: str) -> Split:
    fs, root = storage.url_to_fs(url)
    root = root.rstrip("/")
    classes = tuple(sorted(os.path.basename(p.rstrip("/")) for p in fs.ls(root, detail=False) if fs.isdir(p)))
    if not classes:
        raise InputError(url, "", "no class folders found (expected <split>/<class>/<file>.png)")
    names, labels, files = [], [], []
    for k, cls in enumerate(classes):
        class_files = sorted(
            (p for p in fs.find(f"{root}/{cls}") if p.lower().endswith((".png", ".jpg", ".jpeg"))),
            key=lambda p: os.path.relpath(p, f"{root}/{cls}"),
        )
        for p in class_files:
            names.append(f"{cls}/{os.path.relpath(p, f'{root}/{cls}')}")
            labels.append(k)
            files.append(p)
    if not names:
        raise InputError(url, "", "no image files found under the class folders")

    def load_images() -> np.ndarray:
        return _decode_images(fs, files, url)

    n = len(names)
    return Split(url, np.array(names), np.array(labels, dtype=np.int64), classes, None,
                 np.arange(n), _memoize(load_images))


def _decode_images(fs, files: list[str], url: str) -> np.ndarray:
    """Decodes every image once, caching the array on local disk keyed by the file listing."""
    from PIL import Image

    key = hashlib.sha256(("\n".join(files) + str(fs.protocol)).encode())
    for info in fs.ls(os.path.dirname(os.path.dirname(files[0])), detail=True):
        key.update(str(info.get("mtime", info.get("LastModified", ""))).encode())
    cache_dir = storage.cache_dir()
    cache_file = os.path.join(cache_dir, f"imagefolder-{key.hexdigest()[:24]}.npy")
    if os.path.exists(cache_file):
        return np.load(cache_file)
    images = np.empty((len(files), *IMAGE_SHAPE), dtype=np.uint8)
    for i, (p, data) in enumerate(zip(files, _read_many(fs, files))):
        with Image.open(io.BytesIO(data)) as im:
            array = np.asarray(im.convert("RGB"))
        if array.shape != IMAGE_SHAPE:
            raise InputError(f"{url}/{p}", "", f"expected a {IMAGE_SHAPE[:2]} RGB image, got {array.shape}")
        images[i] = array
    os.makedirs(cache_dir, exist_ok=True)
    storage.save_npy(cache_file, images)
    return images


def _read_many(fs, files: list[str], chunk: int = 2048):
    for start in range(0, len(files), chunk):
        batch = files[start : start + chunk]
        contents = fs.cat(batch)
        for p in batch:
            yield contents[p]


def _memoize(fn: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
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
    from PIL import Image

    fs, root = storage.url_to_fs(out_url)
    images = split.images()
    for cls in split.classes:
        fs.makedirs(f"{root.rstrip('/')}/{split_name}/{cls}", exist_ok=True)
    for name, image in zip(split.names, images):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        fs.pipe_file(f"{root.rstrip('/')}/{split_name}/{name}", buf.getvalue())
    return len(split)
