#!/usr/bin/env bash
# Build a declared stand-in for python:3.11-slim-bookworm and tag it as NAME (the first argument) in
# buildah's store, for a machine that cannot pull the official image. What the Dockerfile relies on is
# the same: Debian bookworm, Python 3.11 with `python`, `python3` and `pip` on PATH, pip allowed to
# install into the system Python as root
# (PEP 668's marker removed, PIP_BREAK_SYSTEM_PACKAGES=1), apt-get with bookworm, bookworm-updates and bookworm-security.
# It differs in: Debian's Python 3.11.2 and pip 23.0 in /usr (not a newer 3.11 built into /usr/local),
# setuptools and wheel from Debian, and python3-distutils beside it. The image carries the label
# org.opencontainers.image.description saying so.
#
# Debian packages are cached in $IMAGE_CACHE_DIR/debootstrap (default /var/cache/gru4rec-images).
set -euo pipefail
NAME=${1:?usage: build_base_image.sh IMAGE_NAME}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${IMAGE_CACHE_DIR:-/var/cache/gru4rec-images}/debootstrap
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=chroot

mkdir -p "$CACHE"
rootfs=$(mktemp -d /var/tmp/gru4rec-base.XXXXXX)
container=""
cleanup() {
    rm -rf "$rootfs" "$rootfs.log"
    if [ -n "$container" ]; then buildah rm "$container" >/dev/null; fi
}
trap cleanup EXIT

echo "building the stand-in base $NAME: debootstrap bookworm (packages cached in $CACHE)"
start=$SECONDS
debootstrap --variant=minbase --arch=amd64 --cache-dir="$CACHE" \
    --include=ca-certificates,netbase,tzdata,python3,python3-pip,python-is-python3 \
    bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }

# apt sources as the official image has them, with the security archive
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
container=$(buildah from scratch)
buildah copy --quiet "$container" "$rootfs" / >/dev/null
# the current security updates, then no package lists left behind (as the official image); pip may
# install into the system Python as in the official image: PEP 668's marker goes, and
# PIP_BREAK_SYSTEM_PACKAGES keeps it so when a later Python package update brings the marker back
buildah run "$container" -- sh -c 'export DEBIAN_FRONTEND=noninteractive;
    apt-get update -qq && apt-get upgrade -y -qq >/dev/null 2>&1 && apt-get clean && rm -rf /var/lib/apt/lists/* &&
    rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED'
version=$(buildah run "$container" -- python3 -c 'import platform; print(platform.python_version())')
buildah config --os linux --arch amd64 \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --env PYTHON_VERSION="$version" --env PIP_BREAK_SYSTEM_PACKAGES=1 --cmd python3 \
    --label org.opencontainers.image.description="stand-in for python:3.11-slim-bookworm: Debian bookworm (debootstrap) with Debian's Python $version and pip" \
    "$container"
buildah commit --quiet --rm "$container" "$NAME" >/dev/null
container=""
echo "built the stand-in base $NAME (Python $version) in $((SECONDS - start)) s"
