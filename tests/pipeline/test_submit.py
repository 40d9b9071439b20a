"""``clpipe submit`` and the ``kfp`` CLI through the real KFP client code, against a stand-in API on
loopback: version check, idempotent versions, --no-cache in the uploaded package, --wait."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from clpipe.pipelines.compile import GOLDEN
from kfp import components

from clpipe import cli as clpipe_cli
from tests.stderr import not_logs

from .kfp_stub import KfpStub

DEMO = Path(__file__).resolve().parents[2] / "pipelines" / "configs" / "demo.yaml"
KFP_CLI = [str(Path(sys.executable).with_name("kfp"))]
GENERATED = ["--dataset", "minio://mlpipeline/data/cifar10", "--condition", "name=g,noise=0.4,sparsity=0.2"]


def submit(kfp: KfpStub, *argv: str) -> int:
    return clpipe_cli.main(["submit", "--host", kfp.url, *argv])


def dag_tasks(package: bytes) -> list[dict]:
    spec = next(yaml.safe_load_all(package))
    return [
        t
        for c in [spec["root"], *spec["components"].values()]
        for t in c.get("dag", {}).get("tasks", {}).values()
    ]


def test_golden_loads_as_a_component():
    pipeline = components.load_component_from_file(str(GOLDEN))
    assert pipeline.name == "clpipe-benchmark"
    assert {"cross_validated_conditions", "given_pred_probs_conditions"} <= set(
        pipeline.component_spec.inputs
    )


def test_submit_uploads_a_new_pipeline_and_a_hashed_version_and_starts_a_run(capsys):
    with KfpStub() as kfp:
        assert (
            submit(
                kfp,
                "--package",
                str(GOLDEN),
                "--run-name",
                "demo-run",
                "--pipeline-root",
                "s3://bucket/root",
                str(DEMO),
                "--coteach-epochs",
                "5",
            )
            == 0
        )
    (first, hashed) = kfp.uploaded()
    assert first[1] == "clpipe-benchmark" and hashed[1].startswith("clpipe-benchmark-")  # KFP's first + ours
    assert hashed[2] == GOLDEN.read_bytes()
    (run,) = (json.loads(body) for body in kfp.posted("/runs"))
    assert run["display_name"] == "demo-run" and run["experiment_id"] == "e-1"
    assert run["pipeline_version_reference"] == {"pipeline_id": "p-new", "pipeline_version_id": hashed[0]}
    runtime = run["runtime_config"]
    assert runtime["pipeline_root"] == "s3://bucket/root"
    params = runtime["parameters"]
    assert params["dataset"] == "../shared/data/cifar10"  # passed on as given: the cluster resolves it
    assert params["coteach_epochs"] == 5 and params["methods"] == ["none", "cl_pbnr"]
    assert [c["name"] for c in params["given_pred_probs_conditions"]] == ["n0.4-s0.2"]
    assert params["cross_validated_conditions"] == []  # the package has both loops; the run has one kind
    assert set(params["given_pred_probs_conditions"][0]) == {"name", "noise", "sparsity", "seed", "labels", "pred_probs"}
    assert "output" not in params and "conditions" not in params
    assert f"{kfp.url}/#/runs/details/r-1" in capsys.readouterr().out


def test_submitting_the_same_package_again_reuses_its_version():
    with KfpStub(existing_pipeline=True) as kfp:
        for _ in range(2):
            assert submit(kfp, "--registry", "localhost:5000/clpipe", "--gpus", "0", *GENERATED) == 0
        assert submit(kfp, "--registry", "localhost:5000/clpipe", "--gpus", "1", *GENERATED) == 0
    assert kfp.posted("/pipelines/upload") == []
    uploads = kfp.posted("/pipelines/upload_version")
    assert len(uploads) == 2  # once per package content: --gpus 0, then --gpus 1
    (gpu0, _, package), (gpu1, _, _) = kfp.uploaded()
    versions = [
        json.loads(b)["pipeline_version_reference"]["pipeline_version_id"] for b in kfp.posted("/runs")
    ]
    assert versions == [gpu0, gpu0, gpu1]
    spec = next(yaml.safe_load_all(package))
    assert set(spec["root"]["inputDefinitions"]["parameters"]) >= {"cross_validated_conditions"}
    assert (
        "given_pred_probs_conditions" not in spec["root"]["inputDefinitions"]["parameters"]
    )  # compiled for this run
    assert (
        b"localhost:5000/clpipe/clpipe-gpu:" in package
        and b"nvidia.com/gpu" not in package.split(b"platforms")[0]
    )
    run = json.loads(kfp.posted("/runs")[0])
    assert run["runtime_config"]["parameters"]["cross_validated_conditions"] == [
        {"name": "g", "noise": 0.4, "sparsity": 0.2, "seed": 0, "labels": "", "pred_probs": ""}
    ]


def test_no_cache_reaches_the_backend_in_the_uploaded_package():
    """kfp 2.17.3 drops ``enable_caching`` when a run names a pipeline version; the package itself
    must say it, for the tasks of every DAG (they all live in sub-DAGs here)."""
    with KfpStub(existing_pipeline=True) as kfp:
        assert submit(kfp, *GENERATED) == 0
        assert submit(kfp, "--no-cache", *GENERATED) == 0
    (_, cached_name, cached), (no_cache_id, no_cache_name, no_cache) = kfp.uploaded()
    assert cached_name != no_cache_name  # another package, another version
    cache_flags = [t.get("cachingOptions", {}).get("enableCache", False) for t in dag_tasks(cached)]
    assert sum(cache_flags) == 9  # every container task of the cross-validated pipeline: KFP's default
    assert not [t for t in dag_tasks(no_cache) if t.get("cachingOptions", {}).get("enableCache")]
    last_run = json.loads(kfp.posted("/runs")[-1])
    assert last_run["pipeline_version_reference"]["pipeline_version_id"] == no_cache_id


def test_kfp_client_alone_drops_enable_caching_for_a_pipeline_version():
    """The upstream behaviour clpipe works around (kubeflow/pipelines#14253); when this fails,
    kfp sends the setting and ``without_caching`` may no longer be needed."""
    import kfp as kfp_sdk

    with KfpStub(existing_pipeline=True) as kfp:
        client = kfp_sdk.Client(host=kfp.url)
        client.run_pipeline(
            experiment_id="e-1", job_name="r", pipeline_id="p-old", version_id="v-1", enable_caching=False
        )
    (run,) = (json.loads(b) for b in kfp.posted("/runs"))
    assert "cach" not in json.dumps(run).lower() and run.get("pipeline_spec") is None


@pytest.mark.parametrize(("state", "code"), [("SUCCEEDED", 0), ("FAILED", 1)])
def test_wait_exits_0_only_if_the_run_succeeded(state, code, capsys):
    with KfpStub(final_state=state) as kfp:
        assert submit(kfp, "--wait", "--timeout", "60", *GENERATED) == code
    out, err = capsys.readouterr()
    assert f"run r-1 finished: {state} (tasks: 1 SKIPPED, 1 SUCCEEDED)" in out
    assert (f"ERROR submit: run r-1 finished {state}" in err) == (code == 1)


def test_an_older_backend_is_refused_with_one_line_before_anything_is_uploaded(capsys):
    with KfpStub(version="2.16.1") as kfp:
        assert submit(kfp, *GENERATED) == 2
    (line,) = not_logs(capsys.readouterr().err)
    assert line.startswith(f"ERROR submit: {kfp.url}: Kubeflow Pipelines 2.16.1 is older than 2.17.0")
    assert kfp.posted("/pipelines/upload") == kfp.posted("/runs") == []


@pytest.mark.parametrize("version", [None, "master", "2.17.0-rc.1", "v2.18.0"])
def test_an_unreported_or_newer_version_is_accepted(version, caplog):
    with KfpStub(version=version) as kfp:
        assert submit(kfp, *GENERATED) == 0
    assert bool(kfp.posted("/runs"))
    assert ("reports no KFP release version" in caplog.text) == (version in (None, "master"))


def test_a_package_without_the_loop_a_condition_needs_is_refused(tmp_path, capsys):
    from clpipe.pipelines.compile import compile_pipeline

    package = tmp_path / "cv-only.yaml"
    compile_pipeline(str(package), kinds=("cross-validated",))
    with KfpStub() as kfp:
        assert submit(kfp, "--package", str(package), str(DEMO)) == 2
    assert (
        "--package: given_pred_probs_conditions: the package has no loop for given-pred-probs"
        in capsys.readouterr().err
    )


def test_a_package_without_co_teaching_is_refused_for_a_run_that_trains_it(tmp_path, capsys):
    from clpipe.pipelines.compile import compile_pipeline

    package = tmp_path / "label-errors.yaml"
    compile_pipeline(str(package), coteach=False)
    with KfpStub() as kfp:
        assert submit(kfp, "--package", str(package), str(DEMO)) == 2  # CIFAR-10 has a test split: auto is on
    assert ("--package: coteach: the package has no Co-Teaching, and this run trains Co-Teaching (coteach 'auto'): "
            "compile it with --coteach on") in capsys.readouterr().err
    assert not kfp.uploaded()


def test_submit_refuses_bad_parameters_before_contacting_the_server(capsys):
    argv = [
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
    assert clpipe_cli.main(argv) == 2
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
        condition = {"name": "g", "noise": 0.2, "sparsity": 0.0, "seed": 0, "labels": "", "pred_probs": ""}
        given = dict(condition, name="p", pred_probs="gs://bucket/pyx.npy")
        args = {
            "dataset": "gs://bucket/cifar10",
            "cross_validated_conditions": json.dumps([condition]),
            "given_pred_probs_conditions": json.dumps([given]),
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
        "cross_validated_conditions": [condition],
        "given_pred_probs_conditions": [given],
    }
