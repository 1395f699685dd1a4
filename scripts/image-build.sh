#!/usr/bin/env bash
# `make image`: builds the Dockerfile with Debian's buildah (no daemon: vfs storage, chroot isolation).
#   IMAGE=...   the tag (default localhost/qos-agent:latest)
#   BASE=...    the base image. Unset: python:3.11-slim-bookworm when it can be pulled, else a bookworm
#               base made from Debian's archive and cached (scripts/image-debian-base.sh).
# pip inside the build uses this machine's package index settings (scripts/pip_build_volumes.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
# Debian's buildah 1.28 does not read STORAGE_DRIVER itself: every call gets it as a flag.
buildah() { "$(type -P buildah)" --storage-driver "$STORAGE_DRIVER" "$@"; }
image=${IMAGE:-localhost/qos-agent:latest}
official=docker.io/library/python:3.11-slim-bookworm
say() { echo "make image: $*"; }
present() { buildah inspect --type image "$1" >/dev/null 2>&1; }

start=$SECONDS
if [ -n "${BASE:-}" ]; then
  present "$BASE" || buildah pull --quiet "$BASE" >/dev/null
  base=$BASE
  say "base: $base (BASE was given)"
elif present "$official" || err=$(timeout 300 "$(type -P buildah)" --storage-driver "$STORAGE_DRIVER" pull --quiet \
                                   "$official" 2>&1 >/dev/null); then
  base=$official
  say "base: $base (the official image)"
else
  say "base: $official cannot be pulled (${err##*$'\n'})"
  say "base: making one from Debian's archive instead (cached in ${QOS_IMAGE_CACHE:-/var/cache/qos-agent})"
  base=$(bash scripts/image-debian-base.sh)
  say "base: $base, ready after $((SECONDS - start)) s"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mapfile -t pip_options < <(python3 scripts/pip_build_volumes.py "$tmp")
previous=$(buildah inspect --type image --format '{{.FromImageID}}' "$image" 2>/dev/null || true)
build_start=$SECONDS
buildah bud --format docker --pull=false --build-arg "BASE=$base" "${pip_options[@]}" -f Dockerfile -t "$image" .
# The image this tag named before is dangling now: vfs keeps a full copy of it, so it goes.
now=$(buildah inspect --type image --format '{{.FromImageID}}' "$image")
if [ -n "$previous" ] && [ "$previous" != "$now" ]; then buildah rmi "$previous" >/dev/null 2>&1 || true; fi
size=$(buildah images --format '{{.Size}}' "$image")
say "built $image from $base: $size; build $((SECONDS - build_start)) s, total $((SECONDS - start)) s"
