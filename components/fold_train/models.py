"""Networks the fold trainer can cross-validate with.

The torchvision ResNets are built by ``common/networks.py`` (shared with ``clpipe predict``);
the airbench networks, which only the fold trainer uses, here.

- ``resnet50``: torchvision's ResNet-50 with its ImageNet stem, exactly the seed's model
  (``cifar10_train_crossval.py``: ``resnet50(num_classes=10)`` on 32x32 inputs). The stem
  downsamples 32x32 to 8x8 at once, which is why the published out-of-sample accuracy at
  0 % noise is only 85.75 %; kept as is so the paper's pipeline can be reproduced.
- ``airbench94``: the network of airbench94 (KellerJordan/cifar10-airbench, arXiv:2404.00498;
  94 % CIFAR-10 test accuracy in ~10 epochs): a frozen 2x2 patch-whitening convolution,
  three conv groups of widths 64/256/256 with GELU, identity-initialised convolutions,
  BatchNorm with frozen scale, and a 1/9-scaled linear head.
- ``airbench-tiny``: the same network at widths 16/32/32, so the CPU test suite can train
  real folds in seconds.
- ``resnet18``, ``resnet34``: torchvision's, with their standard stems, for images larger than
  32 px (the ``auto`` choice from 33 to 127 px is ``resnet18``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..common.errors import InputError
from ..common.networks import TORCHVISION_RESNETS, build_network
from .recipes import NETWORKS

#: Channel widths of the three conv groups of each airbench network (:data:`~.recipes.NETWORKS`).
AIRBENCH_WIDTHS = {"airbench94": (64, 256, 256), "airbench-tiny": (16, 32, 32)}


class _BatchNorm(nn.BatchNorm2d):
    """BatchNorm with a frozen scale and fast running statistics (airbench: momentum 0.6)."""

    def __init__(self, num_features: int, momentum: float = 0.6, eps: float = 1e-12) -> None:
        super().__init__(num_features, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad = False


class _Conv(nn.Conv2d):
    """3x3 'same' convolution, initialised close to the identity (dirac) for fast starts."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__(channels_in, channels_out, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        w = self.weight.data
        torch.nn.init.dirac_(w[: w.size(1)])


class _ConvGroup(nn.Module):
    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv1 = _Conv(channels_in, channels_out)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _BatchNorm(channels_out)
        self.conv2 = _Conv(channels_out, channels_out)
        self.norm2 = _BatchNorm(channels_out)
        self.activ = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """airbench94's network; call :meth:`init_whitening` on training images before training."""

    whiten_kernel = 2

    def __init__(self, num_classes: int, widths: tuple[int, int, int], scale: float = 1 / 9) -> None:
        super().__init__()
        whiten_width = 2 * 3 * self.whiten_kernel**2
        self.whiten = nn.Conv2d(3, whiten_width, kernel_size=self.whiten_kernel, padding=0, bias=True)
        self.whiten.weight.requires_grad = False
        self.layers = nn.Sequential(
            nn.GELU(),
            _ConvGroup(whiten_width, widths[0]),
            _ConvGroup(widths[0], widths[1]),
            _ConvGroup(widths[1], widths[2]),
            nn.MaxPool2d(3),
            nn.Flatten(),
        )
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.whiten(x))) * self.scale

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Sets the frozen first layer to whiten 2x2 patches of ``images`` (N, 3, 32, 32).

        The filters are the eigenvectors of the patch covariance scaled by
        1/sqrt(eigenvalue), stacked with their negations, so the following GELU sees
        decorrelated, unit-variance inputs from the first step on.
        """
        k = self.whiten_kernel
        c = images.shape[1]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c, k, k)
        flat = patches.reshape(len(patches), -1)
        covariance = flat.T @ flat / len(flat)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance, UPLO="U")
        eigenvalues = eigenvalues.flip(0).view(-1, 1, 1, 1)
        eigenvectors = eigenvectors.T.reshape(c * k * k, c, k, k).flip(0)
        scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
        self.whiten.weight.copy_(torch.cat((scaled, -scaled)).to(self.whiten.weight.dtype))


def build_model(arch: str, num_classes: int) -> nn.Module:
    """A freshly initialised network (seed torch first for a repeatable init)."""
    if arch in TORCHVISION_RESNETS:
        return build_network(arch, num_classes)  # resnet50: exactly the seed's resnet50(num_classes=K)
    if arch in AIRBENCH_WIDTHS:
        return AirbenchNet(num_classes, AIRBENCH_WIDTHS[arch])
    raise InputError("arch", "", f"unknown network {arch!r}; choose from {NETWORKS}")
