"""The whole pipeline under kfp.local's SubprocessRunner on a tiny real CIFAR-10 subset:
both pred_probs branches, every stage, the report and the KFP metrics."""

import csv
import glob
import io
import json
import os
from pathlib import Path

import pytest

from clpipe import cli as clpipe_cli
from tests.conftest import condition_file

pytestmark = pytest.mark.slow

TINY = [
    "--n-folds",
    "2",
    "--fold-arch",
    "airbench-tiny",
    "--fold-epochs",
    "2",
    "--fold-batch-size",
    "32",
    "--methods",
    "none,cl_pbnr",
    "--coteach-epochs",
    "2",
    "--coteach-batch-size",
    "32",
    "--coteach-cnn-width",
    "4",
    "--coteach-forget-rate",
    "noise",
    "--train-per-class",
    "20",
    "--test-per-class",
    "10",
]


@pytest.fixture(scope="module")
def local_run(cifar10_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    given = (
        f"name=given,labels={condition_file('labels', 0.0, 0.2)},noise=0.2,sparsity=0.0,"
        f"pred_probs={condition_file('pyx', 0.0, 0.2)}"
    )
    argv = [
        "run",
        "--dataset",
        cifar10_dir,
        "--condition",
        given,
        "--condition",
        "name=made,noise=0.4,sparsity=0.2",
        *TINY,
        "--output",
        str(out),
    ]
    assert clpipe_cli.main(argv) == 0
    return out


#: kfp.local's folder of each condition: its kind's loop (the cross-validated loop comes first).
LOOP = {"made": "for-loop-1-iteration-0", "given": "for-loop-2-iteration-0"}


def _task_dirs(root, condition, task):
    return glob.glob(
        os.path.join(root, "kfp", "clpipe-benchmark-*", LOOP[condition], "**", task), recursive=True
    )


def test_report_and_table(local_run, capsys):
    report = local_run / "report"
    assert sorted(p.name for p in report.iterdir()) == [
        "clpipe-manifest.json",
        "detection.csv",
        "plots",
        "report.html",
        "report.md",
        "results.csv",
        "results.json",
        "review-given",
        "review-made",
    ]
    rows = list(csv.DictReader(io.StringIO((report / "results.csv").read_text())))
    assert [(r["condition"], r["method"]) for r in rows] == [
        ("given", "cl_pbnr"),
        ("given", "none"),
        ("made", "cl_pbnr"),
        ("made", "none"),
    ]
    assert {r["pred_probs_source"] for r in rows} == {"given", "cross-validation"}
    assert all(0 <= float(r["final_test_acc"]) <= 1 and r["n_test"] == "100" for r in rows)
    assert rows[0]["paper_test_acc"] == "0.892"  # CL: PBNR, 20 % noise, sparsity 0
    assert "| CL: PBNR | " in (report / "report.md").read_text()


def test_each_condition_took_one_branch(local_run):
    records = {
        r["condition"]["name"]: r for r in json.loads((local_run / "report" / "results.json").read_text())
    }
    # Each condition ran in the loop of its kind: "given" in the given-pred_probs loop, "made" cross-validated.
    assert _task_dirs(local_run, "given", "given-pred-probs") and not _task_dirs(
        local_run, "given", "fold-train"
    )
    assert len(_task_dirs(local_run, "made", "fold-train")) == 2 and not _task_dirs(
        local_run, "made", "given-pred-probs"
    )
    # Given pred_probs are used whole (label errors found at full scale), cross-validation trains on the subset.
    assert records["given"]["pred_probs"]["n_examples"] == records["given"]["masks"]["n_examples"] == 50000
    assert records["made"]["pred_probs"]["n_examples"] == 200
    assert records["given"]["runs"]["cl_pbnr"]["n_view"] == 200  # Co-Teaching on the subset's rows of the masks
    assert records["given"]["labels"]["realised_noise_rate"] == pytest.approx(0.199, abs=2e-3)
    run = records["made"]["runs"]["cl_pbnr"]
    assert run["n_train"] == 200 - records["made"]["masks"]["methods"]["cl_pbnr"]["removed"]


def test_forget_rate_from_the_conditions_noise(local_run):
    records = {
        r["condition"]["name"]: r for r in json.loads((local_run / "report" / "results.json").read_text())
    }
    assert records["made"]["runs"]["none"]["curves"]["forget_rate"]  # the schedule ramps up to noise / 2
    assert records["made"]["labels"]["forget_rate_from_noise"] == 0.2


def test_kfp_metrics_and_confusion_matrix(local_run):
    (executor_output,) = _task_dirs(local_run, "made", "condition-results")
    output = json.loads(Path(executor_output, "executor_output.json").read_text())
    metrics = output["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert {"realised_noise_rate", "oos_accuracy", "none.final_test_acc", "cl_pbnr.removed"} <= set(metrics)
    confusion = output["artifacts"]["confusion"]["artifacts"][0]["metadata"]["confusionMatrix"]
    assert len(confusion["annotationSpecs"]) == 10 and len(confusion["rows"]) == 10
    (report_output,) = glob.glob(
        str(local_run / "kfp" / "clpipe-benchmark-*" / "report-of-both-kinds" / "executor_output.json")
    )
    report_metrics = json.loads(Path(report_output).read_text())["artifacts"]["metrics"]["artifacts"][0][
        "metadata"
    ]
    assert set(report_metrics) == {
        f"{c}.{m}.final_test_acc" for c in ("given", "made") for m in ("none", "cl_pbnr")
    }


def test_missing_inputs_are_refused_before_any_task(cifar10_dir, tmp_path, capsys):
    argv = [
        "run",
        "--dataset",
        cifar10_dir,
        "--condition",
        "name=p,noise=0.2,pred_probs=/nowhere/pyx.npy",
        "--output",
        str(tmp_path / "run"),
    ]
    assert clpipe_cli.main(argv) == 2
    assert "ERROR run: /nowhere/pyx.npy: conditions: p: pred_probs: not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
