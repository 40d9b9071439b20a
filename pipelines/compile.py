"""``clpipe compile -o FILE``: the pipeline as KFP v2 YAML, with the compile-time settings.

Image names and tags, the GPU count of GPU tasks, resources and the Kubernetes objects the
storage environment comes from are fixed at compile time (the committed
``pipelines/clpipe_pipeline.yaml`` uses the defaults: public registry, 1 GPU). Run-time
parameters (dataset, conditions, folds, methods, ...) stay pipeline parameters.

Examples:
  clpipe compile -o pipelines/clpipe_pipeline.yaml              # the committed golden file
  clpipe compile -o /tmp/kind.yaml --registry localhost:5000/clpipe --gpus 0
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from clpipe.components.common import cli
from clpipe.components.common.image import LOCAL_REGISTRY, PUBLIC_REGISTRY, Images
from clpipe.components.common.kfp_component import TaskSettings

from clpipe import __version__

#: The committed compiled pipeline (tests/pipeline/test_golden.py keeps it current).
GOLDEN = Path(__file__).with_name("clpipe_pipeline.yaml")
REGENERATE = "clpipe compile -o pipelines/clpipe_pipeline.yaml"


def add_compile_arguments(parser: argparse.ArgumentParser) -> None:
    """The compile-time settings (also used by ``clpipe submit``)."""
    g = parser.add_argument_group("compile-time settings")
    g.add_argument(
        "--registry",
        default=PUBLIC_REGISTRY,
        help=f"image registry/prefix (default {PUBLIC_REGISTRY}; kind: {LOCAL_REGISTRY})",
    )
    g.add_argument(
        "--tag", default=__version__, help=f"image tag (default the package version, {__version__})"
    )
    g.add_argument("--gpu-image", help="full GPU image name (overrides --registry/--tag)")
    g.add_argument("--cpu-image", help="full CPU image name (overrides --registry/--tag)")
    g.add_argument(
        "--gpus", type=int, default=1, help="nvidia.com/gpu per GPU task; 0 for a cluster without GPUs"
    )
    g.add_argument("--shm-size", default="8Gi", help="memory-backed /dev/shm of GPU tasks (default 8Gi)")
    g.add_argument(
        "--storage-config-map",
        default="clpipe-storage",
        help="ConfigMap with AWS_ENDPOINT_URL, AWS_DEFAULT_REGION ... for every task ('' = none)",
    )
    g.add_argument(
        "--storage-secret",
        default="clpipe-storage",
        help="Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY for every task ('' = none)",
    )
    g.add_argument(
        "--gcs-secret", default="", help="Secret with a service-account key sa.json for gs:// ('' = none)"
    )


def settings_from_args(args: argparse.Namespace) -> TaskSettings:
    """Task settings from the compile flags (``clpipe compile`` and ``clpipe submit``)."""
    if args.gpus < 0:
        raise cli.InputError("--gpus", "", f"must be >= 0, got {args.gpus}")
    images = Images.for_registry(args.registry, args.tag)
    images = dataclasses.replace(images, gpu=args.gpu_image or images.gpu, cpu=args.cpu_image or images.cpu)
    return TaskSettings(
        images=images,
        gpus=args.gpus,
        shm_size=args.shm_size,
        storage_config_map=args.storage_config_map or None,
        storage_secret=args.storage_secret or None,
        gcs_secret=args.gcs_secret or None,
    )


def compile_pipeline(path: str, settings: TaskSettings | None = None) -> None:
    """Writes the compiled pipeline (KFP IR YAML) to ``path``."""
    from kfp import compiler

    from .pipeline import build_pipeline

    compiler.Compiler().compile(build_pipeline(settings), package_path=str(path))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clpipe compile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-o", "--output", required=True, help="YAML file to write")
    add_compile_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def run(args: argparse.Namespace) -> None:
    compile_pipeline(args.output, settings_from_args(args))
    cli.log.info("wrote %s", args.output)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_stage("compile", build_parser(), argv, run)
