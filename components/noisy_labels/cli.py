"""``clpipe noisy-labels``: the command line of :func:`.stage.noisy_labels` (the container entrypoint)."""

from __future__ import annotations

from collections.abc import Sequence

from ..common.cli import Command, stage_main
from . import stage


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("noisy-labels", Command(stage.noisy_labels), argv, description=stage.__doc__)
