"""What the pipeline's shape relies on under kfp.local 2.17.3 (``pipelines/pipeline.py``).

The pipeline has no ``dsl.If``/``dsl.OneOf`` (a fully cached branch breaks ``OneOf`` on the KFP
backend, ``pipelines/README.md``): each kind of condition has its own loop over its own
pipeline parameter, and one task collects both loops. kfp.local runs that shape, but not a
loop over an empty list, which is why a run builds only the loops of the kinds it has. If the
last test starts failing, kfp.local has learnt empty loops and ``pipeline_for`` could always
build both.
"""

import builtins

import pytest
from kfp import dsl, local
from kfp.dsl import Artifact, Input, Output

component = dsl.component(base_image="python:3.11", install_kfp_package=False)


@component
def produce(kind: str, name: str, out: Output[Artifact]):
    with open(out.path, "w") as f:
        f.write(f"{kind}:{name}")


@component
def collect(first: Input[list[Artifact]], second: Input[list[Artifact]]) -> str:
    return ",".join(sorted(open(a.path).read() for a in [*first, *second]))


@dsl.pipeline
def per_condition(kind: str, name: str) -> Artifact:
    return produce(kind=kind, name=name).outputs["out"]


@dsl.pipeline
def two_loops(cross_validated: list[dict], given: list[dict]) -> str:
    with dsl.ParallelFor(cross_validated, parallelism=2) as condition:
        a = per_condition(kind="cv", name=condition.labels)  # not .name: that is the loop item's own name
    with dsl.ParallelFor(given, parallelism=2) as condition:
        b = per_condition(kind="given", name=condition.pred_probs)
    return collect(first=dsl.Collected(a.output), second=dsl.Collected(b.output)).output


@pytest.fixture
def runner(tmp_path):
    """kfp.local on this environment; ``print`` restored afterwards. kfp.local swaps ``builtins.print`` for an
    indenting one around each task and restores the one it found, so tasks of a loop in parallel threads can
    leave an indenting one behind; later tests then print indented (``clpipe run``'s lines that
    test_your_data_kinds.py reads). ``pipelines/local_run.py`` ``_print_restored`` does the same for runs."""
    original = builtins.print
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    yield
    builtins.print = original


def test_two_loops_over_parameters_fan_in_to_one_task(runner):
    run = two_loops(
        cross_validated=[{"labels": "a"}, {"labels": "b"}], given=[{"labels": "c", "pred_probs": "pyx.npy"}]
    )
    assert run.output == "cv:a,cv:b,given:pyx.npy"


def test_a_loop_over_an_empty_list_does_not_run_locally(runner):
    with pytest.raises(ValueError, match="Tried to get output .* but task 'for-loop-2' not found"):
        two_loops(cross_validated=[{"labels": "a"}], given=[])
