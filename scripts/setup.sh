#!/usr/bin/env bash
# Set up a fresh Debian 12 machine (as root) to build, demo and test podnet: the Debian packages
# the plugins, the lab and the test suite use, then the pinned npm dependencies (including the
# Node 22 that builds and runs everything; the system Node only runs npm).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in iproute2 nftables iptables iputils-ping netcat-openbsd containernetworking-plugins; do
  have "$pkg" || need+=("$pkg")
done
# The Kubernetes cluster (npm run cluster, test/cluster): kube-proxy's conntrack, the images' curl,
# nc, dash and busybox, gcc + libc6-dev for the static pause binary, openssl for the certificates.
for pkg in conntrack curl netcat-openbsd dash busybox-static gcc libc6-dev openssl; do
  have "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The real clients the e2e suite drives (containerd + runc, libcni built with Debian's Go).
if [ -f test/e2e/clients/install-deps.sh ]; then
  bash test/e2e/clients/install-deps.sh
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "setup: done"
