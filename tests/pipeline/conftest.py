"""The compiled pipeline, compiled once per test session, and helpers to walk its IR."""

import pytest
import yaml
from clpipe.components.common.image import LOCAL_REGISTRY, Images
from clpipe.components.common.kfp_component import TaskSettings
from clpipe.pipelines.compile import compile_pipeline

GPU_EXECUTORS = {"exec-fold-train", "exec-coteach"}


def compiled(path, settings=None):
    compile_pipeline(str(path), settings)
    with open(path) as f:
        return list(yaml.safe_load_all(f))


@pytest.fixture(scope="session")
def ir(tmp_path_factory):
    """(pipeline spec, platform spec) of the pipeline with the default settings."""
    return compiled(tmp_path_factory.mktemp("ir") / "clpipe.yaml")


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


def component_with_task(spec: dict, task: str) -> dict:
    """The DAG component that contains the task named ``task``."""
    found = [c for c in spec["components"].values() if task in c.get("dag", {}).get("tasks", {})]
    assert len(found) == 1, f"{task}: found in {len(found)} components"
    return found[0]


def task(spec: dict, name: str) -> dict:
    return component_with_task(spec, name)["dag"]["tasks"][name]
