"""Upload a compiled clpipe pipeline to a KFP 2.x API, run it and wait; exit 0 only if the run succeeds.

``k8s/kind-up.sh`` uses it for the smoke run; it works against any KFP endpoint:

    python k8s/submit.py --endpoint http://127.0.0.1:8080 --package /tmp/clpipe-kind.yaml \\
        --config k8s/kind/smoke-params.yaml --run-name smoke-1 --timeout 3600 \\
        --max-cpu-request 1 --max-memory-request 2Gi

- Parameters: a ``clpipe run``/``clpipe submit`` config file (``--config``; its ``output`` key is
  ignored) plus ``--param key=value`` overrides (value parsed as YAML), checked and converted by
  the pipeline's own ``clpipe.pipelines.config``.
- Idempotent upload: the pipeline (``--pipeline-name``) is created once and gets one version
  per package content (named by its hash), reused when the same package is submitted again.
- ``--max-cpu-request`` / ``--max-memory-request`` cap the tasks' resource *requests* in the
  package before upload (limits stay), so a pipeline compiled for GPU nodes (4 CPUs, 16 GiB per
  GPU task) schedules on a small kind node. Only for smoke runs on small clusters.
- Unlike ``clpipe submit`` it waits for the run and fails unless it succeeded.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import yaml

_MEMORY_UNITS = {
    "": 1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def memory_bytes(quantity: str) -> float:
    """``"2Gi"`` -> 2147483648.0 (Kubernetes quantity suffixes)."""
    for unit in sorted(_MEMORY_UNITS, key=len, reverse=True):
        if unit and quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * _MEMORY_UNITS[unit]
    return float(quantity)


def cap_requests(package_text: str, max_cpu: str | None, max_memory: str | None) -> str:
    """The package with every executor's CPU/memory *request* capped (KFP IR ``resources``)."""
    docs = list(yaml.safe_load_all(package_text))
    executors = docs[0]["deploymentSpec"]["executors"]
    for executor in executors.values():
        res = executor.get("container", {}).get("resources")
        if not res:
            continue
        if max_cpu is not None and float(res.get("cpuRequest", 0)) > float(max_cpu):
            res["cpuRequest"], res["resourceCpuRequest"] = float(max_cpu), str(max_cpu)
        if max_memory is not None and float(res.get("memoryRequest", 0)) * 1e9 > memory_bytes(max_memory):
            res["memoryRequest"], res["resourceMemoryRequest"] = memory_bytes(max_memory) / 1e9, max_memory
    return yaml.safe_dump_all(docs, sort_keys=False)


def run_arguments(config: str | None, pairs: list[str]) -> dict:
    """The KFP run arguments from a clpipe config and key=value overrides, checked by clpipe."""
    from clpipe.pipelines.config import load_config, params_from_mapping

    data = load_config(config) if config else {}
    data.pop("output", None)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"submit.py: --param {pair!r}: expected key=value")
        data[key] = yaml.safe_load(value)
    return params_from_mapping(data, config or "--param").arguments()


def pipeline_version(client, package: Path, name: str) -> tuple[str, str]:
    """(pipeline id, version id) for the package, uploading what is missing."""
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    version_name = f"{name}-{digest}"
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(package), pipeline_name=name).pipeline_id
    versions = client.list_pipeline_versions(pipeline_id, page_size=100).pipeline_versions or []
    for v in versions:
        if v.display_name == version_name:
            return pipeline_id, v.pipeline_version_id
    v = client.upload_pipeline_version(
        str(package),
        pipeline_version_name=version_name,
        pipeline_id=pipeline_id,
        description=f"sha256 {digest}",
    )
    return pipeline_id, v.pipeline_version_id


def main(argv: list[str] | None = None) -> int:
    from clpipe.pipelines.pipeline import PIPELINE_NAME

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True, help="KFP API/UI address, e.g. http://127.0.0.1:8080")
    p.add_argument("--package", required=True, type=Path, help="compiled pipeline YAML (clpipe compile)")
    p.add_argument("--config", help="run parameters: a clpipe config YAML (as for clpipe run / submit)")
    p.add_argument("--param", action="append", default=[], help="key=value parameter override (repeatable)")
    p.add_argument("--pipeline-name", default=PIPELINE_NAME)
    p.add_argument("--experiment", default="clpipe-smoke")
    p.add_argument("--run-name", default=f"clpipe-{time.strftime('%Y%m%d-%H%M%S')}")
    p.add_argument("--pipeline-root", help="override the namespace's defaultPipelineRoot")
    p.add_argument("--max-cpu-request", help="cap every task's CPU request (e.g. 1), for small clusters")
    p.add_argument("--max-memory-request", help="cap every task's memory request (e.g. 2Gi)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds to wait for the run (0 = do not wait)")
    args = p.parse_args(argv)

    import kfp

    arguments = run_arguments(args.config, args.param)
    package = args.package
    with tempfile.TemporaryDirectory() as tmp:
        if args.max_cpu_request or args.max_memory_request:
            package = Path(tmp) / package.name
            package.write_text(
                cap_requests(args.package.read_text(), args.max_cpu_request, args.max_memory_request)
            )
        client = kfp.Client(host=args.endpoint)
        pipeline_id, version_id = pipeline_version(client, package, args.pipeline_name)
    experiment = client.create_experiment(args.experiment)  # kfp: get-or-create by name
    run = client.run_pipeline(
        experiment_id=experiment.experiment_id,
        job_name=args.run_name,
        pipeline_id=pipeline_id,
        version_id=version_id,
        params=arguments,
        pipeline_root=args.pipeline_root,
        enable_caching=False,
    )
    print(
        f"submit.py: run {run.run_id} ({args.run_name}), pipeline {args.pipeline_name} version {version_id}"
    )
    print(f"submit.py: {args.endpoint.rstrip('/')}/#/runs/details/{run.run_id}")
    if args.timeout <= 0:
        return 0
    done = client.wait_for_run_completion(run.run_id, timeout=args.timeout)
    state = str(done.state)
    print(f"submit.py: run {run.run_id} finished: {state}")
    return 0 if state.upper() == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
