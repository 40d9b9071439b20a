"""``clpipe submit --host URL [CONFIG] [flags]``: upload the pipeline to KFP and start a run.

Compiles the pipeline with the compile-time settings given here (or takes ``--package``),
uploads it as pipeline ``--pipeline-name`` (a new version when the pipeline exists), and
starts a run in experiment ``--experiment`` with the parameters from CONFIG and flags
(the same as ``clpipe run``; the config's ``output`` key is ignored: results stay in the
cluster's pipeline root). Paths are passed on as they are: on a cluster the dataset and
label files must be URLs the tasks can read (``gs://``, ``s3://``, ``minio://``) or paths
inside the images. Credentials come from the environment (``KF_PIPELINES_*``) or the
``kfp.Client`` defaults; none are accepted as flags.

Example:
  kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80 &
  clpipe submit --host http://localhost:8080 --registry localhost:5000/clpipe --gpus 0 \\
      --dataset minio://mlpipeline/data/cifar10 --condition name=n0.4-s0.2,noise=0.4,sparsity=0.2 \\
      --n-folds 4 --fold-arch airbench94
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from clpipe.components.common import cli

from clpipe import __version__

from .compile import add_compile_arguments, compile_pipeline, settings_from_args
from .config import BenchmarkParams, add_param_arguments, params_from_args
from .pipeline import PIPELINE_NAME


@dataclass(frozen=True)
class Submitted:
    pipeline_id: str
    version_id: str
    experiment_id: str
    run_id: str


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clpipe submit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    p.add_argument("--namespace", help="user namespace (multi-user KFP)")
    p.add_argument("--experiment", default="clpipe", help="experiment name (default clpipe)")
    p.add_argument("--run-name", help="run name (default clpipe-<time>)")
    p.add_argument("--pipeline-name", default=PIPELINE_NAME, help=f"pipeline name (default {PIPELINE_NAME})")
    p.add_argument("--pipeline-root", help="artifact root of this run (default: the cluster's)")
    p.add_argument("--no-cache", action="store_true", help="run every task again (KFP caching off)")
    p.add_argument("--package", help="a compiled pipeline YAML to upload instead of compiling one")
    add_param_arguments(p)
    add_compile_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def submit(
    client,
    package: str,
    params: BenchmarkParams,
    *,
    pipeline_name: str,
    experiment: str,
    run_name: str,
    namespace: str | None = None,
    pipeline_root: str | None = None,
    enable_caching: bool | None = None,
) -> Submitted:
    """Uploads ``package`` (new pipeline or new version of it) and starts one run."""
    version_name = f"{__version__}-{time.strftime('%Y%m%d-%H%M%S')}"
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(
            package, pipeline_name=pipeline_name, namespace=namespace
        ).pipeline_id
        versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
        version_id = versions.pipeline_versions[0].pipeline_version_id
    else:
        version_id = client.upload_pipeline_version(
            package, pipeline_version_name=version_name, pipeline_id=pipeline_id
        ).pipeline_version_id
    experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
    run = client.run_pipeline(
        experiment_id=experiment_id,
        job_name=run_name,
        params=params.arguments(),
        pipeline_id=pipeline_id,
        version_id=version_id,
        pipeline_root=pipeline_root,
        enable_caching=enable_caching,
    )
    return Submitted(pipeline_id, version_id, experiment_id, run.run_id)


def run(args: argparse.Namespace) -> None:
    import kfp

    params, _ = params_from_args(args, extra=("output",))
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package
        if package is None:
            package = os.path.join(tmp, "clpipe_pipeline.yaml")
            compile_pipeline(package, settings_from_args(args))
        client = kfp.Client(host=args.host, namespace=args.namespace or "kubeflow")
        result = submit(
            client,
            package,
            params,
            pipeline_name=args.pipeline_name,
            experiment=args.experiment,
            run_name=args.run_name or f"clpipe-{time.strftime('%Y%m%d-%H%M%S')}",
            namespace=args.namespace,
            pipeline_root=args.pipeline_root,
            enable_caching=False if args.no_cache else None,
        )
    print(
        f"pipeline {result.pipeline_id} version {result.version_id}; run {result.run_id}: "
        f"{args.host.rstrip('/')}/#/runs/details/{result.run_id}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_stage("submit", build_parser(), argv, run)
