"""Upload the compiled clpipe pipeline to a KFP 2.x API and run it; exit 0 only if the run succeeds.

Used by ``k8s/kind-up.sh`` for the smoke run; works against any KFP endpoint:

    python k8s/submit.py --endpoint http://127.0.0.1:8080 --package pipelines/clpipe_pipeline.yaml \\
        --params k8s/kind/smoke-params.yaml --run-name smoke-1 --timeout 3600

Idempotent: the pipeline (``--pipeline-name``, default ``clpipe``) is created once and gets a
new version named after the package's content hash when the package changed. Parameters come
from a YAML/JSON mapping (``--params``) and ``--param key=value`` (value parsed as YAML).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import yaml


def parse_params(files: list[str], pairs: list[str]) -> dict:
    params: dict = {}
    for f in files:
        data = yaml.safe_load(Path(f).read_text()) or {}
        if not isinstance(data, dict):
            sys.exit(f"submit.py: {f}: expected a mapping of pipeline parameters")
        params.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"submit.py: --param {pair!r}: expected key=value")
        params[key] = yaml.safe_load(value)
    return params


def pipeline_version(client, package: Path, name: str) -> tuple[str, str]:
    """(pipeline id, version id) for the package, uploading what is missing."""
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    version_name = f"{name}-{digest}"
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        client.upload_pipeline(str(package), pipeline_name=name)
        pipeline_id = client.get_pipeline_id(name)
    versions = client.list_pipeline_versions(pipeline_id, page_size=100).pipeline_versions or []
    for v in versions:
        if v.display_name == version_name:
            return pipeline_id, v.pipeline_version_id
    v = client.upload_pipeline_version(str(package), pipeline_version_name=version_name,
                                       pipeline_id=pipeline_id, description=f"sha256 {digest}")
    return pipeline_id, v.pipeline_version_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True, help="KFP API/UI address, e.g. http://127.0.0.1:8080")
    p.add_argument("--package", required=True, type=Path, help="compiled pipeline YAML")
    p.add_argument("--params", action="append", default=[], help="YAML/JSON file of run parameters")
    p.add_argument("--param", action="append", default=[], help="key=value run parameter (repeatable)")
    p.add_argument("--pipeline-name", default="clpipe")
    p.add_argument("--experiment", default="clpipe-smoke")
    p.add_argument("--run-name", default=f"clpipe-{time.strftime('%Y%m%d-%H%M%S')}")
    p.add_argument("--pipeline-root", help="override the namespace's defaultPipelineRoot")
    p.add_argument("--timeout", type=int, default=3600, help="seconds to wait for the run (0 = do not wait)")
    args = p.parse_args(argv)

    import kfp

    params = parse_params(args.params, args.param)
    client = kfp.Client(host=args.endpoint)
    pipeline_id, version_id = pipeline_version(client, args.package, args.pipeline_name)
    try:
        experiment = client.get_experiment(experiment_name=args.experiment)
    except Exception:  # noqa: BLE001 - the SDK raises a bare ValueError/ApiException for "not found"
        experiment = client.create_experiment(args.experiment)
    run = client.run_pipeline(experiment_id=experiment.experiment_id, job_name=args.run_name,
                              pipeline_id=pipeline_id, version_id=version_id, params=params,
                              pipeline_root=args.pipeline_root, enable_caching=False)
    print(f"submit.py: run {run.run_id} ({args.run_name}) of pipeline {args.pipeline_name} version {version_id}")
    print(f"submit.py: {args.endpoint}/#/runs/details/{run.run_id}")
    if args.timeout <= 0:
        return 0
    done = client.wait_for_run_completion(run.run_id, timeout=args.timeout)
    state = str(done.state)
    print(f"submit.py: run {run.run_id} finished: {state}")
    return 0 if state.upper() == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
