"""Time a whole local pipeline run (``clpipe run CONFIG``, kfp.local, no cluster, no Docker).

Runs the config (default: the demo, ``pipelines/configs/demo.yaml``) in a fresh process into
a temporary output directory and prints the wall time, the pipeline's own wall time and the
time of each task kind (sum over its runs, from kfp.local's log), plus the machine. Run it
from the repository root (the demo's paths are relative to it). Asserts nothing.

    .venv/bin/python benchmarks/bench_local_run.py [--config pipelines/configs/demo.yaml]
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime

# kfp.local logs task events as "12:00:01.234 - INFO - ..." or, through the root logger,
# "2026-01-01 12:00:01,234 INFO root: ...".
EVENT = re.compile(
    r"(\d\d:\d\d:\d\d)[.,](\d+) .*?(?:Executing task '(.+?)'|Task '(.+?)' finished with status)"
)
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def task_seconds(log: str) -> dict[str, tuple[int, float]]:
    """Task name -> (runs, summed seconds), pairing each start with the next finish of that name."""
    started: dict[str, list[datetime]] = collections.defaultdict(list)
    totals: dict[str, list[float]] = collections.defaultdict(list)
    for line in COLOUR.sub("", log).splitlines():
        match = EVENT.search(line)
        if not match:
            continue
        when = datetime.strptime(f"{match.group(1)}.{match.group(2)}", "%H:%M:%S.%f")
        if match.group(3):
            started[match.group(3)].append(when)
        elif started[match.group(4)]:
            totals[match.group(4)].append((when - started[match.group(4)].pop(0)).total_seconds())
    return {name: (len(times), sum(times)) for name, times in totals.items()}


def machine() -> str:
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        device = "no torch"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({platform.machine()}), {device}, load average before {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="pipelines/configs/demo.yaml")
    args = parser.parse_args()
    clpipe = os.path.join(os.path.dirname(sys.executable), "clpipe")
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        done = subprocess.run(
            [clpipe, "run", args.config, "--output", os.path.join(tmp, "run")],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"clpipe run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    pipeline = re.search(r"wall time (\d+) s", done.stdout)
    print(f"clpipe run {args.config}: {wall:.0f} s wall (the pipeline itself: {pipeline.group(1)} s)")
    for name, (runs, seconds) in sorted(
        task_seconds(done.stdout + done.stderr).items(), key=lambda t: -t[1][1]
    ):
        print(
            f"  {name:20s} {runs:2d} runs, {seconds:6.1f} s summed (tasks overlap: kfp.local runs 2 at once)"
        )


if __name__ == "__main__":
    main()
