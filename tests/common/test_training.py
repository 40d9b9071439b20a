"""Torch plumbing shared by the trainers: padding, precision."""

import contextlib

import numpy as np
import pytest
import torch
from clpipe.components.common import training


def first_batch(images, *, mean, std, pad_mode):
    loader = training.DeviceLoader(
        images,
        np.zeros(len(images)),
        batch_size=len(images),
        device=torch.device("cpu"),
        shuffle=False,
        augment=training.Augment(pad=4, pad_mode=pad_mode),
        mean=mean,
        std=std,
        aug_seed=5,
    )
    return next(iter(loader))[0]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)


def test_black_padding_equals_padding_before_normalising(images):
    """The seed's RandomCrop(32, padding=4) padded the PIL image with black, then normalised."""
    mean, std = training.CIFAR10_MEAN, training.CIFAR10_STD
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    raw = first_batch(images, mean=None, std=None, pad_mode="black")  # [0, 1], black = 0
    normalised = first_batch(images, mean=mean, std=std, pad_mode="black")
    torch.testing.assert_close(normalised, (raw - m) / s, rtol=0, atol=0)
    assert (raw == 0).any()  # some crops reach into the padding


def test_constant_padding_of_normalised_images_is_the_mean_colour(images):
    mean, std = training.CIFAR10_MEAN, training.CIFAR10_STD
    black = first_batch(images, mean=mean, std=std, pad_mode="black")
    constant = first_batch(images, mean=mean, std=std, pad_mode="constant")
    border = (constant == 0).all(dim=1)  # the normalised zero is the mean colour
    assert border.any() and not (black == 0).all(dim=1).any()
    unnormalised = first_batch(images, mean=None, std=None, pad_mode="constant")
    torch.testing.assert_close(unnormalised, first_batch(images, mean=None, std=None, pad_mode="black"))


def test_fp32_never_autocasts():
    assert isinstance(training.autocast(torch.device("cuda"), "fp32"), contextlib.nullcontext)
    assert isinstance(training.autocast(torch.device("cpu"), "bf16"), contextlib.nullcontext)


def test_inputs_are_fp16_only_on_cuda_under_bf16():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training.input_dtype(cuda, "bf16") == torch.float16
    assert training.input_dtype(cuda, "fp32") == training.input_dtype(cpu, "bf16") == torch.float32
