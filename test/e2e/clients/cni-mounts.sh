#!/bin/sh
# Usage: sh cni-mounts.sh SCRATCH TARGET=SOURCE... -- COMMAND...
#
# In a new private mount namespace of its own (it re-executes itself under
# `unshare --mount --propagation private`, keeping its process ID), makes every TARGET directory show SOURCE (a bind mount), then execs COMMAND. Used to point
# clients with hard-coded CNI paths (ctr --cni: /etc/cni/net.d, /opt/cni/bin, /var/lib/cni;
# containerd's shims: /run/containerd) at a test's own directories without changing the host.
# A TARGET that does not exist is created inside an overlay of its nearest existing ancestor,
# whose upper layer lives on a tmpfs at SCRATCH: the host's directories are never written, and
# everything disappears with the mount namespace.
set -eu

if [ "${1-}" != "--in-private-mount-ns" ]; then
  exec unshare --mount --propagation private -- sh "$0" --in-private-mount-ns "$@"
fi
shift

scratch=$1
shift
mount -t tmpfs -o mode=0700 pcl-scratch "$scratch"

n=0
ensure_dir() {
  [ -d "$1" ] && return 0
  ancestor=$1
  while [ ! -d "$ancestor" ]; do ancestor=$(dirname "$ancestor"); done
  n=$((n + 1))
  mkdir -p "$scratch/$n/upper" "$scratch/$n/work"
  mount -t overlay "pcl-overlay$n" -o "lowerdir=$ancestor,upperdir=$scratch/$n/upper,workdir=$scratch/$n/work" "$ancestor"
  mkdir -p "$1"
}

while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  target=${1%%=*}
  source=${1#*=}
  shift
  ensure_dir "$target"
  mount --bind "$source" "$target"
done
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || { echo "cni-mounts.sh: no command after --" >&2; exit 2; }
exec "$@"
