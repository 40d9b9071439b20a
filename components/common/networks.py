"""Networks by name, and which one fits a training resolution (torch-free until one is built).

The fold trainer picks its architecture from the resolution of the prepared dataset unless one
is set (:func:`choose_architecture`); an exported model (:mod:`.model_files`) names its
architecture, and ``clpipe predict`` rebuilds it here (:func:`build_network`). So every
architecture a model can be exported with is built by this module.

======================  ==============  ===================================================
resolution R (pixels)   architecture    why
======================  ==============  ===================================================
R = 32                  ``airbench94``  airbench's network is made for 32 x 32: a 2x2
                                        whitening conv, three 2x pools, a final 3x3 pool
                                        (airbench94: 94 % CIFAR-10 in seconds on a GPU)
32 < R < 128            ``resnet18``    torchvision ResNet-18 with its standard stem (7x7
                                        conv stride 2 + max pool): 64 px -> 16 x 16 after
                                        the stem; adaptive pooling takes any R
R >= 128                ``resnet50``    torchvision ResNet-50, the ImageNet recipe's network
                                        (224 px), the one cleanlab#555's team used
R < 32                  (refused)       too small for either stem: prepare at 32 (it
                                        upsamples, once)
======================  ==============  ===================================================

Exported models may also hold the Co-Teaching CNN (``coteaching-cnn``,
:mod:`.coteaching_cnn`: the Co-Teaching stage exports the better of its two networks), which
takes any resolution from 28 px on.

clpipe differs from the seed here on purpose: the seed trained ``resnet50`` with its ImageNet
stem on 32 px CIFAR-10 (kept as the fold trainer's ``resnet50`` for reproduction); for a
user's own images the table above is the default.
"""

from __future__ import annotations

from .errors import InputError

#: Built by :func:`build_network`: torchvision ResNets with their standard stems.
TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50")
#: The Co-Teaching CNN's name (:data:`.coteaching_cnn.ARCHITECTURE`, kept here torch-free).
COTEACHING_CNN = "coteaching-cnn"
#: Every architecture :func:`build_network` builds.
ARCHITECTURES = (*TORCHVISION_RESNETS, COTEACHING_CNN)
#: The resolution airbench's network is made for.
AIRBENCH_RESOLUTION = 32
#: From this resolution on, ResNet-50 instead of ResNet-18.
RESNET50_FROM = 128


def choose_architecture(resolution: int) -> str:
    """The architecture for images of ``resolution`` x ``resolution`` (the table above)."""
    if resolution < AIRBENCH_RESOLUTION:
        raise InputError("resolution", "", f"{resolution} px is too small for the fold trainer's networks; "
                         f"prepare the dataset at {AIRBENCH_RESOLUTION} (clpipe data prepare --resolution 32)")
    if resolution == AIRBENCH_RESOLUTION:
        return "airbench94"
    return "resnet18" if resolution < RESNET50_FROM else "resnet50"


def build_network(architecture: str, num_classes: int, **kwargs):
    """A freshly initialised network (torch module) of a known architecture (:data:`ARCHITECTURES`).

    ``kwargs`` go to the network's constructor (an exported model's ``arch_kwargs``), e.g.
    ``width`` and ``dropout`` of the Co-Teaching CNN.
    """
    if architecture not in ARCHITECTURES:
        raise InputError("architecture", "", f"unknown architecture {architecture!r}; known: "
                         f"{list(ARCHITECTURES)}")
    if architecture == COTEACHING_CNN:
        from .coteaching_cnn import CoTeachingCNN

        return CoTeachingCNN(num_classes, **kwargs)
    import torchvision

    return getattr(torchvision.models, architecture)(weights=None, num_classes=num_classes, **kwargs)
