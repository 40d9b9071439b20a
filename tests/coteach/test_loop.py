"""Pieces of the training loop on tiny synthetic data: the record of a run, what a process trains,
the precision a device gets, and compiled networks wired to the same parameters."""

import dataclasses

import numpy as np
import pytest
import torch
from clpipe.components.common.errors import InputError
from clpipe.components.coteach import loop, recipes
from tqdm.auto import tqdm

CPU = torch.device("cpu")


def _entry(epoch: int, scored: bool) -> dict:
    entry = {"epoch": epoch, "train_loss_1": 1.0 + epoch, "train_loss_2": 2.0 + epoch, "forget_rate": 0.1,
             "lr": 1e-3, "beta1": 0.9, "epoch_time_s": 1.5, "train_time_s": 1.0}
    if scored:
        entry |= {"test_acc_1": 0.5 + epoch / 100, "test_acc_2": 0.4, "test_exact_acc_1": None,
                  "test_exact_acc_2": None}
    return entry


def test_history_logs_every_epoch_and_curves_only_the_scored_ones():
    recipe = recipes.resolve_recipe("fast", epochs=4)  # epochs 0..3
    history = loop.History.start(None)
    for epoch in range(4):
        history.add(_entry(epoch, scored=epoch in (1, 3)))
    m = loop.metrics({"stage": "coteach"}, history, recipe, steps_per_epoch=2)
    assert m["epoch_log"]["epoch"] == [0, 1, 2, 3] and m["epochs_done"] == 4 and m["complete"]
    assert m["curves"]["epoch"] == [1, 3] and set(m["curves"]) == set(loop.CURVE_KEYS)
    assert m["curves"]["train_loss_1"] == [2.0, 4.0]  # the scored epochs' own entries
    assert m["final"] == {"test_acc": 0.53, "test_exact_acc": None, "epoch": 3}
    assert m["time_s"] == 6.0 and m["epoch_time_s"] == 1.5
    m["curves"]["epoch"].append(99)  # the metrics are a copy (written on another thread)
    assert history.curves["epoch"] == [1, 3]


def test_epochs_to_run_and_stop_after():
    recipe = recipes.resolve_recipe("feb2020", epochs=6)  # trains 1..5
    assert list(loop.epochs_to_run(recipe, 1, None)) == [1, 2, 3, 4, 5]
    assert list(loop.epochs_to_run(recipe, 1, 2)) == [1, 2]
    assert list(loop.epochs_to_run(recipe, 3, 2)) == []  # already stopped there
    for bad in (0, -1):
        with pytest.raises(InputError, match="stop_after: must be >= 1"):
            loop.check_stop_after(bad)


def test_the_cpu_computes_in_fp32_whatever_the_recipe():
    fast = recipes.resolve_recipe("fast")
    assert fast.precision == "bf16" and fast.compile
    assert loop.effective_precision(fast, CPU) == "fp32"
    assert loop.effective_precision(fast, torch.device("cuda")) == "bf16"
    assert {r.precision for name, r in recipes.RECIPES.items() if name != "fast"} == {"fp32"}
    meta = loop.run_metadata(fast, seed=1, num_classes=10, n_view=3, n_train=3, n_test=1, exact_rows=None,
                             weights=None, steps_per_epoch=1, device=CPU, resolution=32, normalisation=None,
                             metadata=None)
    assert meta["precision"] == "fp32" and meta["compiled"] is False


@pytest.mark.slow
def test_compiled_runners_train_and_score_the_networks_they_wrap():
    """Wrappers made by torch.compile (here its 'eager' backend, so numbers stay bit-identical on
    the CPU) must update the parameters that the optimisers and checkpoints see."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 96)
    recipe = dataclasses.replace(recipes.resolve_recipe("fast", epochs=2, cnn_width=4, batch_size=32),
                                 compile=False)
    seeds = loop.Seeds.from_seed(0)
    schedules = loop.Schedules.of(recipe)

    def one_epoch(compiled: bool):
        torch.manual_seed(seeds.run)
        train, test = loop.make_loaders(images, labels, images[:40], labels[:40], recipe, CPU, seeds,
                                        loop.input_normalisation(recipe, None))
        networks = loop.make_networks(3, recipe, CPU, seeds)
        if compiled:
            runners = tuple(torch.compile(net, backend="eager") for net in networks.nets)
            networks = dataclasses.replace(networks, runners=runners)
        bar = tqdm(disable=True)
        entry = loop.run_epoch(1, networks, train, test, None, None, schedules, recipe, "fp32", bar)
        return entry, networks.nets

    (plain, nets), (compiled, compiled_nets) = one_epoch(False), one_epoch(True)
    assert compiled["test_acc_1"] == plain["test_acc_1"] and compiled["train_loss_1"] == plain["train_loss_1"]
    for a, b in zip(nets, compiled_nets, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), name
