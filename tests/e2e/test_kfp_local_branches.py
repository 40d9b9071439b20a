"""Why the pipeline's two pred_probs branches meet through a parameter (pipelines/pipeline.py).

kfp.local 2.17.3 runs ``dsl.If``/``dsl.Else`` and ``dsl.OneOf`` of *parameters*, but not
``dsl.OneOf`` of *artifacts*. If the second test starts failing, kfp.local has learnt
artifact branches and the pipeline could pass the artifact itself.
"""

import pytest
from kfp import dsl, local
from kfp.dsl import Dataset, Input, Output

component = dsl.component(base_image="python:3.11", install_kfp_package=False)


@component
def produce(text: str, out: Output[Dataset]) -> str:
    with open(out.path, "w") as f:
        f.write(text)
    return out.path


@component
def read_param(path: str) -> str:
    with open(path) as f:
        return f.read()


@component
def read_artifact(data: Input[Dataset]) -> str:
    with open(data.path) as f:
        return f.read()


@dsl.pipeline
def parameter_branches(flag: str) -> str:
    with dsl.If(flag == "given"):
        a = produce(text="given")
    with dsl.Else():
        b = produce(text="cross-validated")
    return read_param(path=dsl.OneOf(a.outputs["Output"], b.outputs["Output"])).output


@dsl.pipeline
def artifact_branches(flag: str) -> str:
    with dsl.If(flag == "given"):
        a = produce(text="given")
    with dsl.Else():
        b = produce(text="cross-validated")
    return read_artifact(data=dsl.OneOf(a.outputs["out"], b.outputs["out"])).output


@pytest.fixture
def runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))


@pytest.mark.parametrize(("flag", "expected"), [("given", "given"), ("other", "cross-validated")])
def test_parameter_branches_run_locally(runner, flag, expected):
    assert parameter_branches(flag=flag).output == expected


def test_artifact_branches_do_not_run_locally(runner):
    with pytest.raises(Exception, match="Expected 1 artifact in ArtifactSelectorSpec. Got: 2"):
        artifact_branches(flag="given")
