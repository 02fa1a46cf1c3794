/**
 * Lab section of `npm run bench` (root): figures for podnet on the 3-node namespace lab.
 *  1. `npm run demo`: time from start to "every check passed" (all pods reachable), and total.
 *  2. 30 pods per node added in parallel (90 ADDs at once): conflist ADD p50/p95 and wall time,
 *     podnet versus the reference bridge + host-local on the same lab, same conflist with only
 *     the plugin types (and the IPAM store dir) swapped, in one run.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT, hasBuild, isRoot } from '../helpers/env.js';
import { upstreamCniBin } from '../helpers/peers.js';
import { Lab, type LabNode, type Pod } from '../e2e/lab/lab.js';
import type { NetworkList } from '../helpers/cni-runtime.js';

const PODS_PER_NODE = 30;

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

const ms = (v: number) => `${v.toFixed(1)} ms`;

async function timeDemo(): Promise<void> {
  const t0 = performance.now();
  let passedAt: number | undefined;
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'scripts', 'run-ts.mjs'), join(REPO_ROOT, 'test', 'e2e', 'lab', 'demo.ts')], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout.on('data', (d: Buffer) => {
      if (passedAt === undefined && d.toString().includes('every check passed')) passedAt = performance.now();
    });
    child.on('exit', (c) => resolve(c ?? 1));
  });
  const total = performance.now() - t0;
  console.log(`npm run demo: all pods reachable after ${passedAt ? ms(passedAt - t0) : 'never'}; exit ${code} after ${ms(total)} (teardown included)`);
}

/** The same conflist with the reference plugins swapped in. */
function referenceList(list: NetworkList, node: LabNode): NetworkList {
  return {
    ...list,
    plugins: list.plugins.map((p) => {
      if (p.type !== 'podnet-bridge') return p;
      const ipam = p.ipam as Record<string, unknown>;
      return { ...p, type: 'bridge', ipam: { ...ipam, type: 'host-local', dataDir: join(node.ipamDir, 'reference') } };
    }),
  };
}

async function parallelAdds(lab: Lab, label: string, listFor: (n: LabNode) => NetworkList): Promise<number[]> {
  const t0 = performance.now();
  const pods = await Promise.all(
    lab.nodes.flatMap((node) => Array.from({ length: PODS_PER_NODE }, (_, i) => lab.addPod(node, `${label}-${node.name}-${i}`, listFor(node)))),
  );
  const wall = performance.now() - t0;
  const times = pods.map((p: Pod) => p.addMs ?? NaN);
  console.log(`${label.padEnd(9)} ${pods.length} parallel ADDs: p50 ${ms(pct(times, 50))}  p95 ${ms(pct(times, 95))}  wall ${ms(wall)}`);
  await Promise.all(pods.map((p) => lab.delPod(p, listFor(lab.node(p.node)))));
  return [pct(times, 50), pct(times, 95), wall];
}

async function main(): Promise<void> {
  if (!isRoot || !hasBuild) {
    console.log('lab bench needs root and a build (npm run build): skipped');
    return;
  }
  upstreamCniBin(); // the lab chains the upstream portmap: throws naming scripts/peers.sh when not built
  await timeDemo();
  const lab = await Lab.create({ prefix: 'pbench', nodes: 3 });
  try {
    const lists = new Map<string, NetworkList>();
    for (const node of lab.nodes) lab.startRoutesync(node);
    for (const node of lab.nodes) lists.set(node.name, await lab.waitForConflist(node));
    const podnet = await parallelAdds(lab, 'podnet', (n) => lists.get(n.name)!);
    const reference = await parallelAdds(lab, 'reference', (n) => referenceList(lists.get(n.name)!, n));
    console.log(`ratio podnet/reference: ADD p50 ${(podnet[0]! / reference[0]!).toFixed(2)}×  p95 ${(podnet[1]! / reference[1]!).toFixed(2)}×  wall ${(podnet[2]! / reference[2]!).toFixed(2)}×  (target p50 ≤ 1.3×)`);
  } finally {
    await lab.destroy();
  }
}

await main();
