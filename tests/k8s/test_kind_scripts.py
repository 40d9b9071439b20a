"""k8s/kind-up.sh and kind-down.sh against stub tools (no cluster can run here).

Stubs for kind, kubectl, docker, nvkind, helm and git log every call and answer from a small
state folder (which clusters exist, which images a node holds, how the smoke Jobs end). The
tests check the order and arguments of the real commands, that a rerun skips what is done,
and that a failed smoke Job fails the script.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import K8S, REPO

STUBS = {
    "kind": r"""
case "$1 $2" in
  "version "*) echo "kind v0.31.0 go1.24.0 linux/amd64" ;;
  "get clusters") cat "$STATE/clusters" 2>/dev/null || true ;;
  "get nodes") shift 2; n=${2:-clpipe}; echo "$n-control-plane"; [ -f "$STATE/gpu" ] && echo "$n-worker"; true ;;
  "create cluster") shift 2; while [ $# -gt 0 ]; do [ "$1" = --name ] && echo "$2" >> "$STATE/clusters"; shift; done ;;
  "delete cluster") shift 2; : > "$STATE/clusters" ;;
  "load docker-image") touch "$STATE/loaded-$(echo "$3" | tr '/:' '__')" ;;
esac
""",
    "nvkind": r"""
while [ $# -gt 0 ]; do [ "$1" = --name ] && echo "$2" >> "$STATE/clusters"; shift; done
touch "$STATE/gpu"
exit 1   # nvkind may exit non-zero on benign umount errors; kind-up.sh must carry on
""",
    "kubectl": r"""
args="$*"
case "$args" in
  *"version --client"*) echo '{"clientVersion": {"gitVersion": "v1.35.0"}}' ;;
  *"get secret mlpipeline-minio-artifact"*) printf 'c3R1Yi12YWx1ZQ==' ;;
  *"create secret generic"*) echo "apiVersion: v1"; echo "kind: Secret" ;;
  *"apply -f -"*) cat > /dev/null ;;
  *"get job -l"*) echo "job.batch/clpipe-smoke"; [ -f "$STATE/gpu" ] && echo "job.batch/clpipe-gpu-smoke"; true ;;
  *"get job.batch/"*) cat "$STATE/job-status" 2>/dev/null || echo "1/" ;;
  *"get nodes -o jsonpath"*) echo "1 " ;;
  *"logs"*) echo "smoke log line" ;;
esac
""",
    "docker": r"""
case "$1 $2" in
  "info "*) exit 0 ;;
  "image inspect") [ "$3" = -f ] && echo "sha256:0123abcd" ; exit 0 ;;
  "exec "*) img=$(echo "$5" | tr '/:' '__'); [ -f "$STATE/loaded-$img" ] && echo '"id": "sha256:0123abcd"'; true ;;
esac
""",
    "helm": "exit 0",
    "git": "exit 0",
}


@pytest.fixture
def stubs(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    log = tmp_path / "calls.log"
    for name, body in STUBS.items():
        path = bin_dir / name
        path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$STUB_LOG"\n{body}\n')
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state), "STUB_LOG": str(log)}

    def run(script: str, *args: str, **extra_env: str) -> tuple[int, str, list[str]]:
        log.write_text("")
        out = subprocess.run(
            ["bash", str(K8S / script), *args],
            check=False,
            capture_output=True,
            text=True,
            env={**env, **extra_env},
            cwd=REPO,
            timeout=120,
        )
        return out.returncode, out.stdout + out.stderr, log.read_text().splitlines()

    run.state = state
    return run


def _index(calls: list[str], fragment: str) -> int:
    return next(i for i, c in enumerate(calls) if fragment in c)


def test_cpu_cluster_from_scratch(stubs):
    rc, out, calls = stubs("kind-up.sh", "--no-run")
    assert rc == 0, out
    create = _index(calls, "kind create cluster")
    assert (
        "--config k8s/kind/cluster.yaml" in calls[create] and "--image kindest/node:v1.35.0" in calls[create]
    )
    scoped = _index(calls, "cluster-scoped-resources?ref=2.17.0")
    agnostic = _index(calls, "env/platform-agnostic?ref=2.17.0")
    crd = _index(calls, "crd/applications.app.k8s.io")
    assert create < scoped < crd < agnostic < _index(calls, "wait --for=condition=Available deployment --all")
    loads = [c for c in calls if c.startswith("kind load docker-image")]
    assert [c.split()[3] for c in loads] == [
        "localhost:5000/clpipe/clpipe-cpu:0.1.0",
        "localhost:5000/clpipe/clpipe-gpu:0.1.0",
    ]
    secret, apply = (
        _index(calls, "create secret generic clpipe-storage"),
        _index(calls, "apply -k k8s/overlays/kind"),
    )
    assert _index(calls, "delete job -l app.kubernetes.io/part-of=clpipe") < apply and secret < apply
    assert not [c for c in calls if c.startswith(("nvkind", "helm"))]
    assert "pipeline: skipped (--no-run)" in out


def test_rerun_reuses_the_cluster_and_the_loaded_images(stubs):
    assert stubs("kind-up.sh", "--no-run")[0] == 0
    rc, out, calls = stubs("kind-up.sh", "--no-run")
    assert rc == 0, out
    assert "exists; reusing it" in out
    assert not [c for c in calls if "create cluster" in c or c.startswith("kind load")]
    assert any("apply -k k8s/overlays/kind" in c for c in calls)  # resources are re-applied


def test_failed_smoke_job_fails_the_script(stubs):
    (stubs.state / "job-status").write_text("/1")
    rc, out, _ = stubs("kind-up.sh", "--no-run")
    assert rc != 0 and "did not complete" in out


def test_gpu_cluster_uses_nvkind_the_gpu_operator_and_the_gpu_overlay(stubs):
    rc, out, calls = stubs("kind-up.sh", "--gpu", "--no-run")
    assert rc == 0, out
    nvkind = _index(calls, "nvkind cluster create")
    assert "--config-template k8s/kind/cluster-gpu.yaml" in calls[nvkind]
    helm = calls[_index(calls, "helm --kube-context kind-clpipe upgrade -i gpu-operator")]
    assert "driver.enabled=false" in helm and "toolkit.enabled=false" in helm and "--wait" in helm
    assert any("apply -k k8s/overlays/kind-gpu" in c for c in calls)
    assert "1 GPU(s) allocatable" in out


def test_unknown_argument_is_refused(stubs):
    rc, out, _ = stubs("kind-up.sh", "--bogus")
    assert rc == 2 and "unknown argument" in out


def test_kind_down_is_idempotent(stubs):
    (stubs.state / "clusters").write_text("clpipe\n")
    rc, _, calls = stubs("kind-down.sh")
    assert rc == 0 and "kind delete cluster --name clpipe" in calls
    rc, out, calls = stubs("kind-down.sh")
    assert rc == 0 and "nothing to do" in out and not [c for c in calls if "delete" in c]


def test_missing_tool_is_named(stubs, tmp_path):
    (tmp_path / "bin" / "kind").unlink()
    rc, out, _ = stubs("kind-up.sh", "--no-run")
    assert rc != 0 and "needs kind" in out


def test_scripts_mention_no_hardcoded_credentials():
    for script in (K8S / "kind-up.sh", K8S / "kind-down.sh"):
        text = Path(script).read_text()
        assert "AWS_SECRET_ACCESS_KEY=$secret" in text or script.name == "kind-down.sh"
        assert "minio123" not in text


# --- step 7: the checklist's smoke runs, through a stub Python that logs `clpipe` calls -------------

PYTHON_STUB = r"""#!/bin/bash
echo "python $*" >> "$STUB_LOG"
case "$*" in *"--run-name kind-smoke-"*"-$FAIL_RUN "*) echo "ERROR submit: run r finished FAILED"; exit 1 ;; esac
exit 0
"""


@pytest.fixture
def with_python(stubs, tmp_path):
    """kind-up.sh with a stub PYTHON and a listening socket for the UI port-forward to find."""
    import socket

    python = tmp_path / "bin" / "python-stub"
    python.write_text(PYTHON_STUB)
    python.chmod(0o755)
    ui = socket.socket()
    ui.bind(("127.0.0.1", 0))
    ui.listen()
    port = ui.getsockname()[1]

    def run(*args: str, fail_run: str = "none"):
        return stubs("kind-up.sh", *args, PYTHON=str(python), UI_PORT=str(port), FAIL_RUN=fail_run)

    yield run, port
    ui.close()


def test_smoke_runs_are_the_readme_checklist(with_python):
    run, port = with_python
    rc, out, calls = run()
    assert rc == 0, out
    clpipe = [c for c in calls if c.startswith("python ")]
    submits = [c for c in clpipe if " submit " in c]
    assert len(submits) == 4
    for call in submits:
        for fragment in (f"--host http://127.0.0.1:{port}", "--registry localhost:5000/clpipe", "--gpus 0",
                         "--max-cpu-request 1", "--max-memory-request 2Gi", "--wait --timeout 3600",
                         "--experiment clpipe-smoke"):  # fmt: skip
            assert fragment in call, (fragment, call)
    first, cached, no_cache, empty_loop = (c.split("--run-name ")[1].split(" ", 1)[1] for c in submits)
    assert first == cached == "k8s/kind/smoke-params.yaml"  # the same run twice: the second fully cached
    assert no_cache == "k8s/kind/smoke-params.yaml --no-cache"
    assert "--package " in empty_loop and "--condition name=gen-n0.2-s0.0," in empty_loop
    (compile_call,) = [c for c in clpipe if " compile " in c]
    assert clpipe.index(compile_call) == 3  # the both-loops package, compiled before run 4
    assert "smoke run 4: an empty loop" in out


def test_a_failed_smoke_run_fails_the_script(with_python):
    run, _ = with_python
    rc, out, calls = run(fail_run="2")
    assert rc != 0 and "smoke run 2 (the same run again" in out
    assert len([c for c in calls if " submit " in c]) == 2  # nothing after the failed run
