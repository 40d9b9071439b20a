import numpy as np
import pytest
import torch
from clpipe.components.common import datasets, labels
from clpipe.components.common.errors import InputError
from clpipe.components.fold_train import loop, models, recipes
from clpipe.components.fold_train.folds import fold_indices


@pytest.fixture(scope="module")
def small(cifar10_dir, clean_labels):
    """100 real CIFAR-10 train images per class with the published 0 %-noise labels."""
    split = datasets.open_split(cifar10_dir, "train")
    given = labels.load_labels(clean_labels, split)
    rows = datasets.subset_rows(split.labels, 100, seed=0)
    return split.take(rows).images(), given[rows]


def test_folds_are_stratified_disjoint_and_cover_every_row():
    y = np.repeat(np.arange(10), 40)
    folds = fold_indices(y, 4, seed=0)
    assert len(folds) == 4
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(400))
    for f in folds:
        assert np.bincount(y[f]).tolist() == [10] * 10
    again = fold_indices(y, 4, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    assert not np.array_equal(folds[0], fold_indices(y, 4, seed=1)[0])


def test_too_few_examples_for_the_folds():
    with pytest.raises(InputError, match="class 1 has 2 examples, fewer than 4 folds"):
        fold_indices(np.array([0, 0, 0, 0, 1, 1]), 4, seed=0)


def test_recipes_and_overrides():
    assert recipes.resolve_recipe("resnet50").batch_size == 64
    r = recipes.resolve_recipe("airbench94", epochs=3, lr=None)
    assert (r.epochs, r.batch_size, r.label_smoothing) == (3, 1024, 0.2)
    with pytest.raises(InputError, match="epochs"):
        recipes.resolve_recipe("airbench94", epochs=0)
    with pytest.raises(InputError, match="airbench network"):
        recipes.resolve_recipe("resnet50", "airbench")


def test_paper_schedule_drops_at_150_and_250_of_350_epochs():
    recipe = recipes.resolve_recipe("resnet50")
    f = loop.lr_schedule(recipe, total_steps=350 * 10, steps_per_epoch=10)
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
    recipe = recipes.resolve_recipe("airbench-tiny", epochs=epochs, batch_size=batch_size)
    return loop.train_fold(images, y, fold=1, n_folds=4, seed=0, fold_split="sklearn",
                           arch="airbench-tiny", recipe=recipe, device=torch.device("cpu"), progress=False)


def test_fold_training_is_deterministic_on_cpu(small):
    a, b = train(small, epochs=2), train(small, epochs=2)
    np.testing.assert_array_equal(a.pred_probs, b.pred_probs)  # bit for bit


def test_fold_training_learns_out_of_sample(small):
    _, y = small
    result = train(small, epochs=10)
    assert result.pred_probs.shape == (250, 10) and result.pred_probs.dtype == np.float32
    np.testing.assert_allclose(result.pred_probs.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(result.indices, fold_indices(y, 4, seed=0)[1])
    np.testing.assert_array_equal(result.labels, y[result.indices])
    assert result.metrics["holdout_accuracy"] > 0.25  # chance is 0.1; 750 training images
    assert result.metrics["n_train"] == 750 and result.metrics["images_per_s"] > 0


def test_resnet50_path_runs(small):
    images, y = small
    rows = datasets.subset_rows(y, 8, seed=0)  # 80 images: the path, not the learning, is under test
    recipe = recipes.resolve_recipe("resnet50", epochs=1, batch_size=30)
    result = loop.train_fold(images[rows], y[rows], fold=0, n_folds=4, seed=0, fold_split="sklearn",
                             arch="resnet50", recipe=recipe, device=torch.device("cpu"), progress=False)
    assert result.pred_probs.shape == (20, 10)
    assert np.isfinite(result.pred_probs).all()


def test_fold_out_of_range(small):
    images, y = small
    with pytest.raises(InputError, match=r"fold: must lie in \[0, 4\)"):
        loop.train_fold(images, y, fold=4, n_folds=4, seed=0, fold_split="sklearn", arch="airbench-tiny",
                        progress=False)


def test_paper_recipe_is_the_seeds():
    paper = recipes.resolve_recipe("resnet50")
    seed_choices = (paper.pad, paper.pad_mode, paper.precision, paper.holdout_transform)
    assert seed_choices == (4, "black", "fp32", "train")
    airbench = recipes.resolve_recipe("airbench94")
    assert (airbench.precision, airbench.compile, airbench.holdout_transform) == ("bf16", "cuda", "clean")


@pytest.mark.parametrize("override, message", [
    ({"lr": float("nan")}, "lr: must be a finite number > 0, got nan"),
    ({"lr": float("inf")}, "lr: must be a finite number > 0, got inf"),
    ({"lr": -1.0}, "lr: must be a finite number > 0, got -1.0"),
    ({"batch_size": 0}, "batch_size: must be > 0"),
    ({"checkpoint_every": -1}, "checkpoint_every: must be >= 0"),
    ({"precision": "fp16"}, "precision: must be one of ('fp32', 'bf16')"),
    ({"compile": "yes"}, "compile: must be one of ('off', 'cuda', 'on')"),
    ({"holdout_transform": "tta"}, "holdout_transform: must be one of ('clean', 'train')"),
])
def test_bad_recipe_settings_name_the_parameter(override, message):
    with pytest.raises(InputError) as e:
        recipes.resolve_recipe("airbench-tiny", **override)
    assert str(e.value).startswith(message)


def test_held_out_images_scored_through_the_training_transform(small):
    """The seed's holdout set was a copy of its training set: one random crop + flip per image, seeded."""
    images, y = small

    def scored(holdout_transform):
        recipe = recipes.resolve_recipe("airbench-tiny", epochs=1, batch_size=128,
                                        holdout_transform=holdout_transform)
        return loop.train_fold(images, y, fold=0, n_folds=4, seed=0, fold_split="sklearn",
                               arch="airbench-tiny", recipe=recipe, device=torch.device("cpu"),
                               progress=False)

    clean, augmented, again = scored("clean"), scored("train"), scored("train")
    np.testing.assert_array_equal(augmented.pred_probs, again.pred_probs)
    assert not np.array_equal(clean.pred_probs, augmented.pred_probs)
    assert augmented.metrics["recipe"]["holdout_transform"] == "train"


def test_the_cpu_trains_in_fp32_whatever_the_recipe_says(small):
    images, y = small
    recipe = recipes.resolve_recipe("airbench-tiny", epochs=1, batch_size=128, precision="bf16")
    result = loop.train_fold(images, y, fold=0, n_folds=4, seed=0, fold_split="sklearn",
                             arch="airbench-tiny", recipe=recipe, device=torch.device("cpu"), progress=False)
    assert result.metrics["precision"] == "fp32" and result.metrics["compiled"] is False
