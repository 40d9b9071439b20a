"""kill -9 in the middle of a run, then the same command again: it ends bit-identical on the CPU to a run
that was never interrupted (real processes, SIGKILL, checkpoints written from the background thread)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import CIFAR10, REPO, SHARED

pytestmark = pytest.mark.slow

NOISY_LABELS = (SHARED / "cl-reproduce"
                / "cifar10_noisy_labels__frac_zero_noise_rates__0.0__noise_amount__0.2.json.gz")
TIMING = ("epoch_time_s", "train_time_s")
TRAINED_EPOCHS = 3  # --epochs 4 with the feb2020 recipe trains epochs 1..3


def command(out) -> list[str]:
    return [sys.executable, "-m", "clpipe", "coteach", "--seed", "3", "--epochs", str(TRAINED_EPOCHS + 1),
            "--train-labels", str(NOISY_LABELS), "--subset-per-class", "40", "--test-subset-per-class", "20",
            "--cnn-width", "8", "--batch-size", "64", "--no-progress", "--device", "cpu", "--out", str(out),
            str(CIFAR10)]


def env(tmp_path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CLPIPE_CACHE_DIR": str(tmp_path / "cache")}


def epochs_done(out) -> int:
    try:
        return json.loads((out / "metrics.json").read_text())["epochs_done"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def kill_after_first_epoch(out, tmp_path) -> None:
    """Starts the run and SIGKILLs it as soon as one epoch is recorded (mid-run, maybe mid-write)."""
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen(command(out), cwd=REPO, env=env(tmp_path), stdout=log, stderr=log)
        deadline = time.monotonic() + 600
        while epochs_done(out) < 1:
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "no epoch recorded within 10 minutes"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def deterministic(metrics: dict) -> dict:
    return {name: {k: v for k, v in metrics[name].items() if k not in TIMING} for name in ("curves", "epoch_log")}


@pytest.mark.skipif(not (CIFAR10 / "cifar10_train.npz").exists(), reason="shared CIFAR-10 data not found")
def test_kill_9_then_the_same_command_ends_bit_identical(tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    kill_after_first_epoch(killed, tmp_path)
    at_kill = epochs_done(killed)
    assert 1 <= at_kill < TRAINED_EPOCHS, "the run ended before it could be killed"
    subprocess.run(command(killed), cwd=REPO, env=env(tmp_path), check=True, capture_output=True)
    subprocess.run(command(reference), cwd=REPO, env=env(tmp_path), check=True, capture_output=True)

    resumed_m = json.loads((killed / "metrics.json").read_text())
    reference_m = json.loads((reference / "metrics.json").read_text())
    assert resumed_m["complete"] and resumed_m["epochs_done"] == TRAINED_EPOCHS
    assert deterministic(resumed_m) == deterministic(reference_m)
    assert resumed_m["final"] == reference_m["final"] and resumed_m["best"] == reference_m["best"]
    resumed_ckpt = torch.load(killed / "checkpoint.pt", weights_only=True)
    reference_ckpt = torch.load(reference / "checkpoint.pt", weights_only=True)
    for part in ("model1", "model2"):
        for name, tensor in reference_ckpt[part].items():
            assert torch.equal(resumed_ckpt[part][name], tensor), (part, name)
    for part in ("optimizer1", "optimizer2"):
        for index, state in reference_ckpt[part]["state"].items():
            for name, tensor in state.items():
                assert torch.equal(resumed_ckpt[part]["state"][index][name], tensor), (part, index, name)
