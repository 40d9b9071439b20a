"""The exported model: safetensors weights plus a JSON card, what ``clpipe predict`` applies.

A trainer that exports its network (Co-Teaching: the better of its two networks) writes a
folder with two files:

``model.safetensors``
    The ``state_dict`` (safetensors: no pickle, so loading cannot run code).
``model.json``
    :class:`ModelCard`: ``format`` (:data:`FORMAT`), ``architecture`` (a name
    :func:`~.networks.build_network` knows) with ``arch_kwargs``, ``classes`` (the K names,
    output k = ``classes[k]``), ``resolution`` R, the input normalisation ``mean``/``std``
    (per channel, applied to pixels scaled to [0, 1]), ``preprocessing`` (what
    :func:`~.imaging.decode_image` does, for people), and ``trained`` (free-form: stage,
    method, dataset fingerprint, accuracy ...).

Any image is prepared exactly as at training time: :func:`~.imaging.decode_image` at R, then
``(pixels / 255 - mean) / std``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from . import storage
from .errors import InputError

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
FORMAT = "clpipe-model/1"
PREPROCESSING = ("decode, EXIF orientation, RGB (transparency over white), shorter side resized to R "
                 "(bicubic) and centre-cropped to R x R, pixels / 255, then (x - mean) / std per channel")


@dataclass(frozen=True)
class ModelCard:
    """What a model needs besides its weights (see the module docstring)."""

    architecture: str
    classes: tuple[str, ...]
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    arch_kwargs: dict = field(default_factory=dict)
    trained: dict = field(default_factory=dict)
    preprocessing: str = PREPROCESSING
    format: str = FORMAT

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object, source: str) -> ModelCard:
        if not isinstance(data, dict):
            raise InputError(source, "", "expected a JSON object")
        if data.get("format") != FORMAT:
            raise InputError(source, "format", f"expected {FORMAT!r}, got {data.get('format')!r}")
        for key in ("architecture", "classes", "resolution", "mean", "std"):
            if key not in data:
                raise InputError(source, key, "missing")
        classes, mean, std = data["classes"], data["mean"], data["std"]
        if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
            raise InputError(source, "classes", "expected a list of at least 2 class names")
        for key, values in (("mean", mean), ("std", std)):
            if not (isinstance(values, list) and len(values) == 3 and all(isinstance(v, (int, float)) for v in values)):
                raise InputError(source, key, "expected 3 numbers, one per channel")
        if any(v <= 0 for v in std):
            raise InputError(source, "std", "must be > 0")
        if not isinstance(data["resolution"], int) or data["resolution"] < 1:
            raise InputError(source, "resolution", f"expected a positive integer, got {data['resolution']!r}")
        return cls(architecture=str(data["architecture"]), classes=tuple(classes), resolution=data["resolution"],
                   mean=tuple(mean), std=tuple(std), arch_kwargs=dict(data.get("arch_kwargs") or {}),
                   trained=dict(data.get("trained") or {}), preprocessing=str(data.get("preprocessing", "")))


def model_bytes(state_dict: Mapping[str, object], card: ModelCard) -> dict[str, bytes]:
    """The two files of a model folder (:data:`WEIGHTS_FILE`, :data:`CARD_FILE`) as bytes (tensors made
    contiguous, on the CPU): for a stage that publishes the model inside its own output (Co-Teaching,
    with its run) rather than as an output of its own (:func:`write_model`)."""
    from safetensors.torch import save

    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()}
    return {WEIGHTS_FILE: save(tensors), CARD_FILE: (json.dumps(card.to_json(), indent=2) + "\n").encode()}


def write_model(url: str, state_dict: Mapping[str, object], card: ModelCard, *, stage: str = "model",
                inputs: Sequence[str] = ()) -> None:
    """Publishes ``url/model.safetensors`` and ``url/model.json`` together, as an output of ``stage`` made
    from ``inputs`` (recorded in its manifest)."""
    with storage.staged_output(url, stage=stage, inputs=inputs) as tmp:
        for name, data in model_bytes(state_dict, card).items():
            storage.write_bytes(storage.join(tmp, name), data)


def read_card(url: str) -> ModelCard:
    """The card of the model folder ``url`` (torch-free)."""
    source = storage.join(url, CARD_FILE)
    return ModelCard.from_json(storage.load_json(source), source)


def load_model(url: str, device: str = "cpu"):
    """(network in eval mode on ``device``, its card) of the model folder ``url``."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from .networks import build_network

    card = read_card(url)
    weights_url = storage.join(url, WEIGHTS_FILE)
    try:
        state = load(storage.read_bytes(weights_url))
    except (SafetensorError, ValueError) as e:
        raise InputError(weights_url, "", f"not a safetensors file ({e})") from None
    network = build_network(card.architecture, card.num_classes, **card.arch_kwargs)
    missing, unexpected = _mismatch(network.state_dict(), state)
    if missing or unexpected:
        raise InputError(weights_url, "", f"the weights do not fit {card.architecture} with {card.num_classes} "
                         f"classes: missing {missing[:3]}, unexpected {unexpected[:3]}")
    network.load_state_dict(state)
    return network.to(device).eval(), card


def _mismatch(expected: Mapping, given: Mapping) -> tuple[list[str], list[str]]:
    """(names missing or of another shape, names not expected)."""
    missing = [k for k, v in expected.items() if k not in given or tuple(given[k].shape) != tuple(v.shape)]
    return missing, [k for k in given if k not in expected]
