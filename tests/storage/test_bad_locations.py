"""Output and input locations a stage cannot or must not use, through the make-masks CLI: exit 2, exactly
one ``ERROR make-masks: <url>: ...`` line saying what to do, nothing written. No server needed."""

import shutil
import socket

import pytest
import s3fs
from clpipe.components.common import storage

from clpipe.cli import main as clpipe_main

from . import faults


@pytest.fixture
def inputs(tmp_path):
    return faults.make_masks_inputs(str(tmp_path))


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """No AWS credentials anywhere botocore looks (environment, files, instance metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    yield monkeypatch
    s3fs.S3FileSystem.clear_instance_cache()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_an_unknown_scheme(inputs, capsys):
    assert clpipe_main(faults.make_masks_argv(inputs, "a", "foo://bucket/masks")) == 2
    assert error_line(capsys) == (
        "ERROR make-masks: foo://bucket/masks: unknown URL scheme 'foo': use a path or one of "
        "file://, s3://, minio://, gs://, memory://"
    )


def test_s3_without_credentials(inputs, capsys, no_aws):
    no_aws.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    assert clpipe_main(faults.make_masks_argv(inputs, "a", "s3://bucket/masks")) == 2
    assert error_line(capsys) == (
        "ERROR make-masks: s3://bucket/masks: no S3 credentials (Unable to locate credentials): "
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )


def test_an_s3_endpoint_that_is_down(inputs, capsys, no_aws):
    port = closed_port()
    no_aws.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    no_aws.setenv("AWS_ACCESS_KEY_ID", "key")
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert clpipe_main(faults.make_masks_argv(inputs, "a", "s3://bucket/masks")) == 2
    assert error_line(capsys) == (
        f"ERROR make-masks: s3://bucket/masks: cannot reach the S3 endpoint http://127.0.0.1:{port} "
        "(EndpointConnectionError, also on retries); for an S3-compatible store set AWS_ENDPOINT_URL"
    )


def test_minio_without_an_endpoint(inputs, capsys, no_aws):
    """minio:// then goes to the in-cluster default, which does not resolve outside a KFP cluster."""
    no_aws.setenv("AWS_ACCESS_KEY_ID", "key")
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    no_aws.delenv("MINIO_ENDPOINT", raising=False)
    assert clpipe_main(faults.make_masks_argv(inputs, "a", "minio://mlpipeline/masks")) == 2
    assert error_line(capsys) == (
        "ERROR make-masks: minio://mlpipeline/masks: cannot reach the S3 endpoint "
        f"{storage.DEFAULT_MINIO_ENDPOINT} (EndpointConnectionError, also on retries); minio:// URLs go to "
        f"AWS_ENDPOINT_URL (default {storage.DEFAULT_MINIO_ENDPOINT}, inside a KFP cluster)"
    )


def test_an_existing_file_as_output(inputs, tmp_path, capsys):
    target = tmp_path / "masks"
    target.write_bytes(b"not a folder")
    assert clpipe_main(faults.make_masks_argv(inputs, "a", str(target))) == 2
    assert error_line(capsys) == (
        f"ERROR make-masks: {target}: is an existing file; an output location must be a new folder or an "
        "earlier output of make-masks"
    )
    assert target.read_bytes() == b"not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "labels.npy",
        "masks",
        "pred_probs_a.npy",
        "pred_probs_b.npy",
    ]


def test_a_folder_of_the_users(inputs, tmp_path, capsys):
    """The issue's case: --out DIR where DIR holds important.txt and a sub-folder."""
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "important.txt").write_text("keep")
    (out / "sub" / "data.csv").write_text("1,2")
    assert clpipe_main(faults.make_masks_argv(inputs, "a", str(out))) == 2
    assert error_line(capsys).startswith(
        f"ERROR make-masks: {out}: exists and is not an output of make-masks (no clpipe-manifest.json; it "
        "holds important.txt, sub/data.csv); a stage never deletes what it did not write"
    )
    assert (out / "important.txt").read_text() == "keep" and (out / "sub" / "data.csv").read_text() == "1,2"
    assert sorted(p.name for p in out.rglob("*")) == ["data.csv", "important.txt", "sub"]


def test_the_output_of_another_stage_given_as_input(inputs, tmp_path, capsys):
    """The issue's case: make-masks --out runs/cv where runs/cv is the --pred-probs input."""
    cv = tmp_path / "cv"
    with storage.staged_output(str(cv), stage="combine-folds") as tmp:
        shutil.copy(inputs["a"], storage.join(tmp, "pred_probs.npy"))
        shutil.copy(inputs["labels"], storage.join(tmp, "labels.npy"))
    before = {p.name: p.read_bytes() for p in cv.iterdir()}
    argv = ["make-masks", "--labels", str(cv / "labels.npy"), "--pred-probs", str(cv), "--out", str(cv)]
    assert clpipe_main(argv) == 2
    assert error_line(capsys) == (
        f"ERROR make-masks: {cv}: contains the input {cv}/labels.npy; a stage never writes over its inputs: "
        "choose another output location"
    )
    assert {p.name: p.read_bytes() for p in cv.iterdir()} == before
    assert clpipe_main([*argv[:-1], str(cv / "masks")]) == 2
    assert "lies inside the input" in error_line(capsys)
    assert sorted(p.name for p in cv.iterdir()) == sorted(before)
