#!/usr/bin/env bash
# A bookworm base image made from Debian's archive, standing in for python:3.11-slim-bookworm where no
# container registry is reachable. It provides what the Dockerfile uses of the official one: `python`
# (bookworm's python3 is 3.11), python3-venv, ca-certificates, and the same slimming (no docs, man
# pages or locales; apt keeps no .deb files).
#
# The root filesystem is cached as a tarball in $QOS_IMAGE_CACHE (default /var/cache/qos-agent) and
# imported into buildah's storage as $QOS_BASE_IMAGE (default localhost/qos-base:bookworm); both are
# reused while the recipe below is unchanged. Prints the image's name on stdout, progress on stderr.
set -euo pipefail

suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv,python-is-python3,ca-certificates
recipe=1   # bump when the steps below change what the base holds
cache=${QOS_IMAGE_CACHE:-/var/cache/qos-agent}
image=${QOS_BASE_IMAGE:-localhost/qos-base:$suite}
key=$(printf '%s\n' "$suite" "$mirror" "$packages" "$recipe" | sha256sum | cut -c1-12)
tarball=$cache/qos-base-$suite-$key.tar
say() { echo "image-debian-base: $*" >&2; }
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
buildah() { "$(type -P buildah)" --storage-driver "$STORAGE_DRIVER" "$@"; }  # 1.28 ignores STORAGE_DRIVER

if [ "$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "org.qos-agent.base-key"}}' "$image" 2>/dev/null)" = "$key" ]; then
  say "reusing $image (in buildah's storage)"
  echo "$image"
  exit 0
fi

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { say "debootstrap is not installed (make image installs it)"; exit 1; }
  mkdir -p "$cache"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs" "$tarball.part"' EXIT
  say "debootstrap $suite ($packages) from $mirror into $rootfs"
  start=$SECONDS
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  say "debootstrap took $((SECONDS - start)) s (log: $cache/debootstrap.log)"
  (
    cd "$rootfs"
    # What debian:bookworm-slim does (debuerreotype): docs, man pages and locales are not installed,
    # now or by later apt-get installs; apt keeps no package files or caches.
    cat >etc/dpkg/dpkg.cfg.d/docker <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
    find usr/share/doc -mindepth 1 -type d -empty -delete
    rm -rf usr/share/groff/* usr/share/info/* usr/share/linda/* usr/share/lintian/* usr/share/locale/* usr/share/man/*
    cat >etc/apt/apt.conf.d/docker-clean <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >etc/apt/apt.conf.d/docker-no-languages
    echo 'Acquire::GzipIndexes "true";' >etc/apt/apt.conf.d/docker-gzip-indexes
    # The official image's sources: the release, its updates and security updates.
    rm -f etc/apt/sources.list
    cat >etc/apt/sources.list.d/debian.sources <<EOF
Types: deb
URIs: ${mirror}
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Nothing of this machine goes into the image: the runtime provides /dev, DNS and the host name.
    rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* dev/* tmp/* var/tmp/*
    find var/log -type f -delete
    : >etc/resolv.conf
    : >etc/hostname
  )
  tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  rm -rf "$rootfs"
  trap - EXIT
  say "cached $tarball ($(du -h "$tarball" | cut -f1))"
fi

say "importing $tarball as $image"
ctr=$(buildah from --format docker scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
tar --numeric-owner -xf "$tarball" -C "$(buildah mount "$ctr")"
buildah umount "$ctr" >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
  --cmd '["python3"]' --label "org.qos-agent.base-key=$key" \
  --label "org.opencontainers.image.description=Debian $suite from $mirror: $packages" "$ctr"
buildah commit --quiet --rm --format docker "$ctr" "$image" >/dev/null
trap - EXIT
echo "$image"
