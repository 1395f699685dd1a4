#!/usr/bin/env bash
# Installs the real components the agent and its tests use, from Debian's packages.
# Idempotent and quiet: a machine that has them already is not touched.
#   scripts/install-system-deps.sh                        what `make setup` needs
#   scripts/install-system-deps.sh buildah debootstrap    just these (`make image`)
set -euo pipefail
# systemd: systemd-analyze verifies deploy/qos-agent.service (the unit runs nowhere here).
pkgs=(influxdb chromium openssl ca-certificates victoria-metrics prometheus-blackbox-exporter prometheus-alertmanager
      prometheus dnsmasq-base iproute2 fonts-liberation systemd)
# kubectl renders deploy/kustomization.yaml in a test; Debian's kubernetes-client when none is on PATH.
command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)
if [ $# -gt 0 ]; then pkgs=("$@"); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
