"""``clpipe combine-folds``: the command line of :func:`.stage.combine_folds` (the container entrypoint)."""

from __future__ import annotations

from collections.abc import Sequence

from ..common.cli import Command, stage_main
from . import stage


def main(argv: Sequence[str] | None = None) -> int:
    command = Command(stage.combine_folds, positional=("folds",))
    return stage_main("combine-folds", command, argv, description=stage.__doc__)
