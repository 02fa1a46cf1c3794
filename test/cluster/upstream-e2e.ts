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

/** The full names of the specs the lists select (ginkgo dry run: nothing runs, no cluster needed). */
export async function selectedSpecs(e2eTest: string): Promise<string[]> {
  const r = await execa(e2eTest, ['--ginkgo.dry-run', '--ginkgo.v', '--ginkgo.no-color', `--ginkgo.focus=${E2E_FOCUS.join('|')}`, `--ginkgo.skip=${E2E_SKIP.join('|')}`],
    { reject: false, stdin: 'ignore', all: true, cwd: '/tmp', env: { KUBECONFIG: '/dev/null' } });
  const names = new Set<string>();
  for (const line of (r.all ?? '').split('\n')) {
    const m = /^(\[sig-network\] Networking Granular Checks: .*?) \[sig-network[^\]]*\]$/.exec(line.trim());
    if (m?.[1]) names.add(m[1]);
  }
  return [...names].sort();
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export interface ShardResult {
  focus: string[];
  exitCode: number | undefined;
  output: string;
}

/**
 * Run the selected upstream tests against the cluster, in `shards` e2e.test processes at once
 * (each test makes its own namespace; most of their time is polling, so shards overlap well).
 */
export async function runUpstreamE2e(cluster: Cluster, o: { e2eTest: string; kubectlDir: string; reportDir: string; timeoutMs: number; shards: number }): Promise<{ specs: string[]; shards: ShardResult[] }> {
  const specs = await selectedSpecs(o.e2eTest);
  if (specs.length === 0) throw new Error('the upstream e2e focus/skip lists select no test');
  const groups = Array.from({ length: Math.min(o.shards, specs.length) }, (_, i) => specs.filter((_, k) => k % o.shards === i));
  const shards = await Promise.all(groups.map(async (focus, i) => {
    const dir = join(o.reportDir, `shard-${i}`);
    mkdirSync(dir, { recursive: true });
    const r = await execa('ip', [
      'netns', 'exec', cluster.fabricNs, o.e2eTest,
      `--kubeconfig=${cluster.adminConf}`,
      '--provider=skeleton',
      `--report-dir=${dir}`,
      `--ginkgo.focus=(${focus.map(escapeRe).join("|")})$`,
      '--ginkgo.no-color',
      '--ginkgo.v',
      `--ginkgo.timeout=${Math.round(o.timeoutMs / 1000)}s`,
      // The control plane's components are processes, not pods: nothing to wait for in kube-system.
      '--minStartupPods=0',
    ], { reject: false, timeout: o.timeoutMs + 60_000, stdin: 'ignore', all: true, cwd: dir, env: { PATH: `${o.kubectlDir}:${process.env.PATH ?? ''}` } });
    return { focus, exitCode: r.exitCode, output: r.all ?? '' };
  }));
  return { specs, shards };
}
