#!/usr/bin/env bash
# Creates a kind cluster running podnet, end to end:
#   1. npm run build (dist/bin/podnet, dist/bin/podnet-routesync)
#   2. docker build the image (kind/Dockerfile)
#   3. kind create cluster (kind/cluster.yaml: no default CNI), unless it exists
#   4. kind load docker-image (the image is never pulled from a registry)
#   5. kubectl apply kind/podnet.yaml (RBAC + DaemonSet), wait for the rollout
#   6. wait until every node is Ready (a node turns Ready once its CNI config exists)
#   7. kind/smoke.sh: two pods on two nodes reach each other by pod IP
#
# Needs docker (a running engine), kind, kubectl, node 22 + npm.
# Environment: CLUSTER (default podnet), IMAGE (default podnet:dev), SKIP_BUILD=1, SKIP_SMOKE=1.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-podnet}
IMAGE=${IMAGE:-podnet:dev}
CTX="kind-$CLUSTER"

for tool in docker kind kubectl npm; do
  command -v "$tool" >/dev/null || { echo "up.sh: $tool is required" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "up.sh: no docker engine reachable (docker info failed)" >&2; exit 1; }

step() { printf '\n== %s\n' "$*"; }

if [ "${SKIP_BUILD:-}" != 1 ]; then
  step "build executables"
  npm run build
fi

step "build image $IMAGE"
docker build -f kind/Dockerfile -t "$IMAGE" .

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  step "cluster $CLUSTER exists"
else
  step "create cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --config kind/cluster.yaml
fi

step "load $IMAGE into the nodes"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "apply kind/podnet.yaml"
sed "s#image: podnet:dev#image: $IMAGE#" kind/podnet.yaml | kubectl --context "$CTX" apply -f -
kubectl --context "$CTX" -n kube-system rollout restart daemonset/podnet >/dev/null
kubectl --context "$CTX" -n kube-system rollout status daemonset/podnet --timeout=180s

step "wait for every node to be Ready"
kubectl --context "$CTX" wait --for=condition=Ready nodes --all --timeout=180s
kubectl --context "$CTX" get nodes -o custom-columns=NAME:.metadata.name,READY:.status.conditions[-1].type,PODCIDRS:.spec.podCIDRs

if [ "${SKIP_SMOKE:-}" != 1 ]; then
  step "smoke test"
  CTX="$CTX" IMAGE="$IMAGE" kind/smoke.sh
fi
echo
echo "up.sh: cluster $CLUSTER is running podnet (kubectl --context $CTX ...)"
