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
variables unset); no value of either is ever written into the pipeline YAML. For Vertex AI
(``target="vertex"``) GPU stages name a Vertex accelerator type instead and nothing
Kubernetes-specific is compiled in.
"""

from __future__ import annotations

import dataclasses
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

#: Where a compiled pipeline runs: Kubeflow Pipelines on Kubernetes, or Vertex AI Pipelines.
TARGETS = ("kubeflow", "vertex")


@dataclass(frozen=True)
class Resources:
    """Kubernetes requests and limits of one task (quantities as strings, e.g. ``"4"``, ``"16Gi"``).

    On Vertex AI only the limits count: they (and the accelerator) choose the machine type of the
    task's CustomJob (cloud.google.com/vertex-ai/docs/pipelines/machine-types).
    """

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def with_limits(self, cpu: str, memory: str) -> Resources:
        """These resources with other limits (requests above them are lowered to them)."""
        return dataclasses.replace(self, cpu_limit=cpu, memory_limit=memory).with_requests_capped(cpu, memory)

    def with_requests_capped(self, cpu: str | None, memory: str | None) -> Resources:
        """These resources with each request lowered to at most ``cpu`` / ``memory`` (limits kept).

        For small clusters (a kind node): the scheduler places a pod by its requests, so capped
        requests let a pipeline compiled for GPU nodes (4 CPUs, 16 GiB per GPU task) schedule.
        """
        from kubernetes.utils import parse_quantity  # a kfp dependency; exact Kubernetes quantity arithmetic

        def capped(request: str, cap: str | None) -> str:
            return cap if cap is not None and parse_quantity(request) > parse_quantity(cap) else request

        return dataclasses.replace(
            self,
            cpu_request=capped(self.cpu_request, cpu),
            memory_request=capped(self.memory_request, memory),
        )


@dataclass(frozen=True)
class TaskSettings:
    """Compile-time settings of the pipeline and of every task.

    Attributes:
        images: The GPU and CPU stage images.
        gpus: Accelerators per GPU task; 0 for a cluster without GPUs (the stages then train on
            the CPU).
        gpu_resources, cpu_resources: Requests and limits of GPU and CPU tasks.
        shm_size: Size of the memory-backed ``/dev/shm`` of GPU tasks (Kubernetes).
        gpu_resource: The Kubernetes accelerator resource name (also the tolerated taint key).
        storage_config_map, storage_secret: Kubernetes objects whose keys
            (:data:`STORAGE_CONFIG_KEYS`, :data:`STORAGE_SECRET_KEYS`) become environment
            variables of every task; None leaves them out.
        gcs_secret: Secret holding a service-account key ``sa.json`` for ``gs://`` URLs,
            mounted at :data:`GCS_KEY_DIR` (None: the node's or workload identity).
        target: One of :data:`TARGETS`. ``vertex`` compiles one YAML document: no kfp-kubernetes
            settings (tolerations, ``/dev/shm``, Secret/ConfigMap environment: Vertex AI ignores
            that document and its tasks read ``gs://`` with the job's service account), the
            accelerator named :attr:`vertex_accelerator`.
        vertex_accelerator: Vertex AI accelerator type of GPU tasks (``NVIDIA_L4``,
            ``NVIDIA_H100_80GB``, ...; the ``AcceleratorType`` enum of the Vertex AI API).
        pipeline_root: Default artifact root written into the pipeline (None: the backend's;
            ``gs://...`` required on Vertex AI).
        condition_parallelism: Conditions run at once by each conditions loop (Argo
            ``parallelism`` of the loop, argocompiler ``dag.go``).
        task_parallelism: Folds, and Co-Teaching runs, run at once per condition. A run asks
            for at most ``condition_parallelism * task_parallelism`` GPUs per kind of condition
            (cross-validated, given pred_probs), so the defaults queue work on a small GPU pool
            (4 GPUs) instead of creating every GPU pod at once.
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
    target: str = "kubeflow"
    vertex_accelerator: str = "NVIDIA_L4"
    pipeline_root: str | None = None
    condition_parallelism: int = 2
    task_parallelism: int = 2

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        for name in ("condition_parallelism", "task_parallelism"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.target == "vertex" and not (self.pipeline_root or "").startswith("gs://"):
            raise ValueError(f"pipeline_root must be a gs:// URL on Vertex AI, got {self.pipeline_root!r}")

    @property
    def on_kubernetes(self) -> bool:
        """Whether kfp-kubernetes settings apply (Kubeflow Pipelines, not Vertex AI)."""
        return self.target == "kubeflow"

    @property
    def accelerator_type(self) -> str:
        return self.gpu_resource if self.on_kubernetes else self.vertex_accelerator


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
    """Places a GPU stage's task: accelerator, resources; on Kubernetes also the GPU taint
    toleration, /dev/shm and the storage environment."""
    from kfp import kubernetes

    if settings.gpus:
        task.set_accelerator_type(settings.accelerator_type).set_accelerator_limit(settings.gpus)
    _set_resources(task, settings.gpu_resources)
    if settings.on_kubernetes:
        kubernetes.add_toleration(task, key=settings.gpu_resource, operator="Exists", effect="NoSchedule")
        kubernetes.empty_dir_mount(
            task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=settings.shm_size
        )
        _set_storage_env(task, settings)
    return task.set_display_name(display_name)


def cpu_task(task, settings: TaskSettings, display_name: str):
    """Places a CPU stage's task: resources and, on Kubernetes, the storage environment."""
    _set_resources(task, settings.cpu_resources)
    if settings.on_kubernetes:
        _set_storage_env(task, settings)
    return task.set_display_name(display_name)
