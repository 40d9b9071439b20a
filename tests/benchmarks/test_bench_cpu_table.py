"""benchmarks/bench_cpu_table.py at toy sizes: the wiring of the table step (the figures come from its real run,
docs/reproduction.md), and its verdicts on hand-made cells."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import CIFAR10, REPO, SHARED

SCRIPT = REPO / "benchmarks" / "bench_cpu_table.py"
sys.path.insert(0, str(SCRIPT.parent))
import bench_cpu_table

METHODS = ["argmax", "conf_joint_only", "cl_pbc", "cl_pbnr", "cl_both", "none"]
TINY = ["--per-class", "10", "--test-per-class", "5", "--epochs", "2", "--width", "4", "--batch-size", "16"]


@pytest.mark.slow
def test_a_tiny_table_runs_through_the_stages_and_writes_its_section(tmp_path):
    doc = tmp_path / "reproduction.md"
    begin, end = bench_cpu_table.markers(bench_cpu_table.TABLE_SECTION)
    doc.write_text(f"# Reproduction\n\nkept text\n{begin}\nan earlier run\n{end}\nafter\n")
    command = [
        sys.executable,
        str(SCRIPT),
        "table",
        "--noises",
        "0.4",
        *TINY,
        "--out",
        str(tmp_path / "out"),
        "--csv",
        str(tmp_path / "cells.csv"),
        "--doc",
        str(doc),
        "--data",
        str(SHARED),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "cells.csv").open()))
    assert [r["method"] for r in rows] == METHODS
    assert {r["noise_column"] for r in rows} == {"40 %"} and {r["n_view"] for r in rows} == {"100"}
    assert all(0 <= float(r["final_test_acc"]) <= 1 and r["epochs_trained"] == "1" for r in rows)
    assert [r["paper_test_acc"] for r in rows] == ["0.825", "0.861", "0.849", "0.864", "0.863", "0.616"]

    condition = tmp_path / "out" / "n0.4-s0.2"
    masks = json.loads((condition / "masks" / "summary.json").read_text())
    labels = np.load(condition / "labels" / "labels.npy")
    from clpipe.components.common.datasets import open_split, subset_rows

    split = open_split(str(CIFAR10), "train")
    subset = subset_rows(split.labels, 10, 0)
    wrong = labels[subset] != split.labels[subset]
    for r in rows:
        keep = (
            np.ones(len(labels), bool)
            if r["method"] == "none"
            else np.load(condition / "masks" / f"train_pruned_{r['method']}" / "train_mask.npy")
        )[subset]
        assert int(r["n_train"]) == keep.sum()
        assert float(r["real_noise_in_train"]) == pytest.approx(wrong[keep].mean(), abs=1e-4)
        assert int(r["removed_full_scale"]) == (
            0 if r["method"] == "none" else masks["methods"][r["method"]]["removed"]
        )

    text = doc.read_text()  # the section replaced, the rest kept
    assert text.startswith(f"# Reproduction\n\nkept text\n{begin}\n### A CPU-sized Table 2")
    assert text.endswith(f"{end}\nafter\n") and text.count(begin) == 1 and "an earlier run" not in text
    assert "not a reproduction" in text and "| CL: PBNR | " in text and "Partial" not in text


def _cells(column: str, noise: float, ours: list[float]) -> list[dict]:
    paper = [0.825, 0.861, 0.849, 0.864, 0.863, 0.616]
    return [
        {"noise_column": column, "noise": noise, "method": m, "final_test_acc": a, "paper_test_acc": p}
        for m, a, p in zip(METHODS, ours, paper)
    ]


def test_the_verdicts_count_the_methods_that_beat_no_pruning_and_rank_them_against_the_paper():
    rows = _cells("70 %", 0.6, [0.1] * 6) + _cells("40 %", 0.4, [0.30, 0.36, 0.34, 0.37, 0.35, 0.32])
    found = bench_cpu_table.verdicts(rows)
    assert [v["column"] for v in found] == ["40 %", "70 %"]  # noise order, whatever the run order
    forty, seventy = found
    assert (forty["beats"], forty["n_cl"], forty["paper_beats"]) == (4, 5, 5)
    # ranks ours/paper: argmax 1/2, none 2/1, cl_pbc 3/3, cl_both 4/5, conf_joint_only 5/4, cl_pbnr 6/6
    assert forty["rho"] == pytest.approx(1 - 6 * 4 / (6 * (6**2 - 1)))
    assert forty["mean_gain"] == pytest.approx(np.mean([-0.02, 0.04, 0.02, 0.05, 0.03]))
    assert seventy["beats"] == 0 and seventy["rho"] is None  # a constant column has no rank correlation
