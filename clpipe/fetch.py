"""``clpipe data fetch``: the two inputs of every clpipe run, downloaded, checked and laid out as clpipe reads them.

- ``cifar10``: torchvision's CIFAR-10 download (the official archive, checked against torchvision's MD5 sums of
  the archive and of each batch file), converted to ``OUT/cifar10/cifar10_{train,test}.npz`` (``images`` uint8
  (N, 32, 32, 3), ``labels`` int64, ``classes``; the test split also ``exact``, all True here) in the official
  row order, like ``../shared/data/cifar10``. clpipe reorders them into the published files' row order when it
  reads them (``components/common/datasets.py``). The converted training images and labels and the test labels
  are checked against SHA-256 sums of the verified shared copy, so a conversion that changed a pixel or the row
  order is refused.
- ``cl-reproduce``: the published label files and out-of-sample ``pred_probs`` of the paper's CIFAR-10
  experiments (GitHub ``cgnorthcutt/confidentlearning-reproduce`` at a pinned commit), each checked against its
  SHA-256 sum and stored under the names of ``../shared/data/cl-reproduce`` (label JSON gzip-compressed, ``pyx``
  renamed), so configs name the same files whichever way the data came.

What is already there is not fetched again (a folder with both ``.npz`` files; each file of cl-reproduce), so
the command can run before every ``clpipe run``. Nothing is left half-written: each file appears whole or not at
all (``storage.write_bytes``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from clpipe.components.common import storage
from clpipe.components.common.errors import InputError

#: Where the published label files and pred_probs live: the commit the shared copy was verified against.
CL_REPRODUCE_COMMIT = "2f3155636663eb0813363dc06cd822aae6526c34"
CL_REPRODUCE_URL = (
    f"https://raw.githubusercontent.com/cgnorthcutt/confidentlearning-reproduce/{CL_REPRODUCE_COMMIT}/cifar10"
)
#: SHA-256 of the upstream files, by (sparsity S, noise amount N): label JSON and pyx. 13 conditions have both.
CL_REPRODUCE_FILES: Mapping[tuple[str, str], tuple[str, str]] = {
    ("0.0", "0.0"): (
        "06de0431c5f18c29c592778ebf17f949de406312cda8ecddeb7709254584539a",
        "51d73e82ed4f83bb40ce4ada88834211f73ac0abe8ff4e289a27606472023ab3",
    ),
    ("0.0", "0.2"): (
        "1df0f408cab3edca436afb2499f032af4ff6657a523ec6e1829f14d7fbf4f404",
        "0b6aa1f467932d2aa9f858dbe53ead1d447b5ef22f3666a7fb489a6cbe186242",
    ),
    ("0.2", "0.2"): (
        "b444f4c94deaa3bbd244aa6605ede8d7f0db6ac576cd9992e5fae375fc9aff3c",
        "72d663d39f10214900e38045ca85223080ffdedd561591604059b8ae8294f4d8",
    ),
    ("0.4", "0.2"): (
        "a8d4f077bcb08c4ed889522038bff739696ddccbec796a365527152a89e0a1b9",
        "22a54139fc798ce3497f814f06b51504e2c4d8f5d67671c287f3be78fe0f807d",
    ),
    ("0.6", "0.2"): (
        "8c8ffe9129d071bc229829184a4f10b52ecdcbfb98663865c708537affc881c3",
        "f23cbd74dee218e2637a37028a011c074c24d2a79c93bd23159924a06cdd1e7b",
    ),
    ("0.0", "0.4"): (
        "538f5415bcb264db947f5bc0377b1cd7e47cab093e7f9bbf63c4d63301420dad",
        "b43ea3a2c23bc697f3c3ece65f43a07c850a3437596dbd9ac18dff733efcd2da",
    ),
    ("0.2", "0.4"): (
        "1c63277b6f9c9218d1022e519001e0612a3b9cd5cb48bee5412ea52e498e27a4",
        "e2895f8629c177f5b78c07e7ba08516a9a82857d90a02bc6912e2b582d3b2d3c",
    ),
    ("0.4", "0.4"): (
        "11cce57f308f2c3ac5b4016442cfbb3f9fc2d43f02c690d9249bc15d76bf29e6",
        "edcb2549fd8d2dd4791e9d18a7e34b6b4191c29a8ca278a9ea6e18e12858c2e9",
    ),
    ("0.6", "0.4"): (
        "2bcc1def45d5472af80083b05453df110b4d7359a71895901534630ff21d48c4",
        "ee78ece319b4453faf1786eb45ec38ab63ffee19fba6cd767c7ddb3f3e160746",
    ),
    ("0.0", "0.6"): (
        "55fb24fbf821e3deff4ee9dab80b1ede620f59bcebb3f187f4ff4b939bf7334f",
        "91b397ac340d59939974289a197017b8b828f8849f053364da6185b75ba92fe7",
    ),
    ("0.2", "0.6"): (
        "5dbf32ccc86c42ed2640ef4c975f10e9870bdd7f900938fe5e3d66cdd5dbfc29",
        "9977f086991d59501f70086ec98939ccbb72dd200139a94c31d2a3b8fe5d483c",
    ),
    ("0.4", "0.6"): (
        "b086fff2ac8d0dc647d69e6dc39a18345800c8b6b4ff7d671675967023ae8c79",
        "c78e4e02fdc2ee63776df4c6a74a63c16281e05f21e7aee0ef6fe65bac479b38",
    ),
    ("0.6", "0.6"): (
        "91e2f6d3ab0543ea2fe73f749afad14e61c7e6db746e885ec64a5a770bc10c92",
        "09b96adac555cb11fe41f0fd9d1587da9d06616399e97d5de816309ddb9ec0e4",
    ),
}
#: SHA-256 of the official CIFAR-10 arrays as clpipe stores them (``images`` uint8 C order, ``labels`` int64
#: little-endian), from the verified copy in ``../shared/data/cifar10`` (its training set is byte-exact).
CIFAR10_DIGESTS: Mapping[str, str] = {
    "train_images": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
    "train_labels": "f5cfe00b0f00968c0cc5ff3b1d2de51b10e33efa277c2986f4e0fa63e58c9f4f",
    "test_labels": "cbb7365de8ed11f05cc4c3a1e7f78144127c5e851efd83762fb18202461230bb",
}
DATASETS = ("cifar10", "cl-reproduce")
CIFAR10_FILES = ("cifar10_train.npz", "cifar10_test.npz")
USER_AGENT = "clpipe-data-fetch"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's values as stored by clpipe (integers as little-endian int64)."""
    if np.issubdtype(array.dtype, np.integer) and array.dtype != np.uint8:
        array = array.astype("<i8")
    return sha256(np.ascontiguousarray(array).tobytes())


# --- cl-reproduce ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedFile:
    """One upstream file: where it is (relative to the base URL), its checksum, its local name."""

    path: str
    sha256: str
    name: str
    gzip: bool = False


def _stem(sparsity: str, noise: str) -> str:
    return f"frac_zero_noise_rates__{sparsity}__noise_amount__{noise}"


def published_names(noise: float, sparsity: float) -> tuple[str, str]:
    """Local names of a condition's published label file and pred_probs (those of ``../shared/data/cl-reproduce``).

    ``noise`` is the seed's noise amount N (0.6 = the paper's 70 % column), ``sparsity`` its S.
    """
    stem = _stem(f"{sparsity:.1f}", f"{noise:.1f}")
    return f"cifar10_noisy_labels__{stem}.json.gz", f"pyx__{stem}.npy"


def published_files(checksums: Mapping[tuple[str, str], tuple[str, str]]) -> list[PublishedFile]:
    """The label file and the pred_probs of every condition in ``checksums`` ((S, N) -> (JSON, pyx) sums)."""
    files = []
    for (s, n), (labels_sum, pyx_sum) in checksums.items():
        upstream = _stem(s.replace(".", "_"), n.replace(".", "_"))
        labels_name, pyx_name = published_names(float(n), float(s))
        files += [
            PublishedFile(
                f"cifar10_noisy_labels/cifar10_noisy_labels__{_stem(s, n)}.json",
                labels_sum,
                labels_name,
                gzip=True,
            ),
            PublishedFile(
                f"cifar10_noisy_labels__{upstream}/cifar10__train__model_resnet50__pyx.npy",
                pyx_sum,
                pyx_name,
            ),
        ]
    return files


def download(url: str) -> bytes:
    """The bytes at ``url`` (urllib, as torchvision downloads); failures are an :class:`InputError` naming it."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": USER_AGENT})) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise InputError(url, "", f"download failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise InputError(url, "", f"download failed: {getattr(e, 'reason', e)}") from None


def fetch_published(
    out: str, *, base_url: str = CL_REPRODUCE_URL, checksums=None, log: Callable[[str], None] = print
) -> list[str]:
    """Downloads the missing published files into ``out``; returns the names written."""
    written = []
    for f in published_files(checksums or CL_REPRODUCE_FILES):
        target = os.path.join(out, f.name)
        if os.path.exists(target):
            continue
        url = f"{base_url.rstrip('/')}/{f.path}"
        data = download(url)
        if sha256(data) != f.sha256:
            raise InputError(url, "sha256", f"is {sha256(data)}, expected {f.sha256}: not the published file")
        storage.write_bytes(target, gzip.compress(data, mtime=0) if f.gzip else data)
        log(f"cl-reproduce: {f.name} ({len(data) / 1e6:.1f} MB, sha256 ok)")
        written.append(f.name)
    return written


# --- CIFAR-10 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cifar10Source:
    """Where CIFAR-10 comes from and what it must be; :func:`official_cifar10` is the real one.

    Attributes:
        url: The python-version archive (``cifar-10-python.tar.gz``).
        archive_md5, files_md5: MD5 sums torchvision checks (archive; batch and meta files by name).
        digests: SHA-256 of the converted arrays (:func:`array_digest`): ``train_images``,
            ``train_labels``, ``test_labels``.
    """

    url: str
    archive_md5: str
    files_md5: Mapping[str, str]
    digests: Mapping[str, str] = field(default_factory=lambda: dict(CIFAR10_DIGESTS))


def official_cifar10(url: str | None = None) -> Cifar10Source:
    """torchvision's source of CIFAR-10 (its URL and MD5 sums), optionally from a mirror ``url``."""
    from torchvision.datasets import CIFAR10

    files = {name: md5 for name, md5 in CIFAR10.train_list + CIFAR10.test_list}
    files[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    return Cifar10Source(url or CIFAR10.url, CIFAR10.tgz_md5, files)


def _torchvision_class(source: Cifar10Source):
    """torchvision's CIFAR10 reading from ``source`` (its own download, MD5 checks and unpickling)."""
    from torchvision.datasets import CIFAR10

    def listed(names):
        return [[name, source.files_md5[name]] for name, _ in names]

    return type(
        "CIFAR10Source",
        (CIFAR10,),
        {
            "url": source.url,
            "tgz_md5": source.archive_md5,
            "train_list": listed(CIFAR10.train_list),
            "test_list": listed(CIFAR10.test_list),
            "meta": {**CIFAR10.meta, "md5": source.files_md5[CIFAR10.meta["filename"]]},
        },
    )


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def cifar10_present(out: str) -> bool:
    """Whether ``out`` holds both converted splits already."""
    return all(os.path.exists(os.path.join(out, name)) for name in CIFAR10_FILES)


def _existing_folder(path: str) -> str:
    """``path`` or the nearest folder above it that exists."""
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def fetch_cifar10(out: str, source: Cifar10Source, *, log: Callable[[str], None] = print) -> bool:
    """Downloads, checks and converts CIFAR-10 into ``out``; False when it is there already."""
    if cifar10_present(out):
        return False
    dataset = _torchvision_class(source)
    # Downloaded beside the output, on its disk, but in a folder that exists: a failed download
    # leaves no empty OUT/cifar10 behind (the files below create it).
    with tempfile.TemporaryDirectory(dir=_existing_folder(out), prefix=".download-") as tmp:
        try:
            train, test = dataset(tmp, train=True, download=True), dataset(tmp, train=False)
        except (urllib.error.URLError, OSError) as e:
            raise InputError(source.url, "", f"download failed: {e}") from None
        except RuntimeError as e:  # torchvision: "File not found or corrupted" (an MD5 mismatch)
            raise InputError(source.url, "md5", str(e)) from None
        arrays = {
            "train_images": np.ascontiguousarray(train.data, dtype=np.uint8),
            "train_labels": np.asarray(train.targets, dtype=np.int64),
            "test_images": np.ascontiguousarray(test.data, dtype=np.uint8),
            "test_labels": np.asarray(test.targets, dtype=np.int64),
        }
    for key, expected in source.digests.items():
        if array_digest(arrays[key]) != expected:
            raise InputError(
                source.url,
                key,
                f"converted array has sha256 {array_digest(arrays[key])}, expected {expected}",
            )
    classes = np.array(train.classes)
    files = {
        "cifar10_train.npz": _npz_bytes(
            images=arrays["train_images"], labels=arrays["train_labels"], classes=classes
        ),
        "cifar10_test.npz": _npz_bytes(
            images=arrays["test_images"],
            labels=arrays["test_labels"],
            exact=np.ones(len(arrays["test_labels"]), bool),
            classes=classes,
        ),
    }
    for name, data in files.items():
        storage.write_bytes(os.path.join(out, name), data)
    sums = "".join(f"{sha256(data)}  {name}\n" for name, data in files.items())
    storage.write_bytes(os.path.join(out, "SHA256SUMS"), sums.encode())
    log(
        f"cifar10: {len(arrays['train_labels'])} train and {len(arrays['test_labels'])} test images "
        f"(md5 and sha256 ok) in {out}"
    )
    return True
