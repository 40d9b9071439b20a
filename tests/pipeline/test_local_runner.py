"""clpipe run's runner choice: what the docker runner mounts, and bad runner names."""

import pytest
from clpipe.components.common.errors import InputError
from clpipe.pipelines import local_run
from clpipe.pipelines.config import params_from_mapping


def params(tmp_path):
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "nested").mkdir()
    return params_from_mapping(
        {
            "dataset": str(tmp_path / "data" / "cifar10"),
            "conditions": [
                {"name": "a", "labels": str(tmp_path / "labels" / "l.json"), "noise": 0.2},
                {"name": "b", "labels": str(tmp_path / "labels" / "nested" / "m.json"), "noise": 0.4},
                {"name": "c", "labels": "gs://bucket/l.json", "noise": 0.2},
            ],
        },
        "test",
    )


def test_docker_runner_mounts_each_local_input_directory_once(tmp_path):
    assert local_run._local_inputs(params(tmp_path)) == [
        str(tmp_path / "data" / "cifar10"),
        str(tmp_path / "labels"),  # labels/nested is inside it; gs:// is read by URL
    ]


def test_unknown_runner_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(InputError, match="--runner: must be one of"):
        local_run.run_locally(params(tmp_path), str(tmp_path / "out"), runner=local_run.Runner("k8s"))
    assert not (tmp_path / "out").exists()


def test_runner_flags():
    args = local_run.build_parser().parse_args(["--runner", "docker", "--registry", "r.io/x", "--docker-gpus"])
    assert (args.runner, args.registry, args.docker_gpus) == ("docker", "r.io/x", True)
