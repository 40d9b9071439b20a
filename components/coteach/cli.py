"""``clpipe coteach``: the command line of :func:`.stage.coteach` (the container entrypoint)."""

from __future__ import annotations

from collections.abc import Sequence

from ..common.cli import Command, stage_main
from . import stage


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("coteach", Command(stage.coteach, positional=("dataset",)), argv, description=stage.__doc__)
