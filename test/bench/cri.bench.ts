/**
 * CRI section of `npm run bench` (root): pod network set-up and teardown through containerd's
 * CRI plugin, the path kubelet uses — RunPodSandbox (sandbox container + CNI ADD of the chain) and
 * StopPodSandbox (CNI DEL), each timed around one `crictl runp` / `crictl stopp`, several pods at
 * once. podnet (podnet-bridge + podnet-host-local) against the reference bridge + host-local of
 * upstream v1.10 (Debian's when the peer is not built), each on a fresh private containerd of the
 * same release with the same conflist (routesync's, plugin types swapped) and the same portmap.
 * Prints figures; asserts nothing.
 */
import { existsSync } from 'node:fs';
import { CriLab, type StockPlugins } from '../e2e/clients/cri-lab.js';
import { CONTAINERD_16, type CriRuntime, containerd2 } from '../e2e/clients/cri.js';
import { isRoot } from '../helpers/env.js';
import { peerDir } from '../helpers/peers.js';

const AT_ONCE = 8;
const ROUNDS = 3;

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
const ms = (v: number) => `${v.toFixed(0)} ms`;

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await f();
  return [v, performance.now() - t0];
}

async function measure(runtime: CriRuntime, stock: StockPlugins, plugins: 'podnet' | 'reference'): Promise<void> {
  const lab = await CriLab.create({ runtime, stock, plugins, prefix: 'pcrb' });
  try {
    const run: number[] = [];
    const stop: number[] = [];
    const runWall: number[] = [];
    const stopWall: number[] = [];
    // One pod first, so image and bridge creation are not in the figures.
    const warm = await lab.cri.runPod({ name: 'warm' });
    await lab.cri.crictl(['stopp', warm]);
    await lab.cri.crictl(['rmp', warm]);
    for (let round = 0; round < ROUNDS; round++) {
      const [ids, rw] = await timed(() =>
        Promise.all(
          Array.from({ length: AT_ONCE }, async (_, i) => {
            const config = lab.cri.podConfig({ name: `b${round}-${i}` });
            const [r, t] = await timed(() => lab.cri.crictl(['runp', config]));
            run.push(t);
            return r.stdout.trim();
          }),
        ),
      );
      runWall.push(rw);
      const [, sw] = await timed(() =>
        Promise.all(
          ids.map(async (id) => {
            const [, t] = await timed(() => lab.cri.crictl(['stopp', id]));
            stop.push(t);
          }),
        ),
      );
      stopWall.push(sw);
      await Promise.all(ids.map((id) => lab.cri.crictl(['rmp', id])));
    }
    const label = `${runtime.name} ${plugins.padEnd(9)}`;
    console.log(
      `${label} RunPodSandbox ×${AT_ONCE} at once: p50 ${ms(pct(run, 50))}  p95 ${ms(pct(run, 95))}  wall p50 ${ms(pct(runWall, 50))}` +
        `   StopPodSandbox: p50 ${ms(pct(stop, 50))}  p95 ${ms(pct(stop, 95))}  wall p50 ${ms(pct(stopWall, 50))}  (${run.length} pods)`,
    );
  } finally {
    await lab.destroy();
  }
}

async function main(): Promise<number> {
  if (!isRoot) {
    console.log('skipped: the CRI bench needs root (network namespaces, containerd)');
    return 0;
  }
  let stock: StockPlugins = 'v1.10';
  try {
    peerDir('cni-plugins');
  } catch (e) {
    stock = 'debian';
    console.log(`reference plugins: Debian's (${(e as Error).message})`);
  }
  const runtimes: CriRuntime[] = [CONTAINERD_16];
  try {
    runtimes.push(containerd2());
  } catch (e) {
    console.log(`containerd 2 left out: ${(e as Error).message}`);
  }
  if (!existsSync(CONTAINERD_16.containerd)) runtimes.shift();
  console.log(`stock portmap + reference plugins: ${stock}; ${AT_ONCE} pods at once, ${ROUNDS} rounds; times are whole crictl calls (a Go process start included)`);
  for (const runtime of runtimes) {
    for (const plugins of ['podnet', 'reference'] as const) await measure(runtime, stock, plugins);
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  },
);
