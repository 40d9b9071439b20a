"""Resumable Co-Teaching runs: what a run depends on, and saving and restoring its state.

A checkpoint (``checkpoint.pt``, a :func:`torch.save` of tensors and plain types only) holds
both networks, both Adam states, the curves so far, every random-number stream (torch's,
the batch order's, the augmentation's) and the run's *settings* (:func:`run_settings`:
everything that determines the result). A run resumes only from a checkpoint whose
settings equal its own (:func:`check_resume` names each that differs), and then continues
bit for bit on the CPU as if it had never stopped.

Saving never makes the training loop wait for storage: :func:`snapshot` copies the state
to host memory (a few milliseconds for the 101.6 MiB of the width-128 pair), and a
:class:`BackgroundWriter` serialises and writes it on one background thread, in order
with the metrics, while the next epoch trains. Each file is replaced atomically, so a
process killed mid-write leaves the previous checkpoint readable.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Self

import numpy as np
import torch

from ..common import training
from ..common.checkpoints import image_fingerprint
from ..common.checks import fingerprint
from ..common.errors import InputError
from .recipes import SAVE_ONLY_FIELDS, Recipe

#: Version of the checkpoint layout (2: curves of the scored epochs plus a per-epoch log).
CHECKPOINT_FORMAT = 2


def run_settings(
    recipe: Recipe,
    *,
    seed: int,
    num_classes: int,
    given_labels: np.ndarray,
    keep: np.ndarray | None,
    true_labels: np.ndarray | None,
    weights: np.ndarray | None,
    train_images: training.Pixels,
    test_images: training.Pixels,
    test_labels: np.ndarray,
    test_exact: np.ndarray | None,
    normalisation: training.Normalisation | None,
    device: torch.device,
) -> dict:
    """Everything that determines the result; a checkpoint resumes only if these match.

    The recipe's :data:`~.recipes.SAVE_ONLY_FIELDS` are left out: how often state is saved
    changes nothing that is computed, so a rerun may change it.
    """
    recipe_fields = {k: v for k, v in dataclasses.asdict(recipe).items() if k not in SAVE_ONLY_FIELDS}
    return {
        "recipe": recipe_fields,
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
        "normalisation": None if normalisation is None else [list(normalisation[0]), list(normalisation[1])],
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
    """Parses a ``checkpoint.pt``: tensors and plain types only, never code.

    Anything else (a pickle that would run code, a truncated or foreign file, a checkpoint
    of another clpipe version) is refused with one line saying it is not a clpipe
    checkpoint; torch's own advice to load it with ``weights_only=False`` is never passed
    on, because following it would run whatever the file holds.
    """
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused an object: code, or a foreign class
        raise InputError(source, "", "not a clpipe checkpoint: it holds Python objects other than tensors "
                         "and plain values, so it was not loaded") from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:  # not a torch.save archive, truncated
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(source, "", f"not a clpipe checkpoint: not a readable torch.save file "
                         f"({first_line[:120]})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise InputError(source, "format", "not a clpipe checkpoint (no 'format' entry)")
    if state["format"] != CHECKPOINT_FORMAT:
        raise InputError(source, "format", f"a clpipe coteach checkpoint of format {state['format']!r}; this "
                         f"version resumes format {CHECKPOINT_FORMAT} only: rerun with a new --out")
    return state


def rng_state(loader: training.Loader, device: torch.device) -> dict:
    """Copies of every random stream a run draws from (torch's global ones, batch order, augmentation)."""
    state = {
        "torch": torch.get_rng_state(),
        "order": loader.order_gen.get_state(),
        "aug": loader.aug_gen.get_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def to_host(obj):
    """A copy of ``obj`` with every tensor copied to host memory (dicts, lists, tuples recursed).

    The training loop goes on changing its parameters and optimiser state in place while a
    snapshot is written in the background, so the snapshot must not share their storage.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_host(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_host(v) for v in obj)
    return obj


def snapshot(settings: dict, next_epoch: int, nets, optimizers, loader: training.Loader,
             logs: dict[str, dict[str, list]], device: torch.device, time_s: float) -> dict:
    """The state after an epoch, copied to host memory (see :func:`to_host`).

    ``logs`` are the run's curves by name (``curves``, ``epoch_log``); their lists are copied.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "settings": settings,
        "next_epoch": int(next_epoch),
        "model1": to_host(nets[0].state_dict()),
        "model2": to_host(nets[1].state_dict()),
        "optimizer1": to_host(optimizers[0].state_dict()),
        "optimizer2": to_host(optimizers[1].state_dict()),
        **{name: {k: list(v) for k, v in log.items()} for name, log in logs.items()},
        "rng": rng_state(loader, device),
        "time_s": float(time_s),
        "torch_version": str(torch.__version__),
    }


def restore(state: dict, nets, optimizers, loader: training.Loader, device: torch.device) -> int:
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


class BackgroundWriter:
    """Runs writes one after another on a background thread, in the order they were submitted.

    The training loop hands over a checkpoint snapshot and the epoch's metrics and goes on
    training; serialising 100 MiB and writing it (0.3 s on a CPU, longer to object storage)
    happens meanwhile. One thread keeps the order: a ``metrics.json`` is never newer than the
    checkpoint written before it. A failed write is raised in the training loop at the next
    :meth:`submit` or at :meth:`close` (use it as a context manager so pending writes finish,
    or fail, before the run returns).
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coteach-writer")
        self._pending: list[Future] = []

    def submit(self, write: Callable[..., None], *args) -> None:
        self._raise_failures(wait=False)
        self._pending.append(self._pool.submit(write, *args))

    def _raise_failures(self, *, wait: bool) -> None:
        still = []
        for future in self._pending:
            if wait or future.done():
                future.result()  # raises the write's exception, if any
            else:
                still.append(future)
        self._pending = still

    def close(self) -> None:
        """Waits for every pending write; raises the first failure."""
        try:
            self._raise_failures(wait=True)
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # the loop already failed: let its writes finish, report the loop's error
            self._pool.shutdown(wait=True)


def write_snapshot(write_checkpoint: Callable[[bytes], None], state: dict) -> None:
    """Serialises a :func:`snapshot` and hands the bytes to ``write_checkpoint`` (background thread)."""
    write_checkpoint(checkpoint_bytes(state))
