"""``clpipe submit [CONFIG] [flags]``: run the pipeline on Kubeflow Pipelines or on Vertex AI.

Compiles the pipeline for the run (the loops of the kinds of condition it has, the
compile-time settings given here; or takes ``--package``), then:

- **Kubeflow Pipelines** (``--host URL``): refuses a backend older than 2.17.0 where the
  deployment reports its version; uploads the package as a version of pipeline
  ``--pipeline-name`` named by the package's content hash, reusing that version when the same
  package is submitted again; starts a run in ``--experiment``.
- **Vertex AI** (``--target vertex --project P --region R``): submits an
  ``aiplatform.PipelineJob`` (``pip install 'clpipe[vertex]'``), credentials from Application
  Default Credentials, tasks running as ``--service-account``.

With ``--wait`` it waits up to ``--timeout`` seconds and exits 0 only if the run succeeded
(1 otherwise). ``--no-cache`` turns caching off for every task of every DAG of the package
itself (kfp 2.17.3's ``run_pipeline`` drops ``enable_caching`` for a pipeline version, and
its package override touches only the root DAG). Run parameters come from CONFIG and flags
as for ``clpipe run``; the config's ``output`` key is ignored: results stay in the pipeline
root. On a cluster the dataset, label files and pred_probs must be URLs the tasks can read
(``gs://``, ``s3://``, ``minio://``) or paths inside the images. Credentials come from the
environment (``KF_PIPELINES_*``, ADC) or the clients' defaults; none are accepted as flags.

Example:
  kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80 &
  clpipe submit --host http://localhost:8080 --registry localhost:5000/clpipe --gpus 0 \\
      --max-cpu-request 1 --max-memory-request 2Gi --wait \\
      --dataset minio://mlpipeline/datasets/cifar10 --condition name=g,noise=0.4,sparsity=0.2 \\
      --n-folds 2 --fold-arch airbench-tiny
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import yaml
from clpipe.components.common import cli
from clpipe.components.common.cli import ArgumentParser
from clpipe.components.common.errors import InputError

from .compile import add_compile_arguments, compile_pipeline, settings_from_args
from .config import add_param_arguments, in_config, params_from_args
from .pipeline import (
    CONDITIONS_PARAMETER,
    COTEACH_PARAMETERS,
    PIPELINE_NAME,
    PREPARE_PARAMETERS,
    kinds_of,
    needs_prepare,
    pipeline_arguments,
    runs_coteach,
)

log = logging.getLogger("clpipe")

#: The oldest Kubeflow Pipelines backend clpipe runs on, and why (pipelines/README.md).
MIN_BACKEND = (2, 17, 0)
MIN_BACKEND_WHY = (
    "the pipeline is written and checked against 2.17.0; older backends leave nested DAGs "
    "RUNNING (kubeflow/pipelines#11979, fixed by #13322 in 2.17.0)"
)
#: Final run states (KFP ``V2beta1RuntimeState``; Vertex ``PipelineState`` names).
SUCCEEDED = "SUCCEEDED"


class RunNotSucceeded(Exception):
    """The run ended in another state than SUCCEEDED, or did not end within ``--timeout``."""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="clpipe submit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    k = p.add_argument_group("Kubeflow Pipelines")
    k.add_argument("--host", help="KFP endpoint, e.g. http://localhost:8080 (the UI reports the version)")
    k.add_argument("--namespace", help="user namespace (multi-user KFP)")
    k.add_argument("--experiment", default="clpipe", help="experiment name (default clpipe)")
    k.add_argument("--pipeline-name", default=PIPELINE_NAME, help=f"pipeline name (default {PIPELINE_NAME})")
    v = p.add_argument_group("Vertex AI (--target vertex)")
    v.add_argument("--project", help="Google Cloud project")
    v.add_argument("--region", help="Vertex AI region, e.g. us-central1")
    v.add_argument("--service-account", help="service account the tasks run as (default: the project's)")
    r = p.add_argument_group("the run")
    r.add_argument("--run-name", help="run name (default clpipe-<time>)")
    r.add_argument(
        "--no-cache", action="store_true", help="run every task again (caching off for every task)"
    )
    r.add_argument("--package", help="a compiled pipeline YAML to submit instead of compiling one")
    r.add_argument("--wait", action="store_true", help="wait for the run; exit 0 only if it succeeded")
    r.add_argument("--timeout", type=int, default=3600, help="seconds --wait waits (default 3600)")
    add_param_arguments(p)
    add_compile_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


# --- the package ------------------------------------------------------------------------------


def without_caching(package_text: str) -> str:
    """The package with caching off for every task of every DAG (root and sub-DAGs).

    The same rule as ``aiplatform.PipelineJob(enable_caching=False)``; kfp 2.17.3's client only
    rewrites the root DAG's tasks (``client.py`` ``_override_caching_options``), and this
    pipeline's tasks all live in sub-DAGs.
    """
    spec, *platform = yaml.safe_load_all(package_text)
    for component in [spec["root"], *spec["components"].values()]:
        for task in component.get("dag", {}).get("tasks", {}).values():
            task["cachingOptions"] = {}  # what the compiler writes for set_caching_options(False)
    return yaml.safe_dump_all([spec, *platform], sort_keys=True)


def run_arguments(package_text: str, params) -> dict:
    """The run arguments for the package: the conditions of each kind for its loop.

    A package compiled here has exactly the loops of the run's kinds. A ``--package`` may have
    both loops (``clpipe compile``); a kind the run lacks then gets an empty list, a loop that
    runs over nothing (read in KFP's source, not yet seen on a cluster: ``k8s/README.md``).
    """
    spec = next(yaml.safe_load_all(package_text))
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    prepares = all(p in inputs for p in PREPARE_PARAMETERS)
    if needs_prepare(params) and not prepares:
        raise InputError("--package", "resolution", "the package has no prepare task, which this dataset or "
                         "resolution needs: compile it with --prepare")
    coteach, package_coteach = runs_coteach(params), all(p in inputs for p in COTEACH_PARAMETERS)
    if coteach != package_coteach:
        has, run = ("has", "finds label errors only") if package_coteach else ("has no", "trains Co-Teaching")
        raise InputError("--package", "coteach", f"the package {has} Co-Teaching, and this run {run} "
                         f"(coteach {params.coteach!r}): compile it with --coteach {'on' if coteach else 'off'}")
    arguments = pipeline_arguments(params, prepares, coteach)
    for kind, parameter in CONDITIONS_PARAMETER.items():
        if parameter in arguments and parameter not in inputs:
            raise InputError("--package", parameter, f"the package has no loop for {kind} conditions")
        if parameter in inputs:
            arguments.setdefault(parameter, [])
    return arguments


def _package_text(args: argparse.Namespace, params, tmp: str) -> str:
    """The YAML to submit: ``--package``, or the pipeline compiled for this run's kinds of condition."""
    if args.package:
        return Path(args.package).read_text()
    path = os.path.join(tmp, "clpipe_pipeline.yaml")
    compile_pipeline(path, settings_from_args(args), kinds_of(params), needs_prepare(params), runs_coteach(params))
    return Path(path).read_text()


# --- Kubeflow Pipelines --------------------------------------------------------------------------


def backend_version(client) -> str | None:
    """The KFP version the deployment reports, or None.

    The 2.17 API server's healthz carries no version (``multi_user``, ``pipeline_store``); the
    UI server (``ml-pipeline-ui``, what ``kubectl port-forward svc/ml-pipeline-ui`` exposes)
    answers the same path with ``frontendTagName``, the release tag its image was built with
    (``frontend/server/handlers/healthz.ts``). The response is read raw: the generated client
    model keeps only the API server's fields.
    """
    response = client._healthz_api.healthz_service_get_healthz(_preload_content=False)
    return json.loads(response.data or b"{}").get("frontendTagName") or None


def check_backend(client, host: str) -> None:
    """Refuses a backend older than :data:`MIN_BACKEND`; one warning when it reports no version."""
    version = backend_version(client)
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)\S*", version or "")
    floor = ".".join(map(str, MIN_BACKEND))
    if match is None:
        log.warning(
            "%s reports no KFP release version (%r; the API server does not, the UI does); clpipe needs %s or newer",
            host,
            version,
            floor,
        )
        return
    if tuple(int(x) for x in match.groups()) < MIN_BACKEND:
        raise InputError(host, "", f"Kubeflow Pipelines {version} is older than {floor}: {MIN_BACKEND_WHY}")


def pipeline_version(client, package: str, name: str, namespace: str | None) -> tuple[str, str]:
    """(pipeline id, version id) of the package, uploading only what is missing.

    The version is named ``<name>-<sha256 of the package, 12 hex digits>``, so submitting the
    same package again reuses it. A new pipeline's first version is created by the upload and
    named like the pipeline (KFP's rule); the hashed version is added next to it.
    """
    digest = hashlib.sha256(Path(package).read_bytes()).hexdigest()[:12]
    version_name = f"{name}-{digest}"
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(package, pipeline_name=name, namespace=namespace).pipeline_id
    same_name = json.dumps(
        {"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": version_name}]}
    )
    existing = client.list_pipeline_versions(pipeline_id, filter=same_name).pipeline_versions or []
    if existing:
        return pipeline_id, existing[0].pipeline_version_id
    version = client.upload_pipeline_version(
        package, pipeline_version_name=version_name, pipeline_id=pipeline_id, description=f"sha256 {digest}"
    )
    return pipeline_id, version.pipeline_version_id


def submit_kubeflow(args: argparse.Namespace, package: str, arguments: dict, run_name: str) -> None:
    import kfp

    if not args.host:
        raise InputError("--host", "", "the KFP endpoint is needed (e.g. http://localhost:8080)")
    import urllib3

    try:
        with warnings.catch_warnings():  # "only works with v2.0.0-beta.2 and later": check_backend checks
            warnings.filterwarnings("ignore", "This client only works with", FutureWarning)
            client = kfp.Client(host=args.host, namespace=args.namespace or "kubeflow")
        check_backend(client, args.host)
    except urllib3.exceptions.MaxRetryError as e:  # ~80 lines of chained tracebacks otherwise
        reason = type(e.reason).__name__ if e.reason is not None else "no answer"
        raise InputError(args.host, "", f"unreachable ({reason}, also on retries): is a KFP server listening "
                         "there (e.g. kubectl port-forward svc/ml-pipeline-ui 8080:80)?") from None
    pipeline_id, version_id = pipeline_version(client, package, args.pipeline_name, args.namespace)
    experiment_id = client.create_experiment(args.experiment, namespace=args.namespace).experiment_id
    run = client.run_pipeline(
        experiment_id=experiment_id,
        job_name=run_name,
        params=arguments,
        pipeline_id=pipeline_id,
        version_id=version_id,
        pipeline_root=args.pipeline_root,
    )
    url = f"{args.host.rstrip('/')}/#/runs/details/{run.run_id}"
    print(f"pipeline {pipeline_id} version {version_id}; run {run.run_id}: {url}", flush=True)
    if args.wait:
        try:
            done = client.wait_for_run_completion(run.run_id, timeout=args.timeout)
        except TimeoutError:
            raise RunNotSucceeded(f"run {run.run_id} did not finish within {args.timeout} s: {url}") from None
        _finished(run.run_id, str(done.state), url, _task_states(done))


# --- Vertex AI ---------------------------------------------------------------------------------


def submit_vertex(args: argparse.Namespace, package: str, arguments: dict, run_name: str) -> None:
    for flag in ("--project", "--region"):
        if not getattr(args, flag[2:]):
            raise InputError(flag, "", "needed with --target vertex")
    try:
        from google.cloud import aiplatform
    except ImportError:
        raise InputError(
            "--target", "vertex", "needs google-cloud-aiplatform: pip install 'clpipe[vertex]'"
        ) from None

    job = aiplatform.PipelineJob(
        display_name=run_name,
        template_path=package,
        pipeline_root=args.pipeline_root,
        parameter_values=arguments,
        enable_caching=False if args.no_cache else None,  # None: as compiled
        project=args.project,
        location=args.region,
    )
    job.submit(service_account=args.service_account)
    print(f"Vertex AI pipeline job {job.resource_name}", flush=True)
    if args.wait:
        deadline = time.monotonic() + args.timeout
        while not job.done():
            if time.monotonic() > deadline:
                raise RunNotSucceeded(f"job {job.resource_name} did not finish within {args.timeout} s")
            time.sleep(30)
        _finished(job.resource_name, job.state.name, job.resource_name)


def _task_states(run) -> str:
    """``"(tasks: 3 SKIPPED, 9 SUCCEEDED)"``: how the backend reports the run's tasks (a cache hit
    is reported SKIPPED, ``run.proto`` ``RuntimeState``), for the checklist in k8s/README.md."""
    tasks = (run.run_details.task_details if run.run_details else None) or []
    counts = Counter(str(task.state) for task in tasks)
    return f" (tasks: {', '.join(f'{n} {state}' for state, n in sorted(counts.items()))})" if counts else ""


def _finished(run_id: str, state: str, url: str, details: str = "") -> None:
    """Prints the final state; raises :class:`RunNotSucceeded` unless it is SUCCEEDED."""
    state = state.upper().removeprefix("PIPELINE_STATE_")
    print(f"run {run_id} finished: {state}{details}", flush=True)
    if state != SUCCEEDED:
        raise RunNotSucceeded(f"run {run_id} finished {state}: {url}")


def run(args: argparse.Namespace) -> None:
    params, _ = params_from_args(args, extra=("output",))
    try:
        _submit(args, params)
    except InputError as e:  # a parameter checked against the dataset (coteach) names the config that set it
        raise in_config(e, args) from None


def _submit(args: argparse.Namespace, params) -> None:
    run_name = args.run_name or f"clpipe-{time.strftime('%Y%m%d-%H%M%S')}"
    with tempfile.TemporaryDirectory() as tmp:
        text = _package_text(args, params, tmp)
        vertex = args.target == "vertex"
        if args.no_cache and not vertex:  # Vertex AI: PipelineJob(enable_caching=False), the same rule
            text = without_caching(text)
        package = os.path.join(tmp, "submitted.yaml")
        Path(package).write_text(text)
        submit = submit_vertex if vertex else submit_kubeflow
        submit(args, package, run_arguments(text, params), run_name)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return cli.run_stage("submit", build_parser(), argv, run)
    except RunNotSucceeded as e:
        print(f"ERROR submit: {e}", file=sys.stderr)
        return 1
