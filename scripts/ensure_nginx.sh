#!/usr/bin/env bash
# Make sure nginx is installed: the serving tests and the demo run the real thing.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
exec "$(dirname "$0")/ensure_debian_packages.sh" nginx
