#!/usr/bin/env bash
# Installs the Debian packages the real-client e2e suites need (test/e2e/containerd.test.ts),
# only when something is missing; idempotent. Runs as root. (The libcni driver and the other
# peers built from Go modules come from scripts/peers.sh, not from Debian.)
#   containerd + runc      `ctr run --cni` against a private containerd
#   busybox-static         the rootfs of the locally built container image (no registry)
#   util-linux             unshare/nsenter/mount (normally present)
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -qx 'install ok installed'; }

need=()
command -v containerd >/dev/null || need+=(containerd)
command -v ctr >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
installed busybox-static && [ -x /bin/busybox ] || need+=(busybox-static)
command -v unshare >/dev/null || need+=(util-linux)

if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "install-deps (clients): installing ${need[*]}"
  start=$(date +%s)
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  echo "install-deps (clients): done in $(( $(date +%s) - start ))s"
fi
