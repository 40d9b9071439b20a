"""Shared fixtures: where the real data lives (../shared next to the repo), small real subsets."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CIFAR10 = SHARED / "cifar10"
CL_REPRODUCE = SHARED / "cl-reproduce"


def condition_file(kind: str, sparsity: float, noise: float) -> Path:
    """A file of the published inputs, e.g. ``condition_file("labels", 0.2, 0.4)``."""
    stem = f"frac_zero_noise_rates__{sparsity:.1f}__noise_amount__{noise:.1f}"
    names = {
        "labels": f"cifar10_noisy_labels__{stem}.json.gz",
        "pyx": f"pyx__{stem}.npy",
        "noise_matrix": f"cifar10_noise_matrix__{stem}.npy",
    }
    return CL_REPRODUCE / names[kind]


@pytest.fixture(scope="session")
def cifar10_dir() -> str:
    if not (CIFAR10 / "cifar10_train.npz").exists():
        pytest.fail(f"the shared CIFAR-10 arrays are missing: {CIFAR10}")
    return str(CIFAR10)


@pytest.fixture(scope="session")
def clean_labels() -> str:
    """The published 0 %-noise label file (given labels = true labels)."""
    return str(condition_file("labels", 0.0, 0.0))


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    """Keep the dataset cache of every test inside pytest's temporary directory."""
    monkeypatch.setenv("CLPIPE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
