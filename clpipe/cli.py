"""The ``clpipe`` command: one subcommand per stage, plus data and pipeline helpers.

Each subcommand lives in its stage's ``cli.py`` and is imported only when it runs, so the
CPU image (no torch) can run ``combine-folds`` and ``make-masks``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from clpipe import __version__

#: subcommand -> (module with ``main(argv) -> int``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fold-train": ("clpipe.components.fold_train.cli", "train one cross-validation fold, write its out-of-sample pred_probs"),
    "combine-folds": ("clpipe.components.combine_folds.cli", "join K fold outputs into one N x K pred_probs matrix"),
    "make-masks": ("clpipe.components.make_masks.cli", "confident-learning keep-masks, one per method"),
    "coteach": ("clpipe.components.coteach.cli", "Co-Teaching on the kept examples, test accuracy per epoch"),
    "predict": ("clpipe.components.predict.cli", "apply an exported model to images (CSV of predicted classes)"),
    "data": ("clpipe.data", "data: fetch, prepare, pack/unpack, export-imagefolder, subset, info"),
    "noisy-labels": ("clpipe.components.noisy_labels.cli", "one condition's noisy labels (generated or given)"),
    "report": ("clpipe.components.report.cli", "per-condition results and the Table-2 report (Markdown, HTML, CSV, plots)"),
    "compile": ("clpipe.pipelines.compile", "compile the pipeline to KFP v2 YAML"),
    "run": ("clpipe.pipelines.local_run", "run the pipeline on this machine (kfp.local, no cluster, no Docker)"),
    "submit": ("clpipe.pipelines.submit", "upload the pipeline to a KFP server and start a run"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: clpipe <command> [options]   (clpipe {__version__})", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "clpipe <command> --help shows the options of one command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"clpipe: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
