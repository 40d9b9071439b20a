"""What every stage CLI shares: logging, the error contract, dataset-view flags.

Error contract (the same for every ``clpipe`` subcommand and container entrypoint):
bad input -> one ``ERROR <stage>: <file>: <field>: <problem>`` line on stderr, exit
code 2, nothing published (also for a location the credentials may not read or write);
a bug -> traceback, exit code 1; success -> exit code 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import numpy as np

from . import storage
from .datasets import Split, open_split, subset_rows
from .errors import InputError
from .labels import load_labels

log = logging.getLogger("clpipe")


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_stage(
    stage: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    body: Callable[[argparse.Namespace], None],
) -> int:
    """Parses ``argv``, runs ``body`` and maps :class:`InputError` to exit code 2.

    argparse's own usage errors exit 2 as well (``--help`` exits 0); they are returned, not
    raised, so callers of ``main(argv)`` always get an exit code.
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    configure_logging(getattr(args, "verbose", False))
    log.info("%s %s", stage, " ".join(f"{k}={v}" for k, v in vars(args).items()))
    try:
        body(args)
    except InputError as e:
        print(f"ERROR {stage}: {e}", file=sys.stderr)
        return 2
    except PermissionError as e:  # refused credentials or a read-only location: the user's to fix
        print(f"ERROR {stage}: permission denied: {e}; {storage.CREDENTIALS_HINT}", file=sys.stderr)
        return 2
    return 0


def add_view_arguments(parser: argparse.ArgumentParser, *, labels_flag: str = "--labels") -> None:
    """Flags that pick the training examples: dataset, given labels, optional subset."""
    parser.add_argument("--dataset", required=True,
                        help="ImageFolder root, .npz, or directory with *train.npz/*test.npz (path or URL)")
    parser.add_argument(labels_flag, dest="labels", required=True,
                        help="given labels: seed JSON (.json/.json.gz, file -> label) or .npy in ImageFolder order")
    add_subset_arguments(parser)


def add_subset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subset-per-class", type=int, default=0,
                        help="use a class-stratified random subset of this many train images per class (0 = all)")
    parser.add_argument("--subset-seed", type=int, default=0, help="seed of that subset")


def open_train_view(dataset: str, labels_url: str, per_class: int, seed: int) -> tuple[Split, np.ndarray]:
    """The train split and its given labels, restricted to the subset (if any).

    Labels are checked against the *whole* split first, so a subset run uses the same
    label files as a full run.
    """
    split = open_split(dataset, "train")
    given = load_labels(labels_url, split)
    rows = subset_rows(split.labels, per_class, seed)
    if len(rows) < len(split):
        log.info("subset: %d of %d train images (%d per class, seed %d)", len(rows), len(split), per_class, seed)
    return split.take(rows), given[rows]


def check_positive(name: str, value: int | float) -> None:
    if value <= 0:
        raise InputError(name, "", f"must be > 0, got {value}")
