/**
 * Cluster section of `npm run bench` (root; components built by scripts/peers.sh, built here
 * if missing): on one real 3-node cluster (test/cluster),
 *  1. `up` (components and images cached) until every node is Ready;
 *  2. pod start latency: 30 pods per node created at once (one apply), time from the apply to
 *     each pod seen Running with an IP (polled every 200 ms), p50/p95 — podnet, then the same
 *     cluster switched to the reference bridge + host-local, in one run.
 */
import { isRoot } from '../helpers/env.js';
import { Cluster } from '../cluster/cluster.js';
import { PAUSE_IMAGE } from '../cluster/configs.js';

const PODS_PER_NODE = 30;
const NS = 'pcb-bench';

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
const sec = (v: number) => `${(v / 1000).toFixed(2)} s`;

async function podStart(cluster: Cluster, label: string): Promise<number[]> {
  const nodes = cluster.requireState().nodes.map((n) => n.name);
  const items = nodes.flatMap((node) => Array.from({ length: PODS_PER_NODE }, (_, i) => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: `${label}-${node.slice(-8).replace(/[^a-z0-9]/g, '')}-${i}`, namespace: NS, labels: { bench: label } },
    spec: { nodeName: node, terminationGracePeriodSeconds: 0, containers: [{ name: 'c', image: PAUSE_IMAGE }] },
  })));
  const seen = new Map<string, number>();
  const t0 = performance.now();
  await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
  const until = Date.now() + 600_000;
  while (seen.size < items.length && Date.now() < until) {
    const r = await cluster.kubectl(['-n', NS, 'get', 'pods', '-l', `bench=${label}`, '-o', 'json']);
    const now = performance.now();
    for (const p of (JSON.parse(r.stdout) as { items: Array<{ metadata: { name: string }; status: { phase?: string; podIP?: string } }> }).items) {
      if (p.status.phase === 'Running' && p.status.podIP && !seen.has(p.metadata.name)) seen.set(p.metadata.name, now - t0);
    }
    await new Promise((r2) => setTimeout(r2, 200));
  }
  const wall = performance.now() - t0;
  const times = [...seen.values()];
  console.log(`${label.padEnd(9)} ${seen.size}/${items.length} pods Running with an IP: p50 ${sec(pct(times, 50))}  p95 ${sec(pct(times, 95))}  all after ${sec(wall)}`);
  await cluster.kubectl(['-n', NS, 'delete', 'pods', '-l', `bench=${label}`, '--wait=true', '--timeout=300s']);
  return times;
}

async function main(): Promise<void> {
  if (!isRoot) {
    console.log('cluster: skipped (needs root)');
    return;
  }
  const cluster = new Cluster('pcb', { say: (m) => console.log(`  ${m}`) });
  if (cluster.state()) await cluster.down();
  try {
    const t0 = performance.now();
    await cluster.up({ e2eImages: false });
    console.log(`npm run cluster up (components built, images cached): 3 nodes Ready after ${sec(performance.now() - t0)}`);
    await cluster.kubectl(['create', 'namespace', NS]);
    const podnet = await podStart(cluster, 'podnet');
    await cluster.useReferencePlugins();
    const reference = await podStart(cluster, 'reference');
    console.log(`pod start p50 podnet/reference: ${(pct(podnet, 50) / pct(reference, 50)).toFixed(2)}× (goal ≤ 1.1×)`);
  } finally {
    await cluster.down();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
