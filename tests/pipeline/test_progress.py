"""clpipe run's output handling: kfp.local's stream into a log file without colour codes, task events into one
progress line per stage (tasks of one loop run in parallel threads; each line belongs to its thread's task)."""

from __future__ import annotations

import io
import threading

from clpipe.pipelines.progress import RunLog, StageBars


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
