"""The compiled pipeline, compiled once per test session, and helpers to walk its IR."""

import pytest
import yaml
from clpipe.components.common.image import DEFAULT_IMAGES, LOCAL_REGISTRY, Images
from clpipe.components.common.kfp_component import TaskSettings
from clpipe.pipelines.compile import compile_pipeline
from clpipe.pipelines.compile import main as compile_main

VERTEX_ROOT = "gs://example-clpipe-artifacts/vertex"


def compiled(path, settings=None, kinds=None, prepare=False, coteach=True):
    compile_pipeline(str(path), settings, kinds, prepare, coteach)
    with open(path) as f:
        return list(yaml.safe_load_all(f))


def gpu_executors(spec: dict, images: Images = DEFAULT_IMAGES) -> set[str]:
    """Executors on the GPU image: fold-train and the Co-Teaching runs of both kinds of condition."""
    executors = spec["deploymentSpec"]["executors"]
    return {name for name, e in executors.items() if e["container"]["image"] == images.gpu}


@pytest.fixture(scope="session")
def ir(tmp_path_factory):
    """(pipeline spec, platform spec) of the pipeline with the default settings."""
    return compiled(tmp_path_factory.mktemp("ir") / "clpipe.yaml")


@pytest.fixture(scope="session")
def ir_prepare(tmp_path_factory):
    """The pipeline that starts by preparing the dataset (``clpipe compile --prepare``)."""
    return compiled(tmp_path_factory.mktemp("ir") / "clpipe-prepare.yaml", prepare=True)


@pytest.fixture(scope="session")
def ir_label_errors_only(tmp_path_factory):
    """The pipeline that finds label errors only, no Co-Teaching, as ``clpipe compile --prepare --coteach off``
    writes it."""
    path = tmp_path_factory.mktemp("ir") / "clpipe-label-errors.yaml"
    assert compile_main(["-o", str(path), "--prepare", "--coteach", "off"]) == 0
    with open(path) as f:
        return list(yaml.safe_load_all(f))


@pytest.fixture(scope="session")
def ir_cpu_cluster(tmp_path_factory):
    """The pipeline for a cluster without GPUs, on the local registry."""
    settings = TaskSettings(
        images=Images.for_registry(LOCAL_REGISTRY, "dev"),
        gpus=0,
        storage_secret=None,
        gcs_secret="clpipe-gcs",
    )
    return compiled(tmp_path_factory.mktemp("ir") / "clpipe-cpu.yaml", settings)


@pytest.fixture(scope="session")
def vertex_yaml(tmp_path_factory):
    """Path of the pipeline compiled for Vertex AI: one H100 per GPU task."""
    path = tmp_path_factory.mktemp("ir") / "clpipe-vertex.yaml"
    settings = TaskSettings(target="vertex", vertex_accelerator="NVIDIA_H100_80GB", pipeline_root=VERTEX_ROOT)
    compile_pipeline(str(path), settings)
    return path


def component_with_task(spec: dict, task: str) -> dict:
    """The DAG component that contains the task named ``task``."""
    found = [c for c in spec["components"].values() if task in c.get("dag", {}).get("tasks", {})]
    assert len(found) == 1, f"{task}: found in {len(found)} components"
    return found[0]


def task(spec: dict, name: str) -> dict:
    return component_with_task(spec, name)["dag"]["tasks"][name]


def dags(spec: dict) -> dict[str, dict]:
    """Every DAG of the pipeline by component name (the root as "root")."""
    found = {name: c["dag"] for name, c in spec["components"].items() if "dag" in c}
    return {"root": spec["root"]["dag"], **found}
