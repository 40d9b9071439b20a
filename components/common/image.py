"""Names of the stage images, set at compile time and never read from the environment.

Two images serve all stages (one entrypoint, the ``clpipe`` command): a GPU image with
torch for the fold trainer and Co-Teaching, and a small CPU image without torch for the
combiner, masks, noisy labels and report. Tags equal the package version, so a compiled
pipeline names exactly the images built from the same commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from clpipe import __version__

#: Registry used by ``docker/build.sh`` and the kind cluster (images are side-loaded).
LOCAL_REGISTRY = "localhost:5000/clpipe"
#: Public registry the released images are pushed to.
PUBLIC_REGISTRY = "ghcr.io/clpipe"


@dataclass(frozen=True)
class Images:
    """The two stage images a pipeline is compiled with."""

    gpu: str
    cpu: str

    @classmethod
    def for_registry(cls, registry: str = PUBLIC_REGISTRY, tag: str = __version__) -> Images:
        registry = registry.rstrip("/")
        return cls(gpu=f"{registry}/clpipe-gpu:{tag}", cpu=f"{registry}/clpipe-cpu:{tag}")


DEFAULT_IMAGES = Images.for_registry(PUBLIC_REGISTRY)
LOCAL_IMAGES = Images.for_registry(LOCAL_REGISTRY)
