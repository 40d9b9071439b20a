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

A condition may also carry pre-computed out-of-sample ``pred_probs`` (e.g. the seed's
published ``pyx`` files); :func:`given_pred_probs` checks them and puts them in the fold
combiner's output form, so the pipeline can skip cross-validation for that condition.

Vocabulary: N examples of the whole train split (labels always cover the whole split), K
classes; a noise matrix is (K, K) with ``P(noisy = i | true = j)`` in row i, column j
(columns sum to 1), as in cleanlab and the seed's ``noise_matrix`` files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..common.errors import InputError
from ..common.labels import labels_fingerprint
from ..combine_folds.logic import FoldOutput, combine_folds
from ..make_masks.logic import ROW_SUM_ATOL

#: Step of the seed's grid of noise amounts (``np.arange(0, 1, 0.2)``); see :func:`seed_trace`.
SEED_NOISE_STEP = 0.2
#: A condition name becomes a directory and a column title: keep it to a safe alphabet.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Condition:
    """One noise condition of the benchmark.

    Attributes:
        name: Short id (letters, digits, ``._-``), unique within a run.
        noise: Noise amount N in [0, 1): generates the labels when ``labels`` is empty,
            otherwise only describes the given file (and places it in the paper's table).
        sparsity: Fraction of zero off-diagonal noise rates S in [0, 1].
        seed: Seed of the noise matrix and of the flips (the seed's files: 0).
        labels: URL of given labels; empty = generate from (noise, sparsity, seed).
        pred_probs: URL of pre-computed out-of-sample pred_probs (N, K) for the whole train
            split; empty = cross-validate.
    """

    name: str
    noise: float | None = None
    sparsity: float = 0.0
    seed: int = 0
    labels: str = ""
    pred_probs: str = ""

    def __post_init__(self) -> None:
        source = f"condition {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InputError(
                source,
                "name",
                "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        if self.noise is not None and not (0.0 <= self.noise < 1.0):
            raise InputError(source, "noise", f"must lie in [0, 1), got {self.noise}")
        if not (0.0 <= self.sparsity <= 1.0):
            raise InputError(source, "sparsity", f"must lie in [0, 1], got {self.sparsity}")
        if self.noise is None and not self.labels:
            raise InputError(
                source, "noise", "give either a labels URL or a noise amount to generate labels from"
            )

    @property
    def generated(self) -> bool:
        return not self.labels

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "condition") -> Condition:
        """A condition from a mapping (a config entry, a pipeline loop item), types checked.

        ``None`` and ``""`` mean "not given" for every optional field, so pipeline items,
        which always carry every key, read the same as hand-written configs.
        """
        if not isinstance(data, Mapping):
            raise InputError(
                source,
                "",
                f"expected a mapping with keys {[f.name for f in fields(cls)]}, got {type(data).__name__}",
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(source, unknown[0], f"unknown key; the keys are {sorted(known)}")
        values = {k: v for k, v in data.items() if v is not None and v != ""}
        if "name" not in values:
            raise InputError(source, "name", "missing")
        where = f"{source} {data['name']!r}"
        for key, kind in (("noise", float), ("sparsity", float), ("seed", int)):
            if key in values:
                values[key] = _typed(values[key], kind, where, key)
        for key in ("labels", "pred_probs"):
            if key in values and not isinstance(values[key], str):
                raise InputError(where, key, f"expected a URL string, got {values[key]!r}")
        return cls(**values)

    def to_dict(self) -> dict:
        """Every key, ``""``/``None`` for what is not given (the pipeline's item form)."""
        return asdict(self)


def _typed(value, kind: type, source: str, key: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(source, key, f"expected a number, got {value!r}")
    if kind is int:
        if float(value) != int(value):
            raise InputError(source, key, f"expected an integer, got {value!r}")
        return int(value)
    return float(value)


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


@dataclass
class NoisyLabels:
    """Given labels of one condition with what describes their noise.

    Attributes:
        labels: (N,) int64 given labels, rows in ImageFolder order of the whole train split.
        noise_matrix: (K, K) the generating matrix (generated conditions) or the realised one
            (given label files); ``P(noisy = i | true = j)``.
        summary: JSON-ready facts (condition, trace, realised noise rate and matrix, ...).
    """

    labels: np.ndarray
    noise_matrix: np.ndarray
    summary: dict


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


def forget_rate_from_noise(condition: Condition, realised_rate: float) -> float:
    """Co-Teaching forget rate "from the condition's noise": half the noise amount.

    The JAIR protocol's rule (``--forget-rate 0.{noise//2}``: 0.1, 0.2, 0.3 for the 20, 40
    and 70 % columns, i.e. half the *nominal* N); a label file without a nominal N uses its
    realised noise rate.
    """
    noise = condition.noise if condition.noise is not None else realised_rate
    return round(noise / 2, 6)


#: Co-Teaching forget-rate settings besides a number: the recipe's own value, or half the noise.
FORGET_RATE_RECIPE = "recipe"
FORGET_RATE_NOISE = "noise"


def resolve_forget_rate(setting: str, from_noise: float) -> float | None:
    """The forget rate a Co-Teaching run gets: None (the recipe's), ``from_noise`` or a number.

    Args:
        setting: ``"recipe"``, ``"noise"`` (:func:`forget_rate_from_noise` of the condition,
            the labels summary's ``forget_rate_from_noise``) or a number in [0, 1).
        from_noise: That value for the condition at hand.
    """
    if setting == FORGET_RATE_RECIPE:
        return None
    if setting == FORGET_RATE_NOISE:
        return from_noise
    try:
        rate = float(setting)
    except ValueError:
        rate = math.nan
    if not 0.0 <= rate < 1.0:
        raise InputError(
            "forget_rate",
            "",
            f"expected {FORGET_RATE_RECIPE!r}, {FORGET_RATE_NOISE!r} or a number in [0, 1), got {setting!r}",
        )
    return rate


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
        "labels_fingerprint": labels_fingerprint(labels),
    }
    return NoisyLabels(labels, np.asarray(noise_matrix, dtype=np.float64), summary)


def given_pred_probs(
    pred_probs: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    *,
    source: str,
    num_classes: int,
    dataset_fingerprint: str,
):
    """Pre-computed pred_probs of the whole split -> the fold combiner's output for the view.

    The rows of the view are taken out and checked by the fold combiner's own checks (one
    "fold" holding every row: finite, non-negative, rows summing to 1 within the tolerance
    of make-masks, which reads them: :data:`~..make_masks.logic.ROW_SUM_ATOL`), so the
    result has exactly the combiner's contract (``pred_probs``, ``labels``, ``summary`` with
    the confusion matrix). The dtype is kept:
    the mask generator's results depend on it (float16 ties).

    Args:
        pred_probs: (N_split, K) probabilities of the whole train split.
        labels: (N_split,) the condition's given labels.
        rows: Rows of the view (``datasets.subset_rows``).
        source: URL of ``pred_probs`` (error messages, summary).
        num_classes: K of the dataset.
        dataset_fingerprint: Fingerprint of the view.
    """
    if pred_probs.ndim != 2 or pred_probs.shape != (len(labels), num_classes):
        raise InputError(
            source,
            "pred_probs",
            f"expected shape {(len(labels), num_classes)} (the whole train "
            f"split x its classes), got {pred_probs.shape}",
        )
    view_labels = labels[rows]
    block = FoldOutput(
        source=source,
        indices=np.arange(len(rows)),
        pred_probs=pred_probs[rows],
        labels=view_labels,
        metrics={
            "fold": 0,
            "n_folds": 1,
            "n_examples": len(rows),
            "n_classes": num_classes,
            "dataset_fingerprint": dataset_fingerprint,
            "labels_fingerprint": labels_fingerprint(view_labels),
        },
    )
    combined = combine_folds([block], sum_atol=ROW_SUM_ATOL)
    combined.summary.update(stage="given-pred-probs", source="given", url=source, n_folds=0, folds=[])
    return combined
