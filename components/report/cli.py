"""``clpipe report``: one condition's results, and the benchmark report over all conditions.

- ``condition``: join one condition's stage outputs (noisy-labels, fold combiner or given
  pred_probs, make-masks, one coteach run per method) into ``--out DIR/condition.json``;
  with ``--dataset``, the masks are also scored against the dataset's labels, and when
  make-masks wrote the review files (it was given the dataset) ``DIR`` also holds
  ``label_issues.csv``, ``issues_per_class.csv``, ``noise_matrix.csv`` (the estimated
  ``P(given | true)`` with class names), ``cleaned_labels.json`` (the labels without the rows
  the issue method flags) and the review gallery ``gallery.html`` (:mod:`.gallery`; thumbnails
  from the dataset). Without any ``RUN_DIR`` the record says why no model was trained (the
  dataset has no test split, or Co-Teaching was not run).
- ``render``: lay out the ``condition.json`` of every condition like the paper's Table 2
  and write ``--out DIR``: ``report.md``, ``report.html`` (self-contained), ``results.csv``
  (one row per condition and Co-Teaching run), ``detection.csv`` (one row per condition and
  mask: label errors found, precision, recall), ``results.json`` (the condition records),
  the figures ``plots/*.png`` and, per condition with a review, ``review-<condition>/`` (its
  gallery and tables, linked from the report).

Examples:
  clpipe report condition --labels runs/labels --pred-probs runs/cv --masks runs/masks \\
      --out runs/result runs/coteach-none runs/coteach-cl_pbnr
  clpipe report render --print --out runs/report runs/result
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from collections.abc import Sequence

from ..common import cli, storage
from ..common.artifacts import LabelIssues, Review, labels_url
from ..common.datasets import ALL_ROWS, CIFAR10_CLASSES, Split, has_test_split, open_split, subset_rows
from ..common.errors import InputError
from ..common.labels import load_labels
from . import detection, gallery, logic

CONDITION_FILE = "condition.json"
PLOTS_DIR = "plots"
#: Where the report keeps each condition's review files: <REVIEW_PREFIX><condition>/<file> (one level:
#: a stage output is at most two levels deep, ``storage.MAX_OUTPUT_DEPTH``).
REVIEW_PREFIX = "review-"
#: The review files a condition record's folder holds (make-masks' tables, the noise matrix as CSV, then
#: the gallery).
REVIEW_TABLES = (LabelIssues.FILE, Review.PER_CLASS)
NOISE_MATRIX_CSV = "noise_matrix.csv"
REVIEW_FILES = (*REVIEW_TABLES, NOISE_MATRIX_CSV, Review.CLEANED, gallery.GALLERY_FILE)


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="clpipe report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    cond = sub.add_parser("condition", help="join one condition's stage outputs into condition.json")
    cond.add_argument("runs", nargs="*", metavar="RUN_DIR", help="coteach output directories, one per method")
    cond.add_argument("--labels", required=True, help="noisy-labels make output directory")
    cond.add_argument(
        "--pred-probs", required=True, help="combine-folds (or given-pred-probs) output directory"
    )
    cond.add_argument("--masks", required=True, help="make-masks output directory")
    cond.add_argument("--dataset", help="the dataset: its labels score the masks against the real errors "
                                        "(omit to skip that)")
    cli.add_subset_arguments(cond)
    cond.add_argument("--out", required=True, help="output directory (path or URL)")
    render = sub.add_parser("render", help="the Table-2 report over all conditions")
    render.add_argument(
        "conditions", nargs="+", metavar="CONDITION_DIR", help="'report condition' output directories"
    )
    render.add_argument("--out", required=True, help="output directory (path or URL)")
    render.add_argument("--print", action="store_true", help="also print report.md on stdout")
    for q in (cond, render):
        q.add_argument("-v", "--verbose", action="store_true")
    return p


CONDITION_STAGE = "report condition"
RENDER_STAGE = "report render"


def _summary(directory: str, name: str) -> dict:
    data = storage.open_output(directory).load_json(name)
    if not isinstance(data, dict):
        raise InputError(storage.join(directory, name), "", "expected a JSON object")
    return data


def read_condition(directory: str) -> dict:
    """A ``condition.json`` written by ``report condition``."""
    return _summary(directory, CONDITION_FILE)


def masks_per_class(split: Split, masks_dir: str, masks: dict, per_class: int, seed: int) -> int:
    """The subset setting of the rows the masks describe: :data:`ALL_ROWS` when they cover the whole
    train split (label errors found at full scale), else ``per_class`` (the class-stratified subset
    the cross-validation trained on), checked against the masks' row count."""
    n = masks["n_examples"]
    if n == len(split):
        return ALL_ROWS
    rows = subset_rows(split.labels, per_class, seed)
    if len(rows) != n:
        raise InputError(masks_dir, "n_examples", f"{n} rows: neither the whole split of {split.source} "
                         f"({len(split)}) nor its subset of {per_class} per class ({len(rows)})")
    return per_class


def read_detection(split: Split, labels_dir: str, masks_dir: str, masks: dict, per_class: int,
                   seed: int) -> dict:
    """The masks of ``masks_dir`` scored against the real errors (given label != dataset label).

    The masks describe the rows of ``split`` that :func:`masks_per_class` names; the given labels
    are the whole split's (noisy-labels' ``labels.npy``).
    """
    given = load_labels(labels_url(labels_dir), split)
    rows = subset_rows(split.labels, masks_per_class(split, masks_dir, masks, per_class, seed), seed)
    keep = {m: storage.load_npy(storage.join(masks_dir, f"train_pruned_{m}", "train_mask.npy"), field="train_mask")
            for m in masks["methods"]}
    return detection.detection(given[rows], split.labels[rows], keep, split.classes, source=masks_dir)


def check_lineage(given: dict[str, str], outputs: Sequence[str]) -> None:
    """The pieces of a condition must belong together: where an output's manifest records an input
    of one of the ``given`` stages (stage -> the output given for it), it must be that very output
    (same manifest sha256), e.g. the masks made from these pred_probs, not another condition's."""
    digests = {stage: storage.open_output(url).digest for stage, url in given.items()}
    for url in outputs:
        for record in storage.open_output(url).manifest.inputs:
            stage = record.get("stage")
            if stage in digests and record.get("manifest_sha256") != digests[stage]:
                made_from = record.get("output", record.get("url"))
                raise InputError(given[stage], "manifest", f"not the {stage} output {url} was made from "
                                 f"({made_from}): the pieces of a condition must belong together")


def review_record(masks: dict) -> dict | None:
    """What the condition record says of the review files (None when make-masks wrote none)."""
    if "issue_method" not in masks:
        return None
    return {"issue_method": masks["issue_method"], "n_label_issues": masks["n_label_issues"],
            "n_examples": masks["n_examples"], "files": list(REVIEW_FILES)}


def write_review(masks_dir: str, masks: dict, dataset: str, per_class: int, seed: int, folder: str) -> None:
    """Copies make-masks' review tables and the cleaned labels of its issue method into ``folder`` and
    writes the gallery there."""
    copies = {name: name for name in REVIEW_TABLES}
    copies[f"train_pruned_{masks['issue_method']}/{Review.CLEANED}"] = Review.CLEANED
    for source, name in copies.items():
        storage.write_bytes(os.path.join(folder, name), storage.read_bytes(storage.join(masks_dir, source)))
    noise = storage.load_npy(storage.join(masks_dir, Review.NOISE_MATRIX), field="noise_matrix")
    storage.write_bytes(os.path.join(folder, NOISE_MATRIX_CSV), logic.noise_matrix_csv(noise, masks["classes"]).encode())
    gallery.write_gallery(masks_dir, dataset, folder, subset_per_class=per_class, subset_seed=seed)


def _condition(args: argparse.Namespace) -> None:
    inputs = [args.labels, args.pred_probs, args.masks, *args.runs]
    storage.check_output(args.out, stage=CONDITION_STAGE, inputs=inputs)
    sources = {
        "labels": args.labels,
        "pred_probs": args.pred_probs,
        "masks": args.masks,
        **{f"runs/{i}": run for i, run in enumerate(args.runs)},
    }
    check_lineage({"noisy-labels": args.labels, "combine-folds": args.pred_probs, "make-masks": args.masks},
                  [args.pred_probs, args.masks, *args.runs])
    masks = _summary(args.masks, "summary.json")
    found = review = None
    no_model = None  # why the condition has no Co-Teaching run, when it has none
    if not args.runs:
        no_model = logic.NO_TEST_SPLIT if args.dataset and not has_test_split(args.dataset) else logic.NOT_RUN
    if args.dataset:
        split = open_split(args.dataset, "train")
        per_class = masks_per_class(split, args.masks, masks, args.subset_per_class, args.subset_seed)
        found = read_detection(split, args.labels, args.masks, masks, args.subset_per_class, args.subset_seed)
        review = review_record(masks)
    result = logic.condition_result(
        _summary(args.labels, "summary.json"),
        _summary(args.pred_probs, "summary.json"),
        masks,
        [_summary(run, "metrics.json") for run in args.runs],
        sources=sources,
        detection=found,
        review=review,
        no_model=no_model,
    )
    with storage.staged_output(args.out, stage=CONDITION_STAGE, inputs=inputs) as tmp:
        storage.save_json(os.path.join(tmp, CONDITION_FILE), result)
        if review is not None:
            write_review(args.masks, masks, args.dataset, per_class, args.subset_seed, tmp)
    cli.log.info(
        "condition %s: %d runs (%s)",
        result["condition"]["name"],
        len(result["runs"]),
        ", ".join(result["runs"]),
    )


def write_report(results: Sequence[dict], out: str, inputs: Sequence[str] = (),
                 folders: Sequence[str] = ()) -> str:
    """Writes the report directory; returns ``report.md``'s text.

    ``folders``: the ``report condition`` outputs the results were read from (same order); the
    review files of those with a review go to ``<REVIEW_PREFIX><condition>/``.
    """
    from . import plots

    ordered = logic.sort_results(results)
    figures = plots.render_figures(ordered)
    links = [(f"{PLOTS_DIR}/{name}", title) for name, title, _ in plots.figures_of(ordered)]
    reviews = {r["condition"]["name"]: folder for r, folder in zip(results, folders) if r.get("review")}
    markdown = logic.report_markdown(ordered, links, review_prefix=REVIEW_PREFIX, dataset=_dataset_title(ordered))
    images = {
        f"{PLOTS_DIR}/{name}": "data:image/png;base64," + base64.b64encode(png).decode()
        for name, png in figures.items()
    }
    with storage.staged_output(out, stage=RENDER_STAGE, inputs=inputs) as tmp:
        for name, png in figures.items():
            storage.write_bytes(os.path.join(tmp, PLOTS_DIR, name), png)
        storage.write_bytes(os.path.join(tmp, "report.md"), markdown.encode())
        storage.write_bytes(os.path.join(tmp, "report.html"), logic.report_html(markdown, images).encode())
        storage.write_bytes(
            os.path.join(tmp, "results.csv"), logic.results_csv(logic.result_rows(ordered)).encode()
        )
        storage.write_bytes(
            os.path.join(tmp, "detection.csv"),
            detection.detection_csv(detection.detection_rows(ordered)).encode(),
        )
        storage.save_json(os.path.join(tmp, "results.json"), list(ordered))
        for name, folder in reviews.items():
            for file in REVIEW_FILES:
                storage.write_bytes(os.path.join(tmp, REVIEW_PREFIX + name, file),
                                    storage.read_bytes(storage.join(folder, file)))
    return markdown


def _dataset_title(results: Sequence[dict]) -> str:
    """CIFAR-10, or the name of the user's dataset (its folder, or the source it was prepared from) when
    the conditions' classes are other ones."""
    labels = results[0]["labels"]
    classes = labels.get("classes")
    if not classes or tuple(classes) == CIFAR10_CLASSES or not labels.get("dataset"):
        return "CIFAR-10"
    return gallery.dataset_name(labels["dataset"])


def _render(args: argparse.Namespace) -> None:
    storage.check_output(args.out, stage=RENDER_STAGE, inputs=args.conditions)
    markdown = write_report([read_condition(d) for d in args.conditions], args.out, args.conditions,
                            folders=args.conditions)
    cli.log.info("report of %d conditions: %s", len(args.conditions), storage.join(args.out, "report.html"))
    if args.print:
        print(markdown, file=sys.stdout)


def run(args: argparse.Namespace) -> None:
    {"condition": _condition, "render": _render}[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_stage("report", build_parser(), argv, run)
