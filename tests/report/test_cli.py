"""clpipe report through its CLI: condition.json from stage directories, the rendered report
(Markdown, HTML, CSV, PNG figures), bad input -> exit 2 and nothing written."""

import json
import os

import numpy as np
from clpipe.components.common import storage
from clpipe.components.common.datasets import open_split, subset_rows

from clpipe import cli as clpipe_cli

from .conftest import K, labels_summary, masks_summary, probs_summary, run_metrics


def _write(directory, name, data, stage):
    """A stage output holding one JSON file, published with its manifest as ``stage`` would."""
    with storage.staged_output(str(directory), stage=stage) as tmp:
        storage.save_json(os.path.join(tmp, name), data)
    return str(directory)


def _condition_dirs(root, name, noise, methods=("none", "argmax", "cl_pbnr")):
    labels = labels_summary(name, noise, 0.0, noise)
    return {
        "labels": _write(root / name / "labels", "summary.json", labels, "noisy-labels"),
        "probs": _write(root / name / "probs", "summary.json", probs_summary(), "combine-folds"),
        "masks": _write(root / name / "masks", "summary.json", masks_summary(), "make-masks"),
        "runs": [_write(root / name / f"run-{m}", "metrics.json", run_metrics(m), "coteach") for m in methods],
    }


def _report_condition(d, out, *extra) -> int:
    """``clpipe report condition`` over the stage directories ``d``; returns the exit code."""
    argv = ["report", "condition", "--labels", d["labels"], "--pred-probs", d["probs"], "--masks", d["masks"]]
    return clpipe_cli.main([*argv, *extra, "--out", str(out), *d["runs"]])


def _condition(root, name, noise):
    out = root / name / "result"
    assert _report_condition(_condition_dirs(root, name, noise), out) == 0
    return str(out)


def test_condition_then_render(tmp_path, capsys):
    results = [_condition(tmp_path, "n40", 0.4), _condition(tmp_path, "n20", 0.2)]
    record = json.loads((tmp_path / "n40" / "result" / "condition.json").read_text())
    assert list(record["runs"]) == ["argmax", "cl_pbnr", "none"]
    out = tmp_path / "report"
    assert clpipe_cli.main(["report", "render", "--print", "--out", str(out), *results]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "clpipe-manifest.json",
        "detection.csv",
        "plots",
        "report.html",
        "report.md",
        "results.csv",
        "results.json",
    ]
    pngs = sorted(p.name for p in (out / "plots").iterdir())
    assert pngs == ["accuracy_curves.png", "noise_matrices.png", "removed_counts.png"]
    assert all((out / "plots" / p).read_bytes().startswith(b"\x89PNG") for p in pngs)
    printed = capsys.readouterr().out
    assert "| method | n20<br>20 %, S 0 | n40<br>40 %, S 0 |" in printed
    assert "| CL: PBNR | 0.500 (0.892) | 0.500 (0.863) |" in printed
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 6
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_a_run_without_a_mask_exits_2_and_writes_nothing(tmp_path, capsys):
    d = _condition_dirs(tmp_path, "c", 0.2, methods=("cl_both",))
    out = tmp_path / "result"
    assert _report_condition(d, out) == 2
    assert "has no mask" in capsys.readouterr().err
    assert not out.exists()


def test_render_of_a_missing_condition_exits_2(tmp_path, capsys):
    out = tmp_path / "report"
    assert clpipe_cli.main(["report", "render", "--out", str(out), str(tmp_path / "nowhere")]) == 2
    assert "nowhere: output not found" in capsys.readouterr().err
    assert not out.exists()


def _tiny_dataset(root, n_per_class=10):
    """A 3-class .npz dataset; returns its path and its train split (rows in ImageFolder order)."""
    labels = np.repeat(np.arange(K), n_per_class)
    path = root / "tiny.npz"
    np.savez(path, images=np.zeros((len(labels), 32, 32, 3), np.uint8), labels=labels, classes=np.array(["a", "b", "c"]))
    return str(path), open_split(str(path), "train")


def _mask_dirs(root, split, given, keep_masks):
    """A noisy-labels and a make-masks output (with their manifests) around ``keep_masks``."""
    with storage.staged_output(str(root / "labels"), stage="noisy-labels") as tmp:
        storage.save_npy(os.path.join(tmp, "labels.npy"), given)
        storage.save_json(os.path.join(tmp, "summary.json"), labels_summary("t", 0.4, 0.0, 0.4))
    n = len(next(iter(keep_masks.values())))
    with storage.staged_output(str(root / "masks"), stage="make-masks") as tmp:
        for method, keep in keep_masks.items():
            storage.save_npy(storage.join(tmp, f"train_pruned_{method}", "train_mask.npy"), keep)
        storage.save_json(os.path.join(tmp, "summary.json"), masks_summary(n, methods=tuple(keep_masks)))
    probs = _write(root / "probs", "summary.json", probs_summary(n), "combine-folds")
    return {"labels": str(root / "labels"), "probs": probs, "masks": str(root / "masks"), "runs": []}


def test_condition_with_the_dataset_scores_the_masks_against_the_real_errors(tmp_path):
    dataset, split = _tiny_dataset(tmp_path)
    given = split.labels.copy()
    given[[0, 1, 2, 15]] = (given[[0, 1, 2, 15]] + 1) % K  # 4 real errors: 3 of class a, 1 of class b
    removed = np.zeros(len(given), bool)
    removed[[0, 1, 15, 20, 21]] = True  # finds 3 of them, removes 2 correct labels
    d = _mask_dirs(tmp_path, split, given, {"cl_pbnr": ~removed, "argmax": np.ones(len(given), bool)})
    out = tmp_path / "result"
    assert _report_condition(d, out, "--dataset", dataset) == 0
    found = json.loads((out / "condition.json").read_text())["detection"]
    assert found["real_errors"] == 4 and found["real_errors_per_class"] == [3, 1, 0]
    assert found["classes"] == ["a", "b", "c"]
    assert found["methods"]["cl_pbnr"] == {
        "removed": 5, "errors_removed": 3, "precision": 0.6, "recall": 0.75, "errors_removed_per_class": [2, 1, 0]
    }
    assert found["methods"]["argmax"]["precision"] is None and found["methods"]["argmax"]["recall"] == 0.0


def test_masks_of_the_cross_validated_subset_are_scored_on_its_rows(tmp_path):
    dataset, split = _tiny_dataset(tmp_path)
    given = (split.labels + 1) % K  # every label wrong
    rows = subset_rows(split.labels, 4, 7)
    d = _mask_dirs(tmp_path, split, given, {"cl_pbnr": np.zeros(len(rows), bool)})
    out = tmp_path / "result"
    argv = ["--dataset", dataset, "--subset-per-class", "4", "--subset-seed", "7"]
    assert _report_condition(d, out, *argv) == 0
    found = json.loads((out / "condition.json").read_text())["detection"]
    assert found["n_examples"] == found["real_errors"] == 12 and found["methods"]["cl_pbnr"]["precision"] == 1.0


def test_masks_of_another_size_exit_2(tmp_path, capsys):
    dataset, split = _tiny_dataset(tmp_path)
    d = _mask_dirs(tmp_path, split, split.labels, {"cl_pbnr": np.ones(7, bool)})
    assert _report_condition(d, tmp_path / "result", "--dataset", dataset) == 2
    assert "7 rows: neither the whole split" in capsys.readouterr().err
    assert not (tmp_path / "result").exists()


def test_review_files_go_into_the_condition_record_and_the_report_links_them(tmp_path):
    """make-masks given the dataset wrote the review files: ``report condition`` copies the tables and
    writes the gallery next to condition.json; ``report render`` puts them under review-<condition>/."""
    from clpipe.components.make_masks.stage import make_masks

    dataset, split = _tiny_dataset(tmp_path)
    given = split.labels.copy()
    given[[0, 15]] = (given[[0, 15]] + 1) % K
    probs = np.full((len(given), K), 0.05, np.float32)
    probs[np.arange(len(given)), split.labels] = 0.9
    d = _mask_dirs(tmp_path, split, given, {"cl_pbnr": np.ones(len(given), bool)})
    np.save(tmp_path / "probs.npy", probs)
    make_masks(labels=str(tmp_path / "labels" / "labels.npy"), pred_probs=str(tmp_path / "probs.npy"),
               dataset=dataset, out=str(tmp_path / "review-masks"))
    d["masks"] = str(tmp_path / "review-masks")
    out = tmp_path / "result"
    assert _report_condition(d, out, "--dataset", dataset) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "cleaned_labels.json", "clpipe-manifest.json", "condition.json", "gallery.html", "issues_per_class.csv",
        "label_issues.csv", "noise_matrix.csv"]
    copied = (out / "label_issues.csv").read_bytes()
    assert copied == (tmp_path / "review-masks" / "label_issues.csv").read_bytes()
    record = json.loads((out / "condition.json").read_text())
    assert record["review"] == {"issue_method": "cl_pbnr", "n_label_issues": 2, "n_examples": 30,
                                "files": ["label_issues.csv", "issues_per_class.csv", "noise_matrix.csv",
                                          "cleaned_labels.json", "gallery.html"]}
    assert "<b>2</b> of <b>30</b> images" in (out / "gallery.html").read_text()
    cleaned = json.loads((out / "cleaned_labels.json").read_text())
    assert len(cleaned) == 28 and str(split.names[0]) not in cleaned  # the 2 flagged rows left out
    noise = np.load(tmp_path / "review-masks" / "noise_matrix.npy")
    assert (out / "noise_matrix.csv").read_text().splitlines() == [
        "given \\ true,a,b,c", *[f"{c}," + ",".join(f"{p:.4f}" for p in row) for c, row in zip("abc", noise)]]

    assert record["no_model"] == "no-test-split"  # no Co-Teaching run, and tiny.npz is a train split alone

    report = tmp_path / "report"
    assert clpipe_cli.main(["report", "render", "--out", str(report), str(out)]) == 0
    assert sorted(p.name for p in (report / "plots").iterdir()) == ["noise_matrices.png", "removed_counts.png"]
    assert sorted(p.name for p in (report / "review-t").iterdir()) == [
        "cleaned_labels.json", "gallery.html", "issues_per_class.csv", "label_issues.csv", "noise_matrix.csv"]
    text = (report / "report.md").read_text()
    assert "## Label issues to review" in text
    assert "- t: 2 of 30 images flagged as label issues by CL: PBNR" in text
    assert "[gallery.html](review-t/gallery.html)" in text
    assert '<a href="review-t/gallery.html">gallery.html</a>' in (report / "report.html").read_text()
    # No model: said in the title and the summary, with the labels to train one; no accuracy anywhere.
    assert text.startswith("# clpipe results: confident learning (label errors only) on ")
    assert ("- t: the dataset has no test split, which Co-Teaching is scored on, so this run found the label "
            "errors only. [review-t/cleaned_labels.json](review-t/cleaned_labels.json) holds the given labels of "
            "the 28 images CL: PBNR did not flag") in text
    assert "Test accuracy" not in text and "accuracy_curves" not in text
    (cost,) = [line for line in text.split("## Cost")[1].splitlines() if line.startswith("| t |")]
    assert cost.split("|")[3].strip() == "-"  # Co-Teaching's task time: it did not run, not 0 s
    assert (report / "results.csv").read_text().count("\n") == 1  # the header: no Co-Teaching run to list


def test_a_condition_without_runs_says_why_no_model_was_trained(tmp_path):
    dataset, split = _tiny_dataset(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    for name in ("tiny_train.npz", "tiny_test.npz"):
        (root / name).write_bytes((tmp_path / "tiny.npz").read_bytes())
    d = _mask_dirs(tmp_path, split, split.labels, {"cl_pbnr": np.ones(len(split), bool)})
    for i, (extra, reason) in enumerate([(["--dataset", dataset], "no-test-split"),
                                         (["--dataset", str(root)], "not-run"), ([], "not-run")]):
        assert _report_condition(d, tmp_path / f"result{i}", *extra) == 0
        assert json.loads((tmp_path / f"result{i}" / "condition.json").read_text())["no_model"] == reason
    report = tmp_path / "report"
    assert clpipe_cli.main(["report", "render", "--out", str(report), str(tmp_path / "result1")]) == 0
    assert "- t: Co-Teaching was not run (coteach: off), so this run found the label errors only." in (
        report / "report.md").read_text()


def test_a_record_without_review_files_renders_no_review_section(tmp_path):
    out = tmp_path / "report"
    assert clpipe_cli.main(["report", "render", "--out", str(out), _condition(tmp_path, "n40", 0.4)]) == 0
    assert not [p for p in out.iterdir() if p.name.startswith("review")]
    assert "Label issues to review" not in (out / "report.md").read_text()
