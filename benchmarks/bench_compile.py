"""Time compiling the pipeline: ``clpipe compile`` as a user runs it, and the compile alone.

- cold: a fresh ``clpipe compile -o FILE`` process (imports kfp and clpipe, builds the
  components, compiles, writes the YAML), median of ``--repeats`` runs;
- warm: ``compile_pipeline`` again in this process (components built and compiled), median.

Prints figures and the size of the IR; asserts nothing.

    .venv/bin/python benchmarks/bench_compile.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile

import yaml
from clpipe.pipelines.compile import compile_pipeline
from timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    clpipe = os.path.join(os.path.dirname(sys.executable), "clpipe")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "clpipe.yaml")
        cold = median_seconds(
            lambda: subprocess.run([clpipe, "compile", "-o", path], check=True, capture_output=True),
            args.repeats,
        )
        warm = median_seconds(lambda: compile_pipeline(path), args.repeats)
        size = os.path.getsize(path)
        with open(path) as f:
            spec, platform_spec = yaml.safe_load_all(f)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.system()}"
    )
    print(f"clpipe compile (fresh process), median of {args.repeats}: {cold:.2f} s")
    print(f"compile_pipeline (warm, in process), median of {args.repeats}: {warm:.3f} s")
    print(
        f"IR: {size / 1024:.0f} KiB, {len(spec['components'])} components, "
        f"{len(spec['deploymentSpec']['executors'])} executors, "
        f"{len(platform_spec['platforms']['kubernetes']['deploymentSpec']['executors'])} with Kubernetes settings"
    )


if __name__ == "__main__":
    main()
