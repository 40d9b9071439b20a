"""Every stage as a standalone container on local paths, chained as the pipeline chains them.

    docker run -v DATA:/data:ro -v WORK:/work IMAGE <stage> ...

noisy-labels (CPU image) -> fold-train (GPU image, here on CPU) x 2 folds ->
combine-folds (CPU) -> make-masks (CPU) -> coteach (GPU) -> report condition + render (CPU),
on a 20-per-class subset of the real CIFAR-10 with the S=0.2, N=0.4 condition, 1-2 epochs of
the smallest networks. Outputs are checked against docs/architecture.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import DATASET_IN_CONTAINER, SUBSET, fold_train_args, load_json

GIVEN = "/work/labels/labels.npy"  # noisy-labels output: the whole split's given labels

pytestmark = pytest.mark.docker

N_FOLDS = 2
N_VIEW = 200  # 20 per class x 10 classes
METHODS = ("argmax", "conf_joint_only", "cl_pbc", "cl_pbnr", "cl_both")


@pytest.fixture(scope="module")
def labels(run, images, module_workdir):
    run(
        images.cpu,
        [
            "noisy-labels",
            "--dataset",
            DATASET_IN_CONTAINER,
            "--name",
            "s0.2_n0.4",
            "--noise",
            "0.4",
            "--sparsity",
            "0.2",
            "--seed",
            "0",
            "--out",
            "/work/labels",
        ],
        work=module_workdir,
    ).check()
    return module_workdir / "labels"


@pytest.fixture(scope="module")
def folds(run, images, module_workdir, labels):
    for k in range(N_FOLDS):
        fold = fold_train_args(DATASET_IN_CONTAINER, GIVEN, k, N_FOLDS, f"/work/fold{k}", *SUBSET)
        run(images.gpu, fold, work=module_workdir).check()
    return module_workdir


@pytest.fixture(scope="module")
def combined(run, images, folds):
    run(
        images.cpu,
        ["combine-folds", "--out", "/work/cv", *(f"/work/fold{k}" for k in range(N_FOLDS))],
        work=folds,
    ).check()
    return folds / "cv"


@pytest.fixture(scope="module")
def masks(run, images, combined):
    run(
        images.cpu,
        ["make-masks", "--labels", "/work/cv/labels.npy", "--pred-probs", "/work/cv", "--out", "/work/masks"],
        work=combined.parent,
    ).check()
    return combined.parent / "masks"


def test_noisy_labels_in_the_cpu_image(labels):
    given = np.load(labels / "labels.npy")
    assert given.shape == (50000,) and given.dtype == np.int64
    summary = load_json(labels / "summary.json")
    assert summary["condition"]["name"] == "s0.2_n0.4" and 0.35 < summary["realised_noise_rate"] < 0.45


def test_fold_train_writes_the_fold_contract(folds):
    held_out = []
    for k in range(N_FOLDS):
        d = folds / f"fold{k}"
        assert sorted(p.name for p in d.iterdir()) == [
            "clpipe-manifest.json",
            "indices.npy",
            "labels.npy",
            "metrics.json",
            "pred_probs.npy",
        ]
        idx = np.load(d / "indices.npy")
        probs = np.load(d / "pred_probs.npy")
        labels = np.load(d / "labels.npy")
        assert idx.dtype == np.int64 and labels.dtype == np.int64 and probs.dtype == np.float32
        assert probs.shape == (len(idx), 10) and labels.shape == idx.shape
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)
        metrics = load_json(d / "metrics.json")
        assert metrics["stage"] == "fold-train" and metrics["fold"] == k and metrics["n_folds"] == N_FOLDS
        assert metrics["device"].startswith("cpu") and metrics["torch_version"].startswith("2.14.1")
        assert d.stat().st_uid == 1000  # written by the image's non-root user
        held_out.append(idx)
    assert sorted(np.concatenate(held_out).tolist()) == list(range(N_VIEW))


def test_combine_folds_in_the_cpu_image(combined):
    probs = np.load(combined / "pred_probs.npy")
    labels = np.load(combined / "labels.npy")
    assert probs.shape == (N_VIEW, 10) and probs.dtype == np.float32 and labels.shape == (N_VIEW,)
    summary = load_json(combined / "summary.json")
    assert summary["n_examples"] == N_VIEW and summary["n_folds"] == N_FOLDS
    assert len(summary["confusion_matrix"]) == 10


def test_make_masks_in_the_cpu_image(masks):
    summary = load_json(masks / "summary.json")
    assert summary["n_examples"] == N_VIEW and set(summary["methods"]) == set(METHODS)
    for method in METHODS:
        keep = np.load(masks / f"train_pruned_{method}" / "train_mask.npy")
        assert keep.dtype == bool and keep.shape == (N_VIEW,)
        assert int((~keep).sum()) == summary["methods"][method]["removed"]


@pytest.fixture(scope="module")
def coteach(run, images, masks):
    work = masks.parent
    res = run(
        images.gpu,
        [
            "coteach",
            DATASET_IN_CONTAINER,
            "--train-labels",
            GIVEN,
            *SUBSET,
            "--train-mask",
            "/work/masks",
            "--method",
            "cl_pbnr",
            "--epochs",
            "2",
            "--cnn-width",
            "8",
            "--batch-size",
            "32",
            "--test-subset-per-class",
            "10",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            "/work/coteach",
        ],
        work=work,
    ).check()
    assert "ERROR" not in res.logs
    return work / "coteach"


def test_coteach_in_the_gpu_image(coteach):
    work = coteach.parent
    metrics = load_json(work / "coteach" / "metrics.json")
    assert metrics["stage"] == "coteach" and metrics["method"] == "cl_pbnr"
    n_epochs = len(metrics["curves"]["test_acc_1"])
    assert n_epochs >= 1 and 0 <= metrics["final"]["test_acc"] <= 1
    assert metrics["n_test"] == 100
    assert (work / "coteach" / "checkpoint.pt").stat().st_size > 0


def test_report_in_the_cpu_image(run, images, coteach):
    work = coteach.parent
    run(
        images.cpu,
        [
            "report",
            "condition",
            "/work/coteach",
            "--labels",
            "/work/labels",
            "--pred-probs",
            "/work/cv",
            "--masks",
            "/work/masks",
            "--out",
            "/work/condition",
        ],
        work=work,
    ).check()
    run(images.cpu, ["report", "render", "/work/condition", "--out", "/work/report"], work=work).check()
    report = work / "report"
    assert {"report.md", "report.html", "results.csv", "results.json"} <= {p.name for p in report.iterdir()}
    pngs = list((report / "plots").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "s0.2_n0.4" in (report / "report.md").read_text()


def test_bad_input_exits_2_and_publishes_nothing(run, images, workdir):
    res = run(
        images.cpu,
        [
            "make-masks",
            "--labels",
            "/work/missing.npy",
            "--pred-probs",
            "/work/none.npy",
            "--out",
            "/work/masks",
        ],
        work=workdir,
    )
    assert res.exit_code == 2, res.logs
    assert "ERROR make-masks:" in res.logs
    assert not (workdir / "masks").exists()


def test_data_is_mounted_read_only(run, images):
    res = run(images.cpu, ["sh", "-c", f"touch {DATASET_IN_CONTAINER}/x"])
    assert res.exit_code != 0 and "Read-only file system" in res.logs
