"""``clpipe make-masks``: confident-learning keep-masks in the seed's published layout.

Reads the given labels and out-of-sample ``pred_probs``, computes the keep-masks of the
requested methods (:mod:`.logic`) and publishes them all at once (nothing on failure)::

    OUT/train_pruned_<method>/train_mask.npy   bool (N,), True = keep
    OUT/summary.json                           counts per method (docs/architecture.md)

Given the dataset (``--dataset``, with the subset settings of the run), it also writes what a
person reviews (:mod:`.review`), with the rows' file names and the class names::

    OUT/label_issues.csv                       one row per example, worst label quality first
    OUT/issues_per_class.csv                   issues per class
    OUT/noise_matrix.npy                       (K, K) estimated P(given = i | true = j)
    OUT/train_pruned_<method>/cleaned_labels.json   the seed's JSON without the flagged rows
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

from ..common import storage
from ..common.artifacts import Masks, PredProbs
from ..common.datasets import ALL_ROWS, SUBSET_SEED, Split, open_split, subset_rows
from ..common.errors import InputError
from ..common.labels import load_labels_in_file_order
from ..common.methods import CL_METHODS
from . import logic, review

log = logging.getLogger("clpipe.make-masks")


def make_masks(
    *,
    labels: str,
    pred_probs: str,
    out: str,
    methods: Sequence[str] = CL_METHODS,
    compat: Literal["cleanlab-2021"] | None = None,
    dataset: str | None = None,
    subset_per_class: int = ALL_ROWS,
    subset_seed: int = SUBSET_SEED,
    issue_method: str = review.DEFAULT_ISSUE_METHOD,
) -> Masks:
    """Keep-masks of confident-learning methods from given labels and out-of-sample pred_probs.

    Args:
        labels: Given labels: the seed's JSON (.json/.json.gz, file -> label, rows in sorted-key
            order) or an .npy of labels in row order (path or URL).
        pred_probs: An (N, K) .npy, or a directory containing pred_probs.npy (a combine-folds output).
        out: Output directory (path or URL).
        methods: Method ids, space- or comma-separated.
        compat: cleanlab-2021 reproduces the seed's early-2021 cleanlab semantics (unset: cleanlab 2.9).
        dataset: The dataset the rows belong to (path or URL); adds the review files
            (label_issues.csv, issues_per_class.csv, noise_matrix.npy, cleaned labels).
        subset_per_class: The class-stratified subset the pred_probs were made on (0 = all rows).
        subset_seed: Seed of that subset.
        issue_method: The method whose flags fill is_label_issue in label_issues.csv.
    """
    started = time.perf_counter()
    chosen = logic.check_methods([m for value in methods for m in value.split(",") if m])
    logic.check_compat(compat)
    if dataset is not None:
        review.check_issue_method(issue_method, chosen)
    inputs = [labels, pred_probs] if dataset is None else [labels, pred_probs, dataset]
    storage.check_output(out, stage=Masks.STAGE, inputs=inputs)
    probs_url = PredProbs.file_url(pred_probs)
    probs = PredProbs.read_array(probs_url)
    given = load_labels_in_file_order(labels)  # their classes are checked against the pred_probs' in logic
    view = None if dataset is None else _view(dataset, subset_per_class, subset_seed, probs.shape)
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
    if view is not None:
        result.review = review.build_review(
            given, probs, keep, issue_method=issue_method, names=view.names,
            files=view.names if view.files is None else view.files, classes=view.classes)
        summary.update(classes=list(view.classes), issue_method=issue_method,
                       n_label_issues=int(result.review.label_issues.columns["is_label_issue"].sum()),
                       dataset=dataset, dataset_fingerprint=view.fingerprint())
    result.write(out, inputs)
    for method, counts in summary["methods"].items():
        log.info("%-16s kept %6d removed %6d", method, counts["kept"], counts["removed"])
    log.info("wrote %s (%s) in %.2f s", out, summary["semantics"], time.perf_counter() - started)
    return result


def _view(dataset: str, per_class: int, seed: int, shape: tuple[int, int]) -> Split:
    """The rows the pred_probs describe: the train split, or its subset; names and classes only."""
    n_examples, n_classes = shape
    split = open_split(dataset, "train")
    view = split.take(subset_rows(split.labels, per_class, seed))
    if view.num_classes != n_classes:
        raise InputError("dataset", "", f"{dataset} has {view.num_classes} classes, the pred_probs {n_classes}")
    if len(view) != n_examples:
        raise InputError("dataset", "", f"{dataset} has {len(view)} train rows with subset_per_class="
                         f"{per_class}, the pred_probs have {n_examples}: give the subset settings the "
                         "pred_probs were made with")
    return view
