"""Conditions are validated naming the field; pipeline items read like configs; forget-rate settings."""

import pytest
from clpipe.components.common.conditions import Condition, resolve_forget_rate
from clpipe.components.common.errors import InputError


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"noise": 0.2}, "name"),
        ({"name": "a b", "noise": 0.2}, "name"),
        ({"name": "a"}, "noise"),
        ({"name": "a", "noise": 1.0}, "noise"),
        ({"name": "a", "noise": 0.2, "sparsity": -0.1}, "sparsity"),
        ({"name": "a", "noise": "0.2"}, "noise"),
        ({"name": "a", "noise": 0.2, "seed": 1.5}, "seed"),
        ({"name": "a", "noise": 0.2, "colour": "red"}, "colour"),
        ({"name": "a", "labels": 3}, "labels"),
    ],
)
def test_bad_conditions_name_the_field(data, field):
    with pytest.raises(InputError) as e:
        Condition.from_dict(data)
    assert e.value.field == field


def test_pipeline_items_with_empty_values_read_like_configs():
    item = {"name": "pub", "noise": None, "sparsity": 0.2, "seed": 0, "labels": "l.json", "pred_probs": ""}
    condition = Condition.from_dict(item)
    assert condition == Condition(name="pub", sparsity=0.2, labels="l.json")
    assert Condition.from_dict(condition.to_dict()) == condition


@pytest.mark.parametrize(
    ("setting", "expected"), [("recipe", None), ("noise", 0.15), ("0.2", 0.2), ("0", 0.0)]
)
def test_forget_rate_settings(setting, expected):
    assert resolve_forget_rate(setting, 0.15) == expected


@pytest.mark.parametrize("setting", ["half", "1.0", "-0.1", "nan"])
def test_bad_forget_rate_settings(setting):
    with pytest.raises(InputError, match="forget_rate"):
        resolve_forget_rate(setting, 0.15)
