"""Published seed data and seeded synthetic data for the mask generator tests."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from clpipe.components.common.labels import load_labels_in_file_order

from tests.conftest import CL_REPRODUCE

FACTS = Path(__file__).with_name("published_mask_facts.json")
#: The 13 published (sparsity S, noise N) conditions with pred_probs, as "S/N".
CONDITIONS = (
    "0.0/0.0", "0.0/0.2", "0.0/0.4", "0.0/0.6", "0.2/0.2", "0.2/0.4", "0.2/0.6",
    "0.4/0.2", "0.4/0.4", "0.4/0.6", "0.6/0.2", "0.6/0.4", "0.6/0.6",
)


def condition_paths(condition: str) -> tuple[Path, Path]:
    """(noisy-label JSON, float16 pyx) of a published condition ``"S/N"``."""
    sparsity, noise = condition.split("/")
    stem = f"frac_zero_noise_rates__{sparsity}__noise_amount__{noise}"
    return (CL_REPRODUCE / f"cifar10_noisy_labels__{stem}.json.gz", CL_REPRODUCE / f"pyx__{stem}.npy")


@functools.cache
def _load(condition: str) -> tuple[np.ndarray, np.ndarray]:
    labels_path, pyx_path = condition_paths(condition)
    if not pyx_path.exists():
        pytest.fail(f"the published cl-reproduce data are missing: {pyx_path}")
    labels = load_labels_in_file_order(str(labels_path), 10)
    pred_probs = np.load(pyx_path)
    labels.setflags(write=False)
    pred_probs.setflags(write=False)
    return labels, pred_probs


@pytest.fixture(scope="session")
def published():
    """``published("0.4/0.4") -> (labels int64 (50000,), pred_probs float16 (50000, 10))``, read-only."""
    return _load


def noisy_dataset(seed: int, *, n: int = 3000, n_classes: int = 4, trace: float = 2.8):
    """Seeded synthetic data with a known noise matrix P(noisy | true) (cleanlab's generator).

    pred_probs are a softmax around the *true* class, like good out-of-sample predictions.

    Returns:
        (true labels, noisy labels, noise matrix, float32 pred_probs).
    """
    from cleanlab.benchmarking.noise_generation import generate_noise_matrix_from_trace, generate_noisy_labels

    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_classes, n)
    prior = np.bincount(true, minlength=n_classes) / n
    noise_matrix = generate_noise_matrix_from_trace(
        n_classes, trace, py=prior, valid_noise_matrix=True, seed=seed
    )
    np.random.seed(seed)  # generate_noisy_labels draws from numpy's global generator
    noisy = generate_noisy_labels(true, noise_matrix)
    logits = rng.normal(0.0, 1.0, (n, n_classes))
    logits[np.arange(n), true] += 2.5
    probs = np.exp(logits)
    return true, noisy, noise_matrix, (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
