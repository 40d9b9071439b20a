"""``clpipe compile -o FILE``: the pipeline as KFP v2 YAML, with the compile-time settings.

Image names and tags, the GPU count of GPU tasks, resources, loop parallelism, the target
(Kubeflow Pipelines or Vertex AI) and the Kubernetes objects the storage environment comes
from are fixed at compile time (the committed ``pipelines/clpipe_pipeline.yaml`` uses the
defaults: Kubeflow, public registry, 1 GPU). Run-time parameters (dataset, conditions, folds,
methods, ...) stay pipeline parameters. The output is byte-reproducible.

Examples:
  clpipe compile -o pipelines/clpipe_pipeline.yaml              # the committed golden file
  clpipe compile -o /tmp/your-data.yaml --prepare                # for ImageFolders, manifests, a resolution
  clpipe compile -o /tmp/label-errors.yaml --prepare --coteach off  # label errors only (no test split)
  clpipe compile -o /tmp/kind.yaml --registry localhost:5000/clpipe --gpus 0
  clpipe compile -o /tmp/vertex.yaml --target vertex --pipeline-root gs://BUCKET/clpipe \\
      --vertex-accelerator NVIDIA_H100_80GB --gpus 1
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from clpipe.components.common import cli
from clpipe.components.common.cli import ArgumentParser
from clpipe.components.common.image import LOCAL_REGISTRY, PUBLIC_REGISTRY, Images
from clpipe.components.common.kfp_component import TARGETS, Resources, TaskSettings

from clpipe import __version__

from .config import COTEACH

#: The committed compiled pipeline (tests/pipeline/test_golden.py keeps it current).
GOLDEN = Path(__file__).with_name("clpipe_pipeline.yaml")
REGENERATE = "clpipe compile -o pipelines/clpipe_pipeline.yaml"
#: ``clpipe compile --coteach``: the config's ``coteach`` less ``auto`` (there is no dataset to look at).
COTEACH_BUILDS = tuple(c for c in COTEACH if c != "auto")


#: Defaults of the compile-time settings: those of TaskSettings (one place).
_DEFAULT = TaskSettings()


def add_compile_arguments(parser: argparse.ArgumentParser) -> None:
    """The compile-time settings (also used by ``clpipe submit``)."""
    g = parser.add_argument_group("compile-time settings")
    g.add_argument(
        "--target",
        choices=TARGETS,
        default=_DEFAULT.target,
        help="Kubeflow Pipelines on Kubernetes (default) or Vertex AI Pipelines (one YAML document, "
        "no Kubernetes settings)",
    )
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
        "--gpus",
        type=int,
        default=_DEFAULT.gpus,
        help="accelerators per GPU task (nvidia.com/gpu; on Vertex AI --vertex-accelerator); 0 = none",
    )
    g.add_argument(
        "--vertex-accelerator",
        default=_DEFAULT.vertex_accelerator,
        help=f"Vertex AI accelerator type of GPU tasks (default {_DEFAULT.vertex_accelerator}; "
        "e.g. NVIDIA_H100_80GB)",
    )
    g.add_argument(
        "--gpu-task-limits",
        metavar="CPU,MEMORY",
        help=f"CPU and memory limits of GPU tasks (default {_limits(_DEFAULT.gpu_resources)}); "
        "on Vertex AI they and the accelerator choose the machine type",
    )
    g.add_argument(
        "--cpu-task-limits",
        metavar="CPU,MEMORY",
        help=f"CPU and memory limits of CPU tasks (default {_limits(_DEFAULT.cpu_resources)})",
    )
    g.add_argument(
        "--max-cpu-request",
        help="lower every task's CPU request to at most this (e.g. 1), for small clusters such as kind",
    )
    g.add_argument(
        "--max-memory-request", help="lower every task's memory request to at most this (e.g. 2Gi)"
    )
    g.add_argument(
        "--condition-parallelism",
        type=int,
        default=_DEFAULT.condition_parallelism,
        help=f"conditions run at once by each conditions loop (default {_DEFAULT.condition_parallelism})",
    )
    g.add_argument(
        "--task-parallelism",
        type=int,
        default=_DEFAULT.task_parallelism,
        help=f"folds, and Co-Teaching runs, at once per condition (default {_DEFAULT.task_parallelism}); "
        "a run asks for at most condition x task parallelism GPUs per kind of condition",
    )
    g.add_argument(
        "--pipeline-root",
        help="artifact root of the pipeline's runs (default: the backend's; Vertex AI: a gs:// URL, required)",
    )
    g.add_argument(
        "--shm-size", default=_DEFAULT.shm_size, help="memory-backed /dev/shm of GPU tasks (default 8Gi)"
    )
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


def _limits(resources: Resources) -> str:
    return f"{resources.cpu_limit},{resources.memory_limit}"


def _quantity(flag: str, value: str) -> str:
    """``value`` if it is a Kubernetes quantity (``1``, ``500m``, ``2Gi``), else an InputError naming ``flag``."""
    from kubernetes.utils import parse_quantity

    try:
        parse_quantity(value)
    except ValueError:
        raise cli.InputError(flag, value, "expected a Kubernetes quantity, e.g. 1, 500m or 2Gi") from None
    return value


def _at_least(flag: str, value: int, minimum: int) -> int:
    if value < minimum:
        raise cli.InputError(flag, "", f"must be >= {minimum}, got {value}")
    return value


def _resources(resources: Resources, flag: str, limits: str | None, args: argparse.Namespace) -> Resources:
    """``resources`` with the limits of ``--*-task-limits CPU,MEMORY`` and the request caps."""
    if limits is not None:
        cpu, sep, memory = limits.partition(",")
        if not sep:
            raise cli.InputError(flag, limits, "expected CPU,MEMORY, e.g. 8,32Gi")
        resources = resources.with_limits(_quantity(flag, cpu), _quantity(flag, memory))
    return resources.with_requests_capped(args.max_cpu_request, args.max_memory_request)


def settings_from_args(args: argparse.Namespace) -> TaskSettings:
    """Task settings from the compile flags (``clpipe compile`` and ``clpipe submit``)."""
    for flag in ("--max-cpu-request", "--max-memory-request"):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            _quantity(flag, value)
    vertex = args.target == "vertex"
    if vertex and not (args.pipeline_root or "").startswith("gs://"):
        raise cli.InputError("--pipeline-root", args.pipeline_root or "", "Vertex AI needs a gs:// URL")
    images = Images.for_registry(args.registry, args.tag)
    images = dataclasses.replace(images, gpu=args.gpu_image or images.gpu, cpu=args.cpu_image or images.cpu)
    return TaskSettings(
        images=images,
        gpus=_at_least("--gpus", args.gpus, 0),
        gpu_resources=_resources(_DEFAULT.gpu_resources, "--gpu-task-limits", args.gpu_task_limits, args),
        cpu_resources=_resources(_DEFAULT.cpu_resources, "--cpu-task-limits", args.cpu_task_limits, args),
        shm_size=args.shm_size,
        storage_config_map=None if vertex else args.storage_config_map or None,
        storage_secret=None if vertex else args.storage_secret or None,
        gcs_secret=None if vertex else args.gcs_secret or None,
        target=args.target,
        vertex_accelerator=args.vertex_accelerator,
        pipeline_root=args.pipeline_root,
        condition_parallelism=_at_least("--condition-parallelism", args.condition_parallelism, 1),
        task_parallelism=_at_least("--task-parallelism", args.task_parallelism, 1),
    )


def compile_pipeline(
    path: str,
    settings: TaskSettings | None = None,
    kinds: Sequence[str] | None = None,
    prepare: bool = False,
    coteach: bool = True,
) -> None:
    """Writes the compiled pipeline (KFP IR YAML) to ``path``, byte-reproducibly.

    ``kinds``: the kinds of condition to build loops for (default all, :data:`.pipeline.KINDS`);
    ``prepare``: start with the task that prepares the dataset (``clpipe data prepare``);
    ``coteach``: train Co-Teaching after finding the label errors (without: label errors only).
    """
    from kfp import compiler

    from .pipeline import KINDS, build_pipeline

    pipeline = build_pipeline(settings, kinds or KINDS, prepare, coteach)
    compiler.Compiler().compile(pipeline, package_path=str(path))
    _rewrite_header(Path(path), pipeline.description)


def _rewrite_header(path: Path, description: str | None) -> None:
    """Regenerates the compiler's header comment from the written, key-sorted YAML.

    kfp 2.17.3 prints the parameters' defaults in that comment from protobuf ``Struct`` maps,
    whose iteration order changes from one interpreter to the next (three compiles, three
    files); the YAML below it is written with sorted keys. The same kfp function, given the
    sorted document, prints the same header every time.
    """
    import yaml
    from kfp.compiler.pipeline_spec_builder import extract_comments_from_pipeline_spec

    lines = path.read_text().splitlines(keepends=True)
    body = "".join(lines[next(i for i, line in enumerate(lines) if not line.startswith("#")) :])
    spec = next(yaml.safe_load_all(body))
    path.write_text(extract_comments_from_pipeline_spec(spec, description) + body)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="clpipe compile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-o", "--output", required=True, help="YAML file to write")
    p.add_argument("--prepare", action="store_true",
                   help="start with a task that prepares the dataset (an ImageFolder or manifest, or a "
                   "'resolution' parameter); without it the dataset must already be .npz files or prepared")
    p.add_argument("--coteach", choices=COTEACH_BUILDS, default=COTEACH_BUILDS[0],
                   help="'on' (default): train Co-Teaching after finding the label errors, scored on the "
                   "test split; 'off': find label errors only (for a dataset without a test split)")
    add_compile_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def check_output_file(path: str) -> None:
    """The YAML file can be written: not a folder, in a folder that exists (checked before compiling)."""
    if os.path.isdir(path):
        raise cli.InputError(path, "", "is a folder: give the YAML file to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise cli.InputError(path, "", f"the folder {folder} does not exist: create it or write elsewhere")


def run(args: argparse.Namespace) -> None:
    check_output_file(args.output)
    compile_pipeline(args.output, settings_from_args(args), prepare=args.prepare, coteach=args.coteach == "on")
    cli.log.info("wrote %s", args.output)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_stage("compile", build_parser(), argv, run)
