"""``clpipe make-masks``: confident-learning keep-masks in the seed's published layout.

Reads the given labels and out-of-sample ``pred_probs``, computes the keep-masks of the
requested methods (:mod:`.logic`) and publishes them all at once (nothing on failure)::

    OUT/train_pruned_<method>/train_mask.npy   bool (N,), True = keep
    OUT/summary.json                           counts per method (docs/architecture.md)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

from ..common import storage
from ..common.artifacts import Masks, PredProbs
from ..common.labels import load_labels_in_file_order
from ..common.methods import CL_METHODS
from . import logic

log = logging.getLogger("clpipe.make-masks")


def make_masks(
    *,
    labels: str,
    pred_probs: str,
    out: str,
    methods: Sequence[str] = CL_METHODS,
    compat: Literal["cleanlab-2021"] | None = None,
) -> Masks:
    """Keep-masks of confident-learning methods from given labels and out-of-sample pred_probs.

    Args:
        labels: Given labels: the seed's JSON (.json/.json.gz, file -> label, rows in sorted-key
            order) or an .npy of labels in row order (path or URL).
        pred_probs: An (N, K) .npy, or a directory containing pred_probs.npy (a combine-folds output).
        out: Output directory (path or URL).
        methods: Method ids, space- or comma-separated.
        compat: cleanlab-2021 reproduces the seed's early-2021 cleanlab semantics (unset: cleanlab 2.9).
    """
    started = time.perf_counter()
    chosen = logic.check_methods([m for value in methods for m in value.split(",") if m])
    logic.check_compat(compat)
    inputs = [labels, pred_probs]
    storage.check_output(out, stage=Masks.STAGE, inputs=inputs)
    probs_url = PredProbs.file_url(pred_probs)
    probs = PredProbs.read_array(probs_url)
    given = load_labels_in_file_order(labels, probs.shape[1])
    log.info("labels %s (%d rows); pred_probs %s %s %s", labels, len(given), probs_url, probs.shape, probs.dtype)
    keep = logic.make_masks(given, probs, methods=chosen, compat=compat, labels_source=labels,
                            pred_probs_source=probs_url)
    n_examples, n_classes = probs.shape
    summary = {
        "n_examples": n_examples,
        "n_classes": n_classes,
        "semantics": logic.semantics_name(compat),
        "pred_probs_dtype": str(probs.dtype),
        "methods": logic.summarize(keep, given, n_classes),
    }
    result = Masks(keep, summary)
    result.write(out, inputs)
    for method, counts in summary["methods"].items():
        log.info("%-16s kept %6d removed %6d", method, counts["kept"], counts["removed"])
    log.info("wrote %s (%s) in %.2f s", out, summary["semantics"], time.perf_counter() - started)
    return result
