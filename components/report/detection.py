"""How well each confident-learning method found the label errors (pure: arrays and records in, numbers out).

A *real error* is a row whose given label differs from the dataset's label (for the seed's noisy CIFAR-10 the
class folders are the ground truth). For each method's keep-mask, the removed rows are scored against the real
errors: **precision** = real errors among the removed rows / removed rows, **recall** = real errors removed /
all real errors. This is the part of the paper a CPU reproduces exactly from the published ``pred_probs``
(the paper's Table 2 does not print it; it is the quality of the step that Co-Teaching then trains on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..common.errors import InputError
from ..common.methods import CL_METHODS, PAPER_NAMES
from ..common.tables import csv_text, three_places

CSV_FIELDS = (
    "condition",
    "noise",
    "sparsity",
    "n_examples",
    "real_errors",
    "method",
    "paper_name",
    "removed",
    "errors_removed",
    "precision",
    "recall",
)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def detection(
    given: np.ndarray,
    true: np.ndarray,
    keep_masks: Mapping[str, np.ndarray],
    classes: Sequence[str],
    *,
    source: str,
) -> dict:
    """Removed rows of every method scored against the real errors of the same rows.

    Args:
        given: (N,) given (noisy) labels of the rows the masks describe.
        true: (N,) dataset labels of the same rows.
        keep_masks: ``{method: bool (N,)}``, True = keep (make-masks' ``train_mask.npy``).
        classes: The K class names (per-class counts are by dataset label).
        source: Where the masks came from (error messages).

    Returns:
        ``n_examples``, ``real_errors``, ``real_errors_per_class``, ``classes`` and per method
        ``removed``, ``errors_removed``, ``precision``, ``recall`` (None when undefined),
        ``errors_removed_per_class``.
    """
    if given.shape != true.shape:
        raise InputError(
            source, "labels", f"given labels {given.shape} and dataset labels {true.shape} differ"
        )
    errors = given != true
    k = len(classes)
    methods = {}
    for method, keep in keep_masks.items():
        if keep.shape != given.shape or keep.dtype != np.bool_:
            raise InputError(
                source,
                f"train_pruned_{method}",
                f"expected bool {given.shape}, got {keep.dtype} {keep.shape}",
            )
        removed = ~keep
        found = removed & errors
        methods[method] = {
            "removed": int(removed.sum()),
            "errors_removed": int(found.sum()),
            "precision": _ratio(int(found.sum()), int(removed.sum())),
            "recall": _ratio(int(found.sum()), int(errors.sum())),
            "errors_removed_per_class": np.bincount(true[found], minlength=k).tolist(),
        }
    return {
        "n_examples": len(given),
        "real_errors": int(errors.sum()),
        "real_errors_per_class": np.bincount(true[errors], minlength=k).tolist(),
        "classes": list(classes),
        "methods": methods,
    }


def with_detection(results: Iterable[Mapping]) -> list[Mapping]:
    """The condition records whose masks were scored against real errors: a detection record with at
    least one (a user's images as given have none known: nothing to score, the review files say what
    was found)."""
    return [r for r in results if r.get("detection") and r["detection"]["real_errors"]]


def _methods(result: Mapping) -> list[str]:
    return [m for m in CL_METHODS if m in result["detection"]["methods"]]


def detection_rows(results: Iterable[Mapping]) -> list[dict]:
    """One row per (condition, method): ``detection.csv``."""
    rows = []
    for r in with_detection(results):
        d, c = r["detection"], r["condition"]
        for method in _methods(r):
            m = d["methods"][method]
            rows.append(
                {
                    "condition": c["name"],
                    "noise": c["noise"],
                    "sparsity": c["sparsity"],
                    "n_examples": d["n_examples"],
                    "real_errors": d["real_errors"],
                    "method": method,
                    "paper_name": PAPER_NAMES[method],
                    "removed": m["removed"],
                    "errors_removed": m["errors_removed"],
                    "precision": m["precision"],
                    "recall": m["recall"],
                }
            )
    return rows


def detection_csv(rows: Sequence[Mapping]) -> str:
    return csv_text(rows, CSV_FIELDS)


def detection_markdown(results: Iterable[Mapping]) -> str:
    """Per condition and method: removed, real errors among them, precision, recall."""
    lines = [
        "| condition | labels (real errors) | method | removed | real errors removed | precision | recall |",
        "|:---|:---|:---|---:|---:|---:|---:|",
    ]
    for r in with_detection(results):
        d = r["detection"]
        first = True
        for method in _methods(r):
            m = d["methods"][method]
            head = (
                f"| {r['condition']['name']} | {d['n_examples']:,} ({d['real_errors']:,} wrong) "
                if first
                else "| | "
            )
            lines.append(
                f"{head}| {PAPER_NAMES[method]} | {m['removed']:,} | {m['errors_removed']:,} | "
                f"{three_places(m['precision'])} | {three_places(m['recall'])} |"
            )
            first = False
    return "\n".join(lines)


def per_class_markdown(result: Mapping, method: str) -> str:
    """Real errors per class (by dataset label) and how many of them ``method`` removed."""
    d = result["detection"]
    m = d["methods"][method]
    lines = [f"| class | real errors | removed by {PAPER_NAMES[method]} | recall |", "|---|---|---|---|"]
    for name, errors, found in zip(d["classes"], d["real_errors_per_class"], m["errors_removed_per_class"]):
        lines.append(f"| {name} | {errors:,} | {found:,} | {three_places(_ratio(found, errors))} |")
    return "\n".join(lines)
