"""Structure of the compiled pipeline: one loop per kind of condition and no branch to re-join,
fan-in, parallelism, images, GPU placement, no secrets, request caps, and every document
parsed strictly by the protobuf messages the KFP backend parses it with."""

import copy
import json

import pytest
import yaml
from clpipe.components.common.errors import InputError
from clpipe.components.common.image import DEFAULT_IMAGES
from clpipe.components.common.kfp_component import Resources, TaskSettings
from clpipe.pipelines import compile as compile_module
from clpipe.pipelines import pipeline
from clpipe.pipelines.config import BenchmarkParams, params_from_mapping
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from .conftest import VERTEX_ROOT, compiled, component_with_task, dags, gpu_executors

PAPER_CONDITIONS = BenchmarkParams(dataset="x").arguments()["conditions"]


def parse_strictly(documents: list[dict]) -> None:
    """Each compiled document and each nested config as the protobuf message the KFP backend
    reads it into, unknown fields rejected.

    The 2.17.0 API server parses the PipelineSpec and PlatformSpec with protojson, strictly
    (``apiserver/template/v2_template.go``), but both keep their interesting parts in ``Struct``
    fields that accept anything: the executors (``deploymentSpec``, which the argo compiler
    reads into a ``PipelineDeploymentConfig`` *discarding* unknown fields,
    ``compiler/visitor.go``) and each executor's Kubernetes settings (read strictly by
    ``argocompiler/container.go``, leniently by the driver). A misspelt field there would be
    dropped silently (a GPU request, a toleration), so this parses them strictly too.
    """
    spec, *platform = documents
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    json_format.ParseDict(
        spec["deploymentSpec"], pipeline_spec_pb2.PipelineDeploymentConfig(), ignore_unknown_fields=False
    )
    for document in platform:
        json_format.ParseDict(document, pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
        for config in document["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
            json_format.ParseDict(
                config, kubernetes_executor_config_pb2.KubernetesExecutorConfig(), ignore_unknown_fields=False
            )


def test_every_document_parses_strictly(ir, ir_cpu_cluster, ir_prepare, ir_label_errors_only, vertex_yaml):
    for documents in (ir, ir_cpu_cluster, ir_prepare, ir_label_errors_only,
                      list(yaml.safe_load_all(vertex_yaml.read_text()))):
        parse_strictly(documents)
    spec, _ = ir
    assert spec["pipelineInfo"]["name"] == "clpipe-benchmark"
    assert spec["sdkVersion"] == "kfp-2.17.3"


@pytest.mark.parametrize("where", ["pipeline spec", "kubernetes executor config"])
def test_the_strict_parse_rejects_an_unknown_field(ir, where):
    """Guards the guard: a field the backend does not know must fail the parse."""
    documents = copy.deepcopy(ir)
    if where == "pipeline spec":
        documents[0]["deploymentSpec"]["executors"]["exec-report-of-both-kinds"]["container"]["gpuz"] = 1
    else:
        documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-fold-train"][
            "tolerationz"
        ] = []
    with pytest.raises(json_format.ParseError, match="gpuz|tolerationz"):
        parse_strictly(documents)


def test_parameters_are_benchmark_params_with_the_conditions_split_by_kind(ir):
    spec, _ = ir
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    names = {f for f in pipeline.PARAMETER_TYPES if f not in ("conditions", *pipeline.PREPARE_PARAMETERS)}
    assert set(parameters) == names | {"cross_validated_conditions", "given_pred_probs_conditions"}
    defaults = BenchmarkParams(dataset="x").arguments()
    for name in names - {"dataset"}:
        assert parameters[name]["defaultValue"] == defaults[name], name
    assert parameters["cross_validated_conditions"]["defaultValue"] == PAPER_CONDITIONS
    # No default runs a loop over an empty list: the given-pred_probs conditions must be given.
    assert "defaultValue" not in parameters["dataset"]
    assert "defaultValue" not in parameters["given_pred_probs_conditions"]


def test_the_prepare_variant_hands_the_prepared_dataset_to_a_sub_pipeline_holding_the_loops(ir, ir_prepare):
    spec, _ = ir_prepare
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert set(parameters) == set(ir[0]["root"]["inputDefinitions"]["parameters"]) | {"resolution"}
    assert parameters["resolution"]["defaultValue"] == 0
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"prepare-dataset", "conditions-and-report"}
    prepare_inputs = root["prepare-dataset"]["inputs"]["parameters"]
    assert prepare_inputs["dataset"] == {"componentInputParameter": "dataset"}
    body = root["conditions-and-report"]["inputs"]["parameters"]
    # Outside any loop: kfp.local replaces an upstream parameter output consumed inside a loop (kfp.md 4).
    assert body["dataset"] == {"taskOutputParameter": {"outputParameterKey": "Output",
                                                       "producerTask": "prepare-dataset"}}
    assert "resolution" not in body
    # The sub-pipeline is the reproduction's root DAG: the same tasks, the same loops.
    loops = spec["components"]["comp-conditions-and-report"]["dag"]["tasks"]
    assert loops.keys() == ir[0]["root"]["dag"]["tasks"].keys()
    # On the GPU image (litdata needs torch), placed as a CPU task: no accelerator.
    executor = spec["deploymentSpec"]["executors"]["exec-prepare-dataset"]["container"]
    assert executor["image"] == DEFAULT_IMAGES.gpu and "accelerator" not in executor["resources"]


def test_the_label_errors_only_variant_builds_no_co_teaching_task_and_has_no_co_teaching_parameter(
    ir_prepare, ir_label_errors_only
):
    """``coteach: off`` (or ``auto`` on a dataset without a test split): masks -> condition results, built
    so at compile time like the kinds of condition (no ``dsl.If``); the rest is the prepare variant."""
    spec, _ = ir_label_errors_only
    full, _ = ir_prepare
    assert {name: sorted(dag["tasks"]) for name, dag in dags(spec).items()} == {
        "root": ["conditions-and-report", "prepare-dataset"],
        "comp-conditions-and-report": ["for-loop-1", "for-loop-2", "report-of-both-kinds"],
        "comp-for-loop-1": ["cross-validated-condition"],
        "comp-for-loop-2": ["given-pred-probs-condition"],
        "comp-cross-validated-condition": [
            "combine-folds", "detection-results", "for-loop-1", "make-masks", "noisy-labels", "plan-folds"],
        "comp-for-loop-1-2": ["fold-train"],
        "comp-given-pred-probs-condition": ["detection-results", "given-pred-probs", "make-masks", "noisy-labels"],
    }
    parameters = set(spec["root"]["inputDefinitions"]["parameters"])
    assert parameters == set(full["root"]["inputDefinitions"]["parameters"]) - set(pipeline.COTEACH_PARAMETERS)
    assert not any("coteach" in name for name in spec["deploymentSpec"]["executors"])
    # The same inputs as condition-results, from the same producers, less the runs of the Co-Teaching loop.
    for sub in ("comp-cross-validated-condition", "comp-given-pred-probs-condition"):
        detect = spec["components"][sub]["dag"]["tasks"]["detection-results"]["inputs"]
        with_runs = full["components"][sub]["dag"]["tasks"]["condition-results"]["inputs"]
        assert detect["parameters"] == with_runs["parameters"]
        assert detect["artifacts"] == {k: v for k, v in with_runs["artifacts"].items() if k != "runs"}
    outputs = spec["components"]["comp-detection-results"]["outputDefinitions"]["artifacts"]
    assert outputs == full["components"]["comp-condition-results"]["outputDefinitions"]["artifacts"]
    executor = spec["deploymentSpec"]["executors"]["exec-detection-results"]["container"]
    assert executor["image"] == DEFAULT_IMAGES.cpu and "runs=[]" in executor["command"][-1]


def test_one_loop_per_kind_each_over_its_own_sub_pipeline_and_one_report_collects_both(ir):
    spec, _ = ir
    root = spec["root"]["dag"]["tasks"]
    loops = {
        t["parameterIterator"]["items"]["inputParameter"]: t
        for t in root.values()
        if "parameterIterator" in t
    }
    assert set(loops) == {
        "pipelinechannel--cross_validated_conditions",
        "pipelinechannel--given_pred_probs_conditions",
    }
    bodies = {
        items: list(spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"])
        for items, loop in loops.items()
    }
    assert bodies == {
        "pipelinechannel--cross_validated_conditions": ["cross-validated-condition"],
        "pipelinechannel--given_pred_probs_conditions": ["given-pred-probs-condition"],
    }
    given = component_with_task(spec, "given-pred-probs-condition")["dag"]["tasks"][
        "given-pred-probs-condition"
    ]
    assert (
        given["inputs"]["parameters"]["pred_probs"]["parameterExpressionSelector"]
        == 'parseJson(string_value)["pred_probs"]'
    )
    report_inputs = root["report-of-both-kinds"]["inputs"]["artifacts"]
    assert {a["taskOutputArtifact"]["producerTask"] for a in report_inputs.values()} == {
        name for name, t in root.items() if "parameterIterator" in t
    }
    assert (
        spec["root"]["dag"]["outputs"]["artifacts"]["Output"]["artifactSelectors"][0]["producerSubtask"]
        == "report-of-both-kinds"
    )


def test_no_branch_and_no_one_of_anywhere(ir, ir_label_errors_only):
    """The re-run safety of issue 13: no consumer picks a branch by its DAG's state.

    A ``dsl.OneOf`` consumer needs the branch DAG COMPLETE or CACHED in ML Metadata, which a
    fully cached branch never becomes on KFP 2.17.0 (``pipelines/README.md``). It shows in the
    IR as a ``triggerPolicy.condition`` (``dsl.If``), a ``valueFromOneof`` parameter or a DAG
    output with more than one artifact selector.
    """
    for name, dag in [*dags(ir[0]).items(), *dags(ir_label_errors_only[0]).items()]:
        for task_name, t in dag["tasks"].items():
            assert "condition" not in t.get("triggerPolicy", {}), (name, task_name)
        outputs = dag.get("outputs", {})
        for key, output in outputs.get("parameters", {}).items():
            assert "valueFromOneof" not in output, (name, key)
        for key, output in outputs.get("artifacts", {}).items():
            assert len(output["artifactSelectors"]) == 1, (name, key)


def test_each_kind_makes_masks_from_its_own_pred_probs(ir):
    spec, _ = ir
    for sub, producer in (
        ("comp-cross-validated-condition", "combine-folds"),
        ("comp-given-pred-probs-condition", "given-pred-probs"),
    ):
        tasks = spec["components"][sub]["dag"]["tasks"]
        (masks,) = [t for n, t in tasks.items() if n.startswith("make-masks")]
        source = masks["inputs"]["parameters"]["pred_probs_uri"]["taskOutputParameter"]
        assert source == {"outputParameterKey": "Output", "producerTask": producer}
    assert "given-pred-probs" not in spec["components"]["comp-cross-validated-condition"]["dag"]["tasks"]
    assert "plan-folds" not in spec["components"]["comp-given-pred-probs-condition"]["dag"]["tasks"]


def test_cross_validation_fans_out_over_planned_folds_and_in_to_the_combiner(ir):
    spec, _ = ir
    cv = component_with_task(spec, "plan-folds")["dag"]["tasks"]
    folds_loop = next(
        t
        for t in cv.values()
        if t.get("parameterIterator", {}).get("items")
        == {"inputParameter": "pipelinechannel--plan-folds-Output"}
    )
    assert list(spec["components"][folds_loop["componentRef"]["name"]]["dag"]["tasks"]) == ["fold-train"]
    folds = cv["combine-folds"]["inputs"]["artifacts"]["folds"]["taskOutputArtifact"]
    assert folds["outputArtifactKey"] == "pipelinechannel--fold-train-fold_out"
    assert spec["components"]["comp-combine-folds"]["inputDefinitions"]["artifacts"]["folds"][
        "isArtifactList"
    ]


def test_both_kinds_loop_over_methods_then_collect_the_runs(ir):
    spec, _ = ir
    for sub in ("comp-cross-validated-condition", "comp-given-pred-probs-condition"):
        body = spec["components"][sub]["dag"]["tasks"]
        loop = next(
            t
            for t in body.values()
            if t.get("parameterIterator", {}).get("items") == {"inputParameter": "pipelinechannel--methods"}
        )
        (coteach,) = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
        assert coteach.startswith("coteach")
        (results,) = [t for n, t in body.items() if n.startswith("condition-results")]
        runs = results["inputs"]["artifacts"]["runs"]["taskOutputArtifact"]
        assert runs["outputArtifactKey"] == f"pipelinechannel--{coteach}-run"


def _parallelism(spec: dict) -> dict[str, int]:
    """``{items input of each loop: its parallelismLimit}`` over every DAG."""
    return {
        t["parameterIterator"]["items"]["inputParameter"]: t["iteratorPolicy"]["parallelismLimit"]
        for dag in dags(spec).values()
        for t in dag["tasks"].values()
        if "parameterIterator" in t
    }


def test_every_loop_has_the_parallelism_of_the_settings(ir, tmp_path):
    spec, _ = ir
    default = TaskSettings()
    assert set(_parallelism(spec).values()) == {default.condition_parallelism} == {default.task_parallelism}
    custom, _ = compiled(tmp_path / "p.yaml", TaskSettings(condition_parallelism=3, task_parallelism=1))
    assert _parallelism(custom) == {
        "pipelinechannel--cross_validated_conditions": 3,
        "pipelinechannel--given_pred_probs_conditions": 3,
        "pipelinechannel--plan-folds-Output": 1,
        "pipelinechannel--methods": 1,  # both kinds' methods loops
    }
    assert sum(1 for d in dags(custom).values() for t in d["tasks"].values() if "parameterIterator" in t) == 5


def test_images_by_stage_and_no_pip_install_at_run_time(ir):
    spec, _ = ir
    executors = spec["deploymentSpec"]["executors"]
    assert gpu_executors(spec) == {"exec-fold-train", "exec-coteach", "exec-coteach-2"}
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] in (DEFAULT_IMAGES.gpu, DEFAULT_IMAGES.cpu), name
        command = " ".join(container["command"])
        assert "pip install" not in command and "pip3" not in command, name
        assert "python3 -m kfp.dsl.executor_main" in command, name


def test_gpu_resources_only_on_gpu_tasks(ir):
    spec, _ = ir
    gpu = gpu_executors(spec)
    for name, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"]["resources"]
        assert resources["resourceCpuRequest"] and resources["resourceMemoryRequest"], name
        if name in gpu:
            assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
            assert resources["accelerator"]["resourceCount"] == "1"
            assert resources["resourceMemoryRequest"] == "16Gi"
        else:
            assert "accelerator" not in resources, name


def test_tolerations_and_shm_only_on_gpu_tasks_storage_env_everywhere(ir):
    spec, platform = ir
    gpu = gpu_executors(spec)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"])
    for name, config in executors.items():
        if name in gpu:
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
    assert (
        executors["exec-report-of-both-kinds"]["container"]["image"] == "localhost:5000/clpipe/clpipe-cpu:dev"
    )
    assert all("accelerator" not in e["container"]["resources"] for e in executors.values())
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert all("secretAsEnv" not in config for config in k8s.values())
    gcs = k8s["exec-noisy-labels"]["secretAsVolume"][0]
    assert gcs["secretName"] == "clpipe-gcs" and gcs["mountPath"] == "/var/secrets/clpipe-gcs"
    assert {
        "name": "GOOGLE_APPLICATION_CREDENTIALS",
        "value": "/var/secrets/clpipe-gcs/sa.json",
    } in executors["exec-noisy-labels"]["container"]["env"]


def _params(*conditions: dict) -> BenchmarkParams:
    return params_from_mapping({"dataset": "gs://b/cifar10", "conditions": list(conditions)}, "test")


GENERATED = {"name": "g", "noise": 0.2}
GIVEN = {"name": "p", "labels": "gs://b/l.json", "pred_probs": "gs://b/pyx.npy"}


@pytest.mark.parametrize(
    ("conditions", "kinds"),
    [
        ((GENERATED,), ("cross-validated",)),
        ((GIVEN,), ("given-pred-probs",)),
        ((GIVEN, GENERATED), ("cross-validated", "given-pred-probs")),
    ],
)
def test_a_run_gets_the_loops_of_its_kinds_and_matching_arguments(conditions, kinds, tmp_path):
    params = _params(*conditions)
    assert pipeline.kinds_of(params) == kinds
    arguments = pipeline.pipeline_arguments(params)
    spec, _ = compiled(tmp_path / "run.yaml", kinds=kinds)
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert set(arguments) == set(inputs)  # every argument is a parameter, every required one is given
    for kind in kinds:
        (expected,) = [c for c in params.arguments()["conditions"] if pipeline.kind_of(c) == kind]
        assert arguments[pipeline.CONDITIONS_PARAMETER[kind]] == [expected]
    loops = [t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t]
    assert len(loops) == len(kinds)
    report_task = "report" if len(kinds) == 1 else "report-of-both-kinds"
    assert report_task in spec["root"]["dag"]["tasks"]


def test_request_caps_lower_requests_only(tmp_path):
    args = compile_module.build_parser().parse_args(
        ["-o", "x", "--max-cpu-request", "1", "--max-memory-request", "2Gi"]
    )
    spec, _ = compiled(tmp_path / "capped.yaml", compile_module.settings_from_args(args))
    default, _ = compiled(tmp_path / "default.yaml")
    for name, executor in spec["deploymentSpec"]["executors"].items():
        capped, before = (
            executor["container"]["resources"],
            default["deploymentSpec"]["executors"][name]["container"]["resources"],
        )
        assert float(capped["resourceCpuRequest"]) <= 1 and capped["resourceMemoryRequest"] == "2Gi", name
        for key in ("resourceCpuLimit", "resourceMemoryLimit", "accelerator"):
            assert capped.get(key) == before.get(key), (name, key)


def test_resources_caps_and_limits():
    r = Resources("4", "16Gi", "8", "32Gi")
    assert r.with_requests_capped("500m", "20Gi") == Resources("500m", "16Gi", "8", "32Gi")
    assert r.with_requests_capped(None, None) == r
    assert r.with_limits("2", "8Gi") == Resources("2", "8Gi", "2", "8Gi")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpus", "-1"], "--gpus: must be >= 0, got -1"),
        (["--task-parallelism", "0"], "--task-parallelism: must be >= 1, got 0"),
        (["--max-memory-request", "lots"], "--max-memory-request: lots: expected a Kubernetes quantity"),
        (["--gpu-task-limits", "8"], "--gpu-task-limits: 8: expected CPU,MEMORY"),
        (["--target", "vertex"], "--pipeline-root: Vertex AI needs a gs:// URL"),
        (["--target", "vertex", "--pipeline-root", "s3://b/r"], "--pipeline-root: s3://b/r: Vertex AI needs"),
    ],
)
def test_bad_compile_settings_exit_2_naming_the_flag(flags, message, tmp_path, capsys):
    out = tmp_path / "p.yaml"
    assert compile_module.main(["-o", str(out), *flags]) == 2
    assert f"ERROR compile: {message}" in capsys.readouterr().err
    assert not out.exists()


def test_vertex_target_is_one_document_with_vertex_accelerators(vertex_yaml):
    documents = list(yaml.safe_load_all(vertex_yaml.read_text()))
    assert len(documents) == 1  # aiplatform.PipelineJob reads exactly one YAML document
    (spec,) = documents
    assert spec["defaultPipelineRoot"] == VERTEX_ROOT
    gpu = gpu_executors(spec)
    assert gpu == {"exec-fold-train", "exec-coteach", "exec-coteach-2"}
    for name, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"]["resources"]
        if name in gpu:
            assert resources["accelerator"] == {
                "type": "NVIDIA_H100_80GB",
                "resourceType": "NVIDIA_H100_80GB",
                "count": "1",
                "resourceCount": "1",
            }
            assert resources["resourceCpuLimit"] == "8" and resources["resourceMemoryLimit"] == "32Gi"
        else:
            assert "accelerator" not in resources
        assert "env" not in executor["container"], name  # credentials: the job's service account
    assert "nvidia.com" not in vertex_yaml.read_text() and "clpipe-storage" not in vertex_yaml.read_text()


def test_ir_size_of_the_table2_fast_run_against_the_argo_object_limit(tmp_path):
    """The table2-fast run (12 cross-validated conditions) as ``clpipe submit`` compiles it.

    Argo keeps a run's Workflow in one etcd object (default limit 1.5 MiB); KFP 2.x's Workflow
    is about 3x the IR (kubeflow/pipelines#13738). The conditions go in as run arguments.
    """
    from clpipe.pipelines.config import load_config

    config = load_config(str(compile_module.GOLDEN.parent / "configs" / "table2-fast.yaml"))
    config.pop("output")
    params = params_from_mapping(config, "table2-fast.yaml")
    spec, platform = compiled(tmp_path / "fast.yaml", kinds=pipeline.kinds_of(params))
    ir_bytes = len(json.dumps(spec)) + len(json.dumps(platform))
    arguments_bytes = len(json.dumps(pipeline.pipeline_arguments(params)))
    limit = 1.5 * 2**20
    estimate = 3 * ir_bytes + arguments_bytes
    print(
        f"\ntable2-fast: IR {ir_bytes / 1024:.1f} KiB, arguments {arguments_bytes / 1024:.1f} KiB, "
        f"Workflow about {estimate / 1024:.0f} KiB = {estimate / limit:.0%} of the 1.5 MiB etcd limit"
    )
    assert len(params.conditions) == 12
    assert estimate < limit / 2, f"{estimate} bytes: less than 2x margin to the etcd object limit"


def test_a_run_prepares_user_images_or_a_resolution_and_nothing_else(tmp_path, cifar10_dir):
    from tests.your_data import digits_imagefolder, write_manifest

    folder = digits_imagefolder(tmp_path / "digits", per_class=2).root
    manifest = write_manifest(tmp_path / "m.csv", [(str(p), p.parent.name) for p in folder.glob("train/*/*.png")])

    def prepares(dataset, **settings):
        return pipeline.needs_prepare(BenchmarkParams(dataset=str(dataset), **settings))

    assert prepares(folder) and prepares(manifest)  # ImageFolder, manifest: decoded once, up front
    assert not prepares(cifar10_dir) and prepares(cifar10_dir, resolution=64)  # .npz: as it is, unless resized
    assert not prepares("gs://b/images") and prepares("gs://b/images", resolution=32)  # remote: by name only
    assert prepares("gs://b/images.jsonl") and not prepares("gs://b/train.npz")
    params = BenchmarkParams(dataset=str(folder), conditions=_params(GENERATED).conditions)
    assert pipeline.pipeline_arguments(params)["resolution"] == 0
    assert "resolution" not in pipeline.pipeline_arguments(BenchmarkParams(dataset=cifar10_dir))


def test_a_run_trains_co_teaching_when_its_dataset_has_a_test_split(tmp_path, cifar10_dir):
    """``coteach: auto`` looks at a local dataset (a listing) and judges a remote one by its URL."""
    from tests.your_data import digits_imagefolder, write_manifest

    with_test = digits_imagefolder(tmp_path / "with-test", per_class=2, test_per_class=1).root
    train_only = digits_imagefolder(tmp_path / "train-only", per_class=2).root
    manifest = write_manifest(tmp_path / "m.csv", [(str(p), p.parent.name) for p in train_only.glob("train/*/*.png")])
    two_manifests = tmp_path / "lists"
    for split, root in (("train", train_only), ("test", with_test)):
        write_manifest(two_manifests / f"digits-{split}.csv",
                       [(str(p), p.parent.name) for p in root.glob(f"{split}/*/*.png")])

    def coteach(dataset, setting="auto"):
        return pipeline.runs_coteach(BenchmarkParams(dataset=str(dataset), coteach=setting))

    assert coteach(with_test) and coteach(cifar10_dir) and coteach(two_manifests)  # roots with a test split
    assert not coteach(train_only) and not coteach(manifest)  # train/ alone; a single manifest is the train split
    assert not coteach(with_test / "train") and not coteach(f"{cifar10_dir}/cifar10_train.npz")  # one split
    assert coteach("gs://b/images") and not coteach("gs://b/images.jsonl") and not coteach("s3://b/train.npz")
    assert not coteach(with_test, "off") and coteach(with_test, "on")
    for dataset in (train_only, manifest, "gs://b/images.jsonl"):
        with pytest.raises(InputError) as e:
            coteach(dataset, "on")
        assert (e.value.source, e.value.field) == ("parameters", "coteach")
        assert f"the dataset {dataset} has no test split" in e.value.problem
    with pytest.raises(InputError, match="not found"):  # judged only once the dataset is there
        coteach(tmp_path / "missing")


def test_a_label_errors_only_run_gets_arguments_for_exactly_its_parameters(tmp_path, ir_label_errors_only):
    from tests.your_data import digits_imagefolder

    folder = digits_imagefolder(tmp_path / "digits", per_class=2).root
    params = BenchmarkParams(dataset=str(folder), conditions=_params(GENERATED).conditions)
    arguments = pipeline.pipeline_arguments(params)
    assert not pipeline.runs_coteach(params) and pipeline.needs_prepare(params)
    spec, _ = ir_label_errors_only
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert set(arguments) == set(inputs) - {"given_pred_probs_conditions"}  # the run has one kind of condition
    assert "coteach" not in pipeline.pipeline_arguments(BenchmarkParams(dataset="gs://b/images"))
