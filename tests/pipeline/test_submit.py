"""Upload and run through the KFP client code paths, against a stand-in API on loopback:
``clpipe submit`` (kfp.Client), and the ``kfp pipeline create`` / ``kfp run create`` CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clpipe.pipelines.compile import GOLDEN
from kfp import components

from clpipe import cli as clpipe_cli

from .kfp_stub import KfpStub

DEMO = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "demo.yaml"
KFP_CLI = [str(Path(sys.executable).with_name("kfp"))]


def test_golden_loads_as_a_component():
    pipeline = components.load_component_from_file(str(GOLDEN))
    assert pipeline.name == "clpipe-benchmark"
    assert "conditions" in pipeline.component_spec.inputs


def test_submit_uploads_a_new_pipeline_and_starts_a_run(capsys):
    with KfpStub() as kfp:
        assert (
            clpipe_cli.main(
                [
                    "submit",
                    "--host",
                    kfp.url,
                    "--package",
                    str(GOLDEN),
                    "--run-name",
                    "demo-run",
                    "--pipeline-root",
                    "s3://bucket/root",
                    str(DEMO),
                    "--coteach-epochs",
                    "5",
                ]
            )
            == 0
        )
    (upload,) = kfp.posted("/pipelines/upload")
    assert b"clpipe-benchmark" in upload and b"deploymentSpec" in upload
    (run,) = (json.loads(body) for body in kfp.posted("/runs"))
    assert run["display_name"] == "demo-run" and run["experiment_id"] == "e-1"
    assert run["pipeline_version_reference"] == {"pipeline_id": "p-new", "pipeline_version_id": "v-1"}
    runtime = run["runtime_config"]
    assert runtime["pipeline_root"] == "s3://bucket/root"
    params = runtime["parameters"]
    assert params["dataset"] == "../shared/data/cifar10"  # passed on as given: the cluster resolves it
    assert params["coteach_epochs"] == 5 and params["methods"] == ["none", "cl_pbnr"]
    assert [c["name"] for c in params["conditions"]] == ["n0.4-s0.2"]
    assert set(params["conditions"][0]) == {"name", "noise", "sparsity", "seed", "labels", "pred_probs"}
    assert "output" not in params
    assert f"{kfp.url}/#/runs/details/r-1" in capsys.readouterr().out


def test_submit_adds_a_version_to_an_existing_pipeline_compiling_it_first():
    with KfpStub(existing_pipeline=True) as kfp:
        assert (
            clpipe_cli.main(
                [
                    "submit",
                    "--host",
                    kfp.url,
                    "--registry",
                    "localhost:5000/clpipe",
                    "--gpus",
                    "0",
                    "--dataset",
                    "minio://mlpipeline/data/cifar10",
                    "--condition",
                    "name=g,noise=0.4,sparsity=0.2",
                ]
            )
            == 0
        )
    assert kfp.posted("/pipelines/upload") == []
    (version,) = kfp.posted("/pipelines/upload_version")
    assert (
        b"localhost:5000/clpipe/clpipe-gpu:" in version
        and b"nvidia.com/gpu" not in version.split(b"platforms")[0]
    )
    run = json.loads(kfp.posted("/runs")[0])
    assert run["pipeline_version_reference"] == {"pipeline_id": "p-old", "pipeline_version_id": "v-new"}
    assert run["runtime_config"]["parameters"]["conditions"] == [
        {"name": "g", "noise": 0.4, "sparsity": 0.2, "seed": 0, "labels": "", "pred_probs": ""}
    ]


def test_submit_refuses_bad_parameters_before_contacting_the_server(capsys):
    assert (
        clpipe_cli.main(
            [
                "submit",
                "--host",
                "http://127.0.0.1:9",
                "--dataset",
                "d",
                "--condition",
                "name=g,noise=0.4",
                "--methods",
                "none,bogus",
            ]
        )
        == 2
    )
    assert "methods" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compile", "submit"])
def test_negative_gpu_count_exits_2_before_compiling(command, tmp_path, capsys):
    out = tmp_path / "p.yaml"
    argv = ["-o", str(out)] if command == "compile" else ["--host", "http://127.0.0.1:9", str(DEMO)]
    assert clpipe_cli.main([command, *argv, "--gpus", "-1"]) == 2
    assert "ERROR " + command + ": --gpus: must be >= 0, got -1" in capsys.readouterr().err
    assert not out.exists()


def test_kfp_cli_pipeline_create_and_run_create(tmp_path):
    with KfpStub() as kfp:
        created = subprocess.run(
            [*KFP_CLI, "--endpoint", kfp.url, "pipeline", "create", "-p", "clpipe", str(GOLDEN)],
            check=False,
            capture_output=True,
            text=True,
        )
        assert created.returncode == 0, created.stderr
        args = {
            "dataset": "gs://bucket/cifar10",
            "conditions": json.dumps(
                [{"name": "g", "noise": 0.2, "sparsity": 0.0, "seed": 0, "labels": "", "pred_probs": ""}]
            ),
        }
        ran = subprocess.run(
            [
                *KFP_CLI,
                "--endpoint",
                kfp.url,
                "run",
                "create",
                "--experiment-name",
                "clpipe",
                "--run-name",
                "cli-run",
                "--package-file",
                str(GOLDEN),
                *[f"{k}={v}" for k, v in args.items()],
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        assert ran.returncode == 0, ran.stderr
    assert kfp.posted("/pipelines/upload")
    (run,) = (json.loads(body) for body in kfp.posted("/runs"))
    spec = run["pipeline_spec"]  # the IR and the Kubernetes platform spec, sent inline
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "clpipe-benchmark"
    assert (
        "exec-fold-train" in spec["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    )
    assert run["runtime_config"]["parameters"] == {
        "dataset": "gs://bucket/cifar10",
        "conditions": json.loads(args["conditions"]),
    }
