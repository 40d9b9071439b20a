"""benchmarks/gpu_session.py --smoke --device cpu: every step runs at toy sizes and writes the files the
GPU lease returns (issue 12: this is the script's test; the figures themselves come from a GPU)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import CIFAR10, REPO

SCRIPT = REPO / "benchmarks" / "gpu_session.py"


@pytest.mark.slow
def test_smoke_run_on_the_cpu_writes_every_file(tmp_path):
    out = tmp_path / "gs"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--device", "cpu", "--smoke",
                           "--data", str(CIFAR10)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(["summary.json", "summary.md", "throughput.csv", "cells.csv", "session.log",
                            "stages.log"])
    assert len(files) <= 8 and all(p.is_file() for p in out.iterdir())  # the lease returns 8 flat files
    summary = json.loads((out / "summary.json").read_text())
    lines = summary["throughput"]
    assert len(lines) == 9 and not [row for row in lines if "error" in row]
    assert all(row["images_per_s"] > 0 and row["flops_per_image"] > 0 for row in lines)
    stages = summary["condition"]["stages"]
    assert list(stages) == ["noisy-labels", "fold-train x4", "combine-folds", "make-masks", "coteach x5"]
    assert all(code == 0 for stage in stages.values() for code in stage["exit_codes"])
    cells = summary["condition"]["cells"]
    assert [c["method"] for c in cells] == ["argmax", "conf_joint_only", "cl_pbc", "cl_pbnr", "cl_both"]
    assert all(c["complete"] and 0 <= c["accuracy"] <= 1 for c in cells)
    assert set(summary["extrapolation"]) == {"from_throughput", "from_condition"}
    assert "## (c) Extrapolation" in (out / "summary.md").read_text()


def test_a_second_call_extends_the_summary(tmp_path):
    out = tmp_path / "gs"
    for step in ("throughput", "condition"):  # the condition step without --data is skipped, not failed
        done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--device", "cpu", "--smoke",
                               "--steps", step, "--deadline-s", "0"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["calls"]) == 2 and summary["condition"] == {}
