import numpy as np
import pytest
import torch

from clpipe.components.common import datasets, labels
from clpipe.components.common.errors import InputError
from clpipe.components.fold_train import logic, models


@pytest.fixture(scope="module")
def small(cifar10_dir, clean_labels):
    """100 real CIFAR-10 train images per class with the published 0 %-noise labels."""
    split = datasets.open_split(cifar10_dir, "train")
    given = labels.load_labels(clean_labels, split)
    rows = datasets.subset_rows(split.labels, 100, seed=0)
    return split.take(rows).images(), given[rows]


def test_folds_are_stratified_disjoint_and_cover_every_row():
    y = np.repeat(np.arange(10), 40)
    folds = logic.fold_indices(y, 4, seed=0)
    assert len(folds) == 4
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(400))
    for f in folds:
        assert np.bincount(y[f]).tolist() == [10] * 10
    again = logic.fold_indices(y, 4, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    assert not np.array_equal(folds[0], logic.fold_indices(y, 4, seed=1)[0])


def test_too_few_examples_for_the_folds():
    with pytest.raises(InputError, match="class 1 has 2 examples, fewer than 4 folds"):
        logic.fold_indices(np.array([0, 0, 0, 0, 1, 1]), 4, seed=0)


def test_recipes_and_overrides():
    assert logic.resolve_recipe("resnet50").batch_size == 64
    r = logic.resolve_recipe("airbench94", epochs=3, lr=None)
    assert (r.epochs, r.batch_size, r.label_smoothing) == (3, 1024, 0.2)
    with pytest.raises(InputError, match="--epochs"):
        logic.resolve_recipe("airbench94", epochs=0)
    with pytest.raises(InputError, match="airbench network"):
        logic.resolve_recipe("resnet50", "airbench")


def test_paper_schedule_drops_at_150_and_250_of_350_epochs():
    recipe = logic.resolve_recipe("resnet50")
    f = logic._schedule(recipe, total_steps=350 * 10, steps_per_epoch=10)
    assert [f(0), f(1499), f(1500), f(2499), f(2500)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_airbench_whitening_decorrelates_patches():
    torch.manual_seed(0)
    net = models.AirbenchNet(10, models.AIRBENCH_WIDTHS["airbench-tiny"])
    x = torch.randn(256, 3, 32, 32)
    x = x + torch.roll(x, 1, dims=3) + 0.5 * x[:, :1]  # correlated pixels and channels
    net.init_whitening(x)
    out = net.whiten(x) - net.whiten.bias[None, :, None, None]
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)  # the other 12 filters are the negations
    second_moment = half.T @ half / len(half)
    assert torch.allclose(second_moment, torch.eye(12), atol=0.02)


def train(small, epochs, batch_size=128):
    images, y = small
    recipe = logic.resolve_recipe("airbench-tiny", epochs=epochs, batch_size=batch_size)
    return logic.train_fold(images, y, fold=1, n_folds=4, seed=0, arch="airbench-tiny", recipe=recipe,
                            device=torch.device("cpu"), progress=False)


def test_fold_training_is_deterministic_on_cpu(small):
    a, b = train(small, epochs=2), train(small, epochs=2)
    np.testing.assert_array_equal(a.pred_probs, b.pred_probs)  # bit for bit


def test_fold_training_learns_out_of_sample(small):
    _, y = small
    result = train(small, epochs=10)
    assert result.pred_probs.shape == (250, 10) and result.pred_probs.dtype == np.float32
    np.testing.assert_allclose(result.pred_probs.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(result.indices, logic.fold_indices(y, 4, seed=0)[1])
    np.testing.assert_array_equal(result.labels, y[result.indices])
    assert result.metrics["holdout_accuracy"] > 0.25  # chance is 0.1; 750 training images
    assert result.metrics["n_train"] == 750 and result.metrics["images_per_s"] > 0


def test_resnet50_path_runs(small):
    images, y = small
    recipe = logic.resolve_recipe("resnet50", epochs=1, batch_size=250)
    result = logic.train_fold(images, y, fold=0, n_folds=4, arch="resnet50", recipe=recipe,
                              device=torch.device("cpu"), progress=False)
    assert result.pred_probs.shape == (250, 10)
    assert np.isfinite(result.pred_probs).all()


def test_fold_out_of_range(small):
    images, y = small
    with pytest.raises(InputError, match=r"--fold: must lie in \[0, 4\)"):
        logic.train_fold(images, y, fold=4, n_folds=4, arch="airbench-tiny", progress=False)
