"""clpipe run's output handling: kfp.local's stream into a log file without colour codes, task events into one
progress line per stage (tasks of one loop run in parallel threads; each line belongs to its thread's task)."""

from __future__ import annotations

import io
import re
import threading

import pytest
import yaml
from clpipe.pipelines.config import params_from_mapping, parse_condition_flag
from clpipe.pipelines.progress import STAGE_NAMES, RunLog, StageBars


def _task(stream: RunLog, name: str, lines: list[str], status: str = "SUCCESS") -> None:
    stream.write(f"12:00:00.000 - INFO - Executing task \x1b[96m'{name}'\x1b[0m\n")
    for line in lines:
        stream.write(line + "\n")
    stream.write(
        f"12:00:01.000 - INFO - Task \x1b[96m'{name}'\x1b[0m finished with status \x1b[92m{status}\x1b[0m\n"
    )


def test_stage_lines_and_a_plain_log():
    log, shown = io.StringIO(), io.StringIO()
    bars = StageBars({"make-masks": 1, "coteach": 2, "fold-train": 0}, stream=shown)
    stream = RunLog(log, bars)
    _task(stream, "make-masks", ['Got executor_input: {"inputs": 1}'])
    threads = [
        threading.Thread(
            target=_task,
            args=(stream, "coteach", [f"[KFP Executor] INFO]: epoch {e} (last 3): acc" for e in (1, 2, 3)]),
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shown.getvalue().splitlines()[0].startswith("find label errors: 1/1 tasks done")
    assert shown.getvalue().splitlines()[1].startswith("Co-Teaching: 2/2 tasks done")
    assert "fold training" not in shown.getvalue()  # a stage without tasks is not shown
    assert "Got executor_input" in log.getvalue() and "\x1b[" not in log.getvalue()
    assert bars.stages["coteach"].done == 2 and not bars.stages["coteach"].running


def test_epoch_lines_move_the_running_task_of_their_own_thread():
    bars = StageBars({"coteach": 2}, stream=io.StringIO())
    stream = RunLog(io.StringIO(), bars)
    started = threading.Event()

    def first():
        stream.write("Executing task 'coteach'\n")
        started.set()

    t = threading.Thread(target=first)
    t.start()
    t.join()
    stream.write("Executing task 'coteach'\n")  # a second task, in this thread
    stream.write("epoch 1 (last 4): test acc\n")
    assert sorted(bars.stages["coteach"].running.values()) == [0.0, 0.25]
    stream.write("Task 'coteach' finished with status FAILURE\n")
    assert bars.stages["coteach"].failed == 1 and list(bars.stages["coteach"].running.values()) == [0.0]


@pytest.mark.parametrize(
    ("conditions", "coteach"),
    [(("name=g,noise=0.2",), True), (("name=g,noise=0.2", "name=p,labels=gs://b/l,pred_probs=gs://b/p"), True),
     (("name=g,noise=0.2",), False)],
)
def test_the_stages_counted_are_the_tasks_the_pipeline_has(conditions, coteach, tmp_path):
    """Every component of the pipeline a run builds has a progress line and no other does (a task whose name has
    none would never be counted: the report over both kinds of condition is its own component)."""
    from clpipe.pipelines.local_run import expected_tasks
    from clpipe.pipelines.pipeline import pipeline_for
    from kfp import compiler

    params = params_from_mapping({"dataset": "gs://b/images", "conditions": [parse_condition_flag(c) for c in
                                                                            conditions]}, "test")
    compiler.Compiler().compile(pipeline_for(params, prepare=False, coteach=coteach), str(tmp_path / "p.yaml"))
    spec = next(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    components = {re.sub(r"-\d+$", "", name.removeprefix("exec-")) for name in spec["deploymentSpec"]["executors"]}
    counted = {name for name, n in expected_tasks(params, coteach=coteach).items() if n}
    assert counted == components and counted <= set(STAGE_NAMES)
