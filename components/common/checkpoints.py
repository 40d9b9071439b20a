"""Checkpoints of the two trainers: exact resume, refused when the settings changed.

The contract (the same for ``fold-train`` and ``coteach``): a trainer writes its whole state
(weights, optimiser, schedules, every random stream, the settings that determine the
result) every few epochs; the same command run again after a crash or a ``kill -9``
resumes from it and ends bit-identical on the CPU to an uninterrupted run; a rerun with
different settings is refused, naming each setting that differs.

A checkpoint is a ``torch.save`` of plain types and tensors, read back with
``weights_only=True``: loading never runs code from the file. It is identified by the
trainer that wrote it (``kind``) and the layout version (``version``).
"""

from __future__ import annotations

import io

import numpy as np
import torch

from .checks import fingerprint
from .errors import InputError


def image_fingerprint(images) -> str:
    """Fingerprint of an image array from its shape and ~256 evenly spaced images (cheap; for
    packed shards those 256 are read: the same pixels give the same fingerprint either way)."""
    step = max(1, len(images) // 256)
    return fingerprint(np.asarray(images.shape), np.ascontiguousarray(images[::step]))


def check_resume(saved: dict, current: dict, source: str) -> None:
    """Raises :class:`InputError` naming every setting that differs from the checkpoint's.

    Nested dicts (a recipe) are compared key by key, so the message names ``recipe.lr``
    rather than the whole recipe.
    """
    diffs = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [
                f"{key}.{k} (checkpoint {a.get(k)!r}, now {b.get(k)!r})"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            ]
        else:
            diffs.append(f"{key} (checkpoint {a!r}, now {b!r})")
    if diffs:
        raise InputError(
            source,
            "settings",
            "the checkpoint was written with different settings: "
            + "; ".join(diffs)
            + ". Rerun with the original settings or a new --out",
        )


def to_bytes(state: dict, *, kind: str, version: int) -> bytes:
    """Serialises a checkpoint ``state`` (tensors and plain types), tagged with its trainer and layout."""
    buf = io.BytesIO()
    torch.save({**state, "kind": kind, "format": version, "torch_version": str(torch.__version__)}, buf)
    return buf.getvalue()


def load(data: bytes, source: str, *, kind: str, version: int) -> dict:
    """Parses a checkpoint written by :func:`to_bytes` for trainer ``kind``.

    Anything else (another trainer's checkpoint, an older layout, a file that is not a
    checkpoint or that would need to unpickle code) is an :class:`InputError` naming
    ``source``; torch's advice to retry with ``weights_only=False`` is never passed on,
    because following it would run code from the file.
    """
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- whatever torch raises on unreadable content, it is bad input
        raise InputError(
            source,
            "",
            f"not a clpipe {kind} checkpoint (unreadable as tensors and plain "
            f"types: {type(e).__name__}); delete it or use a new --out",
        ) from None
    if not isinstance(state, dict) or state.get("kind") != kind or state.get("format") != version:
        found = (state.get("kind"), state.get("format")) if isinstance(state, dict) else type(state).__name__
        raise InputError(
            source,
            "format",
            f"expected a clpipe {kind} checkpoint of format {version}, "
            f"found {found}; delete it or use a new --out",
        )
    return state


def rng_state(generators: dict[str, torch.Generator], device: torch.device) -> dict:
    """The global torch stream (and CUDA's on a GPU) and the named generators' states."""
    state = {"torch": torch.get_rng_state(), **{k: g.get_state() for k, g in generators.items()}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, generators: dict[str, torch.Generator], device: torch.device) -> None:
    """Sets the streams saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    for key, g in generators.items():
        g.set_state(state[key])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
