import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Cluster } from './cluster.js';

/**
 * The upstream Kubernetes e2e network tests the cluster tier runs (the one place these lists
 * live; the README repeats them). Regular expressions for ginkgo's --focus / --skip, matched
 * against the full spec text.
 *
 * - Pods: intra-pod and node-pod, http and udp — the [Conformance] network tests.
 * - Services: pod/node/endpoint → Service, without DNS (the cluster has no CoreDNS).
 */
export const E2E_FOCUS = [
  String.raw`\[sig-network\] Networking Granular Checks: Pods`,
  String.raw`\[sig-network\] Networking Granular Checks: Services`,
];

export const E2E_SKIP = [
  // Not what this cluster has: SCTP, IPv6 / dual-stack, features behind gates, Windows.
  String.raw`SCTP`,
  String.raw`\[Feature:`,
  String.raw`IPv6|DualStack`,
  // Long waits for cluster-wide events (tens of minutes each) — outside the tier's budget.
  String.raw`\[Slow\]`,
  String.raw`\[Disruptive\]|\[Serial\]`,
];

/** Run the selected upstream tests against the cluster; resolves with the process result. */
export async function runUpstreamE2e(cluster: Cluster, o: { e2eTest: string; reportDir: string; timeoutMs: number }) {
  mkdirSync(o.reportDir, { recursive: true });
  return execa('ip', [
    'netns', 'exec', cluster.fabricNs, o.e2eTest,
    `--kubeconfig=${cluster.adminConf}`,
    '--provider=skeleton',
    `--report-dir=${o.reportDir}`,
    `--ginkgo.focus=${E2E_FOCUS.join('|')}`,
    `--ginkgo.skip=${E2E_SKIP.join('|')}`,
    '--ginkgo.no-color',
    '--ginkgo.v',
    `--ginkgo.timeout=${Math.round(o.timeoutMs / 1000)}s`,
    // The control plane's own components are processes, not pods: nothing to wait for in kube-system.
    '--minStartupPods=0',
    `--e2e-output-dir=${join(o.reportDir, 'output')}`,
  ], { reject: false, timeout: o.timeoutMs + 60_000, stdin: 'ignore', all: true });
}
