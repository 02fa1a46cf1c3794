/**
 * Lab section of `npm run bench` (root): figures for podnet on the 3-node namespace lab.
 *  1. `npm run demo`: time from start to "every check passed" (all pods reachable), and total.
 *  2. 30 pods per node added in parallel (90 ADDs at once): conflist ADD p50/p95 and wall time,
 *     podnet versus the reference bridge + host-local on the same lab, same conflist with only
 *     the plugin types (and the IPAM store dir) swapped, in one run: LAB_ROUNDS rounds (3), the
 *     side that goes first alternating, each figure the median of its rounds (one burst of 90 on
 *     2 cores moves by a third from round to round).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT, hasBuild, isRoot } from '../helpers/env.js';
import { upstreamCniBin } from '../helpers/peers.js';
import { Lab, type LabNode, type Pod } from '../e2e/lab/lab.js';
import type { NetworkList } from '../helpers/cni-runtime.js';
import { machineCpu } from './clock.js';

const PODS_PER_NODE = 30;
const LAB_ROUNDS = Number(process.env.PBR_BENCH_LAB_ROUNDS ?? 3);

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

async function parallelAdds(lab: Lab, label: string, round: number, listFor: (n: LabNode) => NetworkList): Promise<number[]> {
  const t0 = performance.now();
  const c0 = machineCpu();
  const pods = await Promise.all(
    lab.nodes.flatMap((node) => Array.from({ length: PODS_PER_NODE }, (_, i) => lab.addPod(node, `${label}-${round}-${node.name}-${i}`, listFor(node)))),
  );
  const wall = performance.now() - t0;
  const c1 = machineCpu();
  const times = pods.map((p: Pod) => p.addMs ?? NaN);
  // The machine's CPU time during the burst, everything included.
  const busyMs = c1.busyMs - c0.busyMs;
  const usage = `machine CPU ${(busyMs / 1000).toFixed(2)} s (${(busyMs / pods.length).toFixed(0)} ms per ADD), ${((100 * busyMs) / (c1.totalMs - c0.totalMs)).toFixed(0)}% busy`;
  console.log(`  round ${round + 1}: ${label.padEnd(9)} ${pods.length} parallel ADDs: p50 ${ms(pct(times, 50))}  p95 ${ms(pct(times, 95))}  wall ${ms(wall)}; ${usage}`);
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
    const sides = {
      podnet: { listFor: (n: LabNode) => lists.get(n.name)!, rounds: [] as number[][] },
      reference: { listFor: (n: LabNode) => referenceList(lists.get(n.name)!, n), rounds: [] as number[][] },
    };
    for (let round = 0; round < LAB_ROUNDS; round++) {
      for (const label of round % 2 === 0 ? (['podnet', 'reference'] as const) : (['reference', 'podnet'] as const)) {
        sides[label].rounds.push(await parallelAdds(lab, label, round, sides[label].listFor));
      }
    }
    const med = (label: keyof typeof sides, i: number) => pct(sides[label].rounds.map((r) => r[i] as number), 50);
    for (const label of ['podnet', 'reference'] as const) {
      console.log(`${label.padEnd(9)} median of ${LAB_ROUNDS} rounds: ADD p50 ${ms(med(label, 0))}  p95 ${ms(med(label, 1))}  wall ${ms(med(label, 2))}`);
    }
    const ratio = (i: number) => (med('podnet', i) / med('reference', i)).toFixed(2);
    console.log(`ratio podnet/reference: ADD p50 ${ratio(0)}×  p95 ${ratio(1)}×  wall ${ratio(2)}×  (issue 11's goal: p50 ≤ 1.5×)`);
  } finally {
    await lab.destroy();
  }
}

await main();
