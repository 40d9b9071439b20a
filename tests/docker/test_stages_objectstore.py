"""Stage containers reading and writing object-store URLs, credentials from the environment only.

A real S3 server (SeaweedFS ``weed mini``, the store KFP >= 2.16 ships) and a GCS emulator
run on 127.0.0.1; containers reach them with ``--network=host``:

    docker run --network=host -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_ENDPOINT_URL \\
        IMAGE <stage> ... s3://bucket/...

The S3 chain: ``data subset`` (CPU image, local -> s3://) -> ``fold-train`` x 2 (GPU image,
dataset and labels read from s3://, cached in the container's CLPIPE_CACHE_DIR) ->
``combine-folds`` (s3:// -> minio://, KFP's scheme) -> ``make-masks`` (minio:// -> s3://).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from clpipe.components.common.storage import MANIFEST

from .conftest import DATASET_IN_CONTAINER, LABELS_IN_CONTAINER, fold_train_args

pytestmark = [pytest.mark.docker, pytest.mark.storage]

N_FOLDS = 2
PER_CLASS = 10
N_VIEW = 10 * PER_CLASS


@pytest.fixture(scope="module")
def s3_chain(run, images, s3_server):
    b = f"s3://{s3_server.bucket}"
    env = s3_server.env()
    run(
        images.cpu,
        [
            "data",
            "subset",
            "--dataset",
            DATASET_IN_CONTAINER,
            "--split",
            "train",
            "--per-class",
            str(PER_CLASS),
            "--seed",
            "3",
            "--out",
            f"{b}/ds/train.npz",
            "--labels",
            LABELS_IN_CONTAINER,
            "--labels-out",
            f"{b}/ds/labels.json",
        ],
        env=env,
        network="host",
    ).check()
    for k in range(N_FOLDS):
        run(
            images.gpu,
            fold_train_args(f"{b}/ds/train.npz", f"{b}/ds/labels.json", k, N_FOLDS, f"{b}/runs/fold{k}"),
            env=env,
            network="host",
        ).check()
    run(
        images.cpu,
        [
            "combine-folds",
            "--out",
            f"minio://{s3_server.bucket}/runs/cv",
            *(f"{b}/runs/fold{k}" for k in range(N_FOLDS)),
        ],
        env=env,
        network="host",
    ).check()
    run(
        images.cpu,
        [
            "make-masks",
            "--labels",
            f"minio://{s3_server.bucket}/runs/cv/labels.npy",
            "--pred-probs",
            f"minio://{s3_server.bucket}/runs/cv",
            "--out",
            f"{b}/runs/masks",
        ],
        env=env,
        network="host",
    ).check()
    return s3_server


def _npy(fs, path: str) -> np.ndarray:
    return np.load(io.BytesIO(fs.cat_file(path)), allow_pickle=False)


def test_subset_written_to_s3(s3_chain):
    fs = s3_chain.fs()
    bucket = s3_chain.bucket
    with fs.open(f"{bucket}/ds/train.npz", "rb") as f:
        npz = np.load(io.BytesIO(f.read()), allow_pickle=False)
        assert npz["images"].shape == (N_VIEW, 32, 32, 3)
    assert len(json.loads(fs.cat_file(f"{bucket}/ds/labels.json"))) == N_VIEW


def test_folds_read_and_write_s3(s3_chain):
    fs = s3_chain.fs()
    held_out = []
    for k in range(N_FOLDS):
        prefix = f"{s3_chain.bucket}/runs/fold{k}"
        assert {p.rsplit("/", 1)[-1] for p in fs.ls(prefix)} == {
            "indices.npy",
            "labels.npy",
            "metrics.json",
            "pred_probs.npy",
            MANIFEST,  # written last: the fold output is complete
        }
        held_out.append(_npy(fs, f"{prefix}/indices.npy"))
        assert json.loads(fs.cat_file(f"{prefix}/metrics.json"))["n_examples"] == N_VIEW
    assert sorted(np.concatenate(held_out).tolist()) == list(range(N_VIEW))


def test_combine_and_masks_through_minio_urls(s3_chain):
    fs = s3_chain.fs()
    bucket = s3_chain.bucket
    assert _npy(fs, f"{bucket}/runs/cv/pred_probs.npy").shape == (N_VIEW, 10)
    summary = json.loads(fs.cat_file(f"{bucket}/runs/masks/summary.json"))
    assert summary["n_examples"] == N_VIEW
    keep = _npy(fs, f"{bucket}/runs/masks/train_pruned_cl_both/train_mask.npy")
    assert keep.dtype == bool and keep.shape == (N_VIEW,)


def test_wrong_credentials_fail_without_output(run, images, s3_chain):
    """The inputs exist (s3_chain wrote them); only the secret is wrong: exit 2, one line."""
    s3_server = s3_chain
    env = {**s3_server.env(), "AWS_SECRET_ACCESS_KEY": "wrong"}
    res = run(
        images.cpu,
        [
            "make-masks",
            "--labels",
            f"s3://{s3_server.bucket}/runs/cv/labels.npy",
            "--pred-probs",
            f"s3://{s3_server.bucket}/runs/cv",
            "--out",
            f"s3://{s3_server.bucket}/runs/masks-denied",
        ],
        env=env,
        network="host",
    )
    assert res.exit_code == 2, res.logs[-4000:]
    assert "ERROR make-masks: s3://" in res.logs, res.logs
    assert ": permission denied (Forbidden); check the credentials" in res.logs, res.logs
    assert "Traceback" not in res.logs, res.logs
    assert s3_server.fs().exists(f"{s3_server.bucket}/runs/cv/labels.npy")
    assert not s3_server.fs().exists(f"{s3_server.bucket}/runs/masks-denied")


def test_make_masks_writes_gcs(run, images, gcs_server, module_workdir):
    """gs:// through gcsfs against a GCS emulator (STORAGE_EMULATOR_HOST, anonymous)."""
    labels = np.repeat(np.arange(10), 10)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=len(labels)).astype(np.float32)
    np.save(module_workdir / "labels.npy", labels)
    np.save(module_workdir / "pred_probs.npy", probs)
    out = f"gs://{gcs_server.bucket}/runs/masks"
    run(
        images.cpu,
        [
            "make-masks",
            "--labels",
            "/work/labels.npy",
            "--pred-probs",
            "/work/pred_probs.npy",
            "--methods",
            "cl_both",
            "--out",
            out,
        ],
        work=module_workdir,
        env=gcs_server.env(),
        network="host",
    ).check()
    # Read it back through a second container (gs:// in, local out).
    probe = (
        "from clpipe.components.common import storage; "
        f"print(storage.load_json('{out}/summary.json')['n_examples']); "
        f"print(storage.load_npy('{out}/train_pruned_cl_both/train_mask.npy').shape)"
    )
    res = run(images.cpu, ["python3", "-c", probe], env=gcs_server.env(), network="host").check()
    assert res.logs.split()[-2:] == ["100", "(100,)"]
