#!/bin/bash
# CI for the containers and the cluster path (called by .ci/run; runs alone too):
#
#   1. manifests   k8s/validate.sh (kustomize + kubernetes-validate --strict + kind schema) and
#                  tests/k8s, offline, no engine
#   2. engine      Debian docker.io (dockerd + BuildKit client /usr/bin/docker), started here
#                  unless DOCKER_HOST already answers
#   3. base        local stand-in for python:3.11-slim (docker/standin-base.sh; no registry here)
#   4. images      docker/build.sh: clpipe-cpu and clpipe-gpu at the package version, for the
#                  local registry name; GPU wheels from /opt/pypi*/files via docker/wheels/
#   5. containers  tests/docker with the engine up (CLPIPE_REQUIRE_DOCKER=1: no silent skips):
#                  image contract, every stage standalone on real CIFAR-10 subsets, S3 (SeaweedFS
#                  on loopback) and gs:// (emulator), kfp.local DockerRunner on both images
#   6. pipeline    the pipeline (pipelines/pipeline.py, built on the local images, no GPU request)
#                  under kfp.local's DockerRunner, one container per task, two tiny conditions
#   7. cleanup     GPU image and build cache removed (KEEP_IMAGES=1 keeps them); a dockerd
#                  started here is stopped and its docker0 bridge and iptables rules removed
#
# Environment: PYTHON (venv with clpipe[test], default .venv/bin/python), KEEP_IMAGES=1,
# SKIP_GPU_IMAGE=1 (CPU image only; the GPU-image tests then fail), CLPIPE_CI_LOG (dockerd log).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
export DOCKER=/usr/bin/docker            # Debian's 20.10 client: BuildKit without buildx
PYTHON=${PYTHON:-.venv/bin/python}
KEEP_IMAGES=${KEEP_IMAGES:-0}
DOCKERD_LOG=${CLPIPE_CI_LOG:-/var/log/clpipe-ci-dockerd.log}
VERSION=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -1)
REGISTRY=localhost:5000/clpipe

T_START=$(date +%s)
STEP_NAMES=()
STEP_SECS=()
step_start=0
step() {  # step NAME: close the previous step's timer, open one for NAME
  local now
  now=$(date +%s)
  if [ ${#STEP_NAMES[@]} -gt 0 ]; then STEP_SECS+=($((now - step_start))); fi
  STEP_NAMES+=("$1")
  step_start=$now
  printf '\n=== containers.sh: %s\n' "$1"
}
report() {
  local now i
  now=$(date +%s)
  if [ ${#STEP_NAMES[@]} -gt ${#STEP_SECS[@]} ]; then STEP_SECS+=($((now - step_start))); fi
  printf '\n=== containers.sh: step times (s, this machine: %s cores)\n' "$(nproc)"
  for i in "${!STEP_NAMES[@]}"; do printf '%6s  %s\n' "${STEP_SECS[$i]:-?}" "${STEP_NAMES[$i]}"; done
  printf '%6s  total\n' "$((now - T_START))"
}

DOCKERD_PID=
cleanup() {
  local rc=$?
  set +e
  step "cleanup"
  if [ -x "$DOCKER" ] && $DOCKER info >/dev/null 2>&1; then
    $DOCKER ps -aq --filter label=clpipe-ci | xargs -r $DOCKER rm -f >/dev/null
    if [ "$KEEP_IMAGES" != 1 ]; then
      $DOCKER image rm "$REGISTRY/clpipe-gpu:$VERSION" >/dev/null 2>&1
      $DOCKER builder prune -af >/dev/null 2>&1
      $DOCKER image prune -f >/dev/null 2>&1
    fi
    $DOCKER system df 2>/dev/null | sed 's/^/    /'
  fi
  if [ -n "$DOCKERD_PID" ]; then
    $DOCKER ps -q | xargs -r $DOCKER rm -f >/dev/null 2>&1
    kill "$DOCKERD_PID" && wait "$DOCKERD_PID"
    # dockerd leaves its bridge and iptables rules behind.
    ip link delete docker0 2>/dev/null
    for t in filter nat; do
      iptables-save -t $t | sed -n 's/^-A \([A-Z]*\) \(.*\(DOCKER\|docker0\).*\)/\1 \2/p' | grep -v '^DOCKER' |
        while read -r chain rule; do eval "iptables -t $t -D $chain $rule"; done
      for c in $(iptables-save -t $t | sed -n 's/^:\(DOCKER[^ ]*\).*/\1/p'); do
        iptables -t $t -F "$c"; iptables -t $t -X "$c"
      done
    done
    echo "    dockerd (pid $DOCKERD_PID) stopped; docker0 and DOCKER iptables chains removed"
  fi
  report
  exit $rc
}
trap cleanup EXIT

# --- 1. manifests (offline) -------------------------------------------------------------------
step "manifests: k8s/validate.sh + tests/k8s"
if ! command -v shellcheck >/dev/null; then
  apt-get install -y -qq --no-install-recommends shellcheck >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; }
fi
k8s/validate.sh
if [ ! -x "$PYTHON" ]; then
  echo "no $PYTHON; making .venv-containers with clpipe[test] (no torch needed on the host)"
  python3 -m venv .venv-containers
  .venv-containers/bin/pip install -q -e '.[test]'
  PYTHON=.venv-containers/bin/python
fi
"$PYTHON" -m pytest -q -p no:cacheprovider tests/k8s

# --- 2. engine --------------------------------------------------------------------------------
step "engine: docker.io"
if [ ! -x /usr/bin/docker ] || ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io mmdebstrap >/dev/null
fi
if $DOCKER info >/dev/null 2>&1; then
  echo "an engine already answers at $DOCKER_HOST; using it (it is left running)"
else
  [ "$DOCKER_HOST" = unix:///var/run/docker.sock ] || { echo "no engine at $DOCKER_HOST" >&2; exit 1; }
  dockerd --host "$DOCKER_HOST" --data-root /var/lib/docker >"$DOCKERD_LOG" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 150); do $DOCKER info >/dev/null 2>&1 && break; sleep 0.2; done
  $DOCKER info >/dev/null 2>&1 || { tail -20 "$DOCKERD_LOG"; exit 1; }
  echo "dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) started (pid $DOCKERD_PID)"
fi

# --- 3. base image stand-in -------------------------------------------------------------------
step "base: python:3.11-slim stand-in"
docker/standin-base.sh

# --- 4. images --------------------------------------------------------------------------------
step "images: docker/build.sh"
wheel_args=()
for d in /opt/pypi-more/files /opt/pypi/files; do [ -d "$d" ] && wheel_args+=(--wheelhouse "$d"); done
targets=all
[ "${SKIP_GPU_IMAGE:-0}" = 1 ] && targets=cpu
build_log=$(mktemp --suffix=-build.log)
if ! PYTHON="$PYTHON" docker/build.sh --registry "$REGISTRY" --tag "$VERSION" --target "$targets" \
    "${wheel_args[@]}" >"$build_log" 2>&1; then
  tail -60 "$build_log"; echo "image build failed (log: $build_log)" >&2; exit 1
fi
grep -E '^(build.sh|wheelhouse):' "$build_log"
$DOCKER image ls --format '    {{.Repository}}:{{.Tag}}  {{.Size}}' | grep clpipe

# --- 5. container tests -----------------------------------------------------------------------
step "containers: tests/docker (engine up)"
CLPIPE_REQUIRE_DOCKER=1 "$PYTHON" -m pytest -q -p no:cacheprovider -rs -m docker tests/docker \
  --deselect tests/docker/test_pipeline_docker_runner.py::test_pipeline_runs_every_task_in_its_container

# --- 6. pipeline under kfp.local DockerRunner ----------------------------------------------------
step "pipeline: kfp.local DockerRunner (one container per task)"
CLPIPE_REQUIRE_DOCKER=1 "$PYTHON" -m pytest -q -p no:cacheprovider -rs -m docker tests/docker/test_pipeline_docker_runner.py
