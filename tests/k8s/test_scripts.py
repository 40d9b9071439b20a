"""The cluster scripts cannot run here (no Kubernetes API); check what can be checked offline:
syntax, strict mode, shellcheck, pinned versions, and k8s/submit.py against a fake KFP client."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from .conftest import K8S, REPO

SCRIPTS = sorted([*K8S.glob("*.sh"), *(REPO / "docker").glob("*.sh"), *(REPO / ".ci").glob("containers.sh")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_scripts_parse_and_are_strict(script):
    assert subprocess.run(["bash", "-n", str(script)], check=False, capture_output=True).returncode == 0
    text = script.read_text()
    if script.name != "entrypoint.sh":  # /bin/sh entrypoint: `set -e` only
        assert "set -euo pipefail" in text, script
    if shutil.which("shellcheck"):
        out = subprocess.run(
            ["shellcheck", "-x", str(script)], check=False, capture_output=True, text=True, cwd=script.parent
        )
        assert out.returncode == 0, out.stdout


def test_kind_up_pins_kfp_and_uses_platform_agnostic_manifests():
    text = (K8S / "kind-up.sh").read_text()
    assert "KFP_VERSION=${KFP_VERSION:-2.17.0}" in text
    assert "env/platform-agnostic?ref=$KFP_VERSION" in text
    assert "cluster-scoped-resources?ref=$KFP_VERSION" in text
    assert "kind load docker-image" in text
    assert "--timeout" in text and "wait --for=condition=Ready node --all" in text


# --- k8s/submit.py against a fake kfp.Client ---------------------------------------------------


class FakeClient:
    def __init__(self, host=None, final_state="SUCCEEDED"):
        self.pipelines: dict[str, str] = {}
        self.versions: dict[str, list] = {}
        self.runs: list[dict] = []
        self.final_state = final_state

    def get_pipeline_id(self, name):
        return self.pipelines.get(name)

    def upload_pipeline(self, path, pipeline_name=None):
        self.pipelines[pipeline_name] = f"p-{pipeline_name}"
        self.versions[f"p-{pipeline_name}"] = [
            SimpleNamespace(display_name=pipeline_name, pipeline_version_id="v0")
        ]
        return SimpleNamespace(pipeline_id=f"p-{pipeline_name}")

    def list_pipeline_versions(self, pipeline_id, page_size=10):
        return SimpleNamespace(pipeline_versions=list(self.versions[pipeline_id]))

    def upload_pipeline_version(self, path, pipeline_version_name, pipeline_id, description=None):
        v = SimpleNamespace(
            display_name=pipeline_version_name, pipeline_version_id=f"v{len(self.versions[pipeline_id])}"
        )
        self.versions[pipeline_id].append(v)
        return v

    def create_experiment(self, name):  # kfp's is get-or-create by name
        return SimpleNamespace(experiment_id=f"e-{name}")

    def run_pipeline(self, **kwargs):
        self.runs.append(kwargs)
        return SimpleNamespace(run_id=f"r{len(self.runs)}")

    def wait_for_run_completion(self, run_id, timeout):
        return SimpleNamespace(state=self.final_state)


@pytest.fixture
def submit(monkeypatch):
    sys.path.insert(0, str(K8S))
    try:
        import submit as module
    finally:
        sys.path.remove(str(K8S))
    import kfp

    client = FakeClient()
    monkeypatch.setattr(kfp, "Client", lambda host=None: client)
    return module, client


CONFIG = """\
dataset: minio://mlpipeline/datasets/cifar10
output: ignored/by/submit
conditions:
  - {name: g, noise: 0.2, sparsity: 0.0, seed: 1}
n_folds: 2
methods: [none, cl_pbnr]
"""


def _package(tmp_path, text=None) -> Path:
    package = tmp_path / "p.yaml"
    package.write_text(text or (REPO / "pipelines" / "clpipe_pipeline.yaml").read_text())
    return package


def _args(tmp_path, param: str) -> list[str]:
    """k8s/submit.py arguments for the default package with ``dataset`` and one more parameter."""
    package = str(_package(tmp_path))
    return ["--endpoint", "http://kfp", "--package", package, "--param", "dataset=minio://b/d",
            "--param", param]


def test_submit_uploads_once_per_package_and_runs(submit, tmp_path):
    module, client = submit
    package = _package(tmp_path)
    config = tmp_path / "smoke.yaml"
    config.write_text(CONFIG)
    args = [
        "--endpoint",
        "http://kfp",
        "--package",
        str(package),
        "--config",
        str(config),
        "--param",
        "train_per_class=20",
        "--run-name",
        "r",
    ]
    assert module.main(args) == 0
    assert module.main(args) == 0
    pid = client.pipelines["clpipe-benchmark"]
    assert len(client.versions[pid]) == 2  # the default version + one for this package, reused
    params = client.runs[0]["params"]
    assert params["dataset"] == "minio://mlpipeline/datasets/cifar10" and params["train_per_class"] == 20
    assert params["conditions"][0]["name"] == "g" and "output" not in params
    assert params["methods"] == ["none", "cl_pbnr"] and params["n_folds"] == 2
    assert client.runs[0]["version_id"] == client.runs[1]["version_id"]
    assert client.runs[0]["enable_caching"] is False
    package.write_text(package.read_text() + "# changed\n")
    assert module.main(args) == 0
    assert len(client.versions[pid]) == 3


def test_submit_fails_when_the_run_fails(submit, tmp_path):
    module, client = submit
    client.final_state = "FAILED"
    assert module.main(_args(tmp_path, "conditions=[{name: g, noise: 0.2}]")) == 1


def test_submit_rejects_bad_parameters_before_uploading(submit, tmp_path):
    module, client = submit
    from clpipe.components.common.errors import InputError

    with pytest.raises(InputError):
        module.main(_args(tmp_path, "n_folds=1"))
    assert not client.pipelines


def test_cap_requests_shrinks_requests_only():
    sys.path.insert(0, str(K8S))
    try:
        import submit as module
    finally:
        sys.path.remove(str(K8S))
    text = (REPO / "pipelines" / "clpipe_pipeline.yaml").read_text()
    docs = list(yaml.safe_load_all(module.cap_requests(text, "1", "2Gi")))
    original = list(yaml.safe_load_all(text))
    assert len(docs) == len(original) == 2
    for name, executor in docs[0]["deploymentSpec"]["executors"].items():
        res = executor["container"]["resources"]
        before = original[0]["deploymentSpec"]["executors"][name]["container"]["resources"]
        assert res["cpuRequest"] <= 1 and float(res["resourceCpuRequest"]) <= 1
        assert res["memoryRequest"] <= 2**31 / 1e9 + 1e-9 and res["resourceMemoryRequest"] in (
            "2Gi",
            before["resourceMemoryRequest"],
        )
        assert res["cpuLimit"] == before["cpuLimit"] and res.get("accelerator") == before.get("accelerator")
    assert docs[1] == original[1]  # the Kubernetes platform spec is untouched


def test_kind_smoke_params_are_valid_and_point_at_uploaded_data():
    sys.path.insert(0, str(K8S))
    try:
        import submit as module
    finally:
        sys.path.remove(str(K8S))
    args = module.run_arguments(str(K8S / "kind" / "smoke-params.yaml"), [])
    prefix = "minio://mlpipeline/datasets/"
    urls = [args["dataset"]] + [c[k] for c in args["conditions"] for k in ("labels", "pred_probs") if c[k]]
    shared = REPO.parent / "shared" / "data"
    for url in urls:
        assert url.startswith(prefix), url
        assert (shared / url[len(prefix) :]).exists(), (
            f"{url}: not in ../shared/data, so --data would not upload it"
        )
    assert args["train_per_class"] and args["test_per_class"]  # a smoke run stays small
