"""The images as KFP lightweight-component base images, run by kfp.local's DockerRunner.

The pipeline compiles its tasks as ``@dsl.component(base_image=<image>,
install_kfp_package=False)``: the task command is ``sh -ec ... python3 -m
kfp.dsl.executor_main ...`` with no ``pip install``. kfp.local passes that command as the
container's arguments (it does not override the entrypoint), so this also checks that the
images' entrypoint lets it through.
"""

# No `from __future__ import annotations`: kfp reads the component's annotations as types.
import os

import pytest

pytestmark = pytest.mark.docker


def probe() -> str:
    """Runs inside the image: versions, uid and interpreter (imports only what is there)."""
    import os
    import sys

    import cleanlab
    import kfp

    import clpipe

    try:
        import torch

        has_torch = "torch-" + torch.__version__
    except ImportError:
        has_torch = "no-torch"
    return " ".join(
        [
            clpipe.__version__,
            kfp.__version__,
            cleanlab.__version__,
            has_torch,
            str(os.getuid()),
            sys.executable,
        ]
    )


@pytest.fixture
def kfp_local(docker_client, tmp_path):
    from kfp import local

    root = tmp_path / "kfp-root"
    root.mkdir()
    root.chmod(0o1777)  # kfp creates run folders as root; the task runs as uid 1000
    local.init(runner=local.DockerRunner(), pipeline_root=str(root), raise_on_error=True)
    yield root
    local.init(runner=local.SubprocessRunner(), pipeline_root=str(tmp_path / "unused"))


@pytest.mark.parametrize("which", ["cpu", "gpu"])
def test_lightweight_component_runs_on_image(kfp_local, images, which):
    from kfp import dsl

    from clpipe import __version__

    image = getattr(images, which)
    comp = dsl.component(func=probe, base_image=image, install_kfp_package=False)
    spec = comp.component_spec.implementation.container
    assert spec.image == image
    command = " ".join([*spec.command, *(spec.args or [])])
    assert "kfp.dsl.executor_main" in command and "pip install" not in command
    task = comp()
    version, kfp_version, cleanlab_version, torch, uid, python = task.output.split()
    assert version == __version__ and kfp_version == "2.17.3" and cleanlab_version == "2.9.0"
    assert uid == "1000" and os.path.basename(python) == "python3"
    assert torch == ("no-torch" if which == "cpu" else "torch-2.14.1+cu130")
