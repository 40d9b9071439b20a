#!/bin/bash
# A local Kubernetes cluster (kind) with Kubeflow Pipelines 2.17.0 standalone, the clpipe
# images, and the smoke runs of k8s/README.md's checklist ("What only a real cluster can
# confirm"), each of which must succeed. Safe to rerun: every step checks what is there.
#
# usage: k8s/kind-up.sh [--gpu] [--name NAME] [--overlay DIR] [--data DIR] [--no-build]
#                       [--no-run] [--params FILE] [--timeout SECONDS]
#
#   --gpu        GPU cluster made by nvkind from k8s/kind/cluster-gpu.yaml, NVIDIA GPU operator
#                (device plugin; driver and toolkit stay on the host), overlay kind-gpu
#   --name       cluster name (default clpipe; kubectl context kind-NAME)
#   --overlay    kustomize overlay to apply (default k8s/overlays/kind or kind-gpu)
#   --data DIR   upload the *.npz / *.json.gz / *.npy files of DIR (recursively) into the bundled
#                store at s3://mlpipeline/datasets/ (e.g. --data ../shared/data)
#   --no-build   do not build missing images (docker/build.sh); fail instead
#   --no-run     stop after the smoke Jobs, do not upload or run the pipeline
#   --params     run parameters of the smoke runs, a clpipe config with one cross-validated and
#                one given-pred_probs condition (default k8s/kind/smoke-params.yaml)
#   --timeout    seconds to wait for each pipeline run (default 3600)
#
# Needs: docker, git, kind >= v0.31.0, kubectl, python3 with clpipe installed (PYTHON, default
# .venv/bin/python) for `clpipe submit`; with --gpu also nvkind, helm and a host whose
# Docker uses the NVIDIA runtime (k8s/README.md). Internet access for GitHub (KFP manifests)
# and the public registries the KFP images come from.
#
# Environment: KIND_NODE_IMAGE (default kindest/node:v1.35.0), KFP_VERSION (2.17.0),
# GPU_OPERATOR_VERSION (v26.3.1), REGISTRY (localhost:5000/clpipe), TAG (package version),
# UI_PORT (8080), S3_PORT (8333), MAX_CPU_REQUEST (1) and MAX_MEMORY_REQUEST (2Gi): caps on
# every task's requests in the smoke runs (GPU tasks ask for 4 CPUs / 16 GiB otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=clpipe
GPU=0
OVERLAY=
DATA=
BUILD=1
RUN=1
PARAMS=k8s/kind/smoke-params.yaml
TIMEOUT=3600
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.35.0}
KFP_VERSION=${KFP_VERSION:-2.17.0}
GPU_OPERATOR_VERSION=${GPU_OPERATOR_VERSION:-v26.3.1}
REGISTRY=${REGISTRY:-localhost:5000/clpipe}
TAG=${TAG:-$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -1)}
PYTHON=${PYTHON:-.venv/bin/python}
UI_PORT=${UI_PORT:-8080}
S3_PORT=${S3_PORT:-8333}
MAX_CPU_REQUEST=${MAX_CPU_REQUEST:-1}
MAX_MEMORY_REQUEST=${MAX_MEMORY_REQUEST:-2Gi}
KFP_MANIFESTS=github.com/kubeflow/pipelines/manifests/kustomize
# The cross-validated condition of k8s/kind/smoke-params.yaml (smoke run 4; a test keeps them equal).
CV_CONDITION=name=gen-n0.2-s0.0,noise=0.2,sparsity=0.0,seed=1

while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) GPU=1; shift ;;
    --name) NAME=${2:?}; shift 2 ;;
    --overlay) OVERLAY=${2:?}; shift 2 ;;
    --data) DATA=${2:?}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-run) RUN=0; shift ;;
    --params) PARAMS=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "kind-up.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$OVERLAY" ]; then
  if [ "$GPU" = 1 ]; then OVERLAY=k8s/overlays/kind-gpu; else OVERLAY=k8s/overlays/kind; fi
fi
CTX=kind-$NAME
K=(kubectl --context "$CTX")
IMAGES=("$REGISTRY/clpipe-cpu:$TAG" "$REGISTRY/clpipe-gpu:$TAG")

log() { printf '\n== %s\n' "$*"; }
die() { echo "kind-up.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "needs $1 on PATH ($2)"; }

# Background port-forwards are stopped on exit.
PIDS=()
TMP=$(mktemp -d)
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# retry N SECONDS CMD...: rerun CMD until it succeeds, at most N times.
retry() {
  local n=$1 pause=$2; shift 2
  for ((i = 1; i <= n; i++)); do
    if "$@"; then return 0; fi
    echo "   (attempt $i/$n failed; retrying in ${pause}s)"
    sleep "$pause"
  done
  return 1
}

# port_forward SVC LOCAL REMOTE: start `kubectl port-forward` and wait until LOCAL answers.
port_forward() {
  "${K[@]}" -n kubeflow port-forward "svc/$1" "$2:$3" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 60); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 1
  done
  die "port-forward to svc/$1 did not come up on 127.0.0.1:$2"
}

# --- 0. tools ---------------------------------------------------------------------------------
need docker "https://docs.docker.com/engine/install/"
need git "kubectl apply -k fetches the KFP manifests from GitHub with git"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation (v0.31.0 or newer)"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
if [ "$GPU" = 1 ]; then
  need nvkind "go install github.com/NVIDIA/nvkind/cmd/nvkind@latest"
  need helm "https://helm.sh/docs/intro/install/"
fi
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable"
echo "kind $(kind version | awk '{print $2}'), kubectl $(kubectl version --client -o json | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p' | head -1), cluster $NAME, overlay $OVERLAY, images ${IMAGES[*]}"

# --- 1. cluster -------------------------------------------------------------------------------
log "1/7 cluster $NAME"
if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
  echo "exists; reusing it (k8s/kind-down.sh --name $NAME removes it)"
elif [ "$GPU" = 1 ]; then
  # nvkind may exit non-zero on benign umount errors after the cluster is up (its own CI
  # tolerates that too); the node wait below decides.
  nvkind cluster create --name "$NAME" --image "$KIND_NODE_IMAGE" \
    --config-template k8s/kind/cluster-gpu.yaml || echo "   (nvkind exited non-zero; checking the nodes)"
else
  kind create cluster --name "$NAME" --image "$KIND_NODE_IMAGE" --config k8s/kind/cluster.yaml --wait 180s
fi
"${K[@]}" wait --for=condition=Ready node --all --timeout=300s

# --- 2. Kubeflow Pipelines standalone ------------------------------------------------------------
log "2/7 Kubeflow Pipelines $KFP_VERSION (platform-agnostic manifests)"
retry 3 10 "${K[@]}" apply -k "$KFP_MANIFESTS/cluster-scoped-resources?ref=$KFP_VERSION"
"${K[@]}" wait --for=condition=established --timeout=120s crd/applications.app.k8s.io
# The first apply can race the CRDs it just created; a second one settles it.
retry 3 15 "${K[@]}" apply -k "$KFP_MANIFESTS/env/platform-agnostic?ref=$KFP_VERSION"
echo "waiting for the KFP deployments (first start pulls images; up to 20 min)"
"${K[@]}" -n kubeflow wait --for=condition=Available deployment --all --timeout=1200s

# --- 3. GPUs ----------------------------------------------------------------------------------
if [ "$GPU" = 1 ]; then
  log "3/7 NVIDIA GPU operator $GPU_OPERATOR_VERSION (device plugin, feature discovery)"
  helm repo add nvidia https://helm.ngc.nvidia.com/nvidia >/dev/null 2>&1 || true
  helm repo update nvidia >/dev/null
  helm --kube-context "$CTX" upgrade -i gpu-operator nvidia/gpu-operator --version "$GPU_OPERATOR_VERSION" \
    -n gpu-operator --create-namespace --set driver.enabled=false --set toolkit.enabled=false \
    --set dcgmExporter.enabled=false --set nfd.enabled=true --wait --timeout 600s
  gpus=0
  for _ in $(seq 90); do
    gpus=$("${K[@]}" get nodes -o jsonpath='{range .items[*]}{.status.allocatable.nvidia\.com/gpu}{" "}{end}' \
      | tr ' ' '\n' | awk '{s += $1} END {print s + 0}')
    [ "$gpus" -ge 1 ] && break
    sleep 5
  done
  [ "$gpus" -ge 1 ] || die "no node advertises nvidia.com/gpu after 450 s (kubectl -n gpu-operator get pods)"
  echo "$gpus GPU(s) allocatable"
else
  log "3/7 GPUs: none requested (CPU smoke cluster)"
fi

# --- 4. images --------------------------------------------------------------------------------
log "4/7 images"
for image in "${IMAGES[@]}"; do
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    [ "$BUILD" = 1 ] || die "image $image is missing (docker/build.sh, or drop --no-build)"
    target=${image##*/clpipe-}; target=${target%%:*}
    docker/build.sh --registry "$REGISTRY" --tag "$TAG" --target "$target"
  fi
  id=$(docker image inspect -f '{{.Id}}' "$image")
  missing=0
  for node in $(kind get nodes --name "$NAME"); do
    docker exec "$node" crictl inspecti "$image" 2>/dev/null | grep -q "${id#sha256:}" || missing=1
  done
  if [ "$missing" = 0 ]; then
    echo "$image already loaded on every node"
  else
    echo "loading $image into $NAME (the GPU image is several GB; minutes)"
    kind load docker-image "$image" --name "$NAME"
  fi
done

# --- 5. storage settings, smoke Jobs ------------------------------------------------------------
log "5/7 clpipe resources ($OVERLAY) and smoke Jobs"
# Credentials of the bundled store, for the clpipe code in the tasks: copied from KFP's
# secret, never written to the repository.
key=$("${K[@]}" -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.accesskey}' | base64 -d)
secret=$("${K[@]}" -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.secretkey}' | base64 -d)
"${K[@]}" -n kubeflow create secret generic clpipe-storage \
  --from-literal=AWS_ACCESS_KEY_ID="$key" --from-literal=AWS_SECRET_ACCESS_KEY="$secret" \
  --dry-run=client -o yaml | "${K[@]}" apply -f -
# Jobs are immutable: rerunning replaces them.
"${K[@]}" -n kubeflow delete job -l app.kubernetes.io/part-of=clpipe --ignore-not-found --wait=true
"${K[@]}" apply -k "$OVERLAY"
jobs=$("${K[@]}" -n kubeflow get job -l app.kubernetes.io/part-of=clpipe -o name)
for job in $jobs; do
  # Poll instead of `kubectl wait --for=condition=complete`, which would sit out the whole
  # timeout on a failed Job.
  state=
  for _ in $(seq 180); do
    state=$("${K[@]}" -n kubeflow get "$job" -o jsonpath='{.status.succeeded}/{.status.failed}')
    case "$state" in 1/*) break ;; */[1-9]*) break ;; esac
    sleep 5
  done
  if [ "${state%%/*}" != 1 ]; then
    "${K[@]}" -n kubeflow describe "$job" | tail -20
    "${K[@]}" -n kubeflow logs "$job" --tail=50 || true
    die "$job did not complete (succeeded/failed: $state)"
  fi
  "${K[@]}" -n kubeflow logs "$job" --tail=5
done

# --- 6. data ----------------------------------------------------------------------------------
if [ -n "$DATA" ]; then
  log "6/7 uploading $DATA to s3://mlpipeline/datasets/ (bundled SeaweedFS)"
  [ -d "$DATA" ] || die "--data $DATA is not a directory"
  port_forward seaweedfs "$S3_PORT" 8333
  AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=us-east-1 \
    "$PYTHON" - "$DATA" "http://127.0.0.1:$S3_PORT" <<'PY'
import os, sys
import s3fs
root, endpoint = sys.argv[1], sys.argv[2]
fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
n = 0
for d, _, files in os.walk(root):
    for f in sorted(files):
        if f.endswith((".npz", ".json.gz", ".npy", ".json")):
            src = os.path.join(d, f)
            dst = "mlpipeline/datasets/" + os.path.relpath(src, root)
            if fs.exists(dst) and fs.size(dst) == os.path.getsize(src):
                continue
            fs.put_file(src, dst)
            n += 1
print(f"uploaded {n} files (unchanged ones skipped) to s3://mlpipeline/datasets/")
PY
else
  log "6/7 data: none uploaded (--data DIR puts a dataset into the bundled store)"
fi

# --- 7. pipeline smoke runs ------------------------------------------------------------------
if [ "$RUN" = 0 ]; then
  log "7/7 pipeline: skipped (--no-run)"
  exit 0
fi
log "7/7 pipeline smoke runs: the checklist of k8s/README.md"
[ -x "$PYTHON" ] || die "no Python with clpipe at $PYTHON (set PYTHON=...)"
[ -f "$PARAMS" ] || die "no run parameters file $PARAMS"
port_forward ml-pipeline-ui "$UI_PORT" 80
# Compiled for the cluster's images and GPUs (the committed pipelines/clpipe_pipeline.yaml names
# the released images and one GPU per GPU task), requests capped for a laptop-sized node.
COMPILE=(--registry "$REGISTRY" --tag "$TAG" --gpus "$GPU"
         --max-cpu-request "$MAX_CPU_REQUEST" --max-memory-request "$MAX_MEMORY_REQUEST")
SUBMIT=("$PYTHON" -m clpipe submit --host "http://127.0.0.1:$UI_PORT" --experiment clpipe-smoke
        "${COMPILE[@]}" --wait --timeout "$TIMEOUT")
stamp=$(date +%Y%m%d-%H%M%S)
# smoke N WHAT ARGS...: checklist run N; exits unless the run succeeds.
smoke() {
  local n=$1 what=$2
  shift 2
  printf '\n-- smoke run %s: %s\n' "$n" "$what"
  "${SUBMIT[@]}" --run-name "kind-smoke-$stamp-$n" "$@" || die "smoke run $n ($what) did not succeed"
}
smoke 1 "both kinds of condition (Collected fan-in, both loops, report)" "$PARAMS"
smoke 2 "the same run again: every task a cache hit, no branch to re-join" "$PARAMS"
smoke 3 "--no-cache: every task runs again" "$PARAMS" --no-cache
# Both loops compiled in (as clpipe compile writes them), cross-validated conditions only: the
# given-pred_probs loop runs over an empty list (what a raw KFP user of the full pipeline gets).
"$PYTHON" -m clpipe compile -o "$TMP/both-loops.yaml" "${COMPILE[@]}"
smoke 4 "an empty loop: the full pipeline, cross-validated conditions only" "$PARAMS" \
  --package "$TMP/both-loops.yaml" --condition "$CV_CONDITION"

printf '\n-- Argo Workflow objects of the runs, bytes (etcd refuses objects over 1572864):\n'
"${K[@]}" -n kubeflow get workflows -o name | while read -r wf; do
  echo "   $wf $("${K[@]}" -n kubeflow get "$wf" -o json | wc -c)"
done
if [ "$GPU" = 1 ]; then
  printf '\n-- pipeline pods given a GPU (fold-train, coteach):\n'
  "${K[@]}" -n kubeflow get pods -l pipelines.kubeflow.org/v2_component=true \
    -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.containers[*].resources.limits.nvidia\.com/gpu}{"\n"}{end}' \
    | awk '$2 > 0 { print "   " $0; n++ } END { print "   " n + 0 " pods" }'
fi
echo "KFP UI: kubectl --context $CTX -n kubeflow port-forward svc/ml-pipeline-ui $UI_PORT:80, then http://localhost:$UI_PORT"
