"""Carrying a dataset to a machine that can only receive small files: pack, split, verify, unpack.

The GPU lease of this project moves at most 64 MiB per call (``../shared/notes/gpu-device.md``),
while CIFAR-10's arrays are about 170 MB. :func:`pack` encodes every image of each split as
lossless WebP (0.57 of the raw bytes for CIFAR-10: the train and test splits fit in two chunks
of at most 56 MiB instead of four), concatenates them into one blob per split and cuts the
blobs into chunks; ``manifest.json`` holds the sha256 of every chunk, of every reassembled
blob and of every decoded array, so :func:`unpack` proves the round trip bit for bit (lossless
WebP decodes to exactly the original pixels). The unpacked folder has the same
``<name>_train.npz`` / ``<name>_test.npz`` form as ``../shared/data/cifar10`` (uncompressed,
so tasks can memory-map it).

Only numpy, Pillow and the standard library are used: the receiving machine has them and
nothing of clpipe's other dependencies needs to be installed there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

MANIFEST = "manifest.json"
#: Default largest chunk: leaves room for the repository in a 64 MiB transfer.
CHUNK_MIB = 56


def _sha256(data: bytes | np.ndarray) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()).hexdigest()


def encode_images(images: np.ndarray) -> tuple[bytes, np.ndarray]:
    """(N, H, W, 3) uint8 -> (concatenated lossless WebP files, (N + 1,) int64 offsets)."""
    from PIL import Image

    parts, offsets = [], [0]
    for image in images:
        buf = io.BytesIO()
        # method 2: within 1 % of the smallest files at 1/70 of method 6's encoding time (measured here).
        Image.fromarray(image).save(buf, format="WEBP", lossless=True, quality=100, method=2)
        parts.append(buf.getvalue())
        offsets.append(offsets[-1] + len(parts[-1]))
    return b"".join(parts), np.asarray(offsets, dtype=np.int64)


def decode_images(blob: bytes, offsets: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`encode_images`, decoded in parallel over the machine's cores."""
    n = int(shape[0])
    bounds = np.linspace(0, n, min(os.cpu_count() or 1, max(1, n // 2000)) + 1).astype(int)
    pieces = [(blob[offsets[a]:offsets[b]], offsets[a:b + 1] - offsets[a], (b - a, *shape[1:]))
              for a, b in zip(bounds[:-1], bounds[1:])]
    if len(pieces) == 1:
        return _decode(*pieces[0])
    with ProcessPoolExecutor(len(pieces)) as pool:
        return np.concatenate(list(pool.map(_decode, *zip(*pieces))))


def _decode(blob: bytes, offsets: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    from PIL import Image

    images = np.empty(tuple(shape), dtype=np.uint8)
    for i in range(len(images)):
        with Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]])) as im:
            images[i] = np.asarray(im.convert("RGB"))
    return images


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def pack(arrays: dict[str, dict[str, np.ndarray]], out_dir: str, *, chunk_mib: int = CHUNK_MIB) -> list[str]:
    """Writes ``out_dir/chunk-NNN.bin`` and ``manifest.json``; returns the chunk file names.

    Args:
        arrays: split file name (``cifar10_train.npz``) -> its arrays; ``images`` (N, H, W, 3)
            uint8 are WebP-encoded, every other array (labels, exact ...) is stored as ``.npy``.
        out_dir: Folder to write (created).
        chunk_mib: Largest chunk in MiB.
    """
    os.makedirs(out_dir, exist_ok=True)
    stream, files = io.BytesIO(), []
    for name, split in arrays.items():
        entry = {"name": name, "arrays": []}
        for key, value in split.items():
            if key == "images":
                blob, offsets = encode_images(value)
                parts = {"images.webp": blob, "images.offsets.npy": _npy(offsets)}
                entry["images"] = {"shape": list(value.shape), "sha256": _sha256(value)}
            else:
                parts = {f"{key}.npy": _npy(value)}
                entry["arrays"].append(key)
            for part, data in parts.items():
                entry.setdefault("parts", []).append(
                    {"part": part, "offset": stream.tell(), "size": len(data), "sha256": _sha256(data)})
                stream.write(data)
        files.append(entry)
    data = stream.getvalue()
    chunks = []
    for i, chunk in enumerate(_chunks(data, chunk_mib * 2**20)):
        name = f"chunk-{i:03d}.bin"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(chunk)
        chunks.append({"file": name, "size": len(chunk), "sha256": _sha256(chunk)})
    manifest = {"format": 1, "total_size": len(data), "sha256": _sha256(data), "chunks": chunks, "files": files}
    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    return [c["file"] for c in chunks]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


class PackError(ValueError):
    """A chunk or a reassembled file does not match the manifest."""


def unpack(manifest_path: str, chunk_dirs: Sequence[str], out_dir: str) -> list[str]:
    """Reassembles the chunks (found in any of ``chunk_dirs``), verifies every sha256 of the
    manifest and writes the splits as uncompressed ``.npz`` under ``out_dir``; returns their paths."""
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise PackError(f"not a readable manifest ({e})") from None
    data = b"".join(_read_chunk(c, chunk_dirs) for c in manifest["chunks"])
    if len(data) != manifest["total_size"] or _sha256(data) != manifest["sha256"]:
        raise PackError("the reassembled chunks do not match the manifest's total size or sha256")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for entry in manifest["files"]:
        parts = {}
        for p in entry["parts"]:
            part = data[p["offset"]:p["offset"] + p["size"]]
            if _sha256(part) != p["sha256"]:
                raise PackError(f"{entry['name']}: {p['part']}: sha256 mismatch")
            parts[p["part"]] = part
        arrays = {key: np.load(io.BytesIO(parts[f"{key}.npy"]), allow_pickle=False) for key in entry["arrays"]}
        if "images" in entry:
            offsets = np.load(io.BytesIO(parts["images.offsets.npy"]), allow_pickle=False)
            images = decode_images(parts["images.webp"], offsets, entry["images"]["shape"])
            if _sha256(images) != entry["images"]["sha256"]:
                raise PackError(f"{entry['name']}: images: decoded pixels differ from the packed ones")
            arrays["images"] = images
        path = os.path.join(out_dir, entry["name"])
        np.savez(path, **arrays)
        written.append(path)
    return written


def _read_chunk(chunk: dict, dirs: Sequence[str]) -> bytes:
    for directory in dirs:
        path = os.path.join(directory, chunk["file"])
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
            if len(data) != chunk["size"] or _sha256(data) != chunk["sha256"]:
                raise PackError(f"{path}: size or sha256 differs from the manifest")
            return data
    raise PackError(f"{chunk['file']}: not found in {list(dirs)}")
