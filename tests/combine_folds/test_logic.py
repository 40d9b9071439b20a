import numpy as np
import pytest
from clpipe.components.combine_folds import logic
from clpipe.components.common.errors import InputError


def make_folds(n=40, k=3, n_folds=4, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n).astype(dtype)
    labels = rng.integers(0, k, n)
    rows = rng.permutation(n)
    folds = []
    for f, idx in enumerate(np.array_split(rows, n_folds)):
        metrics = {"fold": f, "n_folds": n_folds, "n_examples": n, "n_classes": k,
                   "dataset_fingerprint": "d", "labels_fingerprint": "l", "classes": ["a", "b", "c"][:k]}
        folds.append(logic.FoldOutput(f"fold{f}", idx, probs[idx], labels[idx], metrics))
    return folds, probs, labels


def test_any_order_gives_row_order():
    folds, probs, labels = make_folds()
    combined = logic.combine_folds(folds[::-1])
    np.testing.assert_array_equal(combined.pred_probs, probs)
    np.testing.assert_array_equal(combined.labels, labels)
    s = combined.summary
    assert s["n_examples"] == 40 and s["n_folds"] == 4 and [f["fold"] for f in s["folds"]] == [0, 1, 2, 3]
    assert np.array(s["confusion_matrix"]).sum() == 40
    assert s["accuracy"] == pytest.approx((probs.argmax(1) == labels).mean())


def test_float16_input_is_kept_as_is():
    folds, probs, _ = make_folds(dtype=np.float16)
    combined = logic.combine_folds(folds)
    assert combined.pred_probs.dtype == np.float16
    np.testing.assert_array_equal(combined.pred_probs, probs)


def test_row_covered_twice():
    folds, _, _ = make_folds()
    folds[2].indices = folds[2].indices.copy()
    folds[2].indices[0] = folds[0].indices[0]
    with pytest.raises(InputError, match=r"fold2: indices.npy: row \d+ is covered twice \(also by fold0\)"):
        logic.combine_folds(folds)


def test_row_covered_by_no_fold():
    folds, _, _ = make_folds()
    f = folds[1]
    folds[1] = logic.FoldOutput(f.source, f.indices[1:], f.pred_probs[1:], f.labels[1:], f.metrics)
    with pytest.raises(InputError, match=r"1 of 40 rows are covered by no fold"):
        logic.combine_folds(folds)


def test_mismatched_class_counts():
    folds, _, _ = make_folds()
    folds[3].metrics = {**folds[3].metrics, "n_classes": 4}
    with pytest.raises(InputError, match=r"fold3: .*(n_classes|4 classes)"):
        logic.combine_folds(folds)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf(bad):
    folds, _, _ = make_folds()
    folds[1].pred_probs = folds[1].pred_probs.copy()
    folds[1].pred_probs[2, 0] = bad
    with pytest.raises(InputError, match=r"fold1: pred_probs.npy: contains NaN or inf, first in row 2"):
        logic.combine_folds(folds)


def test_rows_must_sum_to_one():
    folds, _, _ = make_folds()
    folds[0].pred_probs = folds[0].pred_probs * 0.9
    with pytest.raises(InputError, match=r"fold0: pred_probs.npy: 10 rows do not sum to 1"):
        logic.combine_folds(folds)


@pytest.mark.parametrize("field", ["dataset_fingerprint", "labels_fingerprint", "n_examples"])
def test_mixed_sources_are_refused(field):
    folds, _, _ = make_folds()
    folds[2].metrics = {**folds[2].metrics, field: "other" if "finger" in field else 41}
    with pytest.raises(InputError, match=rf"fold2: metrics.json: {field}"):
        logic.combine_folds(folds)


def test_wrong_number_of_folds_and_duplicates():
    folds, _, _ = make_folds()
    with pytest.raises(InputError, match="got 3 fold outputs for a 4-fold split"):
        logic.combine_folds(folds[:3])
    folds[3].metrics = {**folds[3].metrics, "fold": 0}
    with pytest.raises(InputError, match="fold 0 given twice"):
        logic.combine_folds(folds)
