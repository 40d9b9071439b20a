"""``clpipe predict``: the command line of :func:`.stage.predict`."""

from __future__ import annotations

from collections.abc import Sequence

from ..common.cli import Command, stage_main
from . import stage


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("predict", Command(stage.predict, positional=("images",)), argv, description=stage.__doc__)
