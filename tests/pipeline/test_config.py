"""Pipeline parameters from the YAML config and flags: defaults, overrides, validation."""

import argparse
import os
from pathlib import Path

import pytest
from clpipe.components.common.conditions import Condition
from clpipe.components.common.errors import InputError
from clpipe.pipelines import config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "pipelines" / "configs" / "demo.yaml"


def parse(argv):
    parser = argparse.ArgumentParser()
    config.add_param_arguments(parser)
    return config.params_from_args(parser.parse_args(argv), extra=("output",))


def test_demo_config():
    params, others = parse([str(DEMO)])
    assert others == {"output": "runs/demo"}
    assert [c.name for c in params.conditions] == ["n0.4-s0.2"]
    assert params.conditions[0].pred_probs.endswith("pyx__frac_zero_noise_rates__0.2__noise_amount__0.4.npy")
    assert params.methods == ("none", "cl_pbnr") and params.coteach_recipe == "fast"
    assert params.train_per_class == 200 and params.coteach_epochs == 24
    resolved = params.with_local_paths_resolved(str(REPO))
    for url in (resolved.dataset, resolved.conditions[0].labels, resolved.conditions[0].pred_probs):
        assert os.path.isabs(url) and os.path.exists(url), url


def test_flags_override_the_config():
    params, _ = parse(
        [
            str(DEMO),
            "--n-folds",
            "3",
            "--methods",
            "none,argmax",
            "--coteach-lr",
            "0.01",
            "--condition",
            "name=a,noise=0.4,sparsity=0.2,seed=2",
            "--condition",
            "name=b,labels=s3://b/l.json",
        ]
    )
    assert params.n_folds == 3 and params.methods == ("none", "argmax") and params.coteach_lr == 0.01
    assert params.conditions == (
        Condition(name="a", noise=0.4, sparsity=0.2, seed=2),
        Condition(name="b", labels="s3://b/l.json"),
    )
    assert params.coteach_recipe == "fast" and params.train_per_class == 200  # from the config


def test_defaults_are_the_papers_benchmark():
    params, _ = parse(["--dataset", "gs://b/cifar10"])
    assert len(params.conditions) == 12 and params.conditions[10].name == "n0.6-s0.4"
    assert params.fold_arch == "resnet50" and params.n_folds == 4 and params.coteach_recipe == "feb2020"
    arguments = params.arguments()
    assert arguments["methods"] == ["none", "argmax", "conf_joint_only", "cl_pbc", "cl_pbnr", "cl_both"]
    assert arguments["conditions"][0] == {
        "name": "n0.2-s0.0",
        "noise": 0.2,
        "sparsity": 0.0,
        "seed": 0,
        "labels": "",
        "pred_probs": "",
    }


def test_your_data_settings():
    params, _ = parse(["--dataset", "d", "--fold-arch", "auto", "--resolution", "64", "--issue-method", "cl_both"])
    assert (params.fold_arch, params.resolution, params.issue_method) == ("auto", 64, "cl_both")
    defaults = config.BenchmarkParams(dataset="d")
    assert defaults.resolution == 0 and defaults.issue_method == "cl_pbnr"  # native size; cleanlab's default


def test_your_data_config():
    params, others = parse([str(REPO / "pipelines" / "configs" / "your-data.yaml")])
    assert others == {"output": "runs/my-images"} and params.dataset == "my-images"
    assert [(c.name, c.noise, c.labels, c.pred_probs) for c in params.conditions] == [("as-given", 0.0, "", "")]
    assert (params.resolution, params.fold_arch, params.issue_method, params.coteach) == (64, "auto", "cl_pbnr", "auto")


def test_coteach_is_auto_unless_set_and_yaml_on_off_are_its_values(tmp_path):
    assert config.BenchmarkParams(dataset="d").coteach == "auto"
    for text, value in (("on", "on"), ("off", "off"), ("'off'", "off"), ("auto", "auto")):
        path = tmp_path / "c.yaml"
        path.write_text(f"dataset: d\ncoteach: {text}\n")  # unquoted on/off: YAML 1.1 booleans
        assert parse([str(path)])[0].coteach == value
    assert parse([str(path), "--coteach", "off"])[0].coteach == "off"


def test_urls_are_not_resolved():
    params = config.BenchmarkParams(
        dataset="gs://b/d", conditions=(Condition(name="a", labels="s3://x/l.json"),)
    )
    assert params.with_local_paths_resolved("/base") == params


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--n-folds", "4"], "dataset"),
        (["--dataset", "d", "--n-folds", "1"], "n_folds"),
        (["--dataset", "d", "--methods", "none,nope"], "methods"),
        (["--dataset", "d", "--methods", "none,none"], "methods"),
        (["--dataset", "d", "--fold-arch", "vgg"], "fold_arch"),
        (["--dataset", "d", "--resolution", "4"], "resolution"),
        (["--dataset", "d", "--resolution", "-1"], "resolution"),
        (["--dataset", "d", "--issue-method", "none"], "issue_method"),
        (["--dataset", "d", "--coteach", "maybe"], "coteach"),
        (["--dataset", "d", "--coteach-forget-rate", "lots"], "coteach_forget_rate"),
        (["--dataset", "d", "--coteach-epochs", "-1"], "coteach_epochs"),
        (
            ["--dataset", "d", "--condition", "name=a,noise=0.2", "--condition", "name=a,noise=0.4"],
            "conditions",
        ),
        (["--dataset", "d", "--condition", "name=a,noise=high"], "name=a,noise=high"),
        (["--dataset", "d", "--condition", "name=a"], "noise"),
    ],
)
def test_bad_parameters_name_the_field(argv, field):
    with pytest.raises(InputError) as e:
        parse(argv)
    assert e.value.field == field


def test_bad_config_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: d\nn_fold: 3\n")
    with pytest.raises(InputError, match="n_fold: unknown parameter"):
        parse([str(bad)])
    bad.write_text("dataset: d\nn_folds: three\n")
    with pytest.raises(InputError, match="n_folds: expected int"):
        parse([str(bad)])
    bad.write_text("- a\n")
    with pytest.raises(InputError, match="expected a mapping"):
        parse([str(bad)])
    bad.write_text("dataset: d\nconditions: [{name: x, noise: 0.2, colour: red}]\n")
    with pytest.raises(InputError, match=r"conditions\[0\] 'x'|colour"):
        parse([str(bad)])


@pytest.mark.parametrize("name", ["table2-paper", "table2-from-published", "table2-fast"])
def test_table2_configs_cover_the_papers_grid(name):
    from clpipe.components.report.logic import PAPER_TABLE2
    from clpipe.pipelines.local_run import check_inputs

    params, others = parse([str(REPO / "pipelines" / "configs" / f"{name}.yaml")])
    assert others == {"output": f"runs/{name}"}
    grid = {(c.noise, c.sparsity) for c in params.conditions}
    assert grid == {(n, s) for n in (0.2, 0.4, 0.6) for s in (0.0, 0.2, 0.4, 0.6)}
    assert set(params.methods) >= set(PAPER_TABLE2) - {"none"}
    assert params.train_per_class == params.test_per_class == 0  # the whole train and test sets
    check_inputs(params.with_local_paths_resolved(str(REPO)))  # every local input exists
    if name == "table2-from-published":
        assert all(c.pred_probs and c.labels for c in params.conditions)
        assert params.mask_compat == "cleanlab-2021"
    else:
        assert all(c.generated and c.seed == 0 for c in params.conditions)
