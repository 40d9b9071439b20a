#!/bin/bash
# Removes the kind cluster made by k8s/kind-up.sh (and everything in it). Idempotent.
#
# usage: k8s/kind-down.sh [--name NAME]      (default clpipe)
#
# The images stay in the local Docker engine (docker image rm ... removes them).
set -euo pipefail

NAME=clpipe
while [ $# -gt 0 ]; do
  case "$1" in
    --name) NAME=${2:?}; shift 2 ;;
    -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "kind-down.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

command -v kind >/dev/null 2>&1 || { echo "kind-down.sh: needs kind on PATH" >&2; exit 1; }
if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
  kind delete cluster --name "$NAME"
else
  echo "kind-down.sh: no kind cluster named $NAME; nothing to do"
fi
