"""The images' pinned requirement files agree with pyproject.toml (no engine needed)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


def pins(name: str) -> dict[str, str]:
    out = {}
    for line in (DOCKER / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pkg, sep, version = line.partition("==")
            assert sep, f"{name}: not an exact pin: {line!r}"
            out[canonicalize_name(pkg)] = version
    return out


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.parametrize(
    "lock, groups", [("requirements-cpu.txt", ["report"]), ("requirements-gpu.txt", ["train", "report"])]
)
def test_lock_pins_every_project_requirement(lock, groups):
    locked = pins(lock)
    reqs = [Requirement(r) for r in project()["project"]["dependencies"]]
    for g in groups:
        reqs += [Requirement(r) for r in project()["project"]["optional-dependencies"][g]]
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in locked, f"{lock} misses {req} (regenerate with docker/lock.py)"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"{lock}: {name}=={locked[name]} vs {req}"
        )


def test_cpu_lock_has_no_torch_and_agrees_with_the_gpu_lock():
    cpu, gpu = pins("requirements-cpu.txt"), pins("requirements-gpu.txt")
    assert not {"torch", "torchvision", "triton"} & set(cpu)
    assert not [n for n in cpu if n.startswith("nvidia-")]
    assert {n: gpu.get(n) for n in cpu} == cpu, "shared packages must have the same version in both images"
    assert gpu["torch"] == "2.14.1" and gpu["torchvision"] == "0.29.1" and gpu["kfp"] == "2.17.3"


def test_build_lock_satisfies_the_build_system():
    build = pins("requirements-build.txt")
    for r in project()["build-system"]["requires"]:
        req = Requirement(r)
        assert req.specifier.contains(build[canonicalize_name(req.name)])


def test_dockerignore_keeps_the_context_small():
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[[line.strip() for line in ignore].index("*")] == "*"  # allow-list
    for needed in ("!pyproject.toml", "!clpipe/", "!components/", "!pipelines/", "!docker/wheels/"):
        assert needed in ignore
    assert not any(line.startswith("!") and (".venv" in line or "tests" in line) for line in ignore)
