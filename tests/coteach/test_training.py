"""Real Co-Teaching epochs on a small CIFAR-10 view: metrics contract, determinism, resume.

1000 train images (100 per class, published 20 %-noise labels, a mask keeping ~90 %), 500
test images, the paper's recipe with a narrow CNN (width 8) and 2 trained epochs (E = 3:
the Feb-2020 loop trains epochs 1 and 2).
"""

import json

import numpy as np
import pytest
import torch
from clpipe.components.common.errors import InputError
from clpipe.components.coteach import checkpoint, loop, recipes

pytestmark = pytest.mark.slow

RECIPE = recipes.resolve_recipe("feb2020", epochs=3, cnn_width=8, batch_size=64)
TIMING = ("epoch_time_s", "train_time_s")


class Sink:
    """Collects what the trainer would write to --out."""

    def __init__(self):
        self.checkpoints: list[bytes] = []
        self.metrics: list[dict] = []

    def kwargs(self) -> dict:
        return {"write_checkpoint": self.checkpoints.append, "write_metrics": self.metrics.append}


def train(data, *, sink=None, **kwargs):
    sink = sink or Sink()
    args = {"keep": data.keep, "true_labels": data.true, "test_exact": data.test_exact, "recipe": RECIPE,
            "seed": 7, "num_classes": 10, "device": torch.device("cpu"), "progress": False}
    args.update(kwargs)
    result = loop.train_coteaching(data.train_images, data.given, data.test_images, data.test_labels,
                                    **args, **sink.kwargs())
    return result, sink


def deterministic_curves(metrics: dict) -> dict:
    return {k: v for k, v in metrics["curves"].items() if k not in TIMING}


def assert_same_weights(nets_a, nets_b):
    for a, b in zip(nets_a, nets_b, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), name


@pytest.fixture(scope="module")
def uninterrupted(small_cifar):
    return train(small_cifar)


def test_metrics_follow_the_contract(uninterrupted, small_cifar):
    result, sink = uninterrupted
    m = result.metrics
    assert m["stage"] == "coteach" and m["seed"] == 7 and m["epochs"] == 3 and m["complete"]
    assert m["n_train"] == int(small_cifar.keep.sum()) and m["n_view"] == 1000
    assert m["n_removed"] == 1000 - m["n_train"]
    assert m["n_test"] == 500 and m["n_test_exact"] == int(small_cifar.test_exact.sum()) > 0
    curves = m["curves"]
    for key in ("test_acc_1", "test_acc_2", "test_exact_acc_1", "test_exact_acc_2", "train_loss_1",
                "train_loss_2", "forget_rate", "lr"):
        assert len(curves[key]) == 2, key
    assert curves["epoch"] == [1, 2]
    np.testing.assert_allclose(curves["forget_rate"], [0.2 / 9, 0.4 / 9])
    assert curves["lr"] == [1e-3, 1e-3] and curves["beta1"] == [0.9, 0.9]
    for key in ("test_acc_1", "test_acc_2", "test_exact_acc_1", "test_exact_acc_2"):
        assert all(0 <= v <= 1 for v in curves[key]), key
    assert all(np.isfinite(curves["train_loss_1"])) and all(np.isfinite(curves["train_loss_2"]))
    # Feb-2020 reporting rule: max of the two nets at the last epoch.
    assert m["final"]["test_acc"] == max(curves["test_acc_1"][-1], curves["test_acc_2"][-1])
    assert m["final"]["test_exact_acc"] == max(curves["test_exact_acc_1"][-1], curves["test_exact_acc_2"][-1])
    best = m["best"]
    assert best["selected_on"] == "test set" and "test set" in best["note"]
    assert best["test_acc"] == max(curves["test_acc_1"] + curves["test_acc_2"])
    assert best["epoch"] in (1, 2)
    assert m["time_s"] > 0 and m["epoch_time_s"] > 0 and m["images_per_s"] > 0
    assert m["device"].startswith("cpu") and m["torch_version"] == torch.__version__
    json.dumps(m, allow_nan=False)  # strict JSON
    # Written after every epoch; the checkpoint before the metrics.
    assert len(sink.metrics) == 2 and len(sink.checkpoints) == 2
    assert [s["epochs_done"] for s in sink.metrics] == [1, 2] and sink.metrics[-1]["complete"]


def test_checkpoint_holds_both_nets_optimisers_curves_and_rng(uninterrupted):
    result, sink = uninterrupted
    state = checkpoint.load_checkpoint(sink.checkpoints[-1], "checkpoint.pt")
    assert state["next_epoch"] == 3
    assert set(state) >= {"model1", "model2", "optimizer1", "optimizer2", "curves", "rng", "settings"}
    assert set(state["rng"]) >= {"torch", "order", "aug"}
    assert state["curves"]["test_acc_1"] == result.metrics["curves"]["test_acc_1"]
    assert torch.equal(state["model1"]["c1.weight"], result.nets[0].c1.weight.detach())


def test_cpu_runs_are_deterministic(uninterrupted, small_cifar):
    again, _ = train(small_cifar)
    assert deterministic_curves(again.metrics) == deterministic_curves(uninterrupted[0].metrics)
    assert_same_weights(again.nets, uninterrupted[0].nets)


def test_resume_gives_the_uninterrupted_result(uninterrupted, small_cifar):
    first, sink = train(small_cifar, stop_after=1)
    assert not first.metrics["complete"] and first.metrics["epochs_done"] == 1
    assert len(sink.checkpoints) == 1
    state = checkpoint.load_checkpoint(sink.checkpoints[-1], "checkpoint.pt")
    resumed, sink2 = train(small_cifar, resume=state)
    assert resumed.metrics["complete"] and resumed.metrics["epochs_done"] == 2
    assert deterministic_curves(resumed.metrics) == deterministic_curves(uninterrupted[0].metrics)
    assert resumed.metrics["final"] == uninterrupted[0].metrics["final"]
    assert_same_weights(resumed.nets, uninterrupted[0].nets)
    assert len(sink2.metrics) == 1  # only the epoch it trained


def test_rerun_of_a_finished_run_trains_nothing(uninterrupted, small_cifar):
    state = checkpoint.load_checkpoint(uninterrupted[1].checkpoints[-1], "checkpoint.pt")
    again, sink = train(small_cifar, resume=state)
    assert deterministic_curves(again.metrics) == deterministic_curves(uninterrupted[0].metrics)
    assert len(sink.checkpoints) == 0 and len(sink.metrics) == 1


@pytest.mark.parametrize("change, named", [
    ({"recipe": recipes.resolve_recipe("feb2020", epochs=3, cnn_width=8, batch_size=64, lr=2e-3)}, "recipe.lr"),
    ({"seed": 8}, "seed"),
    ({"keep": None}, "keep_mask"),
])
def test_resume_refuses_different_settings(uninterrupted, small_cifar, change, named):
    state = checkpoint.load_checkpoint(uninterrupted[1].checkpoints[0], "out/checkpoint.pt")
    with pytest.raises(InputError) as e:
        train(small_cifar, resume=state, resume_source="out/checkpoint.pt", **change)
    assert e.value.source == "out/checkpoint.pt" and named in e.value.problem


def test_a_mask_with_fewer_rows_than_a_batch_is_refused(small_cifar):
    keep = np.zeros(1000, dtype=bool)
    keep[:10] = True
    with pytest.raises(InputError, match="fewer than one batch"):
        train(small_cifar, keep=keep)


# --- cadence: score every 2nd epoch, save every 2nd, always the last ---------------------------------

CADENCE = recipes.resolve_recipe("feb2020", epochs=4, cnn_width=8, batch_size=64, eval_every=2, checkpoint_every=2)


def deterministic_logs(metrics: dict) -> tuple[dict, dict]:
    epoch_log = {k: v for k, v in metrics["epoch_log"].items() if k not in TIMING}
    return deterministic_curves(metrics), epoch_log


@pytest.fixture(scope="module")
def with_cadence(small_cifar):
    return train(small_cifar, recipe=CADENCE)


def test_the_test_set_is_scored_and_the_state_saved_as_the_recipe_says(with_cadence):
    result, sink = with_cadence
    m = result.metrics
    assert m["complete"] and m["epochs_done"] == 3 and m["epoch_log"]["epoch"] == [1, 2, 3]
    assert m["curves"]["epoch"] == [2, 3]  # the 2nd trained epoch, and the last
    assert all(len(values) == 2 for values in m["curves"].values())
    assert m["final"]["epoch"] == 3 and m["final"]["test_acc"] == max(m["curves"]["test_acc_1"][-1],
                                                                     m["curves"]["test_acc_2"][-1])
    for key in ("train_loss_1", "train_loss_2", "forget_rate", "lr", "beta1"):
        assert m["curves"][key] == [m["epoch_log"][key][i] for i in (1, 2)], key
    assert [s["epochs_done"] for s in sink.metrics] == [1, 2, 3]  # metrics after every epoch
    saved = [checkpoint.load_checkpoint(data, "checkpoint.pt") for data in sink.checkpoints]
    assert [s["next_epoch"] for s in saved] == [3, 4]
    assert saved[-1]["curves"]["epoch"] == [2, 3] and saved[-1]["epoch_log"]["epoch"] == [1, 2, 3]


def test_a_run_stopped_between_saves_resumes_to_the_same_result(with_cadence, small_cifar):
    first, sink = train(small_cifar, recipe=CADENCE, stop_after=1)  # epoch 1: not scored, saved (the stop)
    assert [checkpoint.load_checkpoint(d, "c")["next_epoch"] for d in sink.checkpoints] == [2]
    assert first.metrics["curves"]["epoch"] == [] and first.metrics["final"]["test_acc"] is None
    assert not first.metrics["complete"] and first.metrics["epochs_done"] == 1
    state = checkpoint.load_checkpoint(sink.checkpoints[-1], "checkpoint.pt")
    resumed, _ = train(small_cifar, recipe=CADENCE, resume=state)
    assert deterministic_logs(resumed.metrics) == deterministic_logs(with_cadence[0].metrics)
    assert resumed.metrics["final"] == with_cadence[0].metrics["final"]
    assert_same_weights(resumed.nets, with_cadence[0].nets)
