#!/usr/bin/env bash
# Build the real peers the tests run podnet against — the reference CNI plugins, libcni (our e2e
# driver), cri-tools, containerd 2 + runc, etcd, Kubernetes — from their published Go modules at
# the versions pinned in scripts/peers.versions, into a cache outside the checkout:
#
#   ${PODNET_PEERS_DIR:-/var/cache/podnet-peers}/<NAME>-<VERSION>/bin/...
#
#   scripts/peers.sh [NAME ...]     build the named peers (default: all); a built one is skipped
#   scripts/peers.sh --dir NAME     print NAME's directory; exit 1 (and say how) if not built
#   scripts/peers.sh --list         print the peer names
#   scripts/peers.sh --regen kubernetes
#                                   regenerate test/peers/kubernetes/go.mod + go.sum from
#                                   k8s.io/kubernetes's own go.mod (after a version change)
#
# Each build runs in a temporary directory next to its final one and is renamed into place with
# a stamp file (.complete) holding the recipe (versions, Go version, hashes of our Go sources);
# a directory without a matching stamp is rebuilt. A lock per peer lets several callers (tests,
# other scripts) ask for the same peer at once: one builds, the others wait and reuse it.
# Only the machine's Go is used (/usr/local/go/bin/go, or $PODNET_GO), never Debian's golang-go;
# module and build caches stay at Go's defaults (under $HOME), outside the checkout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/peers.versions
. "$ROOT/scripts/peers.versions"
PEERS_DIR=${PODNET_PEERS_DIR:-/var/cache/podnet-peers}
GO=${PODNET_GO:-/usr/local/go/bin/go}
PEERS=(cni-plugins libcni cri-tools containerd etcd kubernetes)
K8S_WRAPPER="$ROOT/test/peers/kubernetes"
# The Kubernetes mains peers.sh builds (packages under k8s.io/kubernetes/); e2e.test is extra.
K8S_TOOLS="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy cmd/kubectl test/images/agnhost"
LIBCNI_DRIVER="$ROOT/test/e2e/clients/libcni-driver"

# Never let a go.mod's toolchain line download another Go; build flags every peer shares.
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOWORK=off

log() { echo "peers: $*" >&2; }
die() { echo "peers: $*" >&2; exit 1; }
secs() { date +%s.%N; }
dur() { awk -v s="$1" -v e="$2" 'BEGIN { d = e - s; printf "%dm%04.1fs", int(d / 60), d - 60 * int(d / 60) }'; }

# Hash of files (paths relative to $1), so a change of our own Go sources gives a new recipe.
hash_files() {
  local dir=$1; shift
  (cd "$dir" && sha256sum "$@") | sha256sum | cut -c1-12
}

peer_version() {
  case $1 in
    cni-plugins) echo "$CNI_PLUGINS_VERSION" ;;
    libcni) echo "$CNI_VERSION-$(hash_files "$LIBCNI_DRIVER" go.mod go.sum main.go)" ;;
    cri-tools) echo "$CRI_TOOLS_VERSION" ;;
    containerd) echo "$CONTAINERD_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kubernetes) echo "$KUBERNETES_VERSION" ;;
    *) die "unknown peer \"$1\" (known: ${PEERS[*]})" ;;
  esac
}

peer_dir() { echo "$PEERS_DIR/$1-$(peer_version "$1")"; }

# What the stamp must say for a build to count: everything that changes the binaries.
peer_recipe() {
  local go_version
  go_version=$("$GO" env GOVERSION)
  echo "name=$1 version=$(peer_version "$1") go=$go_version"
  case $1 in
    containerd) echo "runc=$RUNC_VERSION" ;;
    kubernetes) echo "wrapper=$(cd "$K8S_WRAPPER" && hash_files . go.mod go.sum $(find e2e -name '*.go' | sort))" ;;
  esac
}

is_built() {
  local dir
  dir=$(peer_dir "$1")
  [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$(peer_recipe "$1")" ]
}

# The source of MODULE@VERSION, copied out of the (read-only) module cache into $2.
module_source() {
  local dir
  dir=$("$GO" mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] && [ -d "$dir" ] || die "go mod download $1 gave no source directory"
  mkdir -p "$(dirname "$2")"
  cp -r "$dir" "$2"
  chmod -R u+w "$2"
}

# --- the builds: each writes executables into $1/bin, working in $1/src ---------------------------

on_exit() {
  local rc=$?
  if [ -n "${BUILD_TMP:-}" ]; then
    rm -rf "$BUILD_TMP"
    echo "peers: building $BUILDING failed (exit $rc, see above); nothing was installed" >&2
  fi
}
BUILDING='' BUILD_TMP=''
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_cni-plugins() {
  local out=$1 pkgs=() d
  module_source "github.com/containernetworking/plugins@$CNI_PLUGINS_VERSION" "$out/src"
  cd "$out/src"
  # Every plugin of the release, as upstream's build_linux.sh: plugins/{main,ipam,meta}/*.
  for d in plugins/main/* plugins/ipam/* plugins/meta/*; do
    [ -d "$d" ] && [ "$(basename "$d")" != windows ] && pkgs+=("./$d")
  done
  CGO_ENABLED=0 "$GO" build -trimpath -o "$out/bin/" \
    -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
    "${pkgs[@]}"
}

build_libcni() {
  local out=$1
  cp -r "$LIBCNI_DRIVER" "$out/src"
  cd "$out/src"
  grep -q "github.com/containernetworking/cni $CNI_VERSION\$" go.mod ||
    die "test/e2e/clients/libcni-driver/go.mod does not require github.com/containernetworking/cni $CNI_VERSION (scripts/peers.versions)"
  CGO_ENABLED=0 "$GO" build -trimpath -mod=readonly -ldflags "-s -w" -o "$out/bin/libcni-driver" .
}

build_cri-tools() {
  local out=$1
  module_source "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" "$out/src"
  cd "$out/src"
  CGO_ENABLED=0 "$GO" build -trimpath -o "$out/bin/" \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" ./cmd/crictl
}

build_containerd() {
  local out=$1 pkg=github.com/containerd/containerd/v2
  command -v pkg-config >/dev/null && pkg-config --exists libseccomp ||
    die "runc needs libseccomp's headers: apt-get install -y libseccomp-dev pkg-config (scripts/setup.sh does)"
  module_source "$pkg@$CONTAINERD_VERSION" "$out/src/containerd"
  module_source "github.com/opencontainers/runc@$RUNC_VERSION" "$out/src/runc"
  # As kind's base image builds them: no optional snapshotters; the shim static without cgo
  # (containerd's Makefile does so), containerd and ctr with cgo.
  local ldflags="-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Package=$pkg"
  (cd "$out/src/containerd" &&
    CGO_ENABLED=1 "$GO" build -trimpath -tags "no_aufs no_zfs no_btrfs no_devmapper" \
      -ldflags "$ldflags" -o "$out/bin/" ./cmd/containerd ./cmd/ctr &&
    CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$out/bin/" ./cmd/containerd-shim-runc-v2)
  # runc needs cgo (its nsenter is C); seccomp as in runc's Makefile.
  (cd "$out/src/runc" &&
    CGO_ENABLED=1 "$GO" build -trimpath -tags "seccomp urfave_cli_no_docs" \
      -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" -o "$out/bin/runc" .)
}

build_etcd() {
  local out=$1 m
  # etcd's modules replace each other with relative paths (one repository), which only work in
  # its checkout; as the only requirement of a scratch module each, those replaces are ignored
  # and the released sibling modules (all at the same version) are used instead. One scratch
  # module per binary, so neither's dependency versions are raised by the other's.
  for m in server etcdctl; do
    mkdir -p "$out/src/$m"
    (cd "$out/src/$m" &&
      "$GO" mod init "podnet.test/peers/etcd-$m" >/dev/null 2>&1 &&
      { "$GO" get "go.etcd.io/etcd/$m/v3@$ETCD_VERSION" >get.log 2>&1 ||
        { cat get.log >&2; die "go get go.etcd.io/etcd/$m/v3@$ETCD_VERSION failed"; }; } &&
      { [ "$("$GO" list -m -f '{{.Version}}' go.etcd.io/etcd/api/v3)" = "$ETCD_VERSION" ] ||
        die "go.etcd.io/etcd/api/v3 did not resolve to $ETCD_VERSION for $m"; } &&
      CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$out/bin/${m/server/etcd}" "go.etcd.io/etcd/$m/v3")
  done
}

# Generate the wrapper module's go.mod from k8s.io/kubernetes's own: the same go and godebug
# lines, a require of the module, and each staging replace (./staging/src/k8s.io/X) turned into
# the published k8s.io/X v0.<minor>.<patch>; then go mod tidy. Writes go.mod + go.sum into $1.
generate_kubernetes_module() {
  local into=$1 gomod staging_version
  gomod=$("$GO" mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || die "no go.mod for k8s.io/kubernetes@$KUBERNETES_VERSION"
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  {
    echo "// Generated by scripts/peers.sh from k8s.io/kubernetes@$KUBERNETES_VERSION's go.mod: do not edit."
    echo "// Regenerate with: scripts/peers.sh --regen kubernetes"
    echo
    echo "module podnet.test/peers/kubernetes"
    echo
    grep -E '^go [0-9.]+$' "$gomod"
    echo
    grep -E '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    # The mains built from this module (tool lines keep their dependencies in go.mod/go.sum).
    local t
    for t in $K8S_TOOLS; do echo "tool k8s.io/kubernetes/$t"; done
    echo
    echo "replace ("
    awk -v v="$staging_version" '
      /^replace \($/ { inside = 1; next }
      inside && /^\)$/ { inside = 0 }
      inside && $2 == "=>" {
        if ($3 != "./staging/src/" $1) { print "unexpected replace in k8s.io/kubernetes go.mod: " $0 > "/dev/stderr"; exit 1 }
        printf "\t%s => %s %s\n", $1, $1, v
      }' "$gomod"
    echo ")"
  } >"$into/go.mod"
  grep -q '=> k8s.io/api ' "$into/go.mod" || die "found no staging replace lines in k8s.io/kubernetes's go.mod"
  (cd "$into" && "$GO" mod tidy >&2)
}

# The wrapper's go.mod/go.sum are committed; regenerate them in a scratch copy and insist that
# they are what the generator gives, so the replace lines are never typed by hand.
check_kubernetes_module() {
  local scratch=$1
  mkdir -p "$scratch"
  cp -r "$K8S_WRAPPER/." "$scratch/"
  generate_kubernetes_module "$scratch"
  cmp -s "$scratch/go.mod" "$K8S_WRAPPER/go.mod" && cmp -s "$scratch/go.sum" "$K8S_WRAPPER/go.sum" ||
    die "test/peers/kubernetes/go.mod or go.sum differ from what k8s.io/kubernetes@$KUBERNETES_VERSION's go.mod gives: run scripts/peers.sh --regen kubernetes and commit"
}

build_kubernetes() {
  local out=$1 k=k8s.io/kubernetes v=$KUBERNETES_VERSION minor date
  check_kubernetes_module "$out/src"
  minor=${v#v1.}; minor=${minor%%.*}
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  # What hack/lib/version.sh stamps, so every component and kubectl report the release.
  local ldflags="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitCommit=module-$v -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  cd "$K8S_WRAPPER"
  # One go build for every main, so shared packages compile once.
  local pkgs=() t start
  for t in $K8S_TOOLS; do pkgs+=("$k/$t"); done
  start=$(secs)
  CGO_ENABLED=0 "$GO" build -trimpath -mod=readonly -ldflags "$ldflags" -o "$out/bin/" "${pkgs[@]}"
  log "  kubernetes: the ${#pkgs[@]} mains in $(dur "$start" "$(secs)")"
  # The e2e binary: ours links the upstream RunE2ETests entry plus the network tests only.
  # -vet=off: go test would otherwise vet every dependency for facts (minutes, nothing to learn).
  start=$(secs)
  CGO_ENABLED=0 "$GO" test -c -vet=off -trimpath -mod=readonly -ldflags "$ldflags" -o "$out/bin/e2e.test" ./e2e
  log "  kubernetes: e2e.test in $(dur "$start" "$(secs)")"
}

# --- driver ------------------------------------------------------------------------------------------

build_peer() {
  local name=$1 dir tmp start end lock
  dir=$(peer_dir "$name")
  mkdir -p "$PEERS_DIR"
  lock="$PEERS_DIR/.lock-$name"
  exec {fd}>"$lock"
  flock "$fd"
  if is_built "$name"; then
    log "$name $(peer_version "$name") already built: $dir"
    exec {fd}>&-
    return 0
  fi
  tmp=$(mktemp -d "$PEERS_DIR/.build-$name.XXXXXX")
  chmod 755 "$tmp"
  mkdir -p "$tmp/bin"
  log "building $name $(peer_version "$name") (go $("$GO" env GOVERSION)) ..."
  start=$(secs)
  # A failing command anywhere in the build ends the script (set -e); the EXIT trap removes
  # the half-made directory. The subshell keeps the build's cd to itself.
  BUILDING=$name BUILD_TMP=$tmp
  ("build_$name" "$tmp")
  BUILDING='' BUILD_TMP=''
  end=$(secs)
  rm -rf "$tmp/src"
  peer_recipe "$name" >"$tmp/.complete"
  echo "$(dur "$start" "$end")" >"$tmp/.build-time"
  # Replace a stale or half-made directory of the same name, then move the new one in.
  if [ -e "$dir" ]; then
    mv "$dir" "$tmp.old"
    rm -rf "$tmp.old"
  fi
  mv "$tmp" "$dir"
  exec {fd}>&-
  log "built $name $(peer_version "$name") in $(dur "$start" "$end"): $dir/bin: $(ls "$dir/bin" | tr '\n' ' ')"
  BUILT+=("$name")
}

[ -x "$GO" ] || die "no Go at $GO (the machine's Go; Debian's golang-go is not used)"

case ${1:-} in
  --dir)
    [ $# -eq 2 ] || die "usage: scripts/peers.sh --dir NAME"
    peer_version "$2" >/dev/null
    is_built "$2" || die "$2 $(peer_version "$2") is not built in $PEERS_DIR: run scripts/peers.sh $2"
    peer_dir "$2"
    exit 0 ;;
  --list)
    printf '%s\n' "${PEERS[@]}"
    exit 0 ;;
  --regen)
    [ "${2:-}" = kubernetes ] || die "usage: scripts/peers.sh --regen kubernetes"
    generate_kubernetes_module "$K8S_WRAPPER"
    log "regenerated test/peers/kubernetes/go.mod and go.sum for $KUBERNETES_VERSION"
    exit 0 ;;
  -h | --help)
    sed -n '2,20p' "$0"
    exit 0 ;;
esac

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${PEERS[@]}")
for n in "${names[@]}"; do peer_version "$n" >/dev/null; done
BUILT=()
total_start=$(secs)
for n in "${names[@]}"; do build_peer "$n"; done
if [ ${#BUILT[@]} -eq 0 ]; then
  log "nothing to build: ${names[*]} already in $PEERS_DIR"
else
  log "total $(dur "$total_start" "$(secs)") (built: ${BUILT[*]})"
fi
