"""The whole pipeline under kfp.local's DockerRunner: every task in its stage container.

The same pipeline definition that is compiled for the cluster (pipelines/pipeline.py), built on
the locally built images with no GPU request, runs with ``local.DockerRunner``: kfp.local
starts one container per task from the task's image, with the pipeline root bind-mounted at the
same path (``uri == path``) and the shared data mounted read-only at its own path. Two tiny
conditions take both branches of the pipeline (given pred_probs; 2-fold cross-validation), two
Co-Teaching runs each, then the report. Task outputs owned by uid 1000 show the tasks ran in the
images (this test runs as root).
"""

# No `from __future__ import annotations`: kfp reads component annotations as types.
import os
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED, condition_file

pytestmark = [
    pytest.mark.docker,
    pytest.mark.filterwarnings("ignore:.*have no effect in the current local runner"),
]


def container_ids(client) -> set[str]:
    """Ids of all containers; the low-level call, which does not race with auto-removal."""
    return {c["Id"] for c in client.api.containers(all=True)}


def tiny_params(dataset: str):
    from clpipe.pipelines.config import params_from_mapping

    return params_from_mapping(
        {
            "dataset": dataset,
            "conditions": [
                {
                    "name": "pub-n0.4-s0.2",
                    "labels": str(condition_file("labels", 0.2, 0.4)),
                    "noise": 0.4,
                    "sparsity": 0.2,
                    "pred_probs": str(condition_file("pyx", 0.2, 0.4)),
                },
                {"name": "gen-n0.2-s0.0", "noise": 0.2, "sparsity": 0.0, "seed": 1},
            ],
            "n_folds": 2,
            "fold_arch": "airbench-tiny",
            "fold_epochs": 1,
            "methods": ["none", "cl_pbnr"],
            "coteach_epochs": 2,
            "coteach_batch_size": 32,
            "coteach_cnn_width": 8,
            "train_per_class": 20,
            "test_per_class": 10,
        },
        "tests/docker/test_pipeline_docker_runner.py",
    )


def test_pipeline_runs_every_task_in_its_container(docker_client, images, tmp_path):
    """``clpipe run --runner docker``: the user-facing local run with one container per task."""
    from clpipe.pipelines.local_run import Runner, run_locally

    shared = os.path.realpath(SHARED)
    before = container_ids(docker_client)
    run = run_locally(
        tiny_params(os.path.join(shared, "cifar10")),
        str(tmp_path / "out"),
        pipeline_root=str(tmp_path / "kfp-root"),
        runner=Runner("docker", images),
    )
    root = Path(run.pipeline_root)
    assert "pub-n0.4-s0.2" in run.markdown and "gen-n0.2-s0.0" in run.markdown
    assert (tmp_path / "out" / "report" / "report.html").exists()
    # The report task: "report-of-both-kinds" here (both kinds of condition; "report" with one kind).
    (task_report,) = [p for p in root.rglob("report*/report") if (p / "report.md").exists()]
    assert task_report.stat().st_uid == 1000  # written inside an image, as its user
    assert list((task_report / "plots").glob("*.png"))
    # Every stage ran: fold outputs (GPU image) and masks (CPU image) exist, owned by uid 1000.
    fold_dirs = [p for p in root.rglob("fold_out") if p.is_dir()]
    assert len(fold_dirs) == 2 and all(p.stat().st_uid == 1000 for p in fold_dirs)
    assert list(root.rglob("train_pruned_cl_pbnr/train_mask.npy"))
    # kfp.local runs its containers with auto_remove; none is left behind (removal is asynchronous).
    deadline = time.monotonic() + 30
    while container_ids(docker_client) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not container_ids(docker_client) - before
