#!/usr/bin/env bash
# Make sure nginx is installed: the serving tests and the demo run the real thing.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "nginx is not installed and this user is not root: install it with 'sudo apt-get install nginx'" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "nginx is not installed and apt-get is missing: install nginx with your system's package manager" >&2
  exit 1
fi
echo "installing nginx from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nginx >/dev/null
