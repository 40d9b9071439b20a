"""The cluster scripts cannot run here (no Kubernetes API); check what can be checked offline:
syntax, strict mode, shellcheck, pinned versions, and the smoke runs' parameters."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

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


def test_kind_smoke_params_are_valid_and_point_at_uploaded_data():
    from clpipe.pipelines.config import load_config, params_from_mapping
    from clpipe.pipelines.pipeline import KINDS, kinds_of

    config = load_config(str(K8S / "kind" / "smoke-params.yaml"))
    params = params_from_mapping(config, "smoke-params.yaml")
    assert kinds_of(params) == KINDS  # the smoke runs exercise both loops
    prefix = "minio://mlpipeline/datasets/"
    urls = [params.dataset] + [url for c in params.conditions for url in (c.labels, c.pred_probs) if url]
    shared = REPO.parent / "shared" / "data"
    for url in urls:
        assert url.startswith(prefix), url
        assert (shared / url[len(prefix) :]).exists(), (
            f"{url}: not in ../shared/data, so --data would not upload it"
        )
    assert params.train_per_class and params.test_per_class  # a smoke run stays small


def test_kind_ups_cross_validated_condition_is_the_smoke_params_one():
    """Smoke run 4 passes the cross-validated condition as a flag; it must stay the config's."""
    from clpipe.components.noisy_labels.logic import Condition
    from clpipe.pipelines.config import load_config, params_from_mapping, parse_condition_flag

    flag = re.search(r"^CV_CONDITION=(\S+)$", (K8S / "kind-up.sh").read_text(), re.MULTILINE).group(1)
    params = params_from_mapping(load_config(str(K8S / "kind" / "smoke-params.yaml")), "smoke-params.yaml")
    (cross_validated,) = [c for c in params.conditions if not c.pred_probs]
    assert Condition.from_dict(parse_condition_flag(flag), source="CV_CONDITION") == cross_validated
