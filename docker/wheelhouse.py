"""Fill ``docker/wheels/`` with one wheel per pin, so an image build needs no package index.

For every ``name==version`` line of the given requirement files, a matching wheel from the
``--from`` folders (e.g. ``/opt/pypi-more/files``) is hard-linked (or copied) into ``--out``;
pins with no local wheel are fetched with ``pip download --no-deps`` (or built with
``pip wheel --no-deps`` when the index has only a source archive). When ``docker/wheels``
holds wheels, the Dockerfile installs with ``--no-index`` from it; when it is empty, from
PyPI. The folder is git-ignored; ``docker/build.sh --wheelhouse DIR...`` runs this script.

    python docker/wheelhouse.py --from /opt/pypi-more/files --from /opt/pypi/files \\
        docker/requirements-gpu.txt docker/requirements-cpu.txt docker/requirements-build.txt
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
#: Tags the images' interpreter (CPython 3.11, glibc 2.36, x86_64) accepts.
_PLATFORMS = (
    {"any", "linux_x86_64"}
    | {f"manylinux{v}_x86_64" for v in ("1", "2010", "2014")}
    | {f"manylinux_2_{minor}_x86_64" for minor in range(5, 37)}
)
#: CPython 3.2-3.11 tags (stable-ABI wheels name the oldest); pure "py3*" tags are matched by prefix.
_INTERPRETERS = {"cp3"} | {f"cp3{m}" for m in range(2, 12)}


def _compatible(tags: frozenset[Tag]) -> bool:
    return any(
        t.platform in _PLATFORMS
        and (t.interpreter in _INTERPRETERS or t.interpreter.startswith("py3"))
        and t.abi in {"none", "abi3", "cp311"}
        for t in tags
    )


def read_pins(files: list[Path]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for f in files:
        for line in f.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, version = line.partition("==")
            if not sep:
                sys.exit(f"wheelhouse.py: {f}: not a name==version pin: {line!r}")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def local_wheels(dirs: list[Path]) -> dict[tuple[str, str], Path]:
    found: dict[tuple[str, str], Path] = {}
    for d in dirs:
        for path in sorted(d.glob("*.whl")):
            try:
                name, version, _, tags = parse_wheel_filename(path.name)
            except ValueError:
                continue
            if _compatible(tags):
                found.setdefault((name, str(version)), path)
    return found


def _place(src: Path, out: Path) -> None:
    dst = out / src.name
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("requirements", nargs="+", type=Path, help="pinned requirement files (name==version)")
    p.add_argument(
        "--from",
        dest="sources",
        action="append",
        type=Path,
        default=[],
        help="folder of local wheels to use first (repeatable)",
    )
    p.add_argument("--out", type=Path, default=HERE / "wheels", help="wheelhouse (default docker/wheels)")
    p.add_argument("--pip", default=f"{sys.executable} -m pip", help="pip command for the missing wheels")
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    pins = read_pins(args.requirements)
    have = local_wheels([args.out, *args.sources])
    missing = []
    for name, version in sorted(pins.items()):
        src = have.get((name, version))
        if src is None:
            missing.append(f"{name}=={version}")
        else:
            _place(src, args.out)
    print(f"wheelhouse: {len(pins) - len(missing)} of {len(pins)} pins from local wheels", file=sys.stderr)
    if missing:
        print(f"wheelhouse: downloading {len(missing)}: {' '.join(missing)}", file=sys.stderr)
        pip = args.pip.split()
        with tempfile.TemporaryDirectory() as tmp:
            base = [*pip, "--disable-pip-version-check", "-q"]
            subprocess.run([*base, "download", "--no-deps", "-d", tmp, *missing], check=True)
            sdists = [f for f in os.listdir(tmp) if not f.endswith(".whl")]
            for sdist in sdists:
                subprocess.run([*base, "wheel", "--no-deps", "-w", tmp, os.path.join(tmp, sdist)], check=True)
            for f in os.listdir(tmp):
                if f.endswith(".whl"):
                    shutil.move(os.path.join(tmp, f), args.out / f)
        have = local_wheels([args.out])
        still = [m for m in missing if tuple(m.split("==")) not in have]
        if still:
            sys.exit(f"wheelhouse.py: no compatible wheel for {still}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
