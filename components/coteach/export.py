"""The model a Co-Teaching run hands over: the better of its two networks, with a card.

Co-Teaching trains two networks and the paper reports the better one (Feb-2020: the maximum of
the two final test accuracies; ``final`` in the metrics). The run exports that network: the one
with the higher test accuracy at the last (always scored) epoch, net 1 on a tie. Choosing
between the two on the test set is the paper's reporting rule and slightly optimistic for the
exported network's accuracy; the card says so.

The export is part of the run's output (:class:`~..common.artifacts.CoteachRun`, folder
``model/``), published once the run is complete, under the run's manifest: a rerun of a finished
run exports the same network again. ``clpipe predict --model OUT/model IMAGES...`` applies it.

Where the exported network differs from the trained one, and why: it is rebuilt with
``dropout_at_eval=False``. The official code keeps dropout on when it scores the test set (the
Feb-2020 and JAIR recipes' ``eval_dropout``), which makes every prediction random; an exported
model must give the same answer twice. Mirror test-time augmentation (``tta_flip``) is not part of
the model either; the card records both settings of the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..common.artifacts import CoteachRun
from ..common.model_files import ModelCard, model_bytes
from ..common.networks import COTEACHING_CNN
from .recipes import Recipe

#: Card normalisation of a run whose recipe feeds the network pixels / 255 unnormalised.
IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def better_net(metrics: Mapping) -> int:
    """1 or 2: the network with the higher test accuracy at the last scored epoch (1 on a tie)."""
    curves = metrics["curves"]
    return 2 if curves["test_acc_2"][-1] > curves["test_acc_1"][-1] else 1


def model_card(metrics: Mapping, recipe: Recipe, net: int) -> ModelCard:
    """The card of network ``net`` of a complete run with these ``metrics`` (classes, resolution and
    input normalisation as the run recorded them)."""
    normalisation = metrics["normalisation"]
    mean, std = IDENTITY if normalisation is None else (normalisation["mean"], normalisation["std"])
    curves = metrics["curves"]
    return ModelCard(
        architecture=COTEACHING_CNN,
        classes=tuple(metrics["classes"]),
        resolution=int(metrics["resolution"]),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        arch_kwargs={"width": recipe.cnn_width, "dropout": recipe.dropout, "dropout_at_eval": False},
        trained={
            "stage": CoteachRun.STAGE,
            "method": metrics.get("method"),
            "recipe": metrics.get("recipe"),
            "seed": metrics.get("seed"),
            "net": net,
            "final_test_acc": curves[f"test_acc_{net}"][-1],
            "final_epoch": curves["epoch"][-1],
            "selected_on": "test set (the better of the two networks at the last epoch)",
            "eval_dropout": recipe.eval_dropout,
            "tta_flip": recipe.tta_flip,
            "n_train": metrics.get("n_train"),
            "dataset": metrics.get("dataset"),
            "dataset_fingerprint": metrics.get("dataset_fingerprint"),
            "train_labels": metrics.get("train_labels"),
            "train_mask": metrics.get("train_mask"),
        },
    )


def model_files(nets: Sequence, metrics: Mapping, recipe: Recipe) -> dict[str, bytes]:
    """``model/model.safetensors`` and ``model/model.json`` of the better network, for the run's output."""
    net = better_net(metrics)
    card = model_card(metrics, recipe, net)
    return {f"{CoteachRun.MODEL}/{name}": data for name, data in model_bytes(nets[net - 1].state_dict(), card).items()}
