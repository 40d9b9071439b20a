"""Class-weight rules: the paper's (ground-truth) rules, the leak-free one, none."""

import json
from pathlib import Path

import numpy as np
import pytest
from clpipe.components.common.errors import InputError
from clpipe.components.coteach import method

PUBLISHED_MASKS = Path(__file__).with_name("published_coteaching_masks.json")

# 3 classes, 4 rows each; given labels flip two rows.
TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
GIVEN = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 0])
KEEP = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1], dtype=bool)


def test_feb2020_rule_uses_true_labels_of_the_kept_rows():
    # bincount(true, all) // bincount(true, kept) = [4, 4, 4] // [2, 3, 4] (Python 2 integer division)
    w = method.class_weights("feb2020", GIVEN, KEEP, num_classes=3, true_labels=TRUE)
    np.testing.assert_array_equal(w, [4 // 2, 4 // 3, 4 // 4])
    assert w.dtype == np.float32


def test_feb2020_rule_on_full_cifar10_is_5000_over_kept_counts_floored():
    true = np.repeat(np.arange(10), 5000)
    keep = np.ones(50000, dtype=bool)
    keep[:2001] = False  # 2001 airplanes removed: 5000 / 2999 = 1.67, floored to 1
    w = method.class_weights("feb2020", true, keep, num_classes=10, true_labels=true)
    assert w[0] == 1 and np.all(w[1:] == 1)
    keep[:2501] = False  # 5000 / 2499 = 2.0008 -> 2
    assert method.class_weights("feb2020", true, keep, num_classes=10, true_labels=true)[0] == 2


def _keep_with_counts(kept_per_class: list[int], per_class: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """True labels in ImageFolder order (class blocks) and a mask keeping the first c_k rows of class k.

    The Feb-2020 weights depend on the mask only through these counts.
    """
    true = np.repeat(np.arange(len(kept_per_class)), per_class)
    keep = np.concatenate([np.arange(per_class) < c for c in kept_per_class])
    return true, keep


def test_feb2020_weights_on_the_published_masks_are_the_originals_floored_integers():
    """The 60 masks the Feb-2020 Co-Teaching runs trained on (published_coteaching_masks.json)."""
    facts = json.loads(PUBLISHED_MASKS.read_text())["masks"]
    assert sum(len(methods) for methods in facts.values()) == 60
    for condition, methods in facts.items():
        for name, mask in methods.items():
            counts = mask["kept_per_true_class"]
            true, keep = _keep_with_counts(counts)
            assert keep.sum() == mask["kept"], (condition, name)
            w = method.class_weights("feb2020", true, keep, num_classes=10, true_labels=true)
            # Python 2.7: int / int on numpy integer arrays is floor division.
            assert w.tolist() == [float(5000 // c) for c in counts], (condition, name)
    # The run whose log is published (Train size: 35686) trained with airplane 2, every other class 1,
    # where true division gives 1.17-2.15.
    pbnr = facts["0.0/0.2"]["cl_pbnr"]
    true, keep = _keep_with_counts(pbnr["kept_per_true_class"])
    assert pbnr["kept"] == 35686
    w = method.class_weights("feb2020", true, keep, num_classes=10, true_labels=true)
    assert w.tolist() == [2.0] + [1.0] * 9
    ratio = 5000 / np.array(pbnr["kept_per_true_class"])
    assert ratio.min() > 1.16 and ratio.max() > 2.1 and not np.array_equal(w, ratio)


def test_only_the_feb2020_rule_floors():
    true = np.repeat(np.arange(3), 3)
    keep = np.array([1, 1, 0, 1, 1, 0, 1, 1, 1], dtype=bool)  # kept 2, 2, 3 of 3 each
    np.testing.assert_allclose(method.class_weights("jair2021", true, keep, num_classes=3, true_labels=true),
                               [1.5, 1.5, 1.0])
    np.testing.assert_allclose(method.class_weights("given", true, keep, num_classes=3), [1.5, 1.5, 1.0])
    assert method.class_weights("feb2020", true, keep, num_classes=3, true_labels=true).tolist() == [1, 1, 1]


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
