"""make_masks: cleanlab 2.9 calls, method properties, dtype handling, input validation."""

from __future__ import annotations

import numpy as np
import pytest
from cleanlab.count import compute_confident_joint
from cleanlab.filter import find_label_issues
from clpipe.components.common.errors import InputError
from clpipe.components.make_masks.logic import (
    ALL_METHODS,
    COMPAT_2021,
    PAPER_NAMES,
    make_masks,
    summarize,
)

from .conftest import noisy_dataset

MODES = [None, COMPAT_2021]
_FILTER_BY = {"argmax": "predicted_neq_given", "cl_pbc": "prune_by_class",
              "cl_pbnr": "prune_by_noise_rate", "cl_both": "both"}


def direct_cleanlab_keep(labels: np.ndarray, pred_probs: np.ndarray) -> dict[str, np.ndarray]:
    """The notes' §2 table, called directly."""
    keep = {m: ~find_label_issues(labels, pred_probs, filter_by=f, n_jobs=1) for m, f in _FILTER_BY.items()}
    _, off_diagonal = compute_confident_joint(labels, pred_probs, return_indices_of_off_diagonals=True)
    keep["conf_joint_only"] = np.ones(len(labels), dtype=bool)
    keep["conf_joint_only"][off_diagonal] = False
    return keep


def assert_same_masks(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(got) == list(ALL_METHODS)
    for method in ALL_METHODS:
        assert got[method].dtype == bool and got[method].shape == expected[method].shape
        assert np.array_equal(got[method], expected[method]), method


# --- cleanlab 2.9 mode -------------------------------------------------------------------------

@pytest.mark.parametrize("condition", ["0.4/0.4", "0.6/0.6"])
def test_29_mode_equals_direct_cleanlab_calls_on_published_data(published, condition):
    labels, pred_probs = published(condition)
    assert_same_masks(make_masks(labels, pred_probs), direct_cleanlab_keep(labels, pred_probs))


@pytest.mark.parametrize("seed", [0, 1])
def test_29_mode_equals_direct_cleanlab_calls_on_synthetic_data(seed):
    _, noisy, _, pred_probs = noisy_dataset(seed)
    assert_same_masks(make_masks(noisy, pred_probs), direct_cleanlab_keep(noisy, pred_probs))


def test_conf_joint_only_is_not_filter_by_confident_learning(published):
    """C_{y~,y*} keeps the off-diagonal rows whose argmax is the label (notes §2, issue #722)."""
    labels, pred_probs = published("0.4/0.4")
    keep = make_masks(labels, pred_probs, methods=["conf_joint_only"])["conf_joint_only"]
    filtered = ~find_label_issues(labels, pred_probs, filter_by="confident_learning", n_jobs=1)
    extra_removed = ~keep & filtered
    assert extra_removed.any()
    assert np.all(pred_probs[extra_removed].argmax(axis=1) == labels[extra_removed])


# --- properties of both modes ----------------------------------------------------------------

@pytest.mark.parametrize("compat", MODES)
@pytest.mark.parametrize("condition", ["0.0/0.6", "0.4/0.6"])
def test_both_is_the_and_of_pbc_and_pbnr_flags(published, compat, condition):
    labels, pred_probs = published(condition)
    keep = make_masks(labels, pred_probs, compat=compat)
    assert np.array_equal(~keep["cl_both"], ~keep["cl_pbc"] & ~keep["cl_pbnr"])


@pytest.mark.parametrize("compat", MODES)
def test_pruning_methods_never_remove_rows_whose_argmax_is_the_label(published, compat):
    labels, pred_probs = published("0.2/0.4")
    keep = make_masks(labels, pred_probs, compat=compat)
    agrees = pred_probs.argmax(axis=1) == labels
    assert np.array_equal(keep["argmax"], agrees)  # float16: 2.9's 1e-6 nudge is lost to rounding
    for method in ("cl_pbc", "cl_pbnr", "cl_both"):
        assert keep[method][agrees].all()


@pytest.mark.parametrize("compat", MODES)
@pytest.mark.parametrize("seed", [0, 1])
def test_removed_examples_are_mostly_real_label_errors(compat, seed):
    """With a known noise matrix, CL removes mostly mislabeled rows and finds most of them."""
    true, noisy, noise_matrix, pred_probs = noisy_dataset(seed)
    assert 0.2 < 1 - np.trace(noise_matrix) / len(noise_matrix) < 0.4
    is_error = true != noisy
    for method, keep in make_masks(noisy, pred_probs, compat=compat).items():
        removed = ~keep
        precision = is_error[removed].mean()
        recall = removed[is_error].mean()
        assert precision > 0.75 and recall > 0.6, (method, precision, recall)


@pytest.mark.parametrize("compat", MODES)
def test_methods_subset_keeps_the_requested_order(compat):
    _, noisy, _, pred_probs = noisy_dataset(0, n=400)
    masks = make_masks(noisy, pred_probs, methods=["cl_both", "argmax", "cl_both"], compat=compat)
    assert list(masks) == ["cl_both", "argmax"]
    assert np.array_equal(masks["cl_both"], make_masks(noisy, pred_probs, compat=compat)["cl_both"])


def test_summary_counts_removed_rows_by_given_label():
    labels = np.array([0, 0, 1, 2, 2, 2])
    keep = {"cl_pbc": np.array([True, False, True, False, False, True])}
    assert summarize(keep, labels, 4) == {
        "cl_pbc": {"paper_name": PAPER_NAMES["cl_pbc"], "removed": 3, "kept": 3,
                   "removed_per_class": [1, 0, 2, 0]}
    }


# --- dtypes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("compat", MODES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_accepts_float_dtypes_and_leaves_inputs_untouched(compat, dtype):
    _, noisy, _, pred_probs = noisy_dataset(2, n=600)
    pred_probs = pred_probs.astype(dtype)
    before = pred_probs.copy()
    masks = make_masks(noisy, pred_probs, compat=compat)
    assert np.array_equal(pred_probs, before) and pred_probs.dtype == dtype
    assert all(m.dtype == bool and m.shape == noisy.shape for m in masks.values())


def test_float16_is_not_cast_up_in_29_mode(published):
    """On float16, exact ties go to the lowest class; after a cast, 2.9's 1e-6 nudge sends them
    to the given label (notes §3 item 4) -- 0.4/0.4 has one such row."""
    labels, pred_probs = published("0.4/0.4")
    as_float16 = make_masks(labels, pred_probs, methods=["argmax"])["argmax"]
    as_float64 = make_masks(labels, pred_probs.astype(np.float64), methods=["argmax"])["argmax"]
    assert int(as_float16.sum()) == 24377 and int(as_float64.sum()) == 24378


def test_2021_mode_prunes_on_a_float32_copy(published):
    """PBNR margins of float16 rows are exact in float32 but rounded in float16 (notes §3 item 3)."""
    from clpipe.components.make_masks.compat2021 import (
        confident_joint_2021,
        prune_by_noise_rate_2021,
        prune_counts_2021,
    )

    labels, pred_probs = published("0.4/0.6")
    counts = prune_counts_2021(confident_joint_2021(labels, pred_probs)[0])
    in_float32 = prune_by_noise_rate_2021(labels, pred_probs.astype(np.float32), counts)
    in_float16 = prune_by_noise_rate_2021(labels, pred_probs, counts)
    keep = make_masks(labels, pred_probs, methods=["cl_pbnr"], compat=COMPAT_2021)["cl_pbnr"]
    disagrees = pred_probs.argmax(axis=1) != labels
    assert np.array_equal(~keep, in_float32 & disagrees)
    assert not np.array_equal(in_float32 & disagrees, in_float16 & disagrees)


# --- validation --------------------------------------------------------------------------------

def _valid():
    _, noisy, _, pred_probs = noisy_dataset(4, n=300)
    return noisy, pred_probs


def _bad_inputs():
    labels, probs = _valid()
    nan = probs.copy()
    nan[7, 1] = np.nan
    negative = probs.copy()
    negative[3] = [1.2, -0.2, 0.0, 0.0]
    out_of_range = labels.copy()
    out_of_range[5] = 4
    missing_class = np.where(labels == 3, 0, labels)
    return {
        "length mismatch": (labels[:-1], probs, "labels", "has 299 rows"),
        "labels 2-D": (labels[:, None], probs, "labels", "1-D"),
        "float labels": (labels.astype(float), probs, "labels", "integer"),
        "pred_probs 1-D": (labels, probs[:, 0], "pred_probs", "shape (N, K)"),
        "one class": (labels, probs[:, :1], "pred_probs", "K >= 2"),
        "integer pred_probs": (labels, (probs > 0.5).astype(np.int64), "pred_probs", "float16/32/64"),
        "NaN": (labels, nan, "pred_probs", "NaN or inf"),
        "negative": (labels, negative, "pred_probs", "negative"),
        "unnormalized scores": (labels, probs * 3, "pred_probs", "do not sum to 1"),
        "label >= K": (out_of_range, probs, "labels", "outside [0, 4)"),
        "class without examples": (missing_class, probs, "labels", "[3] have no examples"),
    }


@pytest.mark.parametrize("compat", MODES)
@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_inputs_raise_input_error_naming_file_and_field(case, compat):
    labels, probs, field, problem = _bad_inputs()[case]
    with pytest.raises(InputError) as raised:
        make_masks(labels, probs, compat=compat, labels_source="L.json", pred_probs_source="P.npy")
    error = raised.value
    assert error.field == field and problem in error.problem
    assert error.source == ("L.json" if field == "labels" else "P.npy")


def test_float16_rounding_of_row_sums_is_accepted(published):
    _, pred_probs = published("0.6/0.6")  # rows sum to 0.986-1.0003
    sums = pred_probs.astype(np.float64).sum(axis=1)
    assert sums.min() < 0.99
    make_masks(*published("0.6/0.6"), methods=["argmax"])


@pytest.mark.parametrize("methods", [["argmax", "cl_nope"], []])
def test_unknown_or_no_method_is_an_input_error(methods):
    with pytest.raises(InputError, match="method"):
        make_masks(*_valid(), methods=methods)


def test_unknown_compat_is_an_input_error():
    with pytest.raises(InputError, match="compat"):
        make_masks(*_valid(), compat="cleanlab-2019")
