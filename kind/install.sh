#!/bin/sh
# Installs podnet's CNI plugins into a node's CNI bin directory (the DaemonSet's init container
# runs this with the host's /opt/cni/bin mounted at /host/opt/cni/bin).
#
#   install.sh [--src DIR] [--dest DIR]     defaults: /opt/podnet/bin → /host/opt/cni/bin
#
# - Atomic: each file is copied to a temporary name in the destination directory, then renamed
#   over the old one. A runtime executing the old plugin meanwhile keeps running it (the old
#   inode lives on), a new exec gets the whole new file, never a half-written one, and there is
#   no "text file busy".
# - Only podnet's own names are written (podnet, podnet-bridge, podnet-host-local); the stock
#   plugins kind ships there (host-local, ptp, portmap, loopback, ...) are never touched.
# - An unchanged plugin is left alone (same bytes → no rename).
set -eu

src=/opt/podnet/bin
dest=/host/opt/cni/bin
while [ $# -gt 0 ]; do
  case "$1" in
    --src) src=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument \"$1\"" >&2; exit 2 ;;
  esac
done

EXECUTABLE=podnet
LINKS="podnet-bridge podnet-host-local"

if [ ! -f "$src/$EXECUTABLE" ]; then
  echo "install.sh: failed to find \"$src/$EXECUTABLE\"" >&2
  exit 1
fi
mkdir -p "$dest"

# Leftovers of an install that was killed halfway.
rm -f "$dest"/.podnet-install.* 2>/dev/null || true

tmp="$dest/.podnet-install.$$"
cleanup() { rm -f "$tmp" "$tmp.link"; }
trap cleanup EXIT INT TERM

if [ -f "$dest/$EXECUTABLE" ] && [ ! -L "$dest/$EXECUTABLE" ] && cmp -s "$src/$EXECUTABLE" "$dest/$EXECUTABLE"; then
  echo "install.sh: $dest/$EXECUTABLE is up to date"
else
  cp "$src/$EXECUTABLE" "$tmp"
  chmod 0755 "$tmp"
  mv -f -T "$tmp" "$dest/$EXECUTABLE"
  echo "install.sh: installed $dest/$EXECUTABLE"
fi

for name in $LINKS; do
  case "$name" in podnet-*) ;; *) echo "install.sh: refusing to write non-podnet name \"$name\"" >&2; exit 1 ;; esac
  if [ -L "$dest/$name" ] && [ "$(readlink "$dest/$name")" = "$EXECUTABLE" ]; then
    continue
  fi
  ln -s "$EXECUTABLE" "$tmp.link"
  mv -f -T "$tmp.link" "$dest/$name"
  echo "install.sh: linked $dest/$name -> $EXECUTABLE"
done
