"""What every clpipe KFP component shares: how it is built, run and placed on the cluster.

**Component style.** Each stage's ``component.py`` defines plain Python functions with KFP
type annotations whose bodies import clpipe and call the stage CLI on the artifacts'
``.path`` (the launcher downloads inputs to, and uploads outputs from, those paths).
:func:`stage_component` marks such a function with its image kind (``gpu`` or ``cpu``);
:meth:`StageComponent.build` turns it, at compile time, into a lightweight component:
``dsl.component(base_image=<stage image>, install_kfp_package=False)``. The compiled
command runs ``python3 -m kfp.dsl.executor_main`` on the inlined function source with **no
pip install**: the stage images already contain kfp and clpipe. Under ``kfp.local``'s
SubprocessRunner the same component runs in the current virtualenv, so one pipeline
definition runs on a cluster and on one machine without Docker
(``components/README.md`` explains the choice).

**Placement** (:class:`TaskSettings`, chosen at compile time): GPU stages request
``nvidia.com/gpu`` (count configurable, 0 for CPU-only clusters), tolerate the GPU taint,
mount a memory-backed ``/dev/shm`` and set CPU/memory requests and limits; CPU stages set
smaller requests. Every task gets the storage environment (endpoint, region, credentials)
from a Kubernetes ConfigMap and Secret by name (``optional``: absent objects leave the
variables unset); no value of either is ever written into the pipeline YAML.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .image import DEFAULT_IMAGES, Images

#: Image kinds a stage can run on (fields of :class:`~.image.Images`).
IMAGE_KINDS = ("gpu", "cpu")
#: Storage variables read by ``storage.py`` (boto/s3fs and gcsfs read them too).
STORAGE_CONFIG_KEYS = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "MINIO_ENDPOINT", "GOOGLE_CLOUD_PROJECT")
STORAGE_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
#: Where ``TaskSettings.gcs_secret`` is mounted; its key ``sa.json`` is the GCS credential.
GCS_KEY_DIR = "/var/secrets/clpipe-gcs"


@dataclass(frozen=True)
class StageComponent:
    """A component function and the kind of image it runs on; built at compile time."""

    func: Callable
    image_kind: str

    def build(self, images: Images):
        """The KFP component on this stage's image, with no run-time pip install."""
        from kfp import dsl

        return dsl.component(
            self.func, base_image=getattr(images, self.image_kind), install_kfp_package=False
        )


def stage_component(image_kind: str) -> Callable[[Callable], StageComponent]:
    """Decorator for a component function of a stage: ``@stage_component("gpu")``."""
    if image_kind not in IMAGE_KINDS:
        raise ValueError(f"image kind must be one of {IMAGE_KINDS}, got {image_kind!r}")

    def mark(func: Callable) -> StageComponent:
        return StageComponent(func, image_kind)

    return mark


# --- inside a running component -------------------------------------------------------------


def run_cli(main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> None:
    """Runs a stage CLI inside a component; a non-zero exit code fails the task with it.

    The CLI has already printed ``ERROR <stage>: ...`` (bad input, exit 2) or a traceback.
    """
    code = main([str(a) for a in argv])
    if code:
        sys.exit(code)


def override_flags(values: Mapping[str, int | float]) -> list[str]:
    """``["--epochs", "3", ...]`` for the settings that are set; 0 means "the recipe's value"."""
    return [item for flag, value in values.items() if value for item in (flag, str(value))]


# --- placement on the cluster (compile time) ------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """Kubernetes requests and limits of one task (quantities as strings, e.g. ``"4"``, ``"16Gi"``)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True)
class TaskSettings:
    """Compile-time settings of every task of the pipeline.

    Attributes:
        images: The GPU and CPU stage images.
        gpus: ``nvidia.com/gpu`` per GPU task; 0 for a cluster without GPUs (the stages then
            train on the CPU).
        gpu_resources, cpu_resources: Requests and limits of GPU and CPU tasks.
        shm_size: Size of the memory-backed ``/dev/shm`` of GPU tasks.
        gpu_resource: The accelerator resource name (also the tolerated taint key).
        storage_config_map, storage_secret: Kubernetes objects whose keys
            (:data:`STORAGE_CONFIG_KEYS`, :data:`STORAGE_SECRET_KEYS`) become environment
            variables of every task; None leaves them out.
        gcs_secret: Secret holding a service-account key ``sa.json`` for ``gs://`` URLs,
            mounted at :data:`GCS_KEY_DIR` (None: the node's or workload identity).
    """

    images: Images = DEFAULT_IMAGES
    gpus: int = 1
    gpu_resources: Resources = field(default_factory=lambda: Resources("4", "16Gi", "8", "32Gi"))
    cpu_resources: Resources = field(default_factory=lambda: Resources("1", "2Gi", "2", "8Gi"))
    shm_size: str = "8Gi"
    gpu_resource: str = "nvidia.com/gpu"
    storage_config_map: str | None = "clpipe-storage"
    storage_secret: str | None = "clpipe-storage"
    gcs_secret: str | None = None

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")


def _set_resources(task, resources: Resources) -> None:
    task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
    task.set_memory_request(resources.memory_request).set_memory_limit(resources.memory_limit)


def _set_storage_env(task, settings: TaskSettings) -> None:
    from kfp import kubernetes

    if settings.storage_config_map:
        kubernetes.use_config_map_as_env(
            task, settings.storage_config_map, {k: k for k in STORAGE_CONFIG_KEYS}, optional=True
        )
    if settings.storage_secret:
        kubernetes.use_secret_as_env(
            task, settings.storage_secret, {k: k for k in STORAGE_SECRET_KEYS}, optional=True
        )
    if settings.gcs_secret:
        kubernetes.use_secret_as_volume(task, settings.gcs_secret, mount_path=GCS_KEY_DIR)
        task.set_env_variable("GOOGLE_APPLICATION_CREDENTIALS", f"{GCS_KEY_DIR}/sa.json")


def gpu_task(task, settings: TaskSettings, display_name: str):
    """Places a GPU stage's task: accelerator, GPU taint toleration, /dev/shm, resources, storage env."""
    from kfp import kubernetes

    if settings.gpus:
        task.set_accelerator_type(settings.gpu_resource).set_accelerator_limit(settings.gpus)
    kubernetes.add_toleration(task, key=settings.gpu_resource, operator="Exists", effect="NoSchedule")
    kubernetes.empty_dir_mount(
        task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=settings.shm_size
    )
    _set_resources(task, settings.gpu_resources)
    _set_storage_env(task, settings)
    return task.set_display_name(display_name)


def cpu_task(task, settings: TaskSettings, display_name: str):
    """Places a CPU stage's task: resources and storage env, no accelerator."""
    _set_resources(task, settings.cpu_resources)
    _set_storage_env(task, settings)
    return task.set_display_name(display_name)
