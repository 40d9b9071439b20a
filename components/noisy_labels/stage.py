"""``clpipe noisy-labels``: the given labels of one noise condition.

Generates a condition's noisy labels from (noise, sparsity, seed) the way the seed did (seed 0
gives the published label files), or validates a given label file, and writes ``--out DIR``:
``labels.npy`` (int64, whole train split, ImageFolder order), ``noise_matrix.npy`` ((K, K),
P(noisy=i | true=j)) and ``summary.json`` (condition, trace, realised noise rate and matrix,
forget rate from the noise, fingerprints).

Example:
  clpipe noisy-labels --dataset ../shared/data/cifar10 --name s0.2_n0.4 --noise 0.4 --sparsity 0.2 \\
      --seed 0 --out runs/labels
"""

from __future__ import annotations

import json
import logging

from ..common import storage
from ..common.artifacts import NoisyLabels
from ..common.conditions import Condition
from ..common.datasets import open_split
from ..common.errors import InputError
from ..common.labels import load_labels
from . import logic

log = logging.getLogger("clpipe.noisy-labels")


def noisy_labels(
    *,
    dataset: str,
    out: str,
    condition: str | None = None,
    name: str | None = None,
    noise: float | None = None,
    sparsity: float | None = None,
    seed: int | None = None,
    labels: str | None = None,
) -> NoisyLabels:
    """Generates (or validates) one condition's given labels.

    The condition is given either whole, as JSON (a pipeline item), or by the name, noise,
    sparsity, seed and labels parameters; unset ones take the defaults of a condition.

    Args:
        dataset: ImageFolder root, .npz, or directory with *train/*test.npz (path or URL).
        out: Output directory (path or URL).
        condition: The whole condition as a JSON object; replaces the parameters below.
        name: Condition name (letters, digits, ._-).
        noise: Noise amount N in [0, 1) (0.6 = the paper's 70 % column).
        sparsity: Fraction of zero noise rates S in [0, 1] (default 0).
        seed: Seed of the noise matrix and flips (default 0, the seed's files).
        labels: Given labels (seed JSON or .npy) to validate instead of generating.
    """
    chosen = _condition(condition, {"name": name, "noise": noise, "sparsity": sparsity, "seed": seed,
                                    "labels": labels})
    inputs = [dataset, *([chosen.labels] if chosen.labels else [])]
    storage.check_output(out, stage=NoisyLabels.STAGE, inputs=inputs)
    split = open_split(dataset, "train")
    given = load_labels(chosen.labels, split) if chosen.labels else None
    result = logic.make_condition_labels(chosen, split.labels, split.num_classes, given)
    result.summary.update(dataset=dataset, classes=list(split.classes), dataset_fingerprint=split.fingerprint())
    result.write(out, inputs)
    log.info("condition %s: %s labels, realised noise rate %.4f (trace %s)", chosen.name,
             "generated" if chosen.generated else "given", result.summary["realised_noise_rate"],
             result.summary["trace"])
    return result


def _condition(text: str | None, fields: dict) -> Condition:
    """The condition from its JSON or from the individual parameters (not both)."""
    if text is None:
        return Condition.from_dict(fields, source="parameters")
    given = [key for key, value in fields.items() if value is not None]
    if given:
        raise InputError("condition", "", f"give the condition either as JSON or as parameters, not both ({given})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError("condition", "", f"not valid JSON ({e})") from None
    return Condition.from_dict(data, source="condition")
