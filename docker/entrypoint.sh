#!/bin/sh
# Entrypoint of the clpipe images: `docker run IMAGE fold-train ...` runs `clpipe fold-train ...`.
#
# A first argument that is an executable on PATH (sh, python3, bash, ...) or a path runs as
# is, so `docker run IMAGE python3 -c ...` and kfp.local's DockerRunner, which passes a
# KFP task's `sh -ec ...` command as the container's arguments, work without overriding the
# entrypoint. On Kubernetes the task's command replaces this entrypoint anyway.
set -e
case "${1:-}" in
  "" | -*) exec clpipe "$@" ;;
  */*) exec "$@" ;;
esac
if command -v -- "$1" >/dev/null 2>&1; then
  exec "$@"
fi
exec clpipe "$@"
