import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';
import { makeNode, type FakeNode } from '../helpers/fake-apiserver.js';
import { REPO_ROOT } from '../helpers/env.js';
import { RoutesyncLab, routesyncCommand } from '../helpers/routesync-lab.js';

/**
 * podnet-routesync at 5,000 Nodes (root only: it runs in a namespace lab).
 *
 *  - initial sync: the daemon executable starts in node1's namespace against the fake API server
 *    holding 5,001 Nodes; measured from spawn to the log line saying 5,000 routes are programmed
 *    (then counted in the kernel), plus the daemon's RSS (VmRSS after sync and after the changes,
 *    VmHWM = peak);
 *  - one Node change → route updated: the InternalIP of one Node changes through the API; measured
 *    from the API write to `ip monitor route` in node1 showing the new route; p50/p90 of 21.
 *
 * Run twice: as deployed (NODE_OPTIONS from the DaemonSet in kind/podnet.yaml, which caps the V8
 * heap) and as the bare executable. Targets (printed, never asserted): 5,000 Nodes programmed
 * < 3 s, change applied < 200 ms, RSS < 150 MB.
 */
const PEERS = 5000;
const CHANGES = 21;

function peer(i: number, ipOverride?: string): FakeNode {
  const hi = 1 + (i >> 8);
  const lo = i & 255;
  return makeNode(`peer-${i}`, { podCIDRs: [`10.${hi}.${lo}.0/24`], ips: [ipOverride ?? `172.18.${hi}.${lo}`], created: '2024-02-01T00:00:00Z' });
}

function procStatus(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

/** NODE_OPTIONS of the routesync container in kind/podnet.yaml. */
function deployedNodeOptions(): string {
  const docs = parseAllDocuments(readFileSync(join(REPO_ROOT, 'kind', 'podnet.yaml'), 'utf8')).map((d) => d.toJS());
  const ds = docs.find((d) => d.kind === 'DaemonSet');
  const c = ds.spec.template.spec.containers.find((x: { name: string }) => x.name === 'routesync');
  return c.env.find((e: { name: string }) => e.name === 'NODE_OPTIONS')?.value ?? '';
}

const f = (n: number) => n.toFixed(0);

async function measure(label: string, nodeOptions: string): Promise<void> {
  console.log(`\n### ${label}${nodeOptions ? ` (NODE_OPTIONS="${nodeOptions}")` : ' (no NODE_OPTIONS)'}`);
  const lab = await RoutesyncLab.create({ nodes: 1, prefix: 'prs' });
  try {
    const nodes: FakeNode[] = [lab.nodeObject(0)];
    for (let i = 1; i <= PEERS; i += 1) nodes.push(peer(i));
    await lab.api.seed(nodes);

    const spawnAt = Date.now();
    const d = await lab.daemon(0, ['--kubeconfig', lab.kubeconfig, '--cni-conf-dir', join(lab.dir, 'net.d'), '--metrics-addr=', '--resync-interval', '5m'], { NODE_OPTIONS: nodeOptions });
    const synced = await d.waitLog((l) => l.msg === 'node source synced', 60_000, 'sync');
    const done = await d.waitLog((l) => l.msg === 'routes changed' && Number(l.programmed) >= PEERS, 60_000, 'routes programmed');
    const pass = await d.waitLog((l) => l.msg === 'reconciled' && Number(l.routes) >= PEERS, 10_000, 'pass log');
    // Log lines carry the wall-clock time they reached this process (`at`).
    const initialMs = (done.at as number) - spawnAt;
    const listMs = (synced.at as number) - spawnAt;
    const count = (await lab.nodes[0]!.ns.exec('ip', ['-N', 'route', 'show', 'proto', '112'])).stdout.trim().split('\n').length;
    const memAfterSync = procStatus(d.pid);

    // One Node change at a time → time until node1's kernel has the new route.
    const mon = spawn('ip', ['netns', 'exec', lab.nodes[0]!.ns.name, 'ip', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const waiters = new Map<string, (t: number) => void>();
    createInterface({ input: mon.stdout }).on('line', (line) => {
      const now = performance.now();
      for (const [needle, resolve] of waiters) {
        if (line.includes(needle)) {
          waiters.delete(needle);
          resolve(now);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    const lat: number[] = [];
    for (let k = 0; k < CHANGES; k += 1) {
      const i = 1 + ((k * 211) % PEERS);
      const newIp = `172.18.${200 + (k >> 8)}.${(k & 255) + 1}`;
      const dst = `10.${1 + (i >> 8)}.${i & 255}.0/24`;
      const seen = new Promise<number>((resolve, reject) => {
        waiters.set(`${dst} via ${newIp}`, resolve);
        setTimeout(() => reject(new Error(`no route update for ${dst} within 10 s`)), 10_000).unref();
      });
      const t = performance.now();
      await lab.api.upsert(peer(i, newIp));
      lat.push((await seen) - t);
      await new Promise((r) => setTimeout(r, 50));
    }
    mon.kill();
    const memEnd = procStatus(d.pid);
    const changePasses = d.logs.filter((l) => l.msg === 'reconciled' && l.full === false);
    const passMs = changePasses.map((l) => Number(l.durationMs));

    console.log(`nodes: ${PEERS + 1} (this node + ${PEERS} peers); kernel routes with proto 112 after sync: ${count}`);
    console.log(`initial sync: full list ${f(listMs)} ms after spawn, ${PEERS} routes programmed ${f(initialMs)} ms after spawn (target < 3000 ms)`);
    console.log(`  first pass ${f(Number(pass.durationMs))} ms by stage: ${Object.entries(pass.stagesMs as Record<string, number>).map(([k, v]) => `${k} ${f(v)}`).join(', ')}`);
    console.log(`one Node change → route updated: p50 ${f(pct(lat, 50))} ms, p90 ${f(pct(lat, 90))} ms, max ${f(Math.max(...lat))} ms over ${CHANGES} changes (target < 200 ms); daemon pass p50 ${f(pct(passMs, 50))} ms`);
    console.log(`daemon RSS: ${f(memAfterSync.rss)} MB after sync, ${f(memEnd.rss)} MB after the changes, peak ${f(memEnd.hwm)} MB (target < 150 MB); V8 heap used ${changePasses.at(-1)?.heapMB} MB`);
    d.child.kill('SIGTERM');
    const stopT = performance.now();
    const { code } = await d.exited;
    const left = (await execa('ip', ['-n', lab.nodes[0]!.ns.name, '-N', 'route', 'show', 'proto', '112'])).stdout.trim().split('\n').length;
    console.log(`SIGTERM → exit ${code} in ${f(performance.now() - stopT)} ms; routes left in place: ${left}`);
  } finally {
    await lab.destroy();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('skipped: needs root (network namespaces)');
    return;
  }
  console.log(`daemon: ${(await routesyncCommand()).join(' ')}`);
  await measure('as deployed', deployedNodeOptions());
  await measure('bare executable', '');
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});
