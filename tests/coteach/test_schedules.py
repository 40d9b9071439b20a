"""Forget-rate, learning-rate and beta1 schedules against the notes' formulas (§5), and the recipes."""

import numpy as np
import pytest
import torch
from clpipe.components.common.errors import InputError
from clpipe.components.coteach import method, recipes


def test_forget_rate_ramp_of_the_paper():
    # linspace(0, fr**c, Tk) for epochs 0..Tk-1, then fr; fr 0.2, Tk 10, c 1, E 250.
    s = method.forget_rate_schedule(250, 0.2, num_gradual=10, exponent=1)
    assert s.shape == (250,)
    np.testing.assert_allclose(s[:10], [k * 0.2 / 9 for k in range(10)], rtol=0, atol=1e-15)
    assert s[0] == 0 and s[9] == pytest.approx(0.2) and np.all(s[10:] == 0.2)
    assert s[1] == pytest.approx(0.02222222)  # the Feb-2020 loop's first trained epoch


def test_forget_rate_exponent_ramps_to_fr_power_c_then_jumps_to_fr():
    s = method.forget_rate_schedule(20, 0.3, num_gradual=5, exponent=2)
    np.testing.assert_allclose(s[:5], np.linspace(0, 0.09, 5))
    assert np.all(s[5:] == 0.3)


def test_forget_rate_schedule_shorter_than_the_ramp():
    np.testing.assert_allclose(method.forget_rate_schedule(3, 0.2), [0, 0.2 / 9, 0.4 / 9])
    assert np.all(method.forget_rate_schedule(5, 0.2, num_gradual=0) == 0.2)


def test_lr_and_beta1_schedule_feb2020():
    lr, beta1 = method.lr_beta1_schedule(250, 1e-3, epoch_decay_start=80, mom1=0.9, mom2=0.1)
    assert lr.shape == beta1.shape == (250,)
    assert np.all(lr[:80] == 1e-3) and np.all(beta1[:80] == 0.9)
    # lr * (E - e) / (E - 80) from epoch 80: full lr at 80, lr/170 at the last epoch.
    for e in (80, 81, 165, 249):
        assert lr[e] == pytest.approx(1e-3 * (250 - e) / 170, rel=1e-15)
    assert lr[249] == pytest.approx(1e-3 / 170)
    assert np.all(beta1[80:] == 0.1)
    assert np.all(np.diff(lr[80:]) < 0)


def test_lr_and_beta1_schedule_jair2021_keeps_beta1():
    lr, beta1 = method.lr_beta1_schedule(350, 1e-3, 80, 0.9, 0.9)
    assert lr[349] == pytest.approx(1e-3 / 270) and lr[79] == 1e-3
    assert np.all(beta1 == 0.9)


def test_adjust_optimizer_sets_lr_and_beta1_only():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    method.adjust_optimizer(opt, 5e-4, 0.1)
    assert opt.param_groups[0]["lr"] == 5e-4 and opt.param_groups[0]["betas"] == (0.1, 0.999)


def test_recipes_follow_the_notes():
    feb = recipes.RECIPES["feb2020"]
    assert (feb.epochs, feb.first_epoch, feb.batch_size, feb.lr, feb.forget_rate) == (250, 1, 128, 1e-3, 0.2)
    assert (feb.num_gradual, feb.exponent, feb.epoch_decay_start) == (10, 1.0, 80)
    assert (feb.mom1, feb.mom2) == (0.9, 0.1)
    assert feb.augment and not feb.normalize and feb.class_weights == "feb2020" and feb.cnn_width == 128
    assert feb.eval_dropout and feb.dropout == 0.25 and feb.drop_last
    jair = recipes.RECIPES["jair2021"]
    assert (jair.epochs, jair.first_epoch, jair.mom2, jair.forget_rate) == (350, 0, 0.9, None)
    assert jair.normalize and jair.class_weights == "jair2021" and jair.double_normalise
    co = recipes.RECIPES["coteaching2018"]
    assert (co.epochs, co.augment, co.normalize, co.class_weights) == (200, False, False, "none")
    assert recipes.DEFAULT_RECIPE == "feb2020"


def test_flags_override_recipe_fields():
    r = recipes.resolve_recipe("jair2021", forget_rate=0.3, batch_size=450, lr=None)
    assert (r.forget_rate, r.batch_size, r.lr, r.epochs) == (0.3, 450, 1e-3, 350)


@pytest.mark.parametrize("name, overrides, parameter", [
    ("nope", {}, "recipe"),
    ("jair2021", {}, "forget_rate"),  # noise / 2 must be given
    ("feb2020", {"forget_rate": 1.0}, "forget_rate"),
    ("feb2020", {"forget_rate": -0.1}, "forget_rate"),
    ("feb2020", {"forget_rate": float("nan")}, "forget_rate"),
    ("feb2020", {"epochs": 1}, "epochs"),  # epoch 0 is not trained: nothing left
    ("feb2020", {"batch_size": 0}, "batch_size"),
    ("feb2020", {"lr": 0.0}, "lr"),
    ("feb2020", {"cnn_width": 0}, "cnn_width"),
    ("feb2020", {"class_weights": "magic"}, "class_weights"),
])
def test_bad_recipe_values_are_input_errors(name, overrides, parameter):
    with pytest.raises(InputError) as e:
        recipes.resolve_recipe(name, **overrides)
    assert e.value.source == parameter
