"""The kustomize overlays and kind configs: render, validate offline, and carry the right settings."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from clpipe.components.common.image import DEFAULT_IMAGES, LOCAL_IMAGES

from clpipe import __version__

from .conftest import K8S, OVERLAYS, pod_specs, tool

GPU_OVERLAYS = ("kind-gpu", "gpu")
EXPECTED_IMAGES = {"kind": LOCAL_IMAGES, "kind-gpu": LOCAL_IMAGES, "gpu": DEFAULT_IMAGES}
VALIDATE_SH = (K8S / "validate.sh").read_text()
K8S_VERSION = re.search(r"^K8S_VERSION=(\S+)", VALIDATE_SH, re.MULTILINE).group(1)


def test_the_three_overlays_exist():
    assert set(OVERLAYS) == {"kind", "kind-gpu", "gpu"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_objects_namespace_and_labels(rendered, overlay):
    objects = rendered[overlay]
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    expected = [("ConfigMap", "clpipe-storage"), ("Job", "clpipe-smoke")]  # no kfp-launcher: KFP's object
    if overlay in GPU_OVERLAYS:
        expected.append(("Job", "clpipe-gpu-smoke"))
    assert kinds == sorted(expected)
    for obj in objects:
        assert obj["metadata"]["namespace"] == "kubeflow"
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "clpipe"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_the_pipeline_images_at_the_package_version(rendered, overlay):
    images = EXPECTED_IMAGES[overlay]
    for name, spec in pod_specs(rendered[overlay]).items():
        for c in spec["containers"]:
            assert c["image"] == (images.gpu if "gpu" in name else images.cpu), (name, c["image"])
            assert c["image"].endswith(f":{__version__}")
            assert c["imagePullPolicy"] == "IfNotPresent"  # side-loaded images on kind


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_meet_the_restricted_pod_security_standard(rendered, overlay):
    for name, spec in pod_specs(rendered[overlay]).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 1000, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
            assert c["resources"]["limits"]["memory"], name


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_gpu_job_requests_a_gpu_tolerates_the_taint_and_has_shm(rendered, overlay):
    spec = pod_specs(rendered[overlay])["clpipe-gpu-smoke"]
    res = spec["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "1" and res["requests"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    shm = {v["name"]: v for v in spec["volumes"]}["dshm"]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in spec["containers"][0]["volumeMounts"]
    assert spec["nodeSelector"], "GPU work must be placed on GPU nodes"


def test_gpu_placement_per_overlay(rendered):
    assert pod_specs(rendered["gpu"])["clpipe-gpu-smoke"]["nodeSelector"] == {
        "nvidia.com/gpu.present": "true"
    }
    kind_gpu = pod_specs(rendered["kind-gpu"])["clpipe-gpu-smoke"]["nodeSelector"]
    cluster = yaml.safe_load((K8S / "kind" / "cluster-gpu.yaml").read_text())
    gpu_workers = [n for n in cluster["nodes"] if n["role"] == "worker"]
    assert all(gpu_workers[0]["labels"][k] == v for k, v in kind_gpu.items())


def test_cpu_overlay_asks_for_no_gpu(rendered):
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(rendered["kind"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_objects_and_no_credentials(rendered, overlay):
    assert not [o for o in rendered[overlay] if o["kind"] == "Secret"]
    text = yaml.safe_dump_all(rendered[overlay])
    for pattern in (
        r"AKIA[0-9A-Z]{16}",
        r"minio123",
        r"BEGIN [A-Z ]*PRIVATE KEY",
        r"aws_secret_access_key\s*[:=]\s*\S{20,}",
    ):
        assert not re.search(pattern, text, re.IGNORECASE), pattern


def test_no_credentials_anywhere_under_k8s():
    for path in K8S.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".env", ".sh", ".py", ".md", ".json"):
            text = path.read_text()
            assert not re.search(r"AKIA[0-9A-Z]{16}|BEGIN [A-Z ]*PRIVATE KEY|minio123", text), path


def test_storage_settings(rendered):
    kind_storage = {o["metadata"]["name"]: o for o in rendered["kind"] if o["kind"] == "ConfigMap"}
    assert kind_storage["clpipe-storage"]["data"]["AWS_ENDPOINT_URL"] == "http://seaweedfs.kubeflow:9000"
    for overlay in OVERLAYS:  # the smoke Job reads the same ConfigMap and Secret as pipeline tasks
        env_from = pod_specs(rendered[overlay])["clpipe-smoke"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "clpipe-storage"}} in env_from
        assert {"secretRef": {"name": "clpipe-storage"}} in env_from


LAUNCHER = K8S / "kfp-launcher"
PATCHES = sorted(p.name for p in LAUNCHER.glob("*.yaml") if p.name != "kfp-2.17.0.yaml")


def patched_launcher(patch: str, tmp_path, base: dict) -> dict:
    """KFP's kfp-launcher ``base`` with ``patch`` applied the way kustomize (and kubectl patch) merge it."""
    from .conftest import kustomize

    work = tmp_path / "render"
    work.mkdir()
    (work / "kfp-launcher.yaml").write_text(yaml.safe_dump(base))
    (work / "patch.yaml").write_text((LAUNCHER / patch).read_text())
    (work / "kustomization.yaml").write_text(
        "resources:\n- kfp-launcher.yaml\npatches:\n- path: patch.yaml\n"
    )
    (launcher,) = kustomize(work)
    return launcher


def test_no_overlay_replaces_kfps_own_launcher_config(rendered):
    """KFP owns ConfigMap kfp-launcher; applying a whole one would replace KFP's, and the next
    apply of KFP's manifests would silently revert it (issue 13). It is patched instead."""
    for overlay in OVERLAYS:
        assert not [o for o in rendered[overlay] if o["metadata"]["name"] == "kfp-launcher"], overlay


@pytest.mark.parametrize("patch", PATCHES)
def test_launcher_patches_touch_only_their_keys_of_kfps_config(patch, tmp_path):
    kfp = yaml.safe_load((LAUNCHER / "kfp-2.17.0.yaml").read_text())
    assert kfp["data"] == {"defaultPipelineRoot": ""}  # KFP 2.17.0's own (pipeline-install-config)
    base = {**kfp, "data": {**kfp["data"], "someoneElsesKey": "kept"}}
    launcher = patched_launcher(patch, tmp_path, base)
    assert launcher["data"]["someoneElsesKey"] == "kept"
    assert set(launcher["data"]) == {"someoneElsesKey", "defaultPipelineRoot", "providers"}
    scheme = launcher["data"]["defaultPipelineRoot"].split("://")[0]
    assert launcher["data"]["defaultPipelineRoot"].startswith(f"{scheme}://example-")  # a placeholder bucket
    providers = yaml.safe_load(launcher["data"]["providers"])
    ref = providers[{"s3": "s3", "gs": "gs"}[scheme]]["default"]["credentials"]["secretRef"]
    expected = {
        "s3": {
            "secretName": "clpipe-storage",
            "accessKeyKey": "AWS_ACCESS_KEY_ID",
            "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
        },
        "gs": {"secretName": "clpipe-gcs", "tokenKey": "sa.json"},
    }[scheme]
    assert ref == expected


def validate_strict(path) -> subprocess.CompletedProcess:
    """``kubernetes-validate --strict`` against the target Kubernetes version."""
    cmd = [tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, str(path)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_strict_schema_validation(rendered, overlay, tmp_path):
    f = tmp_path / f"{overlay}.yaml"
    f.write_text(yaml.safe_dump_all(rendered[overlay]))
    out = validate_strict(f)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARN" not in out.stdout + out.stderr  # e.g. "Couldn't find schema" for an unknown kind


def test_strict_validation_rejects_a_typo(rendered, tmp_path):
    """Guards the guard: an unknown field must fail, as it would be dropped by the API server."""
    job = next(o for o in rendered["kind"] if o["kind"] == "Job")
    job = yaml.safe_load(yaml.safe_dump(job))
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(job))
    out = validate_strict(f)
    assert out.returncode != 0 and "imagePullPolicyy" in out.stdout + out.stderr


def check_kind_schema(path) -> subprocess.CompletedProcess:
    """Validates a kind cluster config against the schema the project ships."""
    schema = K8S / "schemas" / "kind-cluster-v1alpha4.json"
    cmd = [tool("check-jsonschema"), "--schemafile", str(schema), str(path)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True)


@pytest.mark.parametrize("config", ["cluster.yaml", "cluster-gpu.yaml"])
def test_kind_configs_match_the_schema_and_node_version(config):
    path = K8S / "kind" / config
    out = check_kind_schema(path)
    assert out.returncode == 0, out.stdout + out.stderr
    cluster = yaml.safe_load(path.read_text())
    assert cluster["name"] == "clpipe"
    assert {n["image"] for n in cluster["nodes"]} == {f"kindest/node:v{K8S_VERSION}"}
    assert f"kindest/node:v{K8S_VERSION}" in (K8S / "kind-up.sh").read_text()


def test_kind_schema_rejects_unknown_fields(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n  extraMount: []\n"
    )
    assert check_kind_schema(bad).returncode != 0


def test_gpu_kind_config_injects_gpus_for_nvkind():
    cluster = yaml.safe_load((K8S / "kind" / "cluster-gpu.yaml").read_text())
    mounts = [m for n in cluster["nodes"] for m in n.get("extraMounts", [])]
    assert {"hostPath": "/dev/null", "containerPath": "/var/run/nvidia-container-devices/all"} in mounts
    assert (
        "{{" not in (K8S / "kind" / "cluster-gpu.yaml").read_text()
    )  # plain YAML, valid as an nvkind template


def test_validate_sh_passes():
    tool("kubectl"), tool("kubernetes-validate"), tool("check-jsonschema")
    out = subprocess.run(["bash", str(K8S / "validate.sh")], check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAIL" not in out.stdout


def test_gpu_sharing_time_slices_each_gpu():
    from .conftest import kustomize

    (config_map,) = kustomize(K8S / "gpu-sharing")
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["namespace"] == "gpu-operator"
    sharing = yaml.safe_load(config_map["data"]["any"])["sharing"]["timeSlicing"]
    assert sharing["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert sharing["failRequestsGreaterThanOne"] is True  # a task asking for 2 "GPUs" must not get 2 slices
