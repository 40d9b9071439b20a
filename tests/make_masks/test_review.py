"""make-masks with a dataset: the ranked label issues, per-class counts, noise matrix and cleaned
labels, on scikit-learn's digits with known injected label errors (data nobody here made)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from clpipe.components.common import datasets
from clpipe.components.common.artifacts import LabelIssues
from clpipe.components.make_masks.cli import main
from clpipe.components.make_masks.logic import ALL_METHODS

from tests.your_data import digits_imagefolder


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """Digits with 10 % of the images in a wrong folder, out-of-sample pred_probs from a 4-fold
    logistic regression on the pixels, and the make-masks output with the review files."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    tmp = tmp_path_factory.mktemp("digits-review")
    folder = digits_imagefolder(tmp / "data", noise=0.1, seed=0)
    split = datasets.open_split(str(folder.root))
    x = split.images()[..., 0].reshape(len(split), -1) / 255.0
    probs = cross_val_predict(LogisticRegression(max_iter=2000), x, split.labels, cv=4, method="predict_proba")
    np.save(tmp / "labels.npy", split.labels)
    np.save(tmp / "pred_probs.npy", probs.astype(np.float32))
    out = tmp / "masks"
    code = main(["--labels", str(tmp / "labels.npy"), "--pred-probs", str(tmp / "pred_probs.npy"),
                 "--dataset", str(folder.root), "--out", str(out)])
    assert code == 0
    return folder, split, out


def test_label_issues_csv_is_ranked_with_class_names(digits_run):
    _folder, split, out = digits_run
    with open(out / "label_issues.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [*LabelIssues.COLUMNS, *ALL_METHODS]
    assert len(rows) == len(split)
    quality = [float(r["label_quality"]) for r in rows]
    assert quality == sorted(quality)
    assert {r["given_label"] for r in rows} == set(split.classes)  # names, not integers
    first = rows[0]
    assert first["file"] == str(split.files[int(first["row"])])
    assert first["given_label"] == split.classes[split.labels[int(first["row"])]]
    assert {r["is_label_issue"] for r in rows} == {"0", "1"}
    assert all(r["is_label_issue"] == r["cl_pbnr"] for r in rows)


def test_ranked_issues_find_the_injected_errors(digits_run):
    """Precision/recall of the flagged set and of the top-k against the 180 images moved on purpose."""
    folder, split, out = digits_run
    table = LabelIssues.read(str(out))
    injected = {str(split.files[split.names.tolist().index(n)]) for n in folder.flipped}
    flagged = set(table.columns["file"][table.columns["is_label_issue"]])
    precision = len(flagged & injected) / len(flagged)
    recall = len(flagged & injected) / len(injected)
    top_k = set(table.columns["file"][: len(injected)])
    assert precision > 0.8 and recall > 0.8, (precision, recall)
    assert len(top_k & injected) / len(injected) > 0.8
    # the suggested label of a found error is mostly the true class
    found = [i for i, f in enumerate(table.columns["file"]) if f in injected and table.columns["is_label_issue"][i]]
    by_file = {str(split.files[k]): folder.true_class[n] for k, n in enumerate(split.names)}
    right = [table.columns["suggested_label"][i] == by_file[table.columns["file"][i]] for i in found]
    assert np.mean(right) > 0.9


def test_cleaned_labels_drop_each_methods_flagged_rows(digits_run):
    _, split, out = digits_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == list(split.classes) and summary["issue_method"] == "cl_pbnr"
    for method in ALL_METHODS:
        keep = np.load(out / f"train_pruned_{method}" / "train_mask.npy")
        cleaned = json.loads((out / f"train_pruned_{method}" / "cleaned_labels.json").read_text())
        assert list(cleaned) == split.names[keep].tolist()
        assert list(cleaned.values()) == split.labels[keep].tolist()
        assert len(split) - len(cleaned) == summary["methods"][method]["removed"]


def test_noise_matrix_and_per_class_counts(digits_run):
    _, split, out = digits_run
    noise = np.load(out / "noise_matrix.npy")
    assert noise.shape == (10, 10)
    np.testing.assert_allclose(noise.sum(axis=0), 1.0, atol=1e-6)  # columns: P(given | true = j)
    assert 0.75 < np.mean(np.diag(noise)) < 0.97  # 10 % injected noise
    with open(out / "issues_per_class.csv") as f:
        per_class = list(csv.DictReader(f))
    assert [r["class"] for r in per_class] == list(split.classes)
    assert sum(int(r["given"]) for r in per_class) == len(split)
    summary = json.loads((out / "summary.json").read_text())
    assert sum(int(r["label_issues"]) for r in per_class) == summary["n_label_issues"]


@pytest.mark.parametrize("extra, message", [
    (["--subset-per-class", "20"], "has 200 train rows with subset_per_class=20, the pred_probs have 1797"),
    (["--methods", "argmax"], "--issue-method: 'cl_pbnr' is not among the computed methods ['argmax']"),
])
def test_review_bad_inputs_exit_2_without_output(digits_run, tmp_path, capsys, extra, message):
    folder, _, out = digits_run
    target = tmp_path / "masks"
    code = main(["--labels", str(out.parent / "labels.npy"), "--pred-probs", str(out.parent / "pred_probs.npy"),
                 "--dataset", str(folder.root), "--out", str(target), *extra])
    assert code == 2 and not target.exists()
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("ERROR make-masks: ") and message in lines[-1]
    assert sum(line.startswith("ERROR") for line in lines) == 1


@pytest.mark.parametrize("n_classes", [2, 100])
def test_two_and_a_hundred_classes(n_classes, tmp_path):
    """Synthetic out-of-sample pred_probs on an ImageFolder of K classes with one known flip per class pair."""
    from tests.your_data import png

    per_class = 30 if n_classes == 2 else 6
    for k in range(n_classes):
        folder = tmp_path / "data" / "train" / f"class-{k:03d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"{i}.png").write_bytes(png(np.full((2, 2, 3), k, np.uint8)))
    split = datasets.open_split(str(tmp_path / "data"))
    rng = np.random.default_rng(0)
    truth = split.labels.copy()
    wrong = np.arange(0, len(split), per_class)[: max(2, n_classes // 5)]  # the first image of some classes
    truth[wrong] = (split.labels[wrong] + 1) % n_classes  # it really shows the next class
    logits = rng.normal(size=(len(split), n_classes))
    logits[np.arange(len(split)), truth] += 8.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.save(tmp_path / "labels.npy", split.labels)
    np.save(tmp_path / "probs.npy", probs)
    out = tmp_path / "masks"
    assert main(["--labels", str(tmp_path / "labels.npy"), "--pred-probs", str(tmp_path / "probs.npy"),
                 "--dataset", str(tmp_path / "data"), "--methods", "argmax", "cl_pbnr", "--out", str(out)]) == 0
    table = LabelIssues.read(str(out))
    assert table.methods == ("argmax", "cl_pbnr")
    top = set(table.columns["row"][: len(wrong)].tolist())
    assert top == set(wrong.tolist())
    assert set(table.columns["suggested_label"][: len(wrong)]) <= set(split.classes)
    assert np.load(out / "noise_matrix.npy").shape == (n_classes, n_classes)
