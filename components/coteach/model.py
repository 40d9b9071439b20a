"""The two Co-Teaching networks: :class:`~..common.coteaching_cnn.CoTeachingCNN` (shared with
``clpipe predict``, which rebuilds an exported one), initialised as a repeatable pair."""

from __future__ import annotations

import torch

from ..common.coteaching_cnn import PAPER_WIDTH, CoTeachingCNN

__all__ = ["PAPER_WIDTH", "CoTeachingCNN", "build_pair"]


def build_pair(
    num_classes: int, *, width: int = PAPER_WIDTH, dropout: float = 0.25, dropout_at_eval: bool = True,
    seed: int = 0,
) -> tuple[CoTeachingCNN, CoTeachingCNN]:
    """Two independently initialised networks, repeatable for a given ``seed``.

    Only the init is seeded here (a private generator state is restored afterwards), so
    which examples are kept by a mask never changes the initial weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kwargs = {"width": width, "dropout": dropout, "dropout_at_eval": dropout_at_eval}
        return CoTeachingCNN(num_classes, **kwargs), CoTeachingCNN(num_classes, **kwargs)
