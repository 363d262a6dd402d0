#!/usr/bin/env bash
# Make sure the Debian packages named as arguments are installed (e.g. buildah debootstrap), installing
# the missing ones with apt-get when this user is root, with a clear message otherwise.
set -euo pipefail
missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages and this user is not root: install them with 'sudo apt-get install ${missing[*]}'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing packages (${missing[*]}) and apt-get is missing: install them with your system's package manager" >&2
    exit 1
fi
echo "installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
