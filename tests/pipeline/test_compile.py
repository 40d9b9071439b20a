"""Structure of the compiled pipeline: loops, branches, fan-in, images, GPU placement, no
secrets, and a valid KFP IR (parsed into the pipeline_spec protobufs)."""

import dataclasses

import pytest
import yaml
from clpipe.components.common.image import DEFAULT_IMAGES
from clpipe.pipelines.config import BenchmarkParams
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from .conftest import GPU_EXECUTORS, component_with_task, task


def test_ir_parses_into_the_kfp_protobufs(ir):
    spec, platform = ir
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    assert spec["pipelineInfo"]["name"] == "clpipe-benchmark"
    assert spec["sdkVersion"] == "kfp-2.17.3"


def test_parameters_are_benchmark_params_with_their_defaults(ir):
    spec, _ = ir
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert list(parameters) == sorted(f.name for f in dataclasses.fields(BenchmarkParams))
    assert "defaultValue" not in parameters["dataset"]
    defaults = BenchmarkParams(dataset="x").arguments()
    for name, definition in parameters.items():
        if name != "dataset":
            assert definition["defaultValue"] == defaults[name], name


def test_conditions_loop_runs_a_sub_pipeline_and_one_report_collects_it(ir):
    spec, _ = ir
    root = spec["root"]["dag"]["tasks"]
    loop = next(t for t in root.values() if "parameterIterator" in t)
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--conditions"}
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert list(body) == ["benchmark-condition"]
    assert (
        body["benchmark-condition"]["inputs"]["parameters"]["pred_probs"]["parameterExpressionSelector"]
        == 'parseJson(string_value)["pred_probs"]'
    )
    report_input = root["report"]["inputs"]["artifacts"]["conditions"]["taskOutputArtifact"]
    assert report_input["producerTask"] == "for-loop-1"
    assert (
        spec["root"]["dag"]["outputs"]["artifacts"]["Output"]["artifactSelectors"][0]["producerSubtask"]
        == "report"
    )


def test_pred_probs_come_from_one_of_two_branches(ir):
    spec, _ = ir
    branches = component_with_task(spec, "condition-2")["dag"]["tasks"]
    conditions = {n: t["triggerPolicy"]["condition"] for n, t in branches.items()}
    given = "inputs.parameter_values['pipelinechannel--pred_probs'] != ''"
    assert sorted(conditions.values()) == sorted([given, f"!({given})"])
    assert "given-pred-probs" in component_with_task(spec, "given-pred-probs")["dag"]["tasks"]
    masks_input = task(spec, "make-masks")["inputs"]["parameters"]["pred_probs_uri"]["taskOutputParameter"]
    assert masks_input["producerTask"].startswith("condition-branches")


def test_cross_validation_fans_out_over_planned_folds_and_in_to_the_combiner(ir):
    spec, _ = ir
    cv = component_with_task(spec, "plan-folds")["dag"]["tasks"]
    loop = next(t for t in cv.values() if "parameterIterator" in t)
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--plan-folds-Output"}
    assert list(spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]) == ["fold-train"]
    folds = cv["combine-folds"]["inputs"]["artifacts"]["folds"]["taskOutputArtifact"]
    assert folds["outputArtifactKey"] == "pipelinechannel--fold-train-fold_out"
    assert spec["components"]["comp-combine-folds"]["inputDefinitions"]["artifacts"]["folds"][
        "isArtifactList"
    ]


def test_methods_loop_then_condition_results_collects_the_runs(ir):
    spec, _ = ir
    body = component_with_task(spec, "condition-results")["dag"]["tasks"]
    loop = next(t for t in body.values() if "parameterIterator" in t)
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--methods"}
    assert list(spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]) == ["coteach"]
    runs = body["condition-results"]["inputs"]["artifacts"]["runs"]["taskOutputArtifact"]
    assert runs["outputArtifactKey"] == "pipelinechannel--coteach-run"


def test_images_by_stage_and_no_pip_install_at_run_time(ir):
    spec, _ = ir
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 9
    for name, executor in executors.items():
        container = executor["container"]
        expected = DEFAULT_IMAGES.gpu if name in GPU_EXECUTORS else DEFAULT_IMAGES.cpu
        assert container["image"] == expected, name
        command = " ".join(container["command"])
        assert "pip install" not in command and "pip3" not in command, name
        assert "python3 -m kfp.dsl.executor_main" in command, name


def test_gpu_resources_only_on_gpu_tasks(ir):
    spec, _ = ir
    for name, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"]["resources"]
        assert resources["resourceCpuRequest"] and resources["resourceMemoryRequest"], name
        if name in GPU_EXECUTORS:
            assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
            assert resources["accelerator"]["resourceCount"] == "1"
            assert resources["resourceMemoryRequest"] == "16Gi"
        else:
            assert "accelerator" not in resources, name


def test_tolerations_and_shm_only_on_gpu_tasks_storage_env_everywhere(ir):
    _, platform = ir
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 9
    for name, config in executors.items():
        if name in GPU_EXECUTORS:
            assert config["tolerations"] == [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ]
            assert config["emptyDirMounts"] == [
                {"volumeName": "dshm", "mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": "8Gi"}
            ]
        else:
            assert "tolerations" not in config and "emptyDirMounts" not in config, name
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == "clpipe-storage" and secret["optional"] is True
        assert {k["envVar"] for k in secret["keyToEnv"]} == {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        }
        assert config["configMapAsEnv"][0]["configMapName"] == "clpipe-storage"


def test_no_credentials_in_the_yaml(ir):
    text = yaml.safe_dump_all(ir)
    for forbidden in ("minio123", "BEGIN PRIVATE KEY", "private_key", "AKIA", "password", "token:"):
        assert forbidden not in text
    env = [e for ex in ir[0]["deploymentSpec"]["executors"].values() for e in ex["container"].get("env", [])]
    assert env == []


def test_cpu_cluster_settings(ir_cpu_cluster):
    spec, platform = ir_cpu_cluster
    executors = spec["deploymentSpec"]["executors"]
    assert executors["exec-fold-train"]["container"]["image"] == "localhost:5000/clpipe/clpipe-gpu:dev"
    assert executors["exec-report"]["container"]["image"] == "localhost:5000/clpipe/clpipe-cpu:dev"
    assert all("accelerator" not in e["container"]["resources"] for e in executors.values())
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert all("secretAsEnv" not in config for config in k8s.values())
    gcs = k8s["exec-noisy-labels"]["secretAsVolume"][0]
    assert gcs["secretName"] == "clpipe-gcs" and gcs["mountPath"] == "/var/secrets/clpipe-gcs"
    assert {
        "name": "GOOGLE_APPLICATION_CREDENTIALS",
        "value": "/var/secrets/clpipe-gcs/sa.json",
    } in executors["exec-noisy-labels"]["container"]["env"]


def test_negative_gpu_count_is_refused():
    from clpipe.components.common.kfp_component import TaskSettings

    with pytest.raises(ValueError, match="gpus"):
        TaskSettings(gpus=-1)
