"""A stage CLI with credentials the S3 server refuses: the exit-2 contract, nothing published."""

import uuid

import numpy as np
import pytest
from clpipe.components.common import storage
from clpipe.components.make_masks.cli import main as make_masks

pytestmark = pytest.mark.storage


@pytest.mark.parametrize("pred_probs", ["pred_probs.npy", ""], ids=["file", "directory"])
def test_wrong_secret_exits_2_without_output(stores, s3_server, monkeypatch, capsys, pred_probs):
    """Every refused request names its URL: the output check comes first, then the inputs (``pred_probs``
    as a file, or as a folder read through its manifest)."""
    import s3fs

    base = f"{stores['s3']}/{uuid.uuid4().hex[:8]}"
    labels = np.repeat(np.arange(10), 10)
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=len(labels)).astype(np.float32)
    storage.save_npy(f"{base}/in/labels.npy", labels)  # real inputs, written with the right key
    storage.save_npy(f"{base}/in/pred_probs.npy", probs)

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    s3fs.S3FileSystem.clear_instance_cache()
    code = make_masks(
        [
            "--labels",
            f"{base}/in/labels.npy",
            "--pred-probs",
            f"{base}/in/{pred_probs}",
            "--out",
            f"{base}/masks",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    # s3fs turns the server's 403 into PermissionError (here "Forbidden"): one line, no traceback
    assert "ERROR make-masks: s3://" in err, err
    assert ": permission denied (Forbidden); check the credentials" in err and "Traceback" not in err, err

    fs = s3_server.fs()  # the right key
    prefix = base.removeprefix("s3://")
    assert fs.exists(f"{prefix}/in/labels.npy")  # the inputs are there; only the key was wrong
    assert not fs.exists(f"{prefix}/masks")
