"""Noise conditions of the benchmark and the Co-Teaching forget-rate rule that depends on them.

A *condition* is one column of the paper's Table 2: the given (noisy) labels of the train
split, described by its **noise amount** N (fraction of flipped labels, ``noise_amount`` in
the seed's file names) and **sparsity** S (fraction of zero off-diagonal noise rates,
``frac_zero_noise_rates``), generated from (N, S, seed) by the noisy-labels stage or read
from a label file, optionally with pre-computed out-of-sample ``pred_probs``. The pipeline
config, the noisy-labels stage and the Co-Teaching stage all read conditions through
:class:`Condition`, so its keys, defaults and checks exist once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from .errors import InputError

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
