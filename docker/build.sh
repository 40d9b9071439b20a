#!/bin/bash
# Builds the clpipe stage images with one tag, named as components/common/image.py expects:
#
#   <registry>/clpipe-cpu:<tag>    docker/Dockerfile target cpu
#   <registry>/clpipe-gpu:<tag>    docker/Dockerfile target gpu
#
# usage: docker/build.sh [--registry R] [--tag T] [--target cpu|gpu|all] [--push]
#                        [--wheelhouse DIR]... [--base-image IMAGE] [--no-cache]
#
#   --registry   default localhost:5000/clpipe (the kind cluster's; ghcr.io/clpipe for releases)
#   --tag        default: the package version from pyproject.toml (what `clpipe compile` uses)
#   --target     which image(s); default all (cpu first, then gpu)
#   --push       push after building
#   --wheelhouse fill docker/wheels/ from local wheel folders first (docker/wheelhouse.py; the
#                rest of the pins are downloaded), so the build installs with --no-index
#   --base-image default python:3.11-slim (pin a digest for releases: python:3.11-slim@sha256:...)
#
# Environment: DOCKER (client, default docker), PYTHON (for wheelhouse.py, default python3).
# Prints the build time and size of each image.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
PYTHON=${PYTHON:-python3}
registry=localhost:5000/clpipe
tag=
target=all
push=0
base_image=python:3.11-slim
no_cache=()
wheel_dirs=()

usage() { awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) registry=${2:?}; shift 2 ;;
    --tag) tag=${2:?}; shift 2 ;;
    --target) target=${2:?}; shift 2 ;;
    --push) push=1; shift ;;
    --wheelhouse) wheel_dirs+=("${2:?}"); shift 2 ;;
    --base-image) base_image=${2:?}; shift 2 ;;
    --no-cache) no_cache=(--no-cache); shift ;;
    -h|--help) usage 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; usage 2 ;;
  esac
done
case "$target" in cpu) targets=(cpu) ;; gpu) targets=(gpu) ;; all) targets=(cpu gpu) ;;
  *) echo "build.sh: --target must be cpu, gpu or all" >&2; exit 2 ;; esac

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -1)
[ -n "$version" ] || { echo "build.sh: no version in pyproject.toml" >&2; exit 1; }
tag=${tag:-$version}
registry=${registry%/}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain -- pyproject.toml clpipe components pipelines docker 2>/dev/null)" ]; then
  revision="$revision-dirty"
fi
# The commit time, not the wall clock, so rebuilding a commit gives the same labels.
created=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)

# BuildKit is required (RUN --mount). `docker buildx` where installed; else the classic
# client with DOCKER_BUILDKIT=1 (e.g. Debian's docker.io 20.10 client, /usr/bin/docker).
if $DOCKER buildx version >/dev/null 2>&1; then
  build=("$DOCKER" buildx build --load)
else
  export DOCKER_BUILDKIT=1
  build=("$DOCKER" build)
fi

mkdir -p docker/wheels
if [ ${#wheel_dirs[@]} -gt 0 ]; then
  from=()
  for d in "${wheel_dirs[@]}"; do from+=(--from "$d"); done
  "$PYTHON" docker/wheelhouse.py "${from[@]}" \
    docker/requirements-gpu.txt docker/requirements-cpu.txt docker/requirements-build.txt
fi
wheels=(docker/wheels/*.whl)
if [ -e "${wheels[0]}" ]; then
  echo "build.sh: installing from docker/wheels/ (${#wheels[@]} wheels, --no-index)"
else
  echo "build.sh: installing from PyPI"
fi

for t in "${targets[@]}"; do
  image="$registry/clpipe-$t:$tag"
  echo "build.sh: building $image (target $t, base $base_image)"
  start=$(date +%s.%N)
  "${build[@]}" "${no_cache[@]}" --platform linux/amd64 -f docker/Dockerfile --target "$t" \
    --build-arg "BASE_IMAGE=$base_image" --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
    -t "$image" .
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  size=$($DOCKER image inspect -f '{{.Size}}' "$image")
  printf 'build.sh: %s built in %.1f s, %d MB\n' "$image" "$secs" $((size / 1000000))
  if [ "$push" = 1 ]; then
    $DOCKER push "$image"
  fi
done
