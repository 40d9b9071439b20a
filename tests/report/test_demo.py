"""The README's main command end to end: ``clpipe run pipelines/configs/demo.yaml`` (Co-Teaching cut to 2 epochs
by a flag, which the config's flags override; everything else as configured).

Checks the report's structure, that the run's own chatter went to the log file, and that the label errors it
reports found equal a direct cleanlab computation on the same inputs (the published label file and pred_probs;
the true labels from the official CIFAR-10 order through the published row permutation, not through clpipe's
own reading of the dataset). The accuracy gap is a benchmark figure (benchmarks/tune_demo.py), not asserted."""

from __future__ import annotations

import csv
import gzip
import io
import json

import numpy as np
import pytest
import yaml

from clpipe import cli as clpipe_cli
from tests.conftest import CL_REPRODUCE, REPO, SHARED

pytestmark = pytest.mark.slow

DEMO = REPO / "pipelines" / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    capture = pytest.MonkeyPatch()
    stdout, stderr = io.StringIO(), io.StringIO()
    capture.setattr("sys.stdout", stdout)
    capture.setattr("sys.stderr", stderr)
    try:
        code = clpipe_cli.main(["run", str(DEMO), "--coteach-epochs", "2", "--output", str(out)])
    finally:
        capture.undo()
    assert code == 0, stderr.getvalue()[-3000:]
    return out, stdout.getvalue(), stderr.getvalue()


def _direct_cleanlab(labels_url: str, pyx_url: str) -> dict[str, tuple[int, float, float]]:
    """(removed, precision, recall) per method, straight from cleanlab on the published files."""
    from cleanlab.count import compute_confident_joint
    from cleanlab.filter import find_label_issues

    with gzip.open(labels_url, "rt") as f:
        given = np.array(list(json.load(f).values()))  # row order = key order
    pyx = np.load(pyx_url)
    perm = np.load(CL_REPRODUCE / "cifar10_train_order.npy")
    true = np.load(SHARED / "cifar10" / "cifar10_labels.npz")["train_labels"].astype(np.int64)[perm]
    errors = given != true
    issues = {
        m: find_label_issues(given, pyx, filter_by=f, n_jobs=1)
        for m, f in (
            ("argmax", "predicted_neq_given"),
            ("cl_pbc", "prune_by_class"),
            ("cl_pbnr", "prune_by_noise_rate"),
            ("cl_both", "both"),
        )
    }
    _, off_diagonal = compute_confident_joint(given, pyx, return_indices_of_off_diagonals=True)
    issues["conf_joint_only"] = np.isin(np.arange(len(given)), off_diagonal)
    return {
        m: (int(i.sum()), (i & errors).sum() / i.sum(), (i & errors).sum() / errors.sum())
        for m, i in issues.items()
    }


def test_detection_equals_cleanlab_on_the_same_inputs(demo):
    out, _, _ = demo
    config = yaml.safe_load(DEMO.read_text())
    rows = list(csv.DictReader(io.StringIO((out / "report" / "detection.csv").read_text())))
    by_condition = {}
    for row in rows:
        by_condition.setdefault(row["condition"], {})[row["method"]] = row
    assert set(by_condition) == {c["name"] for c in config["conditions"]}
    for condition in config["conditions"]:
        # the config's paths are relative to the repository root, where clpipe run resolves them
        expected = _direct_cleanlab(str(REPO / condition["labels"]), str(REPO / condition["pred_probs"]))
        got = by_condition[condition["name"]]
        assert set(got) == set(expected)
        for method, (removed, precision, recall) in expected.items():
            assert int(got[method]["removed"]) == removed
            assert float(got[method]["precision"]) == pytest.approx(precision, abs=1e-12)
            assert float(got[method]["recall"]) == pytest.approx(recall, abs=1e-12)
            assert int(got[method]["n_examples"]) == 50000  # found at full scale


def test_the_report_says_what_was_found_before_the_tables(demo):
    out, printed, _ = demo
    report = out / "report"
    assert sorted(p.name for p in report.iterdir()) == [
        "clpipe-manifest.json",
        "detection.csv",
        "plots",
        "report.html",
        "report.md",
        "results.csv",
        "results.json",
        "review-n0.4-s0.2",
    ]
    text = (report / "report.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings[:3] == [
        "# clpipe results: confident learning + Co-Teaching on CIFAR-10",
        "## Label errors found",
        "## Test accuracy (Table 2 layout)",
    ]
    summary = text.split("## Label errors found")[0]
    assert "**Finding label errors**" in summary and "given labels are wrong" in summary
    assert "**Training on the cleaned labels**" in summary and "points" in summary
    results = list(csv.DictReader(io.StringIO((report / "results.csv").read_text())))
    assert sorted(r["method"] for r in results) == sorted(yaml.safe_load(DEMO.read_text())["methods"])
    assert {r["labels"] for r in results} == {"given"}
    page = (report / "report.html").read_text()
    assert "<h2>Label errors found</h2>" in page and "<p>#" not in page
    # what clpipe run printed: the summary and both tables, then where things are
    assert printed.lstrip().startswith("**Finding label errors**")
    assert "| CL: PBNR |" in printed and "report: " in printed and "wall time" in printed


def test_the_runner_chatter_goes_to_the_log_and_the_terminal_shows_stages(demo):
    out, printed, shown = demo
    log = (out / "run.log").read_text()
    assert "Executing task 'make-masks'" in log and "executor_input" in log and "\x1b[" not in log
    assert "executor_input" not in printed + shown and "\x1b[" not in printed
    assert "find label errors: 1/1 tasks done" in shown and "Co-Teaching: 2/2 tasks done" in shown
