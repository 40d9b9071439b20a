"""``clpipe fold-train``: the command line of :func:`.stage.fold_train` (the container entrypoint)."""

from __future__ import annotations

from collections.abc import Sequence

from ..common.cli import Command, stage_main
from . import stage


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("fold-train", Command(stage.fold_train), argv, description=stage.__doc__)
