"""Pinned requirement files for the clpipe images, generated from an installed environment.

Walks the requirements of ``clpipe`` (read from ``pyproject.toml``, with the given extras)
through the metadata of the packages installed in the running interpreter, evaluating
environment markers for Linux x86_64 / CPython 3.11 (the images' platform), and prints one
``name==version`` line per package of the closure. The images install exactly these
(``pip install --no-deps -r ...``) and then clpipe itself with ``--no-deps``; ``pip check``
in the build fails if the closure is incomplete.

    .venv/bin/python docker/lock.py --extras report > docker/requirements-cpu.txt
    .venv/bin/python docker/lock.py --extras train --extras report > docker/requirements-gpu.txt
    .venv/bin/python docker/lock.py --build > docker/requirements-build.txt   # setuptools

``--check FILE`` compares FILE with what would be generated now (exit 1 and a diff on a
difference), for CI after the venv changed.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata as md
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
#: The images' platform: what markers are evaluated against.
TARGET_ENV = {
    "implementation_name": "cpython",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_version": "3.11",
    "sys_platform": "linux",
    "os_name": "posix",
}


#: Marker environment of the images' interpreter (computed once, not per requirement).
_MARKER_ENV = {**default_environment(), **TARGET_ENV, "python_full_version": "3.11.2"}


def _marker_ok(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**_MARKER_ENV, "extra": e}) for e in extras | {""})


def _installed(name: str) -> md.Distribution:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        sys.exit(f"lock.py: {name} is required but not installed in {sys.prefix}")


def closure(roots: list[Requirement]) -> dict[str, str]:
    """``{canonical name: installed version}`` of everything ``roots`` pull in."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    stack = [(r, frozenset()) for r in roots]
    while stack:
        req, parent_extras = stack.pop()
        if not _marker_ok(req, parent_extras):
            continue
        name = canonicalize_name(req.name)
        extras = frozenset(canonicalize_name(e) for e in req.extras)
        dist = _installed(req.name)
        if not req.specifier.contains(dist.version, prereleases=True):
            sys.exit(f"lock.py: installed {req.name} {dist.version} does not satisfy {req}")
        pins[name] = dist.version
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for dep in dist.requires or ():
            stack.append((Requirement(dep), extras))
    return pins


def project_requirements(extras: list[str], build: bool) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    if build:
        return [Requirement(r) for r in project["build-system"]["requires"]]
    reqs = [Requirement(r) for r in project["project"]["dependencies"]]
    optional = project["project"].get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            sys.exit(f"lock.py: pyproject.toml has no extra {extra!r} (has {sorted(optional)})")
        reqs += [Requirement(r) for r in optional[extra]]
    return reqs


def render(extras: list[str], build: bool) -> str:
    pins = closure(project_requirements(extras, build))
    what = "build requirements" if build else f"clpipe[{','.join(extras)}]" if extras else "clpipe"
    args = " --build" if build else "".join(f" --extras {e}" for e in extras)
    lines = [
        f"# Pinned closure of {what} for Linux x86_64 / CPython 3.11; generated, do not edit.",
        f"# Regenerate: .venv/bin/python docker/lock.py{args} > <this file>",
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--extras", action="append", default=[], help="optional-dependency group (repeatable)")
    p.add_argument("--build", action="store_true", help="lock [build-system] requires instead")
    p.add_argument("--check", metavar="FILE", help="fail with a diff if FILE differs from the generated text")
    args = p.parse_args(argv)
    text = render(args.extras, args.build)
    if args.check:
        old = Path(args.check).read_text()
        if old != text:
            sys.stdout.writelines(
                difflib.unified_diff(old.splitlines(True), text.splitlines(True), args.check, "generated")
            )
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
