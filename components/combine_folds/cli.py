"""``clpipe combine-folds --out DIR FOLD_DIR...``: join fold outputs into pred_probs.

Reads each fold directory written by ``clpipe fold-train`` (paths or URLs, any order) and
writes ``DIR/pred_probs.npy`` (N, K), ``DIR/labels.npy`` (N,) and ``DIR/summary.json``;
nothing is written when any check fails.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence


from ..common import cli, storage
from ..common.errors import InputError
from ..common.labels import LABELS_FILE
from . import logic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clpipe combine-folds", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folds", nargs="+", metavar="FOLD_DIR", help="fold-train output directories (paths or URLs)")
    p.add_argument("--out", required=True, help="output directory (path or URL)")
    p.add_argument("--sum-atol", type=float, default=logic.DEFAULT_SUM_ATOL,
                   help=f"tolerance of row sums (default {logic.DEFAULT_SUM_ATOL})")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


STAGE = "combine-folds"


def read_fold(url: str) -> logic.FoldOutput:
    """Reads one fold directory through its manifest; a missing file is an error naming the fold and file."""
    fold = storage.open_output(url, stage="fold-train")
    metrics = fold.load_json("metrics.json")
    if not isinstance(metrics, dict):
        raise InputError(url, "metrics.json", "expected a JSON object")
    return logic.FoldOutput(
        source=url,
        indices=fold.load_npy("indices.npy", field="indices"),
        pred_probs=fold.load_npy("pred_probs.npy", field="pred_probs"),
        labels=fold.load_npy(LABELS_FILE, field="labels"),
        metrics=metrics,
    )


def write_combined(out: str, combined: logic.Combined, *, stage: str, inputs: Sequence[str]) -> None:
    """Publishes pred_probs, given labels and summary (all files or none): what make-masks reads."""
    with storage.staged_output(out, stage=stage, inputs=inputs) as tmp:
        storage.save_npy(os.path.join(tmp, "pred_probs.npy"), combined.pred_probs)
        storage.save_npy(os.path.join(tmp, LABELS_FILE), combined.labels)
        storage.save_json(os.path.join(tmp, "summary.json"), combined.summary)


def run(args: argparse.Namespace) -> None:
    storage.check_output(args.out, stage=STAGE, inputs=args.folds)
    combined = logic.combine_folds([read_fold(u) for u in args.folds], sum_atol=args.sum_atol)
    write_combined(args.out, combined, stage=STAGE, inputs=args.folds)
    cli.log.info("combined %d folds: %d x %d pred_probs, accuracy vs given labels %.4f",
                 len(args.folds), *combined.pred_probs.shape, combined.summary["accuracy"])


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_stage(STAGE, build_parser(), argv, run)
