#!/usr/bin/env bash
# Smoke test on a running cluster: one pod on each of two different nodes; each must reach the
# other by pod IP (over the route podnet-routesync programmed on both nodes). The pods use the
# podnet image (already loaded into the nodes, has ping, nothing to pull). That pod-to-pod
# traffic is not NATed is checked by test/integration/routesync-pods.test.ts.
# Environment: CTX (kubectl context, default kind-podnet), IMAGE (default podnet:dev).
set -euo pipefail
CTX=${CTX:-kind-podnet}
IMAGE=${IMAGE:-podnet:dev}
k() { kubectl --context "$CTX" "$@"; }

mapfile -t nodes < <(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | grep -v control-plane || true)
if [ "${#nodes[@]}" -lt 2 ]; then
  mapfile -t nodes < <(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
fi
[ "${#nodes[@]}" -ge 2 ] || { echo "smoke.sh: need two nodes" >&2; exit 1; }

cleanup() { k delete pod podnet-smoke-a podnet-smoke-b --ignore-not-found --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

run_pod() { # name node
  k run "$1" --image="$IMAGE" --image-pull-policy=IfNotPresent --restart=Never \
    --overrides="{\"spec\":{\"nodeName\":\"$2\",\"tolerations\":[{\"operator\":\"Exists\"}]}}" \
    --command -- sleep 600 >/dev/null
}
run_pod podnet-smoke-a "${nodes[0]}"
run_pod podnet-smoke-b "${nodes[1]}"
k wait --for=condition=Ready pod/podnet-smoke-a pod/podnet-smoke-b --timeout=120s >/dev/null

ip_a=$(k get pod podnet-smoke-a -o jsonpath='{.status.podIP}')
ip_b=$(k get pod podnet-smoke-b -o jsonpath='{.status.podIP}')
echo "smoke.sh: podnet-smoke-a on ${nodes[0]} = $ip_a, podnet-smoke-b on ${nodes[1]} = $ip_b"

k exec podnet-smoke-a -- ping -c 3 -W 2 "$ip_b"
k exec podnet-smoke-b -- ping -c 3 -W 2 "$ip_a"

echo "smoke.sh: ok — pods on two nodes reach each other by pod IP"
