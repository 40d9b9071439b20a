"""The fold trainer's networks and hyperparameter recipes, by name (no torch needed).

Networks (:data:`NETWORKS`): the seed's ``resnet50`` (torchvision, ImageNet stem, also on
32 px CIFAR-10), airbench94's network and a tiny airbench for CPU tests (made for 32 px), and
torchvision's ``resnet18``/``resnet34`` with their standard stems. ``arch="auto"`` picks one by
the dataset's resolution (:func:`network_for`, the table of ``common/networks.py``: 32 px ->
``airbench94``, up to 127 px -> ``resnet18``, else ``resnet50``); an explicit name is used as
it is, whatever the resolution (so the reproduction's ``resnet50`` on 32 px stays the seed's).

``pipelines/config.py`` and the CLI's ``--help`` read the names from here, so compiling or
submitting the pipeline never imports torch.

Two recipes:

- ``paper``: the seed's ``cifar10_train_crossval.py`` (cleanlab's ``examples/cifar10``,
  early 2020) for ``resnet50``: SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 64,
  350 epochs with x0.1 at epochs 150 and 250, RandomCrop(32, padding 4) with black
  padding + flip, fp32. The held-out fold is scored the seed's way, once through the
  *training* transform (its holdout set was a deep copy of the training set): one seeded
  random crop + flip per image (``holdout_transform="train"``; ``"clean"`` scores the
  images as they are).
- ``airbench``: airbench94's (KellerJordan/cifar10-airbench, ``legacy/airbench94.py``)
  hyperparameters for the airbench networks: 10 epochs, batch 1024, label smoothing,
  Lookahead, reflect-padded crops, mirror test-time augmentation, bf16 on CUDA and a
  compiled training step on CUDA.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..common.errors import InputError

#: Networks (``models.build_model``): the seed's ResNet-50, airbench94's net, a tiny airbench
#: for CPU tests, and torchvision's smaller ResNets for images larger than 32 px.
NETWORKS = ("resnet50", "airbench94", "airbench-tiny", "resnet18", "resnet34")
#: ``arch`` value that picks the network by the dataset's resolution (:func:`network_for`).
AUTO_ARCH = "auto"
#: Values of the ``arch`` parameter (the stage's and the pipeline's ``fold_arch``).
ARCHS = (*NETWORKS, AUTO_ARCH)
#: The airbench networks: made for 32 x 32 inputs (their final 3x3 pooling assumes a 3x3 map).
AIRBENCH_NETWORKS = ("airbench94", "airbench-tiny")
#: Numeric precisions on CUDA (see ``common.training``; the CPU always computes in fp32).
PRECISIONS = ("fp32", "bf16")
#: When the training step is compiled with ``torch.compile``: never, on CUDA only, or always.
COMPILE_MODES = ("off", "cuda", "on")
#: How each held-out image is scored: as it is, or once through the training augmentation.
HOLDOUT_TRANSFORMS = ("clean", "train")


@dataclass(frozen=True)
class Recipe:
    """Hyperparameters of one fold's training.

    Attributes:
        epochs: Passes over the K-1 training folds.
        batch_size: Examples per step.
        lr: ``paper``: SGD learning rate. ``airbench``: learning rate per 1024 examples
            with the loss summed over the batch (decoupled as in airbench94).
        momentum, nesterov, weight_decay: SGD settings (``airbench``: weight decay per
            1024 examples, decoupled from the learning rate).
        schedule: ``multistep`` (x0.1 after 150/350 and 250/350 of the epochs, the seed's
            150 and 250 of 350) or ``airbench`` (linear warm-up over 23 % of the steps
            from 0.2 to 1, then linear decay to 0.07).
        label_smoothing: Cross-entropy label smoothing.
        pad, pad_mode: Random-crop padding (the seed: 4, black; airbench: 2, reflect; see
            ``common.training.Augment``).
        tta: Average the predictions of each image and its mirror image.
        lookahead: airbench's Lookahead/EMA of the weights every 5 steps.
        bias_scaler: Learning-rate multiplier for BatchNorm biases (airbench).
        whiten_bias_epochs: Epochs during which the whitening layer's bias trains.
        holdout_transform: ``clean`` or ``train`` (one seeded random crop + flip of each
            held-out image, the seed's way), see the module docstring.
        precision: ``fp32`` or ``bf16`` on CUDA (:data:`PRECISIONS`).
        compile: When to ``torch.compile`` the network (:data:`COMPILE_MODES`).
        checkpoint_every: Epochs between checkpoints (0 = none). Does not change the result.
    """

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: str
    label_smoothing: float = 0.0
    pad: int = 4
    pad_mode: str = "black"
    tta: bool = False
    lookahead: bool = False
    bias_scaler: float = 1.0
    whiten_bias_epochs: int = 0
    holdout_transform: str = "clean"
    precision: str = "fp32"
    compile: str = "off"
    checkpoint_every: int = 0


RECIPES: dict[str, Recipe] = {
    # The seed's cifar10_train_crossval.py (experiments.bash passes no -b, so batch 64). A
    # ResNet-50 epoch takes minutes: a checkpoint every 10 of 350 epochs loses at most 3 %.
    # The Recipe defaults are the seed's too: pad 4 with black, fp32, eager.
    "paper": Recipe(
        epochs=350,
        batch_size=64,
        lr=0.1,
        momentum=0.9,
        nesterov=False,
        weight_decay=1e-4,
        schedule="multistep",
        holdout_transform="train",
        checkpoint_every=10,
    ),
    # airbench94 (legacy/airbench94.py hyperparameters). Ten epochs of seconds on a GPU: one
    # checkpoint half-way.
    "airbench": Recipe(
        epochs=10,
        batch_size=1024,
        lr=11.5,
        momentum=0.85,
        nesterov=True,
        weight_decay=0.0153,
        schedule="airbench",
        label_smoothing=0.2,
        pad=2,
        pad_mode="reflect",
        tta=True,
        lookahead=True,
        bias_scaler=64.0,
        whiten_bias_epochs=3,
        precision="bf16",
        compile="cuda",
        checkpoint_every=5,
    ),
}
#: The recipe that goes with each network. The smaller ResNets get the seed's ResNet recipe (SGD with
#: step decay, as torchvision's ImageNet reference trains them); set ``epochs`` for a user's data.
DEFAULT_RECIPE = {"resnet50": "paper", "airbench94": "airbench", "airbench-tiny": "airbench",
                  "resnet18": "paper", "resnet34": "paper"}

#: Allowed values of the recipe fields that are names.
_CHOICES = {"precision": PRECISIONS, "compile": COMPILE_MODES, "holdout_transform": HOLDOUT_TRANSFORMS}


def network_for(arch: str, resolution: int) -> str:
    """The network ``arch`` names for a dataset of ``resolution`` x ``resolution`` images.

    ``auto`` chooses by the resolution (:func:`~..common.networks.choose_architecture`);
    a network name is kept, except that the airbench networks only take 32 px.

    Raises:
        InputError: naming ``arch`` (unknown, or airbench at another resolution) or
            ``dataset`` (images too small for ``auto``).
    """
    from ..common.networks import AIRBENCH_RESOLUTION, choose_architecture

    if arch not in ARCHS:
        raise InputError("arch", "", f"unknown architecture {arch!r}; choose from {ARCHS}")
    if arch == AUTO_ARCH:
        if resolution < AIRBENCH_RESOLUTION:
            raise InputError("dataset", "", f"its images are {resolution} px, too small for the fold trainer's "
                             f"networks: prepare it at {AIRBENCH_RESOLUTION} px or more (clpipe data prepare "
                             f"--resolution {AIRBENCH_RESOLUTION}; upsampled once)")
        return choose_architecture(resolution)
    if arch in AIRBENCH_NETWORKS and resolution != AIRBENCH_RESOLUTION:
        raise InputError("arch", "", f"{arch} is made for {AIRBENCH_RESOLUTION} px images, the dataset's are "
                         f"{resolution} px: use auto, resnet18 or resnet50, or prepare the dataset at "
                         f"{AIRBENCH_RESOLUTION} px")
    return arch


def resolve_recipe(arch: str, recipe: str | None = None, **overrides) -> Recipe:
    """The named recipe (default: the one that goes with ``arch``) with the non-None overrides.

    Raises:
        InputError: naming the parameter (``arch``, ``recipe``, ``epochs``, ...) that is wrong.
    """
    if arch not in NETWORKS:
        raise InputError("arch", "", f"unknown network {arch!r}; choose from {NETWORKS}")
    name = recipe or DEFAULT_RECIPE[arch]
    if name not in RECIPES:
        raise InputError("recipe", "", f"unknown recipe {name!r}; choose from {tuple(RECIPES)}")
    if name == "airbench" and arch not in AIRBENCH_NETWORKS:
        raise InputError("recipe", "", "the airbench recipe needs an airbench network")
    chosen = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(chosen) - {f.name for f in dataclasses.fields(Recipe)})
    if unknown:
        raise InputError(unknown[0], "", "not a recipe setting")
    for key in ("epochs", "batch_size"):
        if key in chosen and chosen[key] <= 0:
            raise InputError(key, "", f"must be > 0, got {chosen[key]}")
    if "lr" in chosen and not (math.isfinite(chosen["lr"]) and chosen["lr"] > 0):
        raise InputError("lr", "", f"must be a finite number > 0, got {chosen['lr']}")
    if chosen.get("checkpoint_every", 0) < 0:
        raise InputError(
            "checkpoint_every", "", f"must be >= 0 (0 = no checkpoints), got {chosen['checkpoint_every']}"
        )
    for key, allowed in _CHOICES.items():
        if key in chosen and chosen[key] not in allowed:
            raise InputError(key, "", f"must be one of {allowed}, got {chosen[key]!r}")
    return dataclasses.replace(RECIPES[name], **chosen)
