"""Noise generation reproduces the seed's published files; conditions are validated; given
pred_probs come out in the fold combiner's form."""

import numpy as np
import pytest
from clpipe.components.common.datasets import open_split, subset_rows
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
    condition = logic.Condition(name="c", noise=noise, sparsity=sparsity, seed=0)
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
    made = logic.make_condition_labels(logic.Condition(name="pub", labels="x.json"), train.labels, 10, given)
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


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"noise": 0.2}, "name"),
        ({"name": "a b", "noise": 0.2}, "name"),
        ({"name": "a"}, "noise"),
        ({"name": "a", "noise": 1.0}, "noise"),
        ({"name": "a", "noise": 0.2, "sparsity": -0.1}, "sparsity"),
        ({"name": "a", "noise": "0.2"}, "noise"),
        ({"name": "a", "noise": 0.2, "seed": 1.5}, "seed"),
        ({"name": "a", "noise": 0.2, "colour": "red"}, "colour"),
        ({"name": "a", "labels": 3}, "labels"),
    ],
)
def test_bad_conditions_name_the_field(data, field):
    with pytest.raises(InputError) as e:
        logic.Condition.from_dict(data)
    assert e.value.field == field


def test_pipeline_items_with_empty_values_read_like_configs():
    item = {"name": "pub", "noise": None, "sparsity": 0.2, "seed": 0, "labels": "l.json", "pred_probs": ""}
    condition = logic.Condition.from_dict(item)
    assert condition == logic.Condition(name="pub", sparsity=0.2, labels="l.json")
    assert logic.Condition.from_dict(condition.to_dict()) == condition


def test_given_pred_probs_take_the_view_rows_and_keep_float16(train):
    labels = load_labels(str(condition_file("labels", 0.2, 0.4)), train)
    pyx = np.load(condition_file("pyx", 0.2, 0.4))
    rows = subset_rows(train.labels, 20, 0)
    combined = logic.given_pred_probs(
        pyx,
        labels,
        rows,
        source="pyx.npy",
        num_classes=10,
        dataset_fingerprint=train.take(rows).fingerprint(),
    )
    assert combined.pred_probs.dtype == np.float16
    np.testing.assert_array_equal(combined.pred_probs, pyx[rows])
    np.testing.assert_array_equal(combined.labels, labels[rows])
    summary = combined.summary
    assert summary["stage"] == "given-pred-probs" and summary["n_examples"] == 200 and summary["n_folds"] == 0
    assert (summary["source"], summary["url"]) == ("given", "pyx.npy")
    assert np.sum(summary["confusion_matrix"]) == 200
    assert summary["accuracy"] == pytest.approx((pyx[rows].argmax(1) == labels[rows]).mean())


def test_given_pred_probs_of_the_wrong_shape_are_refused(train):
    labels = train.labels
    with pytest.raises(InputError, match="whole train split"):
        logic.given_pred_probs(
            np.full((100, 10), 0.1),
            labels,
            np.arange(10),
            source="p.npy",
            num_classes=10,
            dataset_fingerprint="x",
        )


@pytest.mark.parametrize(
    ("setting", "expected"), [("recipe", None), ("noise", 0.15), ("0.2", 0.2), ("0", 0.0)]
)
def test_forget_rate_settings(setting, expected):
    assert logic.resolve_forget_rate(setting, 0.15) == expected


@pytest.mark.parametrize("setting", ["half", "1.0", "-0.1", "nan"])
def test_bad_forget_rate_settings(setting):
    with pytest.raises(InputError, match="forget_rate"):
        logic.resolve_forget_rate(setting, 0.15)
