"""Small real inputs for the bad-input suite, made once per session.

Good inputs come from the real stages run on a tiny 3-class dataset (12 train and 6 test images of
32 x 32), so each bad input differs from an accepted one in exactly the way its case says.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
from clpipe.components.common import storage
from clpipe.components.common.datasets import open_split

from clpipe.cli import main as clpipe_main
from tests.your_data import png

CLASSES = ("a", "b", "c")
PER_CLASS = 4


def _npz(path: Path, labels: np.ndarray, **extra: np.ndarray) -> str:
    rng = np.random.default_rng(len(labels))
    images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=labels, **{"classes": np.array(CLASSES), **extra})
    return str(path)


def _run(*argv: str) -> None:
    assert clpipe_main(list(argv)) == 0, argv


def _imagefolder(root: Path, sizes: dict[str, tuple[int, int]]) -> str:
    """``root/train/<class>/<i>.png`` (3 classes x 2), each of the size ``sizes`` gives (default 8 x 8)."""
    rng = np.random.default_rng(0)
    for cls in CLASSES:
        for i in range(2):
            name = f"{cls}/{i}.png"
            path = root / "train" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            h, w = sizes.get(name, (8, 8))
            path.write_bytes(png(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return str(root)


def _build(root: Path) -> dict[str, str]:
    w: dict[str, str] = {"root": str(root)}
    ds = root / "ds"
    ds.mkdir()
    train_labels = np.repeat(np.arange(3), PER_CLASS)
    _npz(ds / "train.npz", train_labels)
    _npz(ds / "test.npz", np.repeat(np.arange(3), 2))
    w["ds"] = str(ds)
    split = open_split(str(ds), "train")
    names = split.names.tolist()

    # given labels in every format, and a second condition's labels (two flips)
    np.save(root / "labels.npy", split.labels)
    w["labels_npy"] = str(root / "labels.npy")
    mapping = {f"/data/train/{n}": int(k) for n, k in zip(names, split.labels)}
    with gzip.open(root / "labels.json.gz", "wt") as f:
        json.dump(mapping, f)
    noisier = split.labels.copy()
    noisier[[0, 5]] = (noisier[[0, 5]] + 1) % 3
    np.save(root / "noisier.npy", noisier)
    np.save(root / "labels_24.npy", np.tile(split.labels, 2))
    w["labels_24"] = str(root / "labels_24.npy")

    # bad label files
    first = next(iter(mapping))
    (root / "huge.json").write_text(json.dumps({**mapping, first: 2**70}))
    w["huge"] = str(root / "huge.json")
    (root / "string.json").write_text(json.dumps({**mapping, first: "cat"}))
    w["string"] = str(root / "string.json")
    (root / "truncated.json.gz").write_bytes((root / "labels.json.gz").read_bytes()[:-20])
    w["truncated_gz"] = str(root / "truncated.json.gz")
    (root / "broken.json").write_text("{not json")
    w["broken_json"] = str(root / "broken.json")
    (root / "list.json").write_text("[0, 1, 2]")
    w["list_json"] = str(root / "list.json")
    (root / "negative.json").write_text(json.dumps({**mapping, first: -1}))
    w["negative_json"] = str(root / "negative.json")
    np.save(root / "float_labels.npy", split.labels.astype(np.float32))
    w["float_labels"] = str(root / "float_labels.npy")
    np.save(root / "short_labels.npy", split.labels[:-1])
    w["short_labels"] = str(root / "short_labels.npy")
    (root / "other_keys.json").write_text(json.dumps({f"x/{i}.png": 0 for i in range(12)}))
    w["other_keys"] = str(root / "other_keys.json")
    (root / "labels.csv").write_text("file,label\n")
    w["labels_csv"] = str(root / "labels.csv")
    (root / "garbage.npy").write_bytes(b"not an npy file at all")
    w["garbage_npy"] = str(root / "garbage.npy")

    # pred_probs: good, 9-class style mismatch (2 columns for 3-class labels), NaN, logits
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, 3))
    logits[np.arange(12), split.labels] += 2
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    np.save(root / "probs.npy", probs)
    w["probs"] = str(root / "probs.npy")
    four = np.concatenate([probs * 0.9, np.full((12, 1), 0.1, np.float32)], axis=1)
    np.save(root / "probs_4class.npy", four)
    w["probs_4class"] = str(root / "probs_4class.npy")
    np.save(root / "probs_2class.npy", np.full((12, 2), 0.5, np.float32))
    w["probs_2class"] = str(root / "probs_2class.npy")
    nan = probs.copy()
    nan[2, 1] = np.nan
    np.save(root / "probs_nan.npy", nan)
    w["probs_nan"] = str(root / "probs_nan.npy")
    np.save(root / "probs_logits.npy", logits.astype(np.float32))
    w["probs_logits"] = str(root / "probs_logits.npy")

    # bad datasets
    (root / "notzip.npz").write_bytes(b"this is not a zip file")
    w["notzip"] = str(root / "notzip.npz")
    _npz(root / "objclasses.npz", train_labels, classes=np.array(list(CLASSES), dtype=object))
    w["objclasses"] = str(root / "objclasses.npz")
    gap = np.concatenate([np.arange(10), [12, 12]])
    rng_images = np.random.default_rng(1).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    np.savez(root / "gap.npz", images=rng_images, labels=gap)
    w["gap"] = str(root / "gap.npz")
    np.savez(root / "noimages.npz", labels=train_labels)
    w["noimages"] = str(root / "noimages.npz")
    np.savez(root / "wrongshape.npz", images=np.zeros((12, 16, 16, 3), np.uint8), labels=train_labels)
    w["wrongshape"] = str(root / "wrongshape.npz")
    np.savez(root / "oneclass.npz", images=np.zeros((4, 32, 32, 3), np.uint8), labels=np.zeros(4, np.int64),
             classes=np.array(["a"]))
    w["oneclass"] = str(root / "oneclass.npz")
    (root / "README.md").write_text("# not a dataset\n")
    w["readme"] = str(root / "README.md")

    # ImageFolders: good, one truncated PNG, one image of another size
    w["folder"] = _imagefolder(root / "folder", {})
    w["folder_truncated"] = _imagefolder(root / "folder_truncated", {})
    victim = root / "folder_truncated" / "train" / "b" / "1.png"
    victim.write_bytes(victim.read_bytes()[:40])
    w["truncated_png"] = str(victim)
    folder_labels = {f"{cls}/{i}.png": k for k, cls in enumerate(CLASSES) for i in range(2)}
    (root / "folder_labels.json").write_text(json.dumps(folder_labels))
    w["folder_labels"] = str(root / "folder_labels.json")
    w["folder_sizes"] = _imagefolder(root / "folder_sizes", {"c/0.png": (9, 8)})
    w["odd_png"] = str(root / "folder_sizes" / "train" / "c" / "0.png")

    # real stage outputs of one condition, and pieces of another
    w["noisy"] = str(root / "noisy")
    _run("noisy-labels", "--dataset", w["ds"], "--name", "c1", "--labels", w["labels_npy"], "--out", w["noisy"])
    w["noisy2"] = str(root / "noisy2")
    _run("noisy-labels", "--dataset", w["ds"], "--name", "c2", "--labels", str(root / "noisier.npy"),
         "--out", w["noisy2"])
    w["combined"] = str(root / "combined")
    _run("combine-folds", "--given-pred-probs", w["probs"], "--dataset", w["ds"], "--labels", w["noisy"],
         "--out", w["combined"])
    w["masks"] = str(root / "masks")
    _run("make-masks", "--labels", w["labels_npy"], "--pred-probs", w["combined"], "--methods", "argmax",
         "--out", w["masks"])
    np.save(root / "mask5.npy", np.ones(5, bool))
    w["mask5"] = str(root / "mask5.npy")
    coteach = ["coteach", w["ds"], "--train-labels", w["noisy"], "--train-mask", w["masks"], "--method",
               "argmax", "--recipe", "fast", "--cnn-width", "8", "--batch-size", "4", "--device", "cpu",
               "--no-progress"]
    w["run_stopped"] = str(root / "run_stopped")
    _run(*coteach, "--epochs", "3", "--stop-after", "1", "--out", w["run_stopped"])

    # coteach outputs (with manifests) whose checkpoint is not clpipe's: one holding code that runs when
    # unpickled (print, harmless here), one that is no torch.save file at all
    import torch

    class Payload:
        def __reduce__(self):
            return print, ("this checkpoint ran code",)

    for name, stage, write in [("evil_run", "coteach", lambda f: torch.save({"format": Payload()}, f)),
                               ("garbage_run", "coteach", lambda f: Path(f).write_bytes(b"not a checkpoint")),
                               ("evil_fold", "fold-train", lambda f: torch.save({"format": Payload()}, f))]:
        w[name] = str(root / name)
        with storage.staged_output(w[name], stage=stage) as tmp:
            write(os.path.join(tmp, "checkpoint.pt"))

    # pipeline configs
    configs = root / "configs"
    configs.mkdir()
    base = {"dataset": w["ds"], "conditions": [{"name": "g", "noise": 0.2}], "n_folds": 2}
    for name, change in {"noise15": {"conditions": [{"name": "g", "noise": 1.5}]}, "folds1": {"n_folds": 1},
                         "unknown_key": {"n_fold": 2}}.items():
        (configs / f"{name}.yaml").write_text(json.dumps({**base, **change}))
        w[f"config_{name}"] = str(configs / f"{name}.yaml")
    (configs / "syntax.yaml").write_text("dataset: x\nconditions: [\n  {name: g, noise: 0.2\nn_folds: 2\n")
    w["config_syntax"] = str(configs / "syntax.yaml")
    # Co-Teaching asked for (an unquoted YAML on) on an ImageFolder with train/ alone.
    (configs / "coteach_on.yaml").write_text(f"dataset: {w['folder']}\nconditions: [{{name: g, noise: 0.2}}]\n"
                                             "coteach: on\n")
    w["config_coteach_on"] = str(configs / "coteach_on.yaml")
    (configs / "good.yaml").write_text(json.dumps(base))
    w["config_good"] = str(configs / "good.yaml")
    return w


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict:
    """Paths of the suite's inputs (see :func:`_build`); nothing in it may change."""
    return _build(tmp_path_factory.mktemp("bad_inputs_world"))
