"""The 9-layer CNN of Co-Teaching (Han et al. 2018), as used by the confident-learning paper.

Shared code (``components/common``): the Co-Teaching stage trains it and exports the better of
its two networks; ``clpipe predict`` rebuilds it from the export
(:func:`~.networks.build_network`, architecture :data:`ARCHITECTURE`), and a stage never
imports another stage.

Same network as bhanML/Co-teaching ``model.py`` and the confident-learning reproduce
repo's ``confidentlearning_and_coteaching/model.py`` (notes ``confident-learning.md`` §5,
"Shared model"). Layer names (``c1`` ... ``c9``, ``bn1`` ... ``bn9``, ``l_c1``) are the
official ones, so an official state dict loads unchanged at ``width=128``.

With base width ``w`` (the paper: ``w = 128``), input 3 x R x R (the paper: R = 32):

- 3 x [conv 3x3, w ch, pad 1 -> BatchNorm -> LeakyReLU(0.01)] -> max-pool 2 -> dropout2d(0.25)
- 3 x [conv 3x3, 2w ch, pad 1 -> BN -> LeakyReLU(0.01)] -> max-pool 2 -> dropout2d(0.25)
- conv 3x3 4w pad 0 -> conv 3x3 2w pad 0 -> conv 3x3 w pad 0, each BN + LeakyReLU
  (R = 32: 8x8 -> 6 -> 4 -> 2)
- global average pool -> Linear(w, K)

Any resolution R >= :data:`MIN_RESOLUTION` works unchanged: the final pooling averages the
whole remaining map (the official ``avg_pool2d`` with the map's own size, i.e. adaptive
pooling to 1 x 1), so at 64 px it averages a 10 x 10 map instead of 2 x 2 and the layer
shapes, and therefore the weights, are the same at every R. At R = 32 the computation is the
official one.

**Dropout stays active at evaluation** (``dropout_at_eval=True``, the default): the
official code calls ``F.dropout2d(h, p)`` without a ``training`` flag, so its test
accuracies are measured with dropout on (and are random). ``dropout_at_eval=False`` gives
the usual behaviour. BatchNorm does switch to its running statistics in ``eval()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .networks import COTEACHING_CNN

#: The paper's base width (channels of the first block).
PAPER_WIDTH = 128
LEAKY_SLOPE = 0.01
#: Name of this network in an exported model's card (:mod:`.model_files`).
ARCHITECTURE = COTEACHING_CNN
#: Smallest input side: two 2x pools then three unpadded 3x3 convolutions need R // 4 >= 7.
MIN_RESOLUTION = 28


class CoTeachingCNN(nn.Module):
    """Co-Teaching's 9-layer CNN.

    Args:
        num_classes: K, outputs of the linear head.
        width: Base channel count ``w`` (blocks use w, 2w, 4w); 128 is the paper's.
            Narrow widths (8, 16) let CPU tests train real epochs in seconds.
        dropout: Channel-dropout probability after each max-pool (paper: 0.25).
        dropout_at_eval: Keep dropout active in ``eval()`` mode, like the official code.
        in_channels: Input channels (3 for CIFAR-10).
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        width: int = PAPER_WIDTH,
        dropout: float = 0.25,
        dropout_at_eval: bool = True,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        w1, w2, w4 = width, 2 * width, 4 * width
        self.width = width
        self.dropout = dropout
        self.dropout_at_eval = dropout_at_eval
        self.c1 = nn.Conv2d(in_channels, w1, kernel_size=3, stride=1, padding=1)
        self.c2 = nn.Conv2d(w1, w1, kernel_size=3, stride=1, padding=1)
        self.c3 = nn.Conv2d(w1, w1, kernel_size=3, stride=1, padding=1)
        self.c4 = nn.Conv2d(w1, w2, kernel_size=3, stride=1, padding=1)
        self.c5 = nn.Conv2d(w2, w2, kernel_size=3, stride=1, padding=1)
        self.c6 = nn.Conv2d(w2, w2, kernel_size=3, stride=1, padding=1)
        self.c7 = nn.Conv2d(w2, w4, kernel_size=3, stride=1, padding=0)
        self.c8 = nn.Conv2d(w4, w2, kernel_size=3, stride=1, padding=0)
        self.c9 = nn.Conv2d(w2, w1, kernel_size=3, stride=1, padding=0)
        self.l_c1 = nn.Linear(w1, num_classes)
        self.bn1 = nn.BatchNorm2d(w1)
        self.bn2 = nn.BatchNorm2d(w1)
        self.bn3 = nn.BatchNorm2d(w1)
        self.bn4 = nn.BatchNorm2d(w2)
        self.bn5 = nn.BatchNorm2d(w2)
        self.bn6 = nn.BatchNorm2d(w2)
        self.bn7 = nn.BatchNorm2d(w4)
        self.bn8 = nn.BatchNorm2d(w2)
        self.bn9 = nn.BatchNorm2d(w1)

    def _block(self, x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
        return F.leaky_relu(bn(conv(x)), negative_slope=LEAKY_SLOPE)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout2d(x, p=self.dropout, training=self.training or self.dropout_at_eval)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) images -> (B, K) logits."""
        h = self._block(x, self.c1, self.bn1)
        h = self._block(h, self.c2, self.bn2)
        h = self._block(h, self.c3, self.bn3)
        h = self._drop(F.max_pool2d(h, kernel_size=2, stride=2))
        h = self._block(h, self.c4, self.bn4)
        h = self._block(h, self.c5, self.bn5)
        h = self._block(h, self.c6, self.bn6)
        h = self._drop(F.max_pool2d(h, kernel_size=2, stride=2))
        h = self._block(h, self.c7, self.bn7)
        h = self._block(h, self.c8, self.bn8)
        h = self._block(h, self.c9, self.bn9)
        h = h.mean(dim=(2, 3))  # = avg_pool2d over the whole map (2x2 at R = 32)
        return self.l_c1(h)

