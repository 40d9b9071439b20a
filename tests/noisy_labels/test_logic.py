"""Noise generation reproduces the seed's published files."""

import numpy as np
import pytest
from clpipe.components.common.conditions import Condition
from clpipe.components.common.datasets import open_split
from clpipe.components.common.errors import InputError
from clpipe.components.common.labels import load_labels
from clpipe.components.noisy_labels import logic

from tests.conftest import condition_file

TABLE2 = [(s, n) for n in (0.2, 0.4, 0.6) for s in (0.0, 0.2, 0.4, 0.6)]


@pytest.fixture(scope="module")
def train(cifar10_dir):
    return open_split(cifar10_dir, "train")


@pytest.mark.parametrize(("noise", "trace"), [(0.0, 10), (0.2, 8), (0.4, 6), (0.6, 3), (0.8, 1), (0.3, 7)])
def test_seed_trace_reproduces_the_arange_rounding(noise, trace):
    assert logic.seed_trace(10, noise) == trace


@pytest.mark.parametrize(("sparsity", "noise"), TABLE2)
def test_noise_matrices_equal_the_published_ones(train, sparsity, noise):
    from cleanlab.benchmarking import noise_generation

    py = np.bincount(train.labels) / len(train)
    matrix = noise_generation.generate_noise_matrix_from_trace(
        10,
        logic.seed_trace(10, noise),
        py=py,
        frac_zero_noise_rates=sparsity,
        valid_noise_matrix=True,
        seed=0,
    )
    np.testing.assert_allclose(matrix, np.load(condition_file("noise_matrix", sparsity, noise)))


@pytest.mark.parametrize(("sparsity", "noise"), TABLE2)
def test_generated_labels_equal_the_published_label_files(train, sparsity, noise):
    condition = Condition(name="c", noise=noise, sparsity=sparsity, seed=0)
    made = logic.make_condition_labels(condition, train.labels, 10)
    published = load_labels(str(condition_file("labels", sparsity, noise)), train)
    np.testing.assert_array_equal(made.labels, published)
    np.testing.assert_allclose(made.noise_matrix, np.load(condition_file("noise_matrix", sparsity, noise)))
    assert made.summary["trace"] == logic.seed_trace(10, noise)
    # README: N=0.2 -> 19.9 %, 0.4 -> 39.9 %, 0.6 -> 69.9 % realised noise
    assert made.summary["realised_noise_rate"] == pytest.approx(
        {0.2: 0.199, 0.4: 0.399, 0.6: 0.699}[noise], abs=2e-3
    )
    assert made.summary["forget_rate_from_noise"] == noise / 2


def test_generation_leaves_the_global_random_state_alone(train):
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    logic.generate_noisy_labels(train.labels, num_classes=10, noise=0.2, sparsity=0.0, seed=5)
    assert np.random.random() == expected


def test_given_labels_get_their_realised_noise_matrix(train):
    given = load_labels(str(condition_file("labels", 0.0, 0.4)), train)
    made = logic.make_condition_labels(Condition(name="pub", labels="x.json"), train.labels, 10, given)
    assert made.summary["noise_matrix_source"] == "realised"
    np.testing.assert_allclose(made.noise_matrix.sum(axis=0), 1)
    assert np.trace(made.noise_matrix) == pytest.approx(
        10 * (1 - made.summary["realised_noise_rate"]), abs=1e-6
    )
    assert made.summary["forget_rate_from_noise"] == pytest.approx(
        made.summary["realised_noise_rate"] / 2, abs=1e-6
    )


def test_too_much_noise_is_refused(train):
    with pytest.raises(InputError, match="trace 1"):
        logic.generate_noisy_labels(train.labels, num_classes=10, noise=0.8, sparsity=0.0, seed=0)
