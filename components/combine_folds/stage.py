"""``clpipe combine-folds``: K fold outputs (or pre-computed pred_probs) -> one (N, K) pred_probs.

Two ways to make the :class:`~..common.artifacts.PredProbs` artifact that make-masks reads:

- ``clpipe combine-folds --out DIR FOLD_DIR...``: joins the outputs of ``clpipe fold-train``
  (paths or URLs, any order), refusing rows covered twice or never and folds of different
  cross-validations;
- ``clpipe combine-folds --given-pred-probs PYX --dataset D --labels L --out DIR``: takes the
  whole split's pre-computed pred_probs (e.g. the seed's published ``pyx``), cut to the train
  view, so a condition can skip cross-validation.

Writes ``DIR/pred_probs.npy`` (N, K), ``DIR/labels.npy`` (N,) and ``DIR/summary.json``;
nothing when any check fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..common import storage
from ..common.artifacts import FoldOutput, PredProbs, labels_url
from ..common.datasets import ALL_ROWS, SUBSET_SEED, open_split, subset_rows
from ..common.errors import InputError
from ..common.labels import load_labels
from . import logic

log = logging.getLogger("clpipe.combine-folds")


def combine_folds(
    *,
    out: str,
    folds: Sequence[str] = (),
    given_pred_probs: str | None = None,
    dataset: str | None = None,
    labels: str | None = None,
    subset_per_class: int = ALL_ROWS,
    subset_seed: int = SUBSET_SEED,
) -> PredProbs:
    """Joins the folds of one cross-validation, or takes given pred_probs, into one pred_probs output.

    Args:
        out: Output directory (path or URL).
        folds: fold-train output directories (paths or URLs), any order.
        given_pred_probs: Instead of folds: pre-computed (N, K) pred_probs .npy of the whole train
            split (needs dataset and labels).
        dataset: With given_pred_probs: the dataset the pred_probs belong to.
        labels: With given_pred_probs: the condition's labels (a label file of the whole split or a
            noisy-labels output directory).
        subset_per_class: With given_pred_probs: the train view's class-stratified subset (0 = all).
        subset_seed: With given_pred_probs: seed of that subset.
    """
    if bool(folds) == bool(given_pred_probs):
        raise InputError("folds", "", "give fold-train outputs or given_pred_probs (with dataset and labels), "
                         "exactly one of the two")
    inputs = [u for u in (given_pred_probs, dataset, labels) if u] if given_pred_probs else list(folds)
    storage.check_output(out, stage=PredProbs.STAGE, inputs=inputs)
    if given_pred_probs:
        result = _given(given_pred_probs, dataset, labels, subset_per_class, subset_seed)
    else:
        result = logic.combine_folds([FoldOutput.read(url) for url in folds])
    result.write(out, inputs)
    log.info("%s: %d x %d %s pred_probs, accuracy vs given labels %.4f", result.summary["stage"],
             *result.pred_probs.shape, result.pred_probs.dtype, result.summary["accuracy"])
    return result


def _given(url: str, dataset: str | None, labels: str | None, per_class: int, seed: int) -> PredProbs:
    for name, value in (("dataset", dataset), ("labels", labels)):
        if not value:
            raise InputError(name, "", "needed with given_pred_probs")
    split = open_split(dataset, "train")
    given = load_labels(labels_url(labels), split)
    rows = subset_rows(split.labels, per_class, seed)
    result = logic.given_pred_probs(
        storage.load_npy(url, field="pred_probs"), given, rows, source=url, num_classes=split.num_classes,
        dataset_fingerprint=split.take(rows).fingerprint(),
    )
    result.summary["classes"] = list(split.classes)
    return result
