"""Results of the benchmark: one record per condition, and the paper's Table 2 layout.

Two steps, both pure (dicts in, dicts and text out):

1. :func:`condition_result` joins what one condition's stages wrote -- the noisy-labels
   summary, the pred_probs summary (fold combiner or given pred_probs, with the confusion
   matrix of the out-of-sample predictions vs the given labels), the make-masks summary and
   the Co-Teaching ``metrics.json`` of every method -- into one record, checking that they
   belong together.
2. :func:`result_rows`, :func:`table2_markdown` and :func:`conditions_markdown` lay the
   records of all conditions out like the paper's Table 2 (methods x noise x sparsity), with
   the paper's numbers next to ours where a condition is one of the paper's columns.

Accuracy reported in the table is the Feb-2020 rule the paper's CL rows follow: test
accuracy of the better of the two Co-Teaching networks **at the final epoch**
(``metrics.json`` ``final.test_acc``). The CSV also has the best epoch's accuracy (selected
on the test set, the JAIR rule) and the accuracy on the exact-pixel test rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from ..common.errors import InputError
from ..common.methods import CL_METHODS, NO_PRUNING, RUN_NAMES
from ..common.tables import csv_text, three_places
from . import detection

#: Method ids in table order (the seed's folder names) with the paper's row names.
METHOD_NAMES: Mapping[str, str] = RUN_NAMES
#: The paper's noise columns by the seed's noise amount N (N = 0.6 files have 70 % noise).
PAPER_NOISE_COLUMNS: Mapping[float, str] = {0.2: "20 %", 0.4: "40 %", 0.6: "70 %"}
PAPER_SPARSITIES = (0.0, 0.2, 0.4, 0.6)
#: Table 2 of arXiv:1911.00068 v2/v3 (Feb 2020, single trial; ../shared/notes/confident-learning.md
#: section 6): test accuracy per method for N = 0.2, 0.4, 0.6 (columns 20/40/70 %) x S = 0, .2, .4, .6.
#: "none" is the paper's Co-Teaching row (Co-Teaching on all noisy labels).
PAPER_TABLE2: Mapping[str, tuple[float, ...]] = {
    "argmax": (0.875, 0.877, 0.886, 0.882, 0.830, 0.825, 0.764, 0.711, 0.376, 0.370, 0.350, 0.337),
    "cl_pbc": (0.885, 0.885, 0.890, 0.892, 0.848, 0.849, 0.844, 0.855, 0.386, 0.334, 0.364, 0.330),
    "cl_both": (0.891, 0.894, 0.897, 0.897, 0.868, 0.863, 0.861, 0.857, 0.384, 0.336, 0.350, 0.344),
    "cl_pbnr": (0.892, 0.889, 0.895, 0.893, 0.863, 0.864, 0.861, 0.864, 0.363, 0.369, 0.362, 0.349),
    "conf_joint_only": (0.896, 0.896, 0.897, 0.901, 0.859, 0.861, 0.861, 0.865, 0.380, 0.407, 0.349, 0.344),
    "none": (0.812, 0.813, 0.814, 0.806, 0.629, 0.616, 0.609, 0.581, 0.305, 0.302, 0.277, 0.260),
}
PAPER_SOURCE = (
    "Table 2 of arXiv:1911.00068 v2/v3 (Feb 2020, one trial, 250 Co-Teaching epochs on all 50 000 "
    "training images, the whole test set)"
)
CSV_FIELDS = (
    "condition",
    "noise",
    "sparsity",
    "seed",
    "labels",
    "labels_url",
    "realised_noise_rate",
    "pred_probs_source",
    "oos_accuracy",
    "method",
    "paper_name",
    "kept",
    "removed",
    "epochs",
    "n_train",
    "n_test",
    "final_test_acc",
    "final_test_exact_acc",
    "best_test_acc",
    "best_epoch",
    "paper_test_acc",
)


#: Why a condition has no Co-Teaching run (its record's ``no_model``), and what the report says of it.
NO_TEST_SPLIT, NOT_RUN = "no-test-split", "not-run"
NO_MODEL_REASONS: Mapping[str, str] = {
    NO_TEST_SPLIT: "the dataset has no test split, which Co-Teaching is scored on",
    NOT_RUN: "Co-Teaching was not run (coteach: off)",
}


def method_name(method: str) -> str:
    """The paper's row name of ``method``; an id it does not know (a custom mask) as it is."""
    return METHOD_NAMES.get(method, method)


def _require(summary: Mapping, keys: Iterable[str], source: str) -> None:
    for key in keys:
        if key not in summary:
            raise InputError(source, key, "missing")


def condition_result(
    labels: Mapping,
    pred_probs: Mapping,
    masks: Mapping,
    runs: Sequence[Mapping],
    *,
    sources: Mapping[str, str],
    detection: Mapping | None = None,
    review: Mapping | None = None,
    no_model: str | None = None,
) -> dict:
    """One condition's record (the ``condition.json`` of ``clpipe report condition``).

    Args:
        labels: The noisy-labels ``summary.json``.
        pred_probs: The fold combiner's (or given pred_probs') ``summary.json``.
        masks: The make-masks ``summary.json``.
        runs: The Co-Teaching ``metrics.json`` of each method (any order).
        sources: Where each came from (keys ``labels``, ``pred_probs``, ``masks`` and
            ``runs/<i>``), for error messages and provenance.
        detection: The masks scored against the real errors (:func:`.detection.detection`),
            or None when the dataset's labels were not given.
        review: What the review files next to the record hold (``issue_method``,
            ``n_label_issues``, ``n_examples``, ``files``), or None when there are none.
        no_model: Without ``runs``: why (a key of :data:`NO_MODEL_REASONS`); None with runs.

    Raises:
        InputError: a summary lacks a field, a run did not finish, two runs train the same
            method, a run trains a method the masks do not have, or the pieces disagree on the
            number of examples.
    """
    _require(
        labels,
        ("condition", "realised_noise_rate", "noise_matrix", "realised_noise_matrix"),
        sources["labels"],
    )
    _require(pred_probs, ("n_examples", "accuracy", "confusion_matrix"), sources["pred_probs"])
    _require(masks, ("n_examples", "methods"), sources["masks"])
    if (no_model is None) != bool(runs) or (no_model is not None and no_model not in NO_MODEL_REASONS):
        raise ValueError(f"no_model must be one of {list(NO_MODEL_REASONS)} exactly when there is no run, "
                         f"got {no_model!r} with {len(runs)} runs")
    if detection is not None and detection["n_examples"] != masks["n_examples"]:
        raise InputError(sources["masks"], "n_examples",
                         f"{masks['n_examples']} rows, but the detection record has {detection['n_examples']}")
    if masks["n_examples"] != pred_probs["n_examples"]:
        raise InputError(
            sources["masks"],
            "n_examples",
            f"{masks['n_examples']} rows, but the pred_probs in "
            f"{sources['pred_probs']} have {pred_probs['n_examples']}",
        )
    by_method: dict[str, dict] = {}
    for i, run in enumerate(runs):
        source = sources.get(f"runs/{i}", f"run {i}")
        _require(run, ("method", "final", "best", "curves"), source)
        method = run["method"]
        if run.get("complete") is False:  # an early stop (--stop-after, a preempted task): no final accuracy
            total = run.get("epochs", 0) - run.get("first_epoch", 0)
            raise InputError(source, "complete", f"the {method} run stopped after {run.get('epochs_done')} of "
                             f"{total} epochs: rerun the same coteach command to finish it")
        if method in by_method:
            raise InputError(source, "method", f"{method!r} trained twice")
        if method != NO_PRUNING and method not in masks["methods"]:
            raise InputError(
                source,
                "method",
                f"{method!r} has no mask in {sources['masks']} (it has {sorted(masks['methods'])})",
            )
        by_method[method] = dict(run)
    ordered = {m: by_method[m] for m in sorted(by_method, key=_method_order)}
    return {
        "condition": dict(labels["condition"]),
        "labels": dict(labels),
        "pred_probs": {**pred_probs, "source": pred_probs.get("source", "cross-validation")},
        "masks": dict(masks),
        "runs": ordered,
        "detection": None if detection is None else dict(detection),
        "review": None if review is None else dict(review),
        "no_model": no_model,
        "sources": dict(sources),
    }


def _method_order(method: str) -> tuple[int, str]:
    order = list(METHOD_NAMES)
    return (order.index(method) if method in order else len(order), method)


def paper_accuracy(method: str, noise: float | None, sparsity: float) -> float | None:
    """The paper's Table 2 value for this method and condition, or None if it has none."""
    if noise is None or method not in PAPER_TABLE2:
        return None
    for i, n in enumerate(PAPER_NOISE_COLUMNS):
        for j, s in enumerate(PAPER_SPARSITIES):
            if math.isclose(noise, n) and math.isclose(sparsity, s):
                return PAPER_TABLE2[method][i * len(PAPER_SPARSITIES) + j]
    return None


def noise_label(noise: float | None, realised: float) -> str:
    """Column title of a noise amount: the paper's name (0.6 -> "70 %") or the realised rate."""
    for n, name in PAPER_NOISE_COLUMNS.items():
        if noise is not None and math.isclose(noise, n):
            return name
    return f"{realised:.0%} (realised)" if noise is None else f"N={noise:g}"


def removed_count(result: Mapping, method: str) -> int:
    """Examples the method pruned (0 for ``none``)."""
    return 0 if method == NO_PRUNING else int(result["masks"]["methods"][method]["removed"])


def _condition_key(result: Mapping) -> tuple:
    c = result["condition"]
    noise = c["noise"] if c["noise"] is not None else result["labels"]["realised_noise_rate"]
    return (noise, c["sparsity"], c["name"])


def sort_results(results: Iterable[Mapping]) -> list[Mapping]:
    """Conditions in the paper's column order (noise, then sparsity), names unique."""
    ordered = sorted(results, key=_condition_key)
    names = [r["condition"]["name"] for r in ordered]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError("conditions", "name", f"given more than once: {duplicates}")
    return ordered


def result_rows(results: Iterable[Mapping]) -> list[dict]:
    """One flat row per (condition, method): the CSV and the Markdown tables read these."""
    rows = []
    for result in sort_results(results):
        c, labels = result["condition"], result["labels"]
        for method, run in result["runs"].items():
            final, best = run["final"], run["best"]
            rows.append(
                {
                    "condition": c["name"],
                    "noise": c["noise"],
                    "sparsity": c["sparsity"],
                    "seed": c["seed"],
                    "labels": "given" if c["labels"] else "generated",
                    "labels_url": c["labels"],
                    "realised_noise_rate": labels["realised_noise_rate"],
                    "pred_probs_source": result["pred_probs"]["source"],
                    "oos_accuracy": result["pred_probs"]["accuracy"],
                    "method": method,
                    "paper_name": method_name(method),
                    "kept": result["masks"]["n_examples"] - removed_count(result, method),
                    "removed": removed_count(result, method),
                    "epochs": run.get("epochs_done", len(run["curves"].get("test_acc_1", []))),
                    "n_train": run.get("n_train"),
                    "n_test": run.get("n_test"),
                    "final_test_acc": final["test_acc"],
                    "final_test_exact_acc": final.get("test_exact_acc"),
                    "best_test_acc": best["test_acc"],
                    "best_epoch": best.get("epoch"),
                    "paper_test_acc": paper_accuracy(method, c["noise"], c["sparsity"]),
                }
            )
    return rows


def results_csv(rows: Sequence[Mapping]) -> str:
    return csv_text(rows, CSV_FIELDS)


def _column_title(result: Mapping) -> str:
    c = result["condition"]
    noise = noise_label(c["noise"], result["labels"]["realised_noise_rate"])
    return f"{c['name']}<br>{noise}, S {c['sparsity']:g}"


def table2_markdown(results: Iterable[Mapping]) -> str:
    """Methods x conditions, like Table 2: ``ours (paper)`` per cell, final-epoch accuracy."""
    ordered = sort_results(results)
    methods = sorted({m for r in ordered for m in r["runs"]}, key=_method_order)
    lines = [
        "| method | " + " | ".join(_column_title(r) for r in ordered) + " |",
        "|---|" + "---|" * len(ordered),
    ]
    for method in methods:
        cells = []
        for r in ordered:
            run = r["runs"].get(method)
            paper = paper_accuracy(method, r["condition"]["noise"], r["condition"]["sparsity"])
            ours = three_places(run["final"]["test_acc"]) if run else "not run"
            cells.append(ours if paper is None else f"{ours} ({paper:.3f})")
        lines.append(f"| {method_name(method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def conditions_markdown(results: Iterable[Mapping]) -> str:
    """One row per condition: its noise, its pred_probs and what each method removed."""
    ordered = sort_results(results)
    methods = [m for m in CL_METHODS if any(m in r["masks"]["methods"] for r in ordered)]
    lines = [
        "| condition | labels | realised noise | pred_probs | out-of-sample acc. | examples | "
        + " | ".join(f"removed {METHOD_NAMES[m]}" for m in methods)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(methods),
    ]
    for r in ordered:
        c = r["condition"]
        labels = "given" if c["labels"] else f"generated (seed {c['seed']}, trace {r['labels'].get('trace')})"
        removed = [
            str(r["masks"]["methods"][m]["removed"]) if m in r["masks"]["methods"] else "-" for m in methods
        ]
        lines.append(
            f"| {c['name']} | {labels} | {r['labels']['realised_noise_rate']:.3f} | "
            f"{r['pred_probs']['source']} | {r['pred_probs']['accuracy']:.3f} | "
            f"{r['masks']['n_examples']} | " + " | ".join(removed) + " |"
        )
    return "\n".join(lines)


#: The seed's cost of one trial of the table (confident-learning.md section 7): about 130
#: GPU-hours of ResNet-50 cross-validation for 13 conditions plus about 100 for 60 Co-Teaching runs.
SEED_GPU_HOURS = 230.0


def difference_markdown(results: Iterable[Mapping]) -> str:
    """Ours minus the paper's value per cell (final-epoch accuracy), where the paper has one."""
    ordered = [r for r in sort_results(results)
               if any(paper_accuracy(m, r["condition"]["noise"], r["condition"]["sparsity"]) is not None
                      for m in r["runs"])]
    if not ordered:
        return "No condition of this run is one of the paper's columns."
    methods = sorted({m for r in ordered for m in r["runs"]}, key=_method_order)
    lines = ["| method | " + " | ".join(_column_title(r) for r in ordered) + " |",
             "|---|" + "---|" * len(ordered)]
    for method in methods:
        cells = []
        for r in ordered:
            run = r["runs"].get(method)
            paper = paper_accuracy(method, r["condition"]["noise"], r["condition"]["sparsity"])
            cells.append("-" if run is None or paper is None else f"{run['final']['test_acc'] - paper:+.3f}")
        lines.append(f"| {method_name(method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def exact_markdown(results: Iterable[Mapping]) -> str:
    """Final-epoch accuracy on the test rows that carry the official pixels (see the data README)."""
    ordered = sort_results(results)
    methods = sorted({m for r in ordered for m in r["runs"]}, key=_method_order)
    lines = ["| method | " + " | ".join(_column_title(r) for r in ordered) + " |",
             "|---|" + "---|" * len(ordered)]
    for method in methods:
        cells = [three_places(r["runs"][method]["final"].get("test_exact_acc")) if method in r["runs"] else "not run"
                 for r in ordered]
        lines.append(f"| {method_name(method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _test_set_sentence(results: Sequence[Mapping]) -> str:
    runs = [run for r in results for run in r["runs"].values()]
    n_test = sorted({run.get("n_test") for run in runs} - {None})
    n_exact = sorted({run.get("n_test_exact") for run in runs} - {None})
    if not n_test:
        return ""
    sizes = ", ".join(str(n) for n in n_test)
    if not n_exact:  # a dataset without the seed's exact-pixel marks (not the shared CIFAR-10)
        return f"Test set: {sizes} images scored per network and epoch."
    exact = ", ".join(str(n) for n in n_exact)
    return (f"Test set: {sizes} images scored per network and epoch, of which {exact} carry the official "
            "pixels; the rest of the shared CIFAR-10 test set is a JPEG re-encoding (about 28 dB PSNR), so the "
            "main table is on a JPEG-approximated test set and the exact-subset table below is the check.")


def protocol_markdown(results: Iterable[Mapping]) -> str:
    """Per condition: how pred_probs, masks and Co-Teaching were made (seeds and epochs included)."""
    lines = ["| condition | pred_probs | masks | Co-Teaching | seeds | train / test examples |",
             "|---|---|---|---|---|---|"]
    for r in sort_results(results):
        pp = r["pred_probs"]
        t = pp.get("training") or {}
        if pp["source"] == "given":
            cv = "given (pre-computed)"
        else:
            cv = (f"{pp.get('n_folds')}-fold {t.get('arch')}, {t.get('epochs')} epochs, batch "
                  f"{t.get('batch_size')}, stratified by {t.get('stratify_by')} labels")
        runs = list(r["runs"].values())
        first = runs[0] if runs else {}
        params = first.get("recipe_params", {})
        coteach = (f"{first.get('recipe')}: {first.get('epochs_done')} epochs trained of a {first.get('epochs')}-epoch "
                   f"schedule, batch {params.get('batch_size')}, lr {params.get('lr')}, forget rate "
                   f"{params.get('forget_rate')}, class weights {first.get('class_weight_rule')}") if runs else "-"
        labels_seed = "given" if r["condition"]["labels"] else r["condition"]["seed"]
        fold_seed = "-" if t.get("seed") is None else t["seed"]
        seeds = f"labels {labels_seed}, folds {fold_seed}, Co-Teaching {first.get('seed', '-')}"
        examples = f"{first.get('n_view', r['masks']['n_examples'])} / {first.get('n_test', '-')}"
        lines.append(f"| {r['condition']['name']} | {cv} | {r['masks'].get('semantics', '-')} | {coteach} | "
                     f"{seeds} | {examples} |")
    return "\n".join(lines)


def stage_seconds(result: Mapping) -> dict[str, tuple[float, str]]:
    """Task-seconds and device of one condition's GPU stages: ``{stage: (seconds, devices)}``."""
    folds = result["pred_probs"].get("folds") or []
    cv = sum(f.get("total_time_s") or 0.0 for f in folds)
    cv_devices = sorted({f["device"] for f in folds if f.get("device")})
    runs = list(result["runs"].values())
    ct = sum(run.get("time_s") or 0.0 for run in runs)
    ct_devices = sorted({run["device"] for run in runs if run.get("device")})
    return {"cross-validation": (cv, ", ".join(cv_devices) or "-"),
            "Co-Teaching": (ct, ", ".join(ct_devices) or "-")}


def cost_markdown(results: Iterable[Mapping]) -> str:
    """Task time of the GPU stages per condition, the total, and its ratio to the seed's cost."""
    lines = ["| condition | cross-validation (s) | Co-Teaching (s) | devices |", "|---|---|---|---|"]
    total = 0.0
    for r in sort_results(results):
        times = stage_seconds(r)
        (cv, cv_dev), (ct, ct_dev) = times["cross-validation"], times["Co-Teaching"]
        total += cv + ct
        devices = "; ".join(sorted({d for d in (cv_dev, ct_dev) if d != "-"})) or "-"
        ct_cell = f"{ct:.0f}" if r["runs"] else "-"  # not run: no time to show
        lines.append(f"| {r['condition']['name']} | {cv:.0f} | {ct_cell} | {devices} |")
    hours = total / 3600
    lines += ["", (f"Total task time of the training stages: {total:.0f} s = {hours:.2f} device-hours "
                   f"({hours / SEED_GPU_HOURS:.2%} of the seed's about {SEED_GPU_HOURS:.0f} GPU-hours for one trial "
                   "of the table; task time, not wall time: tasks that ran side by side count separately). "
                   "Fold times include loading the data; the mask and report stages take seconds.")]
    return "\n".join(lines)


def trained(results: Iterable[Mapping]) -> list[Mapping]:
    """The condition records with at least one Co-Teaching run (the accuracy tables' columns)."""
    return [r for r in sort_results(results) if r["runs"]]


def _percent_range(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.0%}" if round(low, 2) == round(high, 2) else f"{low:.0%} to {high:.0%}"


def _condition_phrase(result: Mapping) -> str:
    c = result["condition"]
    labels = "published labels" if c["labels"] else "generated labels"
    noise = noise_label(c["noise"], result["labels"]["realised_noise_rate"])
    return f"{c['name']} ({labels}, {noise} noise, sparsity {c['sparsity']:g})"


def _detection_sentence(result: Mapping) -> str:
    d = result["detection"]
    found = [d["methods"][m] for m in CL_METHODS if m in d["methods"]]
    removed = [m["removed"] for m in found]
    precision = [m["precision"] for m in found if m["precision"] is not None]
    recall = [m["recall"] for m in found if m["recall"] is not None]
    if not d["real_errors"]:  # your own images, as given: their errors are what the run looks for
        return (f"{_condition_phrase(result)}: the given labels are the dataset's own, so no label error is known "
                f"in advance. The {len(found)} confident-learning methods flagged {min(removed):,} to "
                f"{max(removed):,} of the {d['n_examples']:,} images as likely label errors.")
    sentence = (f"{_condition_phrase(result)}: {d['real_errors']:,} of the {d['n_examples']:,} given labels are "
                f"wrong. The {len(found)} confident-learning methods removed {min(removed):,} to {max(removed):,} "
                "labels")
    if precision and recall:
        sentence += (f"; {_percent_range(precision)} of the removed labels were real errors (precision) and "
                     f"they found {_percent_range(recall)} of all real errors (recall)")
    for method in (m for m in result["runs"] if m in d["methods"]):
        m = d["methods"][method]
        precision = "-" if m["precision"] is None else f"{m['precision']:.3f}"  # None: it removed nothing
        sentence += (f". {method_name(method)}, trained on below, removed {m['removed']:,}: {m['errors_removed']:,} "
                     f"real errors (precision {precision}, recall {m['recall']:.3f})")
    return sentence + "."


def _training_sentence(result: Mapping) -> str | None:
    runs = result["runs"]
    if NO_PRUNING not in runs or not any(m in runs for m in CL_METHODS):
        return None
    base = runs[NO_PRUNING]
    c = result["condition"]
    k = len(result["labels"].get("classes") or []) or None
    parts = []
    for method in (m for m in CL_METHODS if m in runs):
        run = runs[method]
        gap = run["final"]["test_acc"] - base["final"]["test_acc"]
        parts.append(f"Co-Teaching on the {run.get('n_train', '?'):,} rows {method_name(method)} kept "
                     f"reached {run['final']['test_acc']:.3f} test accuracy, against {base['final']['test_acc']:.3f} "
                     f"on all {base.get('n_train', '?'):,} noisy labels: {100 * gap:+.1f} points")
    text = (f"{c['name']}, {base.get('n_view', base.get('n_train')):,} training images, "
            f"{base.get('epochs_done')} epochs, {base.get('n_test')} test images: " + "; ".join(parts))
    if k:
        text += f" (chance: {1 / k:.3f})"
    paper = [(m, paper_accuracy(m, c["noise"], c["sparsity"])) for m in runs]
    paper = [(m, a) for m, a in paper if a is not None]
    if paper:
        text += ("; the paper, training 250 epochs on all 50,000 images: "
                 + ", ".join(f"{method_name(m)} {a:.3f}" for m, a in paper))
    return text + "."


def _no_model_sentence(result: Mapping, review_prefix: str) -> str:
    """Why no model was trained for this condition, and where the labels to train one are."""
    name = result["condition"]["name"]
    text = f"{name}: {NO_MODEL_REASONS[result['no_model']]}, so this run found the label errors only."
    review = result.get("review")
    if review:
        cleaned = f"{review_prefix}{name}/cleaned_labels.json"
        link = f"[{cleaned}]({cleaned})" if review_prefix else "cleaned_labels.json"
        kept = review["n_examples"] - review["n_label_issues"]
        text += (f" {link} holds the given labels of the {kept:,} images {method_name(review['issue_method'])} did "
                 "not flag, ready for your own training.")
    if result["no_model"] == NO_TEST_SPLIT:
        text += (" To train and score Co-Teaching too, add a test split (ROOT/test/<class>/..., or a *test.csv / "
                 "*test.jsonl manifest beside the train one).")
    return text


def summary_markdown(results: Sequence[Mapping], review_prefix: str = "") -> str:
    """What the run found, in words: the report's first lines and what ``clpipe run`` prints first
    (``review_prefix``: where the review files are, linked when given)."""
    ordered = sort_results(results)
    parts = []
    found = [r for r in ordered if r.get("detection")]
    if found:
        parts.append("**Finding label errors** (removed labels scored against the dataset's true labels):")
        parts += [f"- {_detection_sentence(r)}" for r in found]
    sentences = [t for t in (_training_sentence(r) for r in ordered) if t]
    if sentences:
        parts += ["", ("**Training on the cleaned labels** (test accuracy of the better Co-Teaching network at "
                       "the final epoch):")]
        parts += [f"- {t}" for t in sentences]
    untrained = [r for r in ordered if not r["runs"] and r.get("no_model")]
    if untrained:
        parts += ["", "**No model was trained** (no test accuracy to report):"]
        parts += [f"- {_no_model_sentence(r, review_prefix)}" for r in untrained]
    return "\n".join(parts)


def headline_markdown(results: Sequence[Mapping], review_prefix: str = "") -> str:
    """The summary and the two tables it rests on: label errors found, and test accuracy."""
    ordered = sort_results(results)
    parts = [summary_markdown(ordered, review_prefix), ""]
    if detection.with_detection(ordered):
        parts += ["## Label errors found", "", detection.detection_markdown(ordered), ""]
    runs = trained(ordered)
    if runs:
        parts += [
            "## Test accuracy (Table 2 layout)",
            "",
            (
                "Cells: our test accuracy of the better Co-Teaching network at the final epoch (the paper's "
                "rule); in parentheses the paper's value where the condition is one of its columns "
                f"({PAPER_SOURCE}). "
                "Small runs (subsets, few epochs) are comparable in layout, not in value."
            ),
            "",
            table2_markdown(runs),
            "",
        ]
    return "\n".join(parts)


def _per_class_sections(results: Sequence[Mapping]) -> list[str]:
    """Per class, for each trained CL method: real errors and how many the method removed."""
    parts = []
    for r in detection.with_detection(results):
        for method in (m for m in CL_METHODS if m in r["runs"] and m in r["detection"]["methods"]):
            parts += [f"### Per class: {r['condition']['name']}, {method_name(method)}", "",
                      detection.per_class_markdown(r, method), ""]
    return parts


def review_markdown(results: Sequence[Mapping], review_prefix: str) -> str:
    """Links to each condition's review gallery and ranked label issues (``<review_prefix><condition>/``)."""
    lines = []
    for r in sort_results(results):
        review = r.get("review")
        if not review:
            continue
        name = r["condition"]["name"]
        files = {f: f"{review_prefix}{name}/{f}" for f in review["files"]}
        links = ", ".join(f"[{f}]({url})" for f, url in files.items())
        lines.append(f"- {name}: {review['n_label_issues']:,} of {review['n_examples']:,} images flagged as label "
                     f"issues by {method_name(review['issue_method'])}, every image ranked by label quality: "
                     f"{links}")
    if not lines:
        return ""
    return "\n".join(["## Label issues to review", "",
                      ("The gallery shows the most likely label errors with their given and suggested labels; "
                       "label_issues.csv ranks every image, worst first, with the methods that flag it; "
                       "issues_per_class.csv counts them per class; noise_matrix.csv is confident learning's "
                       "estimate of P(given label = row | true label = column); cleaned_labels.json is the given "
                       "labels without the flagged images (file -> label), ready for training."), "", *lines, ""])


def noise_matrix_csv(noise_matrix: Sequence[Sequence[float]], classes: Sequence[str]) -> str:
    """The estimated noise matrix ``P(given = row | true = column)`` as CSV with class names, 4 decimals."""
    corner = "given \\ true"
    rows = [{corner: given, **{true: f"{p:.4f}" for true, p in zip(classes, row)}}
            for given, row in zip(classes, noise_matrix)]
    return csv_text(rows, [corner, *classes])


def report_markdown(results: Sequence[Mapping], figures: Sequence[tuple[str, str]],
                    review_prefix: str = "", dataset: str = "CIFAR-10") -> str:
    """The whole report on ``dataset`` (its name in the title): what was found in words, the two main
    tables, the review files (in ``<review_prefix><condition>/``, when given), then details and figures."""
    ordered = sort_results(results)
    runs = trained(ordered)
    review = review_markdown(ordered, review_prefix) if review_prefix else ""
    methods = "confident learning + Co-Teaching" if runs else "confident learning (label errors only)"
    parts = [
        f"# clpipe results: {methods} on {dataset}",
        "",
        headline_markdown(ordered, review_prefix),
        *([review] if review else []),
        *_per_class_sections(ordered),
    ]
    if runs:
        parts += [
            _test_set_sentence(runs),
            "",
            "### Difference to the paper (ours - paper)",
            "",
            difference_markdown(runs),
            "",
            "### On the exact test images",
            "",
            exact_markdown(runs),
            "",
            ("The best epoch's accuracy (selected on the test set, the JAIR rule, optimistic) is in results.csv, "
             "never in these tables."),
            "",
        ]
    parts += [
        "## Conditions",
        "",
        conditions_markdown(ordered),
        "",
        "## Protocol",
        "",
        protocol_markdown(ordered),
        "",
        "## Cost",
        "",
        cost_markdown(ordered),
        "",
    ]
    if figures:
        parts += ["## Figures", ""] + [f"![{title}]({path})" for path, title in figures] + [""]
    return "\n".join(parts)


def condition_metrics(result: Mapping) -> dict[str, float]:
    """Scalar metrics of one condition for the KFP UI (``Metrics`` artifact)."""
    metrics = {
        "realised_noise_rate": result["labels"]["realised_noise_rate"],
        "oos_accuracy": result["pred_probs"]["accuracy"],
    }
    for method, run in result["runs"].items():
        metrics[f"{method}.final_test_acc"] = run["final"]["test_acc"]
        metrics[f"{method}.best_test_acc"] = run["best"]["test_acc"]
        metrics[f"{method}.removed"] = removed_count(result, method)
    return {k: float(v) for k, v in metrics.items() if v is not None}


def report_metrics(results: Iterable[Mapping]) -> dict[str, float]:
    """``<condition>.<method>.final_test_acc`` for every cell of the table (KFP UI)."""
    return {
        f"{row['condition']}.{row['method']}.final_test_acc": float(row["final_test_acc"])
        for row in result_rows(results)
        if row["final_test_acc"] is not None
    }


#: Style of the HTML report: readable tables, images no wider than the page.
HTML_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:75em;line-height:1.4}"
    "table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1em}"
    "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%}"
)


def report_html(markdown: str, images: Mapping[str, str]) -> str:
    """A self-contained HTML page of :func:`report_markdown`'s output (KFP UI, browsers).

    Rendered by markdown-it-py (CommonMark plus tables; the report's own ``<br>`` in column titles
    passes through), with each image's file replaced by ``images[file]`` (a data URI).
    """
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    tokens = md.parse(markdown)
    for token in tokens:
        for child in token.children or ():
            if child.type == "image":
                src = str(child.attrGet("src"))
                child.attrSet("src", images.get(src, src))
    body = md.renderer.render(tokens, md.options, {})
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>clpipe report</title>"
        f"<style>{HTML_STYLE}</style></head><body>\n{body}</body></html>\n"
    )
