"""Resumable Co-Teaching runs: what a run depends on, and saving and restoring its state.

A checkpoint (``checkpoint.pt``, a :func:`torch.save` of tensors and plain types only) holds
both networks, both Adam states, the curves so far, every random-number stream (torch's,
the batch order's, the augmentation's) and the run's *settings* (:func:`run_settings`:
everything that determines the result). A run resumes only from a checkpoint whose
settings equal its own (:func:`check_resume` names each that differs), and then continues
bit for bit on the CPU as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import torch

from ..common import training
from ..common.errors import InputError
from .recipes import Recipe

#: Version of the checkpoint layout.
CHECKPOINT_FORMAT = 1


def fingerprint(*arrays: np.ndarray | None) -> str:
    """Short sha256 of arrays (dtype-normalised), to tell inputs apart on resume."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def image_fingerprint(images: np.ndarray) -> str:
    """Fingerprint of an image array from its shape and ~256 evenly spaced images (cheap)."""
    step = max(1, len(images) // 256)
    return fingerprint(np.asarray(images.shape), images[::step])


def run_settings(
    recipe: Recipe,
    *,
    seed: int,
    num_classes: int,
    given_labels: np.ndarray,
    keep: np.ndarray | None,
    true_labels: np.ndarray | None,
    weights: np.ndarray | None,
    train_images: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    test_exact: np.ndarray | None,
    device: torch.device,
) -> dict:
    """Everything that determines the result; a checkpoint resumes only if these match."""
    return {
        "recipe": dataclasses.asdict(recipe),
        "seed": int(seed),
        "num_classes": int(num_classes),
        "n_view": len(given_labels),
        "n_train": int(len(given_labels) if keep is None else keep.sum()),
        "given_labels": fingerprint(given_labels.astype(np.int64)),
        "keep_mask": fingerprint(keep),
        "true_labels": fingerprint(None if true_labels is None else true_labels.astype(np.int64)),
        "class_weights": None if weights is None else [float(v) for v in weights],
        "train_images": image_fingerprint(train_images),
        "test_images": image_fingerprint(test_images),
        "test_labels": fingerprint(test_labels.astype(np.int64), test_exact),
        "device_type": device.type,
    }


def check_resume(saved: dict, current: dict, source: str) -> None:
    """Raises :class:`InputError` naming every setting that differs from the checkpoint's."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{key}.{k} (checkpoint {a.get(k)!r}, now {b.get(k)!r})"
                      for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            diffs.append(f"{key} (checkpoint {a!r}, now {b!r})")
    if diffs:
        raise InputError(source, "settings", "the checkpoint was written with different settings: "
                         + "; ".join(diffs) + ". Rerun with the original settings or a new --out")



def checkpoint_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_checkpoint(data: bytes, source: str) -> dict:
    """Parses a ``checkpoint.pt`` (tensors and plain types only; never unpickles code)."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable content is bad input
        raise InputError(source, "", f"not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(source, "format",
                         f"expected a clpipe coteach checkpoint of format {CHECKPOINT_FORMAT}")
    return state



def rng_state(loader: training.DeviceLoader, device: torch.device) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "order": loader.order_gen.get_state(),
        "aug": loader.aug_gen.get_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def snapshot(settings, next_epoch, nets, optimizers, loader, curves, device, time_s) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "settings": settings,
        "next_epoch": int(next_epoch),
        "model1": nets[0].state_dict(),
        "model2": nets[1].state_dict(),
        "optimizer1": optimizers[0].state_dict(),
        "optimizer2": optimizers[1].state_dict(),
        "curves": {k: list(v) for k, v in curves.items()},
        "rng": rng_state(loader, device),
        "time_s": float(time_s),
        "torch_version": str(torch.__version__),
    }


def restore(state: dict, nets, optimizers, loader, device) -> int:
    """Loads a checkpoint into the freshly built run; returns the next epoch to train."""
    nets[0].load_state_dict(state["model1"])
    nets[1].load_state_dict(state["model2"])
    optimizers[0].load_state_dict(state["optimizer1"])
    optimizers[1].load_state_dict(state["optimizer2"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    loader.order_gen.set_state(rng["order"])
    loader.aug_gen.set_state(rng["aug"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
    return int(state["next_epoch"])
