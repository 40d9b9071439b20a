"""``clpipe predict``: the class of each image under an exported model, as CSV.

    clpipe predict --model runs/model photos/ more/cat.jpg s3://bucket/x.png --out predictions.csv

IMAGES are image files, folders (every image file below them, sorted) or URLs. The model is a
folder with ``model.safetensors`` and ``model.json`` (common/model_files.py). Each image is
prepared as at training time (the card's resolution and normalisation). Output columns:
``file, predicted_label, probability`` and, with ``--top-k K``, ``label_2, probability_2`` ...
up to K; written to ``--out`` (path or URL) or printed.
"""

from __future__ import annotations

import logging
import posixpath
import sys
from collections.abc import Sequence

import numpy as np

from ..common import storage
from ..common.errors import InputError
from ..common.imaging import IMAGE_ENDINGS
from ..common.tables import csv_text

log = logging.getLogger("clpipe.predict")


def predict(
    *,
    model: str,
    images: Sequence[str],
    out: str | None = None,
    top_k: int = 1,
    batch_size: int = 256,
    device: str = "cpu",
) -> list[dict]:
    """Predicts the class of each image with an exported model.

    Args:
        model: Folder with model.safetensors and model.json (path or URL).
        images: Image files, folders of them, or URLs.
        out: CSV file to write (path or URL; never replaces an existing file); unset: print it.
        top_k: How many classes to list per image, most probable first.
        batch_size: Images per forward pass.
        device: cpu, cuda, cuda:1 ...
    """
    from ..common.image_files import iter_decoded
    from ..common.model_files import load_model, read_card
    from . import logic

    if out is not None:  # before any work
        storage.check_new_file(out, inputs=[model, *images])
    card = read_card(model)
    if not 1 <= top_k <= card.num_classes:
        raise InputError("top_k", "", f"must lie in [1, {card.num_classes}], got {top_k}")
    if batch_size < 1:
        raise InputError("batch_size", "", f"must be >= 1, got {batch_size}")
    files = expand_images(images)
    network, card = load_model(model, device)
    rows = []
    decoded = iter_decoded(files, card.resolution)
    for start in range(0, len(files), batch_size):  # decode a batch at a time: any number of images
        batch = files[start:start + batch_size]
        pixels = np.stack([next(decoded) for _ in batch])
        probs = logic.predict_proba(network, card, pixels, batch_size=batch_size, device=device)
        rows += [_row(f, ranked) for f, ranked in zip(batch, logic.top_k(probs, card.classes, top_k))]
    text = _csv(rows)
    if out is None:
        sys.stdout.write(text)
    else:
        storage.write_bytes(out, text.encode())
        log.info("wrote %d predictions to %s", len(rows), out)
    return rows


def expand_images(images: Sequence[str]) -> list[str]:
    """Files as given; folders replaced by the image files below them (sorted); nothing found is an error."""
    files: list[str] = []
    for item in images:
        if storage.isdir(item):
            fs, root = storage.url_to_fs(item)
            found = sorted(p for p in fs.find(root) if p.lower().endswith(IMAGE_ENDINGS)
                           and not posixpath.basename(p).startswith("."))
            if not found:
                raise InputError(item, "", f"no image files ({', '.join(IMAGE_ENDINGS)}) below this folder")
            files += [storage.join(item, posixpath.relpath(p, root.rstrip("/"))) for p in found]
        else:
            files.append(item)
    if not files:
        raise InputError("images", "", "no images given")
    return files


def _row(file: str, ranked: list[tuple[str, float]]) -> dict:
    row = {"file": file, "predicted_label": ranked[0][0], "probability": ranked[0][1]}
    for i, (label, p) in enumerate(ranked[1:], start=2):
        row[f"label_{i}"], row[f"probability_{i}"] = label, p
    return row


def _csv(rows: list[dict]) -> str:
    """Probabilities to 6 significant digits."""
    return csv_text(({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()} for row in rows),
                    list(rows[0]))
