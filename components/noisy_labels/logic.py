"""Noisy-label conditions: the paper's synthetic label noise, made the way the seed made it.

A *condition* is one column of the paper's Table 2: a set of given (noisy) labels for the
train split, described by its **noise amount** N (the fraction of labels that are flipped,
``noise_amount`` in the seed's file names) and its **sparsity** S (the fraction of the
off-diagonal noise rates that are exactly zero, ``frac_zero_noise_rates``). A condition
either names a label file (``labels``: the seed's JSON or an ``.npy``, validated against the
dataset) or is generated here from (N, S, seed) with cleanlab's noise-generation functions,
exactly as the seed did (``../shared/data/cl-reproduce/README.md``)::

    py = bincount(true labels) / n
    noise_matrix = generate_noise_matrix_from_trace(K, trace=int(K * (1 - N)), py=py,
                                                    frac_zero_noise_rates=S,
                                                    valid_noise_matrix=True, seed=seed)
    np.random.seed(seed); noisy = generate_noisy_labels(true_labels, noise_matrix)

With seed 0 this reproduces the published label files bit for bit (tests/noisy_labels).
The *true* labels are the dataset's own labels (the class folders of the seed's CIFAR-10).

**The trace quirk.** The seed's noise amounts came from ``np.arange(0, 1, 0.2)``, where 0.6 is
the float 0.6000000000000001, so ``int(10 * (1 - N))`` gave trace 3, not 4: the files named
N=0.6 have about 70 % noise and are the paper's "70 %" column. :func:`seed_trace` applies the
same rounding, so N=0.6 here means what it means in the seed's file names.

Conditions themselves (:class:`~..common.conditions.Condition`: keys, defaults, checks) and
the forget-rate rule live in ``common/conditions.py``, shared with the pipeline config and
Co-Teaching.

Vocabulary: N examples of the whole train split (labels always cover the whole split), K
classes; a noise matrix is (K, K) with ``P(noisy = i | true = j)`` in row i, column j
(columns sum to 1), as in cleanlab and the seed's ``noise_matrix`` files.
"""

from __future__ import annotations

import math

import numpy as np

from ..common.artifacts import NoisyLabels
from ..common.checks import fingerprint
from ..common.conditions import Condition, forget_rate_from_noise
from ..common.errors import InputError

#: Step of the seed's grid of noise amounts (``np.arange(0, 1, 0.2)``); see :func:`seed_trace`.
SEED_NOISE_STEP = 0.2


def seed_trace(num_classes: int, noise: float) -> int:
    """``int(K * (1 - N))`` with N as the seed's ``np.arange(0, 1, 0.2)`` held it.

    Noise amounts on the seed's 0.2 grid are replaced by the float ``i * 0.2`` that
    ``np.arange`` produces (0.6 -> 0.6000000000000001, hence trace 3 and ~70 % noise for
    K = 10); other amounts are used as given.
    """
    steps = round(noise / SEED_NOISE_STEP)
    if math.isclose(steps * SEED_NOISE_STEP, noise, abs_tol=1e-12):
        noise = steps * SEED_NOISE_STEP
    return int(num_classes * (1 - noise))


def generate_noisy_labels(
    true_labels: np.ndarray, *, num_classes: int, noise: float, sparsity: float, seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(noisy labels (N,), noise matrix (K, K), trace) made the way the seed made them.

    cleanlab seeds and draws from the global numpy random state; it is restored afterwards.
    """
    from cleanlab.benchmarking import noise_generation

    trace = seed_trace(num_classes, noise)
    if trace <= 1:
        raise InputError(
            "condition",
            "noise",
            f"noise {noise} gives trace {trace} for {num_classes} classes; "
            "a valid noise matrix needs trace > 1",
        )
    py = np.bincount(true_labels, minlength=num_classes) / len(true_labels)
    if (py == 0).any():
        raise InputError(
            "dataset", "labels", f"class {int(np.flatnonzero(py == 0)[0])} has no train examples"
        )
    state = np.random.get_state()
    try:
        noise_matrix = noise_generation.generate_noise_matrix_from_trace(
            num_classes,
            trace,
            py=py,
            frac_zero_noise_rates=sparsity,
            valid_noise_matrix=True,
            seed=seed,
        )
        if noise_matrix is None:
            raise InputError(
                "condition",
                "sparsity",
                f"cleanlab found no valid noise matrix for noise {noise}, "
                f"sparsity {sparsity}, seed {seed}; try another seed",
            )
        np.random.seed(seed)
        noisy = noise_generation.generate_noisy_labels(true_labels, noise_matrix)
    finally:
        np.random.set_state(state)
    return np.asarray(noisy, dtype=np.int64), noise_matrix, trace


def realised_noise_matrix(true_labels: np.ndarray, given: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) ``P(given = i | true = j)`` counted from the labels (columns sum to 1)."""
    counts = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(counts, (given, true_labels), 1)
    return counts / np.maximum(counts.sum(axis=0, keepdims=True), 1)


#: Allowed |realised - expected| noise rate of given labels that declare their noise amount, on top
#: of three binomial standard deviations of the realised rate (small datasets). The seed's published
#: files realise their expected rate within 0.001.
NOISE_ATOL = 0.05


def check_declared_noise(condition: Condition, realised: float, n: int, num_classes: int) -> None:
    """Given labels that declare a noise amount must realise it (the dataset's labels are the true ones).

    The declared amount sets the report's column and the forget rate, so 0.4-noise labels declared
    0.2 would be trained and reported as a 20 % condition. The expected realised rate is the
    generator's, ``1 - trace / K`` (:func:`seed_trace`: N = 0.6 realises ~0.7, the paper's 70 %).
    """
    expected = 1 - seed_trace(num_classes, condition.noise) / num_classes
    tolerance = NOISE_ATOL + 3 * math.sqrt(expected * (1 - expected) / max(n, 1))
    if abs(realised - expected) > tolerance:
        raise InputError(condition.labels, "noise", f"the condition declares noise {condition.noise} (a realised "
                         f"rate of {expected:.3f} +- {tolerance:.3f}), but these labels differ from the "
                         f"dataset's in {realised:.3f} of the rows")


def make_condition_labels(
    condition: Condition, true_labels: np.ndarray, num_classes: int, given: np.ndarray | None = None
) -> NoisyLabels:
    """The condition's labels: ``given`` (already validated) or generated from (N, S, seed).

    Args:
        condition: What to make.
        true_labels: (N,) the dataset's labels of the whole train split.
        num_classes: K.
        given: (N,) labels read from ``condition.labels``, or None to generate.
    """
    trace = None
    if given is None:
        labels, noise_matrix, trace = generate_noisy_labels(
            true_labels,
            num_classes=num_classes,
            noise=condition.noise,
            sparsity=condition.sparsity,
            seed=condition.seed,
        )
    else:
        labels = np.asarray(given, dtype=np.int64)
    realised = realised_noise_matrix(true_labels, labels, num_classes)
    if given is not None:
        noise_matrix = realised
    rate = float((labels != true_labels).mean())
    if given is not None and condition.noise is not None:
        check_declared_noise(condition, rate, len(labels), num_classes)
    summary = {
        "stage": "noisy-labels",
        "condition": condition.to_dict(),
        "generated": given is None,
        "trace": trace,
        "noise_matrix_source": "generating" if given is None else "realised",
        "n_examples": len(labels),
        "n_classes": int(num_classes),
        "realised_noise_rate": rate,
        "realised_noise_matrix": realised.round(6).tolist(),
        "noise_matrix": np.asarray(noise_matrix).round(6).tolist(),
        "forget_rate_from_noise": forget_rate_from_noise(condition, rate),
        "labels_fingerprint": fingerprint(labels),
    }
    return NoisyLabels(labels, np.asarray(noise_matrix, dtype=np.float64), summary)
