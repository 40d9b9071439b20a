"""``clpipe make-masks``: confident-learning keep-masks in the seed's published layout.

Reads the given labels and out-of-sample ``pred_probs``, computes the keep-masks of the
requested methods (:mod:`.logic`) and publishes, all at once through
``storage.staged_output`` (nothing on failure)::

    OUT/train_pruned_<method>/train_mask.npy   bool (N,), True = keep
    OUT/summary.json                           counts per method (docs/architecture.md)

Inputs (paths or fsspec URLs):

* ``--labels``: the seed's JSON (``.json``/``.json.gz``, file -> label, rows in sorted-key
  order) or an ``.npy`` of labels in row order.
* ``--pred-probs``: an ``.npy`` (N, K) file, or a directory holding ``pred_probs.npy``
  (the fold combiner's output directory).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

import numpy as np

from ..common import storage
from ..common.cli import run_stage
from ..common.errors import InputError
from ..common.labels import load_labels_in_file_order
from .logic import ALL_METHODS, COMPAT_2021, check_methods, make_masks, semantics_name, summarize

log = logging.getLogger("clpipe.make-masks")

STAGE = "make-masks"
PRED_PROBS_FILE = "pred_probs.npy"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"clpipe {STAGE}", description="Confident-learning keep-masks in the seed's published layout."
    )
    parser.add_argument("--labels", required=True,
                        help="given labels: seed JSON (.json/.json.gz, file -> label) or .npy in row order")
    parser.add_argument("--pred-probs", required=True,
                        help=f"(N, K) .npy, or a directory containing {PRED_PROBS_FILE} "
                             "(combine-folds output)")
    parser.add_argument("--out", required=True, help="output directory (path or URL)")
    parser.add_argument("--methods", nargs="+", default=list(ALL_METHODS),
                        help="method ids, space- or comma-separated "
                             f"(default: all of {', '.join(ALL_METHODS)})")
    parser.add_argument("--compat", choices=[COMPAT_2021], default=None,
                        help="reproduce the seed's early-2021 cleanlab semantics (default: cleanlab 2.9)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def split_methods(values: Sequence[str]) -> list[str]:
    """``["argmax,cl_pbc", "cl_both"]`` -> ``["argmax", "cl_pbc", "cl_both"]``."""
    return [m for value in values for m in value.split(",") if m]


def pred_probs_url(url: str) -> str:
    """The ``.npy`` to read: ``url`` itself, or ``url/pred_probs.npy`` for a directory (a stage
    output, read through its manifest)."""
    if url.endswith(".npy"):
        return url
    if PRED_PROBS_FILE not in storage.open_output(url).files:
        raise InputError(url, PRED_PROBS_FILE, "not found: expected a .npy file or a directory containing it")
    return storage.join(url, PRED_PROBS_FILE)


def load_pred_probs(url: str) -> np.ndarray:
    pred_probs = storage.load_npy(url, field="pred_probs")
    if pred_probs.ndim != 2:
        raise InputError(url, "pred_probs", f"expected a 2-D (N, K) array, got shape {pred_probs.shape}")
    return pred_probs


def write_outputs(out: str, keep_masks: dict[str, np.ndarray], summary: dict, inputs: Sequence[str]) -> None:
    """Publishes the masks and ``summary.json`` together (a manifest last)."""
    with storage.staged_output(out, stage=STAGE, inputs=inputs) as stage:
        for method, keep in keep_masks.items():
            storage.save_npy(storage.join(stage, f"train_pruned_{method}", "train_mask.npy"), keep)
        storage.save_json(storage.join(stage, "summary.json"), summary)


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    methods = check_methods(split_methods(args.methods))
    inputs = [args.labels, args.pred_probs]
    storage.check_output(args.out, stage=STAGE, inputs=inputs)
    probs_url = pred_probs_url(args.pred_probs)
    pred_probs = load_pred_probs(probs_url)
    labels = load_labels_in_file_order(args.labels, pred_probs.shape[1])
    log.info("labels %s (%d rows); pred_probs %s %s %s",
             args.labels, len(labels), probs_url, pred_probs.shape, pred_probs.dtype)
    keep_masks = make_masks(
        labels, pred_probs,
        methods=methods, compat=args.compat,
        labels_source=args.labels, pred_probs_source=probs_url,
    )
    n_examples, n_classes = pred_probs.shape
    summary = {
        "n_examples": n_examples,
        "n_classes": n_classes,
        "semantics": semantics_name(args.compat),
        "pred_probs_dtype": str(pred_probs.dtype),
        "methods": summarize(keep_masks, labels, n_classes),
    }
    write_outputs(args.out, keep_masks, summary, inputs)
    for method, counts in summary["methods"].items():
        log.info("%-16s kept %6d removed %6d", method, counts["kept"], counts["removed"])
    log.info("wrote %s (%s) in %.2f s", args.out, summary["semantics"], time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    return run_stage(STAGE, build_parser(), argv, run)
