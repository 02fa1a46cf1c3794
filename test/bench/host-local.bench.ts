/**
 * host-local section of `npm run bench`: podnet-host-local (the built executable) against the
 * upstream reference host-local (the release scripts/peers.sh builds) and Debian 12's
 * /usr/lib/cni/host-local (1.1.1), runs interleaved so all see the same machine load.
 *   1. bare start-up: VERSION p50/p95
 *   2. ADD and DEL p50/p95 with 0, 100 and 250 reservations (a node's /24: what podnet really
 *      runs at) and 10,000 (a /16), written directly in the reference layout; podnet's one-off
 *      index migration runs (and is timed) before measuring
 *   3. the same for podnet without its index (the test build, PODNET_TEST_STORE_INDEX=off: every
 *      lookup by owner walks the files, as the reference does): what the index pays
 *   4. 100 ADD processes started at once, then 100 DELs: wall time
 * Figures only; nothing here asserts a time. HL_BENCH_RUNS sets the runs per figure (default 30).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST_BIN, DIST_TEST_BIN, debianCniBin } from '../helpers/env.js';
import { UPSTREAM_CNI_VERSION, upstreamCniBin } from '../helpers/peers.js';

const RUNS = Number(process.env.HL_BENCH_RUNS) || 30;
const SIZES = [0, 100, 250, 10_000];
const NET = 'phlbench';

interface Plugin {
  label: string;
  file: string;
  env?: Record<string, string>;
}

const REF_LABEL = `ref ${UPSTREAM_CNI_VERSION}`;
const DEBIAN_LABEL = 'Debian 1.1.1';
// Either reference missing fails the section, naming the command that provides it.
const plugins: Plugin[] = [
  { label: 'podnet', file: join(DIST_BIN, 'podnet-host-local') },
  { label: 'no index', file: join(DIST_TEST_BIN, 'podnet-host-local'), env: { PODNET_TEST_STORE_INDEX: 'off' } },
  { label: REF_LABEL, file: join(upstreamCniBin(), 'host-local') },
  { label: DEBIAN_LABEL, file: join(debianCniBin(), 'host-local') },
];
const W = 13;

const pct = (values: number[], p: number): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const f = (v: number) => `${v.toFixed(1)} ms`;
const stat = (v: number[]) => `p50 ${f(pct(v, 50)).padStart(8)}  p95 ${f(pct(v, 95)).padStart(8)}`;

// Debian's reference speaks up to 1.0.0. A /24 for the node-sized stores, a /16 for 10,000.
const config = (dataDir: string, size: number) =>
  JSON.stringify({ cniVersion: '1.0.0', name: NET, type: 'bridge', ipam: { type: 'host-local', dataDir, subnet: size > 250 ? '10.70.0.0/16' : '10.70.0.0/24' } });

const env = (p: Plugin, command: string, containerId: string) => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: containerId,
  CNI_NETNS: '/var/run/netns/phl-bench',
  CNI_IFNAME: 'eth0',
  CNI_PATH: upstreamCniBin(), // skel requires one; host-local execs nothing
  ...p.env,
});

/** Run once, return milliseconds from spawn to exit; throw on failure. */
function timed(p: Plugin, command: string, containerId: string, input: string): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(p.file, [], { env: env(p, command, containerId), input, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${p.label} ${command} ${containerId}: exit ${r.status}: ${r.stdout}${r.stderr}`);
  return ms;
}

/** `n` reservations written as the reference writes them: 10.70.0.2, 10.70.0.3, … */
function prepopulate(dataDir: string, n: number): void {
  const dir = join(dataDir, NET);
  mkdirSync(dir, { recursive: true });
  let last = '';
  for (let i = 0; i < n; i++) {
    const v = 2 + i;
    last = `10.70.${v >> 8}.${v & 255}`;
    writeFileSync(join(dir, last), `preset${i}\r\neth0`);
  }
  if (last) writeFileSync(join(dir, 'last_reserved_ip.0'), last);
}

function parallel(p: Plugin, input: string, command: string, n: number): Promise<number> {
  const t0 = performance.now();
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          const c = spawn(p.file, [], { env: env(p, command, `par${i}`), stdio: ['pipe', 'ignore', 'ignore'] });
          c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${p.label} ${command} par${i}: exit ${code}`))));
          c.stdin.end(input);
        }),
    ),
  ).then(() => performance.now() - t0);
}

async function main(): Promise<void> {
  if (!plugins.slice(0, 2).every((p) => existsSync(p.file))) {
    console.log(`podnet-host-local not built (${join(DIST_BIN, 'podnet-host-local')}): run npm run build`);
    process.exitCode = 1;
    return;
  }
  const root = mkdtempSync(join(tmpdir(), 'phl-bench-'));
  try {
    const dir = (p: Plugin, size: number) => join(root, `${p.label.replace(/\W/g, '')}-${size}`);
    const add = new Map<string, number[]>();
    const del = new Map<string, number[]>();
    const version = new Map<string, number[]>();
    const key = (p: Plugin, size: number) => `${p.label}/${size}`;
    const migration = new Map<string, number>();
    for (const p of plugins) {
      for (const size of SIZES) {
        prepopulate(dir(p, size), size);
        // First call on a store the reference made: podnet builds its index (timed, once).
        const input = config(dir(p, size), size);
        migration.set(key(p, size), timed(p, 'ADD', 'warm', input));
        timed(p, 'DEL', 'warm', input);
      }
    }

    for (let i = 0; i < RUNS; i++) {
      for (const p of plugins) {
        (version.get(p.label) ?? version.set(p.label, []).get(p.label))?.push(timed(p, 'VERSION', 'v', ''));
        for (const size of SIZES) {
          const input = config(dir(p, size), size);
          const k = key(p, size);
          (add.get(k) ?? add.set(k, []).get(k))?.push(timed(p, 'ADD', `r${i}`, input));
          (del.get(k) ?? del.set(k, []).get(k))?.push(timed(p, 'DEL', `r${i}`, input));
        }
      }
    }

    console.log(`${RUNS} runs each, interleaved; reservations preset in the reference layout (/24 up to 250, /16 for 10,000)`);
    console.log(`(load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} CPUs)\n`);
    for (const p of plugins) console.log(`${p.label.padEnd(W)} VERSION (bare start-up)        ${stat(version.get(p.label) ?? [])}`);
    for (const size of SIZES) {
      console.log('');
      for (const p of plugins) {
        const k = key(p, size);
        console.log(`${p.label.padEnd(W)} ADD, ${String(size).padStart(5)} reservations   ${stat(add.get(k) ?? [])}   DEL ${stat(del.get(k) ?? [])}`);
      }
    }
    console.log('\nwhat the index pays (p50, no index − index; positive: the index saves that much):');
    for (const size of SIZES) {
      const a = (l: string) => pct(add.get(`${l}/${size}`) ?? [], 50);
      const d = (l: string) => pct(del.get(`${l}/${size}`) ?? [], 50);
      console.log(`  ${String(size).padStart(5)} reservations: ADD ${f(a('no index') - a('podnet')).padStart(9)}   DEL ${f(d('no index') - d('podnet')).padStart(9)}`);
    }
    console.log(`podnet index migration of 10,000 reference reservations (first ADD): ${f(migration.get(`podnet/10000`) ?? Number.NaN)}`);
    const r = (l: string, size: number) => (pct(add.get(`${l}/${size}`) ?? [], 50) / pct(add.get(`${REF_LABEL}/${size}`) ?? [], 50)).toFixed(2);
    for (const l of ['podnet', DEBIAN_LABEL]) console.log(`${l}/${REF_LABEL} ADD p50: ${SIZES.map((size) => `${size}: ${r(l, size)}×`).join('  ')}`);

    console.log('');
    for (const p of plugins.filter((x) => x.label !== 'no index')) {
      const input = config(join(root, `${p.label}-parallel`), 10_000);
      const addMs = await parallel(p, input, 'ADD', 100);
      const delMs = await parallel(p, input, 'DEL', 100);
      console.log(`${p.label.padEnd(W)} 100 ADDs at once: wall ${f(addMs)}   100 DELs at once: wall ${f(delMs)}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.log(`host-local bench failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
