"""Fold checkpoints: exact resume, refused reruns, and a real ``kill -9`` of ``clpipe fold-train``."""

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from clpipe.components.common import checkpoints, datasets, labels, storage
from clpipe.components.common.errors import InputError
from clpipe.components.fold_train import cli as fold_cli
from clpipe.components.fold_train import loop, recipes

EPOCHS = 3


@pytest.fixture(scope="module")
def small(cifar10_dir, clean_labels):
    """40 real CIFAR-10 train images per class with the published 0 %-noise labels."""
    split = datasets.open_split(cifar10_dir, "train")
    given = labels.load_labels(clean_labels, split)
    rows = datasets.subset_rows(split.labels, 40, seed=0)
    return split.take(rows).images(), given[rows]


def train(small, *, written=None, resume=None, fold_split="sklearn", **overrides):
    images, y = small
    recipe = recipes.resolve_recipe(
        "airbench-tiny", **{"epochs": EPOCHS, "batch_size": 64, "checkpoint_every": 1, **overrides}
    )
    return loop.train_fold(
        images,
        y,
        fold=2,
        n_folds=4,
        seed=0,
        arch="airbench-tiny",
        recipe=recipe,
        fold_split=fold_split,
        device=torch.device("cpu"),
        resume=resume,
        resume_source="out/checkpoint.pt",
        write_checkpoint=None if written is None else written.append,
        progress=False,
    )


@pytest.fixture(scope="module")
def uninterrupted(small):
    written: list[bytes] = []
    return train(small, written=written), written


def test_a_checkpoint_after_every_epoch_but_the_last(uninterrupted):
    _, written = uninterrupted
    states = [loop.load_checkpoint(data, "checkpoint.pt") for data in written]
    assert [s["next_epoch"] for s in states] == list(range(1, EPOCHS))
    state = states[-1]
    assert {"model", "optimizer", "scheduler", "lookahead", "rng", "settings"} <= set(state)
    assert state["settings"]["recipe"]["lr"] == recipes.RECIPES["airbench"].lr
    assert "checkpoint_every" not in state["settings"]["recipe"]


@pytest.mark.parametrize("epoch", range(1, EPOCHS))
def test_resumed_run_is_bit_identical(small, uninterrupted, epoch):
    result, written = uninterrupted
    resumed = train(small, resume=loop.load_checkpoint(written[epoch - 1], "out/checkpoint.pt"))
    np.testing.assert_array_equal(resumed.pred_probs, result.pred_probs)
    np.testing.assert_array_equal(resumed.indices, result.indices)
    assert resumed.metrics["resumed_at_epoch"] == epoch


def test_the_cadence_does_not_change_the_result(small, uninterrupted):
    result, _ = uninterrupted
    written: list[bytes] = []
    sparse = train(small, written=written, checkpoint_every=2)
    assert len(written) == 1 and loop.load_checkpoint(written[0], "c")["next_epoch"] == 2
    np.testing.assert_array_equal(sparse.pred_probs, result.pred_probs)
    # ... and a checkpoint written with another cadence resumes.
    resumed = train(small, resume=loop.load_checkpoint(written[0], "c"), checkpoint_every=0)
    np.testing.assert_array_equal(resumed.pred_probs, result.pred_probs)


@pytest.mark.parametrize(
    "change, named",
    [
        ({"lr": 5.0}, "recipe.lr (checkpoint 11.5, now 5.0)"),
        ({"fold_split": "sklearn-0.20"}, "fold_split (checkpoint 'sklearn', now 'sklearn-0.20')"),
        ({"holdout_transform": "train"}, "recipe.holdout_transform"),
    ],
)
def test_a_rerun_with_other_settings_is_refused_naming_them(small, uninterrupted, change, named):
    state = loop.load_checkpoint(uninterrupted[1][0], "out/checkpoint.pt")
    with pytest.raises(InputError) as e:
        train(small, resume=state, **change)
    assert e.value.source == "out/checkpoint.pt" and e.value.field == "settings" and named in e.value.problem


def test_other_files_are_not_fold_checkpoints(uninterrupted):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    coteach_like = io.BytesIO()
    torch.save({"format": 1, "kind": "coteach"}, coteach_like)
    for data, problem in [
        (pickle.dumps(Payload(), protocol=2), "not a clpipe fold-train checkpoint (unreadable as tensors"),
        (b"not a checkpoint", "not a clpipe fold-train checkpoint"),
        (
            coteach_like.getvalue(),
            "expected a clpipe fold-train checkpoint of format 1, found ('coteach', 1)",
        ),
    ]:
        with pytest.raises(InputError) as e:
            loop.load_checkpoint(data, "out/checkpoint.pt")
        assert problem in str(e.value) and "weights_only" not in str(e.value)


def test_check_resume_names_nested_and_top_level_differences():
    with pytest.raises(
        InputError, match=r"recipe.epochs \(checkpoint 3, now 4\); seed \(checkpoint 0, now 1\)"
    ):
        checkpoints.check_resume(
            {"recipe": {"epochs": 3}, "seed": 0}, {"recipe": {"epochs": 4}, "seed": 1}, "c"
        )


# --- a real process, killed with SIGKILL ------------------------------------------------------------


def fold_train_command(dataset: str, labels_url: str, out, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "clpipe.cli",
        "fold-train",
        "--dataset",
        dataset,
        "--labels",
        labels_url,
        "--fold",
        "1",
        "--n-folds",
        "4",
        "--arch",
        "airbench-tiny",
        "--epochs",
        "5",
        "--batch-size",
        "32",
        "--subset-per-class",
        "20",
        "--checkpoint-every",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
        "--out",
        str(out),
    ]


@pytest.mark.slow
def test_kill_9_then_the_same_command_ends_bit_identical(cifar10_dir, clean_labels, tmp_path, capsys):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: the same float sums in every process
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = subprocess.Popen(
        fold_train_command(cifar10_dir, clean_labels, whole), env=env, stderr=subprocess.PIPE, text=True
    )
    victim = subprocess.Popen(
        fold_train_command(cifar10_dir, clean_labels, killed), env=env, stderr=subprocess.DEVNULL
    )
    checkpoint = killed / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert victim.poll() is None, "the run ended before its first checkpoint could be interrupted"
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    stopped_at = loop.load_checkpoint(checkpoint.read_bytes(), "checkpoint.pt")["next_epoch"]
    assert 1 <= stopped_at < 5 and not (killed / "pred_probs.npy").exists()

    # A rerun with another setting is refused before anything is written; the checkpoint stays.
    before = checkpoint.read_bytes()
    changed = fold_train_command(cifar10_dir, clean_labels, killed, "--lr", "5")[4:]
    assert fold_cli.main(changed) == 2
    assert "checkpoint.pt: settings: " in capsys.readouterr().err
    assert checkpoint.read_bytes() == before and not (killed / "pred_probs.npy").exists()

    resumed = subprocess.run(
        fold_train_command(cifar10_dir, clean_labels, killed),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {checkpoint} at epoch {stopped_at}" in resumed.stderr
    assert reference.wait() == 0, reference.stderr.read()[-2000:]
    assert sorted(p.name for p in killed.iterdir()) == [
        "clpipe-manifest.json",
        "indices.npy",
        "labels.npy",
        "metrics.json",
        "pred_probs.npy",
    ]
    for name in ("indices.npy", "labels.npy", "pred_probs.npy"):
        np.testing.assert_array_equal(np.load(killed / name), np.load(whole / name))
    assert json.loads((killed / "metrics.json").read_text())["resumed_at_epoch"] == stopped_at


def test_on_an_object_store_the_checkpoint_resumes_and_goes_once_published(
    cifar10_dir, clean_labels, tmp_path, monkeypatch
):
    """memory:// stands for an object store: no directory rename removes the checkpoint there."""
    remote = "memory://clpipe-fold-checkpoint/fold1"

    def args(out):
        return fold_train_command(cifar10_dir, clean_labels, out, "--epochs", "2")[4:]

    written: list[bytes] = []
    publish = storage.ResumableOutput.publish

    def keep_checkpoints(self, files) -> None:
        written.extend(data for name, data in files.items() if name == "checkpoint.pt")
        publish(self, files)

    monkeypatch.setattr(storage.ResumableOutput, "publish", keep_checkpoints)
    assert fold_cli.main(args(tmp_path / "local")) == 0  # writes a checkpoint after epoch 1
    assert len(written) == 1
    storage.resumable_output(remote, stage="fold-train").publish({"checkpoint.pt": written[0]})  # as if killed
    assert fold_cli.main(args(remote)) == 0
    assert storage.listdir(remote) == [
        "clpipe-manifest.json", "indices.npy", "labels.npy", "metrics.json", "pred_probs.npy"
    ]
    assert json.loads(storage.read_bytes(f"{remote}/metrics.json"))["resumed_at_epoch"] == 1
    np.testing.assert_array_equal(
        storage.load_npy(f"{remote}/pred_probs.npy"), np.load(tmp_path / "local" / "pred_probs.npy")
    )
    fs, path = storage.url_to_fs(remote)
    fs.rm(path, recursive=True)
