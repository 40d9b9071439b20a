#!/bin/bash
# Builds a local stand-in for python:3.11-slim from the Debian archive, for machines that can
# reach Debian and PyPI but no container registry (CI here). The project's Dockerfile keeps
# `FROM python:3.11-slim`; this image only takes that name in the local engine.
#
# The stand-in is Debian bookworm's python3 (3.11.2) in a venv on PATH (python3, pip), plus
# the host's CA bundle and a pip.conf pointing at it, so pip works behind a TLS-intercepting
# proxy. Real images never get that CA: it lives only in this base.
#
#   docker/standin-base.sh [--force] [IMAGE]      (default IMAGE: python:3.11-slim)
#
# Needs root, mmdebstrap and a running engine (DOCKER, default: docker).
set -euo pipefail
DOCKER=${DOCKER:-docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
force=0
if [ "${1:-}" = --force ]; then force=1; shift; fi
IMAGE=${1:-python:3.11-slim}

if [ "$force" = 0 ] && $DOCKER image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "standin-base: $IMAGE already present (--force rebuilds it)"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "standin-base: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }

tar=$(mktemp --suffix=.tar)
trap 'rm -f "$tar"' EXIT
start=$(date +%s)
# passwd: useradd for the images' non-root user (minbase has it, listed to be explicit).
# The hook runs in mmdebstrap's shell with the rootfs as $1 (single quotes on purpose).
# shellcheck disable=SC2016
hook='mkdir -p "$1/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$1" update-ca-certificates >/dev/null
printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" > "$1/etc/pip.conf"
chroot "$1" python3 -m venv /usr/local/py
rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb'
mmdebstrap --quiet --variant=minbase --include=ca-certificates,python3,python3-venv,passwd \
  --customize-hook="$hook" bookworm "$tar" "$MIRROR"
$DOCKER import \
  --change 'ENV PATH=/usr/local/py/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$tar" "$IMAGE" >/dev/null
echo "standin-base: $IMAGE built in $(( $(date +%s) - start )) s ($($DOCKER run --rm "$IMAGE" python3 --version))"
