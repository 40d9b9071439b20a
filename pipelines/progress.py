"""What ``clpipe run`` shows while the pipeline runs: one progress bar per stage, the chatter in a log file.

kfp.local writes everything to ``sys.stdout``: its own log lines (in colour, even when redirected), each
task's full executor input and outputs, and every line the task subprocesses print (two more log formats).
:class:`RunLog` takes that stream instead: it writes it to a log file without the colour codes and reads
three kinds of line from it to drive :class:`StageBars`:

- ``Executing task 'NAME'`` and ``Task 'NAME' finished with status S`` (kfp.local's own lines);
- ``epoch E (last L)`` (the trainers' per-epoch log lines): the running task is E/L done.

Tasks of one loop run in parallel threads and their lines interleave, so each line is attributed to the
task running in the thread that wrote it (kfp.local prints a task's lines from the thread that runs it).
"""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from tqdm.auto import tqdm

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([^']+)'")
FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
EPOCH = re.compile(r"\bepoch (\d+) \(last (\d+)\)")
#: Task (component) name -> what the progress line calls it, in pipeline order.
STAGE_NAMES: Mapping[str, str] = {
    "prepare-dataset": "prepare images",
    "noisy-labels": "noisy labels",
    "given-pred-probs": "given pred_probs",
    "plan-folds": "plan folds",
    "fold-train": "fold training",
    "combine-folds": "combine folds",
    "make-masks": "find label errors",
    "coteach": "Co-Teaching",
    "condition-results": "condition results",
    "detection-results": "condition results",
    "report": "report",
    "report-of-both-kinds": "report",
}


@dataclass
class _Stage:
    total: int
    done: int = 0
    failed: int = 0
    running: dict[int, float] = field(default_factory=dict)  # thread id -> fraction done
    started: float | None = None
    bar: tqdm | None = None

    @property
    def progress(self) -> float:
        return self.done + self.failed + sum(self.running.values())


class StageBars:
    """One bar per stage (tasks done, fractions of running training tasks); plain lines when not a TTY.

    Args:
        expected: Tasks each stage will run (task name -> count); stages with 0 are not shown.
        stream: Where the bars go (default stderr).
    """

    def __init__(self, expected: Mapping[str, int], stream=None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.stages = {name: _Stage(n) for name, n in expected.items() if n > 0}
        self._lock = threading.Lock()
        width = max((len(STAGE_NAMES.get(n, n)) for n in self.stages), default=0)
        if self.interactive:
            for position, (name, stage) in enumerate(self.stages.items()):
                stage.bar = tqdm(
                    total=stage.total,
                    desc=STAGE_NAMES.get(name, name).ljust(width),
                    position=position,
                    file=self.stream,
                    leave=True,
                    dynamic_ncols=True,
                    bar_format="{desc} {bar:30} {n:.1f}/{total:g} tasks [{elapsed}]",
                )

    def started(self, task: str, thread: int) -> None:
        with self._lock:
            stage = self.stages.get(task)
            if stage is not None:
                stage.started = stage.started or time.perf_counter()
                stage.running[thread] = 0.0
                self._draw(task, stage)

    def epoch(self, thread: int, task: str, epoch: int, last: int) -> None:
        with self._lock:
            stage = self.stages.get(task)
            if stage is not None and last > 0:
                stage.running[thread] = min(epoch / last, 1.0)
                self._draw(task, stage)

    def finished(self, task: str, thread: int, status: str) -> None:
        with self._lock:
            stage = self.stages.get(task)
            if stage is None:
                return
            stage.running.pop(thread, None)
            if status == "SUCCESS":
                stage.done += 1
            else:
                stage.failed += 1
            self._draw(task, stage)
            if not self.interactive and stage.done + stage.failed == stage.total:
                seconds = time.perf_counter() - (stage.started or time.perf_counter())
                failed = f", {stage.failed} FAILED" if stage.failed else ""
                print(
                    f"{STAGE_NAMES.get(task, task)}: {stage.done}/{stage.total} tasks done{failed} "
                    f"({seconds:.0f} s)",
                    file=self.stream,
                    flush=True,
                )

    def _draw(self, task: str, stage: _Stage) -> None:
        if stage.bar is not None:
            stage.bar.n = stage.progress
            stage.bar.refresh()

    def close(self) -> None:
        for stage in self.stages.values():
            if stage.bar is not None:
                stage.bar.close()


class RunLog(io.TextIOBase):
    """A text stream for kfp.local's output: into ``log`` without colour codes, task events into ``bars``."""

    def __init__(self, log, bars: StageBars) -> None:
        self.log = log
        self.bars = bars
        self._partial: dict[int, str] = {}
        self._task: dict[int, str] = {}  # thread id -> task it runs
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        plain = ANSI.sub("", text)
        thread = threading.get_ident()
        with self._lock:
            self.log.write(plain)
            lines = (self._partial.pop(thread, "") + plain).split("\n")
            if lines[-1]:
                self._partial[thread] = lines[-1]
        for line in lines[:-1]:
            self._read(line, thread)
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def _read(self, line: str, thread: int) -> None:
        if m := STARTED.search(line):
            self._task[thread] = m.group(1)
            self.bars.started(m.group(1), thread)
        elif m := FINISHED.search(line):
            self._task.pop(thread, None)
            self.bars.finished(m.group(1), thread, m.group(2))
        elif (m := EPOCH.search(line)) and thread in self._task:
            self.bars.epoch(thread, self._task[thread], int(m.group(1)), int(m.group(2)))
