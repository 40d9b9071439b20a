"""``clpipe make-masks``: the command line of :func:`.stage.make_masks` (the container entrypoint)."""

from __future__ import annotations

from collections.abc import Sequence

from ..common.cli import Command, stage_main
from . import stage


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("make-masks", Command(stage.make_masks), argv, description=stage.__doc__)
