"""Seconds until a stage gives up on an S3 endpoint that refuses connections, with clpipe's retry
setting (botocore "standard" mode, ``storage.S3_MAX_ATTEMPTS``) and with botocore's legacy default
(5 attempts, what clpipe used before), each in a fresh process so no client is reused.

    .venv/bin/python benchmarks/bench_unreachable_store.py [--runs 5]

Prints one line per setting: the times of each run and their median, and the error line of the last run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys

PROBE = """
import sys, time
from clpipe.components.common import storage
from clpipe.components.common.errors import InputError
started = time.perf_counter()
try:
    storage.check_output(sys.argv[1], stage="make-masks")
    print("no error", time.perf_counter() - started)
except InputError as e:
    print(time.perf_counter() - started, e)
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(env: dict[str, str], url: str) -> tuple[float, str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, url],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    seconds, _, message = out.partition(" ")
    return float(seconds), message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    settings = {
        "clpipe (standard mode, S3_MAX_ATTEMPTS)": {},
        "botocore legacy default (5 attempts)": {"AWS_RETRY_MODE": "legacy"},
    }
    for name, extra in settings.items():
        times, message = [], ""
        for _ in range(args.runs):
            seconds, message = run({**base, **extra}, "s3://bucket/out")
            times.append(seconds)
        shown = " ".join(f"{t:.2f}" for t in times)
        print(f"{name}: median {statistics.median(times):.2f} s ({shown})\n    {message}")


if __name__ == "__main__":
    main()
