"""clpipe coteach through its CLI: the metrics contract, resume through an fsspec URL,
bad input -> exit 2 with nothing written."""

import functools
import inspect
import io
import json
import shutil

import fsspec
import numpy as np
import pytest
from clpipe.components.common import storage
from clpipe.components.common.cli import error_line
from clpipe.components.common.datasets import open_split, subset_rows
from clpipe.components.common.errors import InputError
from clpipe.components.common.labels import load_labels
from clpipe.components.coteach import cli as coteach_cli
from clpipe.components.coteach import stage

from clpipe import cli as clpipe_cli
from tests.conftest import CIFAR10
from tests.conftest import SHARED as DATA

NOISY_LABELS = (DATA / "cl-reproduce"
                / "cifar10_noisy_labels__frac_zero_noise_rates__0.0__noise_amount__0.2.json.gz")
N_VIEW = 1000  # --subset-per-class 100
FAST = ["--subset-per-class", "100", "--test-subset-per-class", "50", "--cnn-width", "8",
        "--batch-size", "64", "--no-progress", "--device", "cpu"]
CONTRACT_CURVES = {"test_acc_1", "test_acc_2", "test_exact_acc_1", "test_exact_acc_2", "train_loss_1",
                   "train_loss_2", "forget_rate", "lr"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Dataset dir, the published noisy labels (JSON and .npy) and a make-masks output (with its manifest)."""
    if not (CIFAR10 / "cifar10_train.npz").exists() or not NOISY_LABELS.exists():
        pytest.skip(f"shared CIFAR-10 data not found under {DATA}")
    root = tmp_path_factory.mktemp("coteach_inputs")
    labels_npy = root / "noisy.npy"
    np.save(labels_npy, load_labels(str(NOISY_LABELS), open_split(str(CIFAR10), "train")))
    masks = root / "masks"
    keep = np.random.default_rng(0).random(N_VIEW) >= 0.1
    with storage.staged_output(str(masks), stage="make-masks") as tmp:
        for method in ("cl_pbnr", "cl_both"):
            storage.save_npy(storage.join(tmp, f"train_pruned_{method}", "train_mask.npy"), keep)
    return {"dataset": str(CIFAR10), "labels_json": str(NOISY_LABELS), "labels_npy": str(labels_npy),
            "masks": str(masks), "root": root}


@pytest.fixture(scope="module")
def finished_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("coteach_out") / "run"
    argv = ["coteach", "--seed", "3", "--epochs", "3", "--lr", "0.001", "--forget-rate", "0.2",
            "--train-labels", inputs["labels_json"], "--train-mask", inputs["masks"], "--method", "cl_pbnr",
            "--out", str(out), *FAST, inputs["dataset"]]
    assert clpipe_cli.main(argv) == 0  # through the top-level dispatcher
    return out


@pytest.mark.slow
def test_output_follows_the_contract(finished_run):
    assert sorted(p.name for p in finished_run.iterdir()) == ["checkpoint.pt", "clpipe-manifest.json", "metrics.json",
                                                              "model"]
    assert sorted(p.name for p in (finished_run / "model").iterdir()) == ["model.json", "model.safetensors"]
    m = json.loads((finished_run / "metrics.json").read_text())
    for key in ("stage", "method", "recipe", "seed", "epochs", "n_train", "n_test", "n_test_exact", "curves",
                "final", "best", "time_s", "epoch_time_s", "device", "torch_version"):
        assert key in m, key
    assert (m["stage"], m["method"], m["recipe"]) == ("coteach", "cl_pbnr", "feb2020")
    assert (m["seed"], m["epochs"]) == (3, 3)
    assert m["n_view"] == N_VIEW and m["n_train"] < N_VIEW and m["n_test"] == 500 and m["n_test_exact"] > 0
    assert CONTRACT_CURVES <= set(m["curves"]) and all(len(m["curves"][k]) == 2 for k in CONTRACT_CURVES)
    assert set(m["final"]) >= {"test_acc", "test_exact_acc"}
    assert set(m["best"]) >= {"test_acc", "epoch"} and m["best"]["selected_on"] == "test set"
    assert m["class_weight_rule"] == "feb2020" and m["class_weights_use_true_labels"] is True
    assert m["train_mask"].endswith("train_pruned_cl_pbnr/train_mask.npy") and m["complete"]
    # The seed's CIFAR-10 files: 32 px; feb2020 feeds pixels / 255 (no normalisation), as the official code.
    assert (m["resolution"], m["normalisation"], m["n_classes"]) == (32, None, 10)


@pytest.mark.slow
def test_stop_and_resume_through_an_fsspec_url(inputs, finished_run):
    url = "memory://coteach-cli-test/run"
    argv = ["--seed", "3", "--epochs", "3", "--train-labels", inputs["labels_npy"],
            "--train-mask", inputs["masks"] + "/train_pruned_cl_pbnr/train_mask.npy", "--out", url, *FAST,
            inputs["dataset"]]
    assert coteach_cli.main([*argv, "--stop-after", "1"]) == 0
    with fsspec.open(url + "/metrics.json") as f:
        partial = json.load(f)
    assert partial["epochs_done"] == 1 and not partial["complete"]
    assert coteach_cli.main(argv) == 0  # resumes from memory://.../checkpoint.pt
    with fsspec.open(url + "/metrics.json") as f:
        resumed = json.load(f)
    reference = json.loads((finished_run / "metrics.json").read_text())
    assert resumed["method"] == "cl_pbnr"  # inferred from the mask's folder
    for key in CONTRACT_CURVES:
        assert resumed["curves"][key] == reference["curves"][key], key
    assert resumed["final"] == reference["final"] and resumed["best"] == reference["best"]


@pytest.mark.slow
def test_resume_with_different_settings_is_refused_and_changes_nothing(finished_run, inputs, tmp_path,
                                                                        capsys):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    argv = ["--seed", "3", "--epochs", "3", "--lr", "0.002", "--train-labels", inputs["labels_npy"],
            "--train-mask", inputs["masks"], "--method", "cl_pbnr", "--out", str(out), *FAST,
            inputs["dataset"]]
    assert coteach_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "ERROR coteach:" in err and "checkpoint.pt: settings:" in err and "recipe.lr" in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


class NotTensors:
    """What weights_only loading refuses: unpickling it would call print()."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_a_checkpoint_that_is_not_clpipes_is_refused_in_one_line(inputs, tmp_path, capfd):
    import torch

    out = tmp_path / "run"
    malicious = io.BytesIO()
    torch.save({"format": 2, "payload": NotTensors()}, malicious)
    # published as a coteach output (with a manifest): a folder without one is refused before any file is read
    storage.resumable_output(str(out), stage="coteach").publish({"checkpoint.pt": malicious.getvalue()})
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    argv = ["--seed", "3", "--epochs", "3", "--train-labels", inputs["labels_npy"], "--out", str(out), *FAST,
            inputs["dataset"]]
    assert coteach_cli.main(argv) == 2
    captured = capfd.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("ERROR")]
    expected = (f"ERROR coteach: {out / 'checkpoint.pt'}: not a clpipe checkpoint: it holds Python objects "
                "other than tensors and plain values, so it was not loaded")
    assert errors == [expected]
    assert "weights_only" not in captured.err and "this ran while loading" not in captured.out
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def _write_mask(inputs, name, array):
    path = inputs["root"] / name
    np.save(path, array)
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("short_mask", "train_mask: has shape (999,), the train view has 1000 rows"),
    ("other_subset_mask", ("train_mask: has shape (2000,), the train view has 1000 rows (a subset of the whole "
                           "split's 50000 rows; a mask of either length is accepted: was it made with other "
                           "--subset-per-class/--subset-seed?)")),
    ("whole_split_mask_empty_in_view", "train_mask: keeps no example"),
    ("int_mask", "train_mask: expected dtype bool"),
    ("empty_mask", "train_mask: keeps no example"),
    ("tiny_mask", "fewer than one batch of 64"),
    ("unknown_method", "--method: unknown method 'pbnr'"),
    ("dir_without_method", "is a directory: pick a mask with --method"),
    ("method_without_mask", "needs --train-mask"),
    ("missing_method_dir", "train_pruned_argmax/train_mask.npy: not found"),
    ("none_with_mask_file", "'none' trains on all examples"),
    ("unknown_recipe", "--recipe: unknown recipe 'feb2021'"),
    ("forget_rate_one", "--forget-rate: must lie in [0, 1), got 1.0"),
    ("forget_rate_negative", "--forget-rate: must lie in [0, 1), got -0.1"),
    ("jair_without_forget_rate", "--forget-rate: recipe jair2021 has no default forget rate"),
    ("bad_labels", "has 12 rows, the dataset"),
    ("bad_class_weights_flag", "invalid choice"),
    ("exponent_nan", "--exponent: must be a finite number > 0, got nan"),
    ("exponent_negative", "--exponent: must be a finite number > 0, got -1.0"),
    ("stop_after_negative", "--stop-after: must be >= 1 (epochs trained in total), got -1"),
    ("stop_after_zero", "--stop-after: must be >= 1 (epochs trained in total), got 0"),
    ("eval_every_zero", "--eval-every: must be >= 1, got 0"),
    ("checkpoint_every_zero", "--checkpoint-every: must be >= 1, got 0"),
])
def test_bad_input_exits_2_and_writes_nothing(inputs, tmp_path, capsys, case, message):
    out = tmp_path / "out"
    mask_dir = inputs["masks"]
    args = {"--train-labels": inputs["labels_npy"], "--train-mask": mask_dir, "--method": "cl_pbnr"}
    extra = []
    if case == "short_mask":
        args["--train-mask"] = _write_mask(inputs, "short.npy", np.ones(999, bool))
        del args["--method"]
    elif case == "other_subset_mask":
        args["--train-mask"] = _write_mask(inputs, "other_subset.npy", np.ones(2000, bool))
        del args["--method"]
    elif case == "whole_split_mask_empty_in_view":  # cut to the view's rows, it keeps none of them
        whole = np.ones(50000, bool)
        whole[subset_rows(open_split(inputs["dataset"], "train").labels, 100, 0)] = False  # FAST's subset
        args["--train-mask"] = _write_mask(inputs, "whole_empty.npy", whole)
        del args["--method"]
    elif case == "int_mask":
        args["--train-mask"] = _write_mask(inputs, "int.npy", np.ones(N_VIEW, np.int64))
        del args["--method"]
    elif case == "empty_mask":
        args["--train-mask"] = _write_mask(inputs, "empty.npy", np.zeros(N_VIEW, bool))
        del args["--method"]
    elif case == "tiny_mask":
        args["--train-mask"] = _write_mask(inputs, "tiny.npy", np.arange(N_VIEW) < 10)
        del args["--method"]
    elif case == "unknown_method":
        args["--method"] = "pbnr"
    elif case == "dir_without_method":
        del args["--method"]
    elif case == "method_without_mask":
        del args["--train-mask"]
    elif case == "missing_method_dir":
        args["--method"] = "argmax"
    elif case == "none_with_mask_file":
        args["--train-mask"] = mask_dir + "/train_pruned_cl_both/train_mask.npy"
        args["--method"] = "none"
    elif case == "unknown_recipe":
        extra = ["--recipe", "feb2021"]
    elif case == "forget_rate_one":
        extra = ["--forget-rate", "1.0"]
    elif case == "forget_rate_negative":
        extra = ["--forget-rate", "-0.1"]
    elif case == "jair_without_forget_rate":
        extra = ["--recipe", "jair2021"]
    elif case == "bad_labels":
        args["--train-labels"] = _write_mask(inputs, "labels12.npy", np.zeros(12, np.int64))
    elif case == "bad_class_weights_flag":
        extra = ["--class-weights", "oracle"]
    elif case.startswith("exponent_"):
        extra = ["--exponent", {"exponent_nan": "nan", "exponent_negative": "-1"}[case]]
    elif case.startswith("stop_after_"):
        extra = ["--stop-after", {"stop_after_negative": "-1", "stop_after_zero": "0"}[case]]
    elif case.endswith("_every_zero"):
        extra = ["--" + case.removesuffix("_zero").replace("_", "-"), "0"]
    argv = [a for kv in args.items() for a in kv] + extra + ["--epochs", "3", "--out", str(out), *FAST,
                                                              inputs["dataset"]]
    assert coteach_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    if case != "bad_class_weights_flag":
        assert "ERROR coteach:" in err
    assert not out.exists()


@pytest.mark.parametrize("train_mask, method, expected", [
    (None, None, (None, "none")),
    (None, "none", (None, "none")),
    ("M/train_pruned_cl_both/train_mask.npy", None, ("M/train_pruned_cl_both/train_mask.npy", "cl_both")),
    ("elsewhere/keep.npy", None, ("elsewhere/keep.npy", "custom")),
    ("elsewhere/keep.npy", "argmax", ("elsewhere/keep.npy", "argmax")),
])
def test_resolve_mask(train_mask, method, expected):
    assert stage.resolve_mask(train_mask, method) == expected


def test_errors_name_parameters_and_the_command_line_names_flags():
    """The entry point names parameters; a pipeline task shows them as they are, the CLI as flags."""
    with pytest.raises(InputError) as e:
        stage.resolve_mask("masks_dir", None)
    assert (e.value.source, e.value.problem.split(":")[0]) == ("method", "`train_mask` masks_dir is a directory")
    assert error_line("coteach", e.value).startswith(
        "ERROR coteach: method: train_mask masks_dir is a directory: pick a mask with method, one of")
    flags = {"method": "--method", "train_mask": "--train-mask"}
    assert error_line("coteach", e.value, flags).startswith(
        "ERROR coteach: --method: --train-mask masks_dir is a directory: pick a mask with --method, one of")


@pytest.mark.slow
def test_a_whole_split_mask_is_cut_to_the_subset_view(inputs, finished_run):
    """Masks found at full scale serve a subset run: the view's rows of a whole-split mask give
    the same training as the view's own mask (the first epoch of the finished run)."""
    view_mask = np.load(inputs["masks"] + "/train_pruned_cl_pbnr/train_mask.npy")
    whole = np.random.default_rng(1).random(50000) >= 0.5  # rows outside the view: anything
    whole[subset_rows(open_split(inputs["dataset"], "train").labels, 100, 0)] = view_mask
    url = "memory://coteach-cli-test/whole-split-mask"
    argv = ["--seed", "3", "--epochs", "3", "--stop-after", "1", "--train-labels", inputs["labels_npy"],
            "--train-mask", _write_mask(inputs, "whole_split.npy", whole), "--out", url, *FAST, inputs["dataset"]]
    assert coteach_cli.main(argv) == 0
    with fsspec.open(url + "/metrics.json") as f:
        cut = json.load(f)
    reference = json.loads((finished_run / "metrics.json").read_text())
    assert (cut["method"], cut["n_view"], cut["n_train"]) == ("custom", N_VIEW, int(view_mask.sum()))
    for key in CONTRACT_CURVES:
        assert cut["curves"][key] == reference["curves"][key][:1], key


def test_the_command_line_is_the_entry_point_signature(monkeypatch):
    """Flags absent -> the entry point's own defaults; --compile/--no-compile/absent -> True/False/None
    (None keeps the recipe's choice)."""
    calls = []

    @functools.wraps(stage.coteach)  # the same signature, annotations and docstring
    def recording(**kwargs):
        calls.append(kwargs)

    monkeypatch.setattr(stage, "coteach", recording)
    base = ["--train-labels", "L", "--out", "O", "D"]
    for extra, compile_ in (([], None), (["--compile"], True), (["--no-compile"], False)):
        assert coteach_cli.main([*base, *extra]) == 0
        assert calls[-1]["compile"] is compile_
    defaults = {name: p.default for name, p in inspect.signature(stage.coteach).parameters.items()
                if p.default is not inspect.Parameter.empty}
    assert calls[0] == {**defaults, "train_labels": "L", "out": "O", "dataset": "D"}
