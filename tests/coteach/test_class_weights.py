"""Class-weight rules: the paper's (ground-truth) rules, the leak-free one, none."""

import numpy as np
import pytest

from clpipe.components.common.errors import InputError
from clpipe.components.coteach import method

# 3 classes, 4 rows each; given labels flip two rows.
TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
GIVEN = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 0])
KEEP = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1], dtype=bool)


def test_feb2020_rule_uses_true_labels_of_the_kept_rows():
    # bincount(true, all) / bincount(true, kept) = [4, 4, 4] / [2, 3, 4]
    w = method.class_weights("feb2020", GIVEN, KEEP, num_classes=3, true_labels=TRUE)
    np.testing.assert_allclose(w, [4 / 2, 4 / 3, 4 / 4], rtol=1e-6)
    assert w.dtype == np.float32


def test_feb2020_rule_on_full_cifar10_is_5000_over_kept_counts():
    true = np.repeat(np.arange(10), 5000)
    keep = np.ones(50000, dtype=bool)
    keep[:1000] = False  # 1000 airplanes removed
    w = method.class_weights("feb2020", true, keep, num_classes=10, true_labels=true)
    assert w[0] == pytest.approx(5000 / 4000) and np.all(w[1:] == 1)


def test_jair2021_rule_uses_given_labels_of_the_kept_rows():
    # kept rows are given [0, 0, 1, 1, 1, 2, 2, 2, 0]:
    # bincount(true, all) / bincount(given, kept) = [4, 4, 4] / [3, 3, 3]
    w = method.class_weights("jair2021", GIVEN, KEEP, num_classes=3, true_labels=TRUE)
    np.testing.assert_allclose(w, [4 / 3, 4 / 3, 4 / 3], rtol=1e-6)


def test_given_rule_needs_no_true_labels():
    # bincount(given, all) / bincount(given, kept) = [4, 5, 3] / [3, 3, 3]
    w = method.class_weights("given", GIVEN, KEEP, num_classes=3)
    np.testing.assert_allclose(w, [4 / 3, 5 / 3, 1.0], rtol=1e-6)


def test_none_and_no_mask():
    assert method.class_weights("none", GIVEN, KEEP, num_classes=3, true_labels=TRUE) is None
    # No mask (method none): no weighting under any rule, like the JAIR driver without --dir-train-mask.
    for rule in ("feb2020", "jair2021", "given"):
        assert method.class_weights(rule, GIVEN, None, num_classes=3, true_labels=TRUE) is None


def test_true_label_rules_need_true_labels():
    with pytest.raises(InputError, match="needs the dataset"):
        method.class_weights("feb2020", GIVEN, KEEP, num_classes=3)


def test_a_class_nobody_is_given_gets_weight_zero():
    w = method.class_weights("given", GIVEN, KEEP, num_classes=4)
    assert w[3] == 0


def test_undefined_weight_of_a_used_class_is_an_input_error():
    # feb2020: no kept row is truly class 2, yet a kept row is given label 2 -> 4 / 0.
    keep = KEEP & (TRUE != 2)
    given = GIVEN.copy()
    given[0] = 2
    with pytest.raises(InputError) as e:
        method.class_weights("feb2020", given, keep, num_classes=3, true_labels=TRUE, source="m.npy")
    assert e.value.source == "m.npy" and "class 2" in e.value.problem
    # The leak-free rule is defined for the same mask.
    assert np.all(np.isfinite(method.class_weights("given", given, keep, num_classes=3)))
