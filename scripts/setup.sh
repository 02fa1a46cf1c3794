#!/usr/bin/env bash
# Set up a fresh Debian 12 machine (as root) to build, demo and test podnet: the Debian packages
# the plugins, the lab and the test suite use, the pinned npm dependencies (including the Node 22
# that builds and runs everything; the system Node only runs npm), then the real peers the suite
# runs podnet against (scripts/peers.sh: reference plugins, libcni, crictl, containerd 2 + runc,
# etcd, Kubernetes), built from their Go modules with the machine's Go into a cache outside the
# checkout — once; a second run builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# gcc, libc6-dev, pkg-config, libseccomp-dev: the cgo parts of the peers (containerd, runc).
for pkg in iproute2 nftables iptables iputils-ping netcat-openbsd containernetworking-plugins \
  gcc libc6-dev pkg-config libseccomp-dev; do
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
# The real clients from Debian the e2e suite drives (containerd 1.6 + runc, busybox).
if [ -f test/e2e/clients/install-deps.sh ]; then
  bash test/e2e/clients/install-deps.sh
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# The peers, from their Go modules (the first build prints each one's time and the total).
bash scripts/peers.sh
echo "setup: done"
