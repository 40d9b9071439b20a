import numpy as np
import torch
from clpipe.components.common import training
from clpipe.components.coteach import method, recipes
from torch import nn


def test_flip_tta_scores_the_mean_of_an_image_and_its_mirror():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=64)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    loader = training.DeviceLoader(images, labels, batch_size=16, device=torch.device("cpu"), shuffle=False)
    x = loader.x
    with torch.no_grad():
        expected_plain = net(x).argmax(1) == loader.y
        expected_tta = (net(x) + net(x.flip(3))).argmax(1) == loader.y
    assert torch.equal(method.evaluate(net, loader), expected_plain)
    assert torch.equal(method.evaluate(net, loader, tta_flip=True), expected_tta)
    assert not torch.equal(expected_plain, expected_tta)  # the mirror image matters for this net


def test_fast_recipe_keeps_the_coteaching_mechanics():
    paper, fast = recipes.resolve_recipe("feb2020"), recipes.resolve_recipe("fast")
    for field in ("forget_rate", "exponent", "mom1", "mom2", "cnn_width", "dropout", "class_weights",
                  "double_normalise"):
        assert getattr(fast, field) == getattr(paper, field), field
    # the lr/beta1 plan is the paper's, compressed: decay starts at the same fraction of training
    assert abs(fast.epoch_decay_start / fast.epochs - paper.epoch_decay_start / paper.epochs) < 0.02
