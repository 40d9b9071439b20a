"""The two stage images: names, metadata, user, entrypoint, contents (no torch in the CPU image)."""

from __future__ import annotations

import re

import pytest

from clpipe import __version__

pytestmark = pytest.mark.docker

#: Environment variable names that must never be baked into an image.
SECRET_ENV = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIALS)", re.IGNORECASE)


@pytest.fixture(scope="module", params=["cpu", "gpu"])
def image(request, images) -> str:
    return getattr(images, request.param)


def test_names_match_the_pipeline(images):
    assert images.cpu.endswith(f"/clpipe-cpu:{__version__}")
    assert images.gpu.endswith(f"/clpipe-gpu:{__version__}")


def test_config_non_root_entrypoint_labels_no_secrets(docker_client, image):
    attrs = docker_client.images.get(image).attrs
    config = attrs["Config"]
    assert config["User"] == "1000"
    assert config["Entrypoint"] == ["clpipe-entrypoint"]
    assert config["Cmd"] == ["--help"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.title"] == image.rsplit("/", 1)[-1].split(":")[0]
    for key in ("revision", "created", "source", "licenses", "description"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["HOME"] == "/home/clpipe" and env["CLPIPE_CACHE_DIR"].startswith("/home/clpipe/")
    assert not [k for k in env if SECRET_ENV.search(k)], env
    assert "NVIDIA_VISIBLE_DEVICES" not in env  # a pod without a GPU request must not see the GPUs
    for layer in docker_client.api.history(image):
        assert not SECRET_ENV.search(layer.get("CreatedBy", "").split("LABEL")[0]), layer["CreatedBy"]


def test_runs_clpipe_as_uid_1000(run, image):
    assert run(image, ["--version"]).check().logs.strip().splitlines()[-1] == __version__
    out = run(image, []).check().logs
    assert "usage: clpipe" in out and "fold-train" in out
    ident = run(image, ["id", "-u"]).check().logs.strip()
    assert ident == "1000"


def test_kfp_and_python3_for_lightweight_components(run, image):
    """The pipeline uses these images as base_image with install_kfp_package=False."""
    probe = (
        "import shutil, kfp, clpipe; from kfp.dsl import executor_main; "
        "print(kfp.__version__, clpipe.__version__, shutil.which('python3'))"
    )
    out = run(image, ["python3", "-c", probe]).check().logs.split()
    assert out[:2] == ["2.17.3", __version__]
    assert out[2].endswith("/python3")
    # The compiled command is `sh -ec ...`: the entrypoint passes executables through.
    assert run(image, ["sh", "-ec", "echo ok"]).check().logs.strip() == "ok"


def test_cpu_image_has_no_torch_gpu_image_has_cuda_torch(run, images):
    res = run(images.cpu, ["python3", "-c", "import torch"])
    assert res.exit_code != 0 and "No module named 'torch'" in res.logs
    probe = "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.version.cuda)"
    torch_v, vision_v, cuda = run(images.gpu, ["python3", "-c", probe]).check().logs.split()
    assert torch_v.startswith("2.14.1") and vision_v.startswith("0.29.1")
    assert cuda != "None", "the GPU image must carry a CUDA build of torch"


def test_writable_home_and_cache_under_arbitrary_uid(run, images):
    """Clusters that assign a random uid (group 0) still get a writable HOME and cache."""
    script = 'touch "$HOME/x" "$CLPIPE_CACHE_DIR/x" /tmp/x && id -u'
    for user in (None, "12345:0"):
        assert run(images.cpu, ["sh", "-ec", script], user=user).check().logs.strip() in ("1000", "12345")


def test_no_pip_install_at_run_time(run, images):
    """Images carry their dependencies; the installed set is consistent (pip check)."""
    for image in (images.cpu, images.gpu):
        assert "No broken requirements" in run(image, ["python3", "-m", "pip", "check"]).check().logs
