#!/bin/sh
# Usage: node-ns.sh NODE_DIR HOSTNAME
#
# Creates NODE_DIR/ns-ready when the namespaces are set up.
#
# The namespaces of one cluster node. Run as `nsenter --net=<node netns> unshare --mount --uts
# --propagation private sh node-ns.sh ...` (unshare execs, so this shell keeps the process ID the
# caller recorded); every node component is later started with `nsenter -t <this pid> -m -u -n`.
#
# Inside the private mount namespace:
# - /run is a fresh tmpfs: the node's /run/containerd, /run/cni (podnet's IPAM store),
#   /run/netns (pod netns handles), /run/xtables.lock are the node's own;
# - the directories a node keeps on disk are bind mounts of NODE_DIR/fs/<path>: /etc/cni/net.d,
#   /opt/cni/bin, /var/lib/cni, /var/lib/kubelet, /var/lib/containerd, /etc/containerd,
#   /etc/kubernetes, /var/log/pods, /var/log/containers, /var/lib/etcd. A target that does not
#   exist on the host is created inside an overlay of its nearest existing ancestor whose upper
#   layer is on the node's /run tmpfs, so the host's directories are never written;
# - the global (not per-network-namespace) sysctls kubelet writes at start are private files
#   bind-mounted over their /proc/sys paths, so its writes land there and not in the kernel;
# - the UTS name is the node's name (kubelet registers the Node under its hostname).
set -eu

node_dir=$1
host=$2

# Resolve the node's on-disk tree before any overlay can shadow the path that leads to it.
mount -t tmpfs -o mode=0755 pcl-run /run
mkdir -p /run/.pcl/node /run/.pcl/ovl /run/.pcl/sysctl
mount --bind "$node_dir" /run/.pcl/node
src=/run/.pcl/node/fs

overlaid=""
n=0
ensure_dir() {
  [ -d "$1" ] && return 0
  ancestor=$1
  while [ ! -d "$ancestor" ]; do ancestor=$(dirname "$ancestor"); done
  case " $overlaid " in *" $ancestor "*) mkdir -p "$1"; return 0 ;; esac
  [ "$ancestor" != / ] || { echo "node-ns.sh: refusing to overlay / for $1" >&2; exit 1; }
  n=$((n + 1))
  mkdir -p "/run/.pcl/ovl/$n/upper" "/run/.pcl/ovl/$n/work"
  mount -t overlay "pcl-ovl$n" -o "lowerdir=$ancestor,upperdir=/run/.pcl/ovl/$n/upper,workdir=/run/.pcl/ovl/$n/work" "$ancestor"
  overlaid="$overlaid $ancestor"
  mkdir -p "$1"
}

for target in /etc/cni/net.d /opt/cni/bin /var/lib/cni /var/lib/kubelet /var/lib/containerd /etc/containerd \
  /etc/kubernetes /var/log/pods /var/log/containers /var/lib/etcd; do
  mkdir -p "$src$target"
  ensure_dir "$target"
  mount --bind "$src$target" "$target"
done

for key in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
  file="/run/.pcl/sysctl/$(echo "$key" | tr / .)"
  cat "/proc/sys/$key" >"$file"
  mount --bind "$file" "/proc/sys/$key"
done

mkdir -p /run/netns /run/containerd /run/cni /run/lock
: >/run/xtables.lock
hostname "$host"

: >/run/.pcl/node/ns-ready
exec sleep infinity
