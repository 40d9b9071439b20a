"""Real stage CLIs reading and writing s3://, minio:// and gs:// URLs, one condition end to end:
dataset subset -> noisy labels -> given pred_probs -> masks -> Co-Teaching -> report; and a
local pipeline run publishing its report to an object store."""

import json
import uuid

import numpy as np
import pytest
from clpipe.components.common import storage
from clpipe.components.common.conditions import Condition
from clpipe.pipelines.config import BenchmarkParams
from clpipe.pipelines.local_run import run_locally

from clpipe import cli as clpipe_cli
from tests.conftest import condition_file

pytestmark = pytest.mark.storage


def clpipe(*argv):
    assert clpipe_cli.main([str(a) for a in argv]) == 0, argv


@pytest.fixture
def dataset(stores, cifar10_dir):
    """A 10-per-class train / 5-per-class test CIFAR-10 subset in the S3 bucket."""
    root = f"{stores['s3']}/{uuid.uuid4().hex[:8]}/cifar10"
    clpipe(
        "data", "subset", "--dataset", cifar10_dir, "--per-class", 10, "--out", f"{root}/cifar10_train.npz"
    )
    clpipe(
        "data",
        "subset",
        "--dataset",
        cifar10_dir,
        "--split",
        "test",
        "--per-class",
        5,
        "--out",
        f"{root}/cifar10_test.npz",
    )
    return root


def test_one_condition_through_every_url_scheme(stores, dataset):
    run = uuid.uuid4().hex[:8]
    s3, minio, gs = (f"{stores[k]}/{run}" for k in ("s3", "minio", "gs"))
    clpipe(
        "noisy-labels",
        "--dataset",
        dataset,
        "--name",
        "g",
        "--noise",
        0.4,
        "--sparsity",
        0.2,
        "--out",
        f"{gs}/labels",
    )
    pyx = np.random.default_rng(0).dirichlet(np.ones(10), size=100).astype(np.float32)
    storage.save_npy(f"{gs}/pyx.npy", pyx)
    clpipe(
        "combine-folds",
        "--dataset",
        dataset.replace("s3://", "minio://"),
        "--labels",
        f"{gs}/labels",
        "--given-pred-probs",
        f"{gs}/pyx.npy",
        "--out",
        f"{minio}/probs",
    )
    clpipe(
        "make-masks",
        "--labels",
        f"{minio}/probs/labels.npy",
        "--pred-probs",
        f"{minio}/probs",
        "--out",
        f"{gs}/masks",
    )
    clpipe(
        "coteach",
        "--train-labels",
        f"{gs}/labels/labels.npy",
        "--train-mask",
        f"{gs}/masks",
        "--method",
        "cl_pbnr",
        "--epochs",
        2,
        "--batch-size",
        16,
        "--cnn-width",
        4,
        "--no-progress",
        "--device",
        "cpu",
        "--out",
        f"{s3}/run-cl_pbnr",
        dataset,
    )
    clpipe(
        "report",
        "condition",
        "--labels",
        f"{gs}/labels",
        "--pred-probs",
        f"{minio}/probs",
        "--masks",
        f"{gs}/masks",
        "--out",
        f"{s3}/result",
        f"{s3}/run-cl_pbnr",
    )
    clpipe("report", "render", "--out", f"{gs}/report", f"{minio}/result")

    assert storage.listdir(f"{s3}/run-cl_pbnr") == ["checkpoint.pt", "clpipe-manifest.json", "metrics.json", "model"]
    assert storage.listdir(f"{s3}/run-cl_pbnr/model") == ["model.json", "model.safetensors"]
    assert storage.load_npy(f"{gs}/masks/train_pruned_cl_pbnr/train_mask.npy").shape == (100,)
    record = storage.load_json(f"{s3}/result/condition.json")
    assert record["condition"]["name"] == "g" and list(record["runs"]) == ["cl_pbnr"]
    assert record["pred_probs"]["source"] == "given" and record["pred_probs"]["n_examples"] == 100
    assert storage.listdir(f"{gs}/report") == [
        "clpipe-manifest.json",
        "detection.csv",
        "plots",
        "report.html",
        "report.md",
        "results.csv",
        "results.json",
    ]
    assert "| CL: PBNR |" in storage.read_bytes(f"{gs}/report/report.md").decode()


@pytest.mark.slow
def test_local_run_publishes_its_report_to_a_url(stores, cifar10_dir, tmp_path):
    condition = Condition(
        name="given",
        labels=str(condition_file("labels", 0.0, 0.2)),
        noise=0.2,
        pred_probs=str(condition_file("pyx", 0.0, 0.2)),
    )
    params = BenchmarkParams(
        dataset=cifar10_dir,
        conditions=(condition,),
        methods=("none",),
        coteach_epochs=2,
        coteach_cnn_width=4,
        coteach_batch_size=32,
        train_per_class=10,
        test_per_class=5,
    )
    output = f"{stores['gs']}/{uuid.uuid4().hex[:8]}/run"
    result = run_locally(params, output, pipeline_root=str(tmp_path / "kfp"))
    assert result.report == f"{output}/report"
    assert json.loads(storage.read_bytes(f"{output}/report/results.json"))[0]["condition"]["name"] == "given"
    assert "| Co-Teaching (no pruning) |" in result.markdown
