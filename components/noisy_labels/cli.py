"""``clpipe noisy-labels``: the given labels of one noise condition, and its given pred_probs.

- ``make``: generate a condition's noisy labels from (noise, sparsity, seed) the way the
  seed did, or validate a given label file, and write ``--out DIR``:
  ``labels.npy`` (int64, whole train split, ImageFolder order), ``noise_matrix.npy``
  ((K, K), P(noisy=i | true=j)) and ``summary.json`` (condition, trace, realised noise
  rate and matrix, forget rate from the noise, fingerprints).
- ``given-pred-probs``: check pre-computed out-of-sample pred_probs of the whole train split
  (e.g. the seed's ``pyx`` files) against the dataset and the condition's labels and write
  them for the train view in the fold combiner's output form (``pred_probs.npy``,
  ``labels.npy``, ``summary.json``), so cross-validation can be skipped.

Examples:
  clpipe noisy-labels make --dataset ../shared/data/cifar10 --name s0.2_n0.4 --noise 0.4 \\
      --sparsity 0.2 --seed 0 --out runs/labels
  clpipe noisy-labels given-pred-probs --dataset ../shared/data/cifar10 --labels runs/labels \\
      --pred-probs ../shared/data/cl-reproduce/pyx__frac_zero_noise_rates__0.2__noise_amount__0.4.npy \\
      --out runs/cv
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence


from ..common import cli, storage
from ..common.datasets import open_split, subset_rows
from ..common.errors import InputError
from ..common.labels import LABELS_FILE, labels_url, load_labels
from ..combine_folds.cli import write_combined
from . import logic



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clpipe noisy-labels", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    mk = sub.add_parser("make", help="generate (or validate) one condition's given labels")
    mk.add_argument(
        "--dataset", required=True, help="ImageFolder root, .npz, or directory with *train/*test.npz"
    )
    mk.add_argument(
        "--condition",
        metavar="JSON",
        help="the whole condition as a JSON object (a pipeline item); replaces the flags below",
    )
    mk.add_argument("--name", help="condition name (letters, digits, ._-)")
    mk.add_argument("--noise", type=float, help="noise amount N in [0, 1) (0.6 = the paper's 70 %% column)")
    mk.add_argument("--sparsity", type=float, help="fraction of zero noise rates S in [0, 1] (default 0)")
    mk.add_argument(
        "--seed", type=int, help="seed of the noise matrix and flips (default 0, the seed's files)"
    )
    mk.add_argument("--labels", help="given labels (seed JSON or .npy) to validate instead of generating")
    mk.add_argument("--out", required=True, help="output directory (path or URL)")

    gp = sub.add_parser("given-pred-probs", help="pre-computed pred_probs in the fold combiner's output form")
    gp.add_argument("--dataset", required=True)
    gp.add_argument(
        "--labels",
        required=True,
        help="the condition's labels: a 'make' output directory or a label file of the whole split",
    )
    gp.add_argument("--pred-probs", required=True, help="(N, K) .npy of the whole train split (path or URL)")
    cli.add_subset_arguments(gp)
    gp.add_argument("--out", required=True, help="output directory (path or URL)")
    for q in (mk, gp):
        q.add_argument("-v", "--verbose", action="store_true")
    return p


def parse_condition(args: argparse.Namespace) -> logic.Condition:
    """The condition from ``--condition JSON`` or from the individual flags (not both)."""
    flags = {
        "name": args.name,
        "noise": args.noise,
        "sparsity": args.sparsity,
        "seed": args.seed,
        "labels": args.labels,
    }
    if args.condition is None:
        return logic.Condition.from_dict(flags, source="flags")
    given = [f"--{k}" for k, v in flags.items() if v is not None]
    if given:
        raise InputError(
            "--condition", "", f"give the condition either as JSON or as flags, not both ({given})"
        )
    try:
        data = json.loads(args.condition)
    except json.JSONDecodeError as e:
        raise InputError("--condition", "", f"not valid JSON ({e})") from None
    return logic.Condition.from_dict(data, source="--condition")


MAKE_STAGE = "noisy-labels make"
GIVEN_STAGE = "noisy-labels given-pred-probs"


def _make(args: argparse.Namespace) -> None:
    condition = parse_condition(args)
    inputs = [args.dataset, *([condition.labels] if condition.labels else [])]
    storage.check_output(args.out, stage=MAKE_STAGE, inputs=inputs)
    split = open_split(args.dataset, "train")
    given = load_labels(condition.labels, split) if condition.labels else None
    result = logic.make_condition_labels(condition, split.labels, split.num_classes, given)
    result.summary.update(
        dataset=args.dataset, classes=list(split.classes), dataset_fingerprint=split.fingerprint()
    )
    with storage.staged_output(args.out, stage=MAKE_STAGE, inputs=inputs) as tmp:
        storage.save_npy(os.path.join(tmp, LABELS_FILE), result.labels)
        storage.save_npy(os.path.join(tmp, "noise_matrix.npy"), result.noise_matrix)
        storage.save_json(os.path.join(tmp, "summary.json"), result.summary)
    cli.log.info(
        "condition %s: %s labels, realised noise rate %.4f (trace %s)",
        condition.name,
        "generated" if condition.generated else "given",
        result.summary["realised_noise_rate"],
        result.summary["trace"],
    )


def _given_pred_probs(args: argparse.Namespace) -> None:
    inputs = [args.dataset, args.labels, args.pred_probs]
    storage.check_output(args.out, stage=GIVEN_STAGE, inputs=inputs)
    split = open_split(args.dataset, "train")
    labels = load_labels(labels_url(args.labels), split)
    rows = subset_rows(split.labels, args.subset_per_class, args.subset_seed)
    pred_probs = storage.load_npy(args.pred_probs, field="pred_probs")
    combined = logic.given_pred_probs(
        pred_probs,
        labels,
        rows,
        source=args.pred_probs,
        num_classes=split.num_classes,
        dataset_fingerprint=split.take(rows).fingerprint(),
    )
    combined.summary["classes"] = list(split.classes)
    write_combined(args.out, combined, stage=GIVEN_STAGE, inputs=inputs)
    cli.log.info(
        "given pred_probs %s: %d x %d %s, accuracy vs given labels %.4f",
        args.pred_probs,
        *combined.pred_probs.shape,
        combined.pred_probs.dtype,
        combined.summary["accuracy"],
    )


def run(args: argparse.Namespace) -> None:
    {"make": _make, "given-pred-probs": _given_pred_probs}[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_stage("noisy-labels", build_parser(), argv, run)
