/**
 * host-local section of `npm run bench`: podnet-host-local (the built executable) against the
 * upstream reference host-local (the release scripts/peers.sh builds) and Debian 12's
 * /usr/lib/cni/host-local (1.1.1), runs interleaved so all see the same machine load.
 *   1. bare start-up: VERSION p50/p95
 *   2. ADD and DEL p50/p95 on an empty store (each ADD is followed by its DEL)
 *   3. ADD and DEL p50/p95 with 10,000 reservations already on disk, written directly in the
 *      reference layout; podnet's one-off index migration runs (and is timed) before measuring
 *   4. 100 ADD processes started at once, then 100 DELs: wall time
 * Figures only; nothing here asserts a time. HL_BENCH_RUNS sets the runs per figure (default 60).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST_BIN, debianCniBin } from '../helpers/env.js';
import { UPSTREAM_CNI_VERSION, upstreamCniBin } from '../helpers/peers.js';

const RUNS = Number(process.env.HL_BENCH_RUNS) || 60;
const PRESET = 10_000;
const NET = 'phlbench';

interface Plugin {
  label: string;
  file: string;
}

const REF_LABEL = `ref ${UPSTREAM_CNI_VERSION}`;
// Either reference missing fails the section, naming the command that provides it.
const plugins: Plugin[] = [
  { label: 'podnet', file: join(DIST_BIN, 'podnet-host-local') },
  { label: REF_LABEL, file: join(upstreamCniBin(), 'host-local') },
  { label: 'Debian 1.1.1', file: join(debianCniBin(), 'host-local') },
];
const W = 13;

const pct = (values: number[], p: number): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const f = (v: number) => `${v.toFixed(1)} ms`;
const stat = (v: number[]) => `p50 ${f(pct(v, 50)).padStart(8)}  p95 ${f(pct(v, 95)).padStart(8)}`;

// Debian's reference speaks up to 1.0.0.
const config = (dataDir: string) => JSON.stringify({ cniVersion: '1.0.0', name: NET, type: 'bridge', ipam: { type: 'host-local', dataDir, subnet: '10.70.0.0/16' } });

const env = (command: string, containerId: string) => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: containerId,
  CNI_NETNS: '/var/run/netns/phl-bench',
  CNI_IFNAME: 'eth0',
  CNI_PATH: upstreamCniBin(), // skel requires one; host-local execs nothing
});

/** Run once, return milliseconds from spawn to exit; throw on failure. */
function timed(file: string, command: string, containerId: string, input: string): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, [], { env: env(command, containerId), input, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${file} ${command} ${containerId}: exit ${r.status}: ${r.stdout}${r.stderr}`);
  return ms;
}

/** 10,000 reservations written as the reference writes them: 10.70.0.2 … 10.70.39.17. */
function prepopulate(dataDir: string): void {
  const dir = join(dataDir, NET);
  mkdirSync(dir, { recursive: true });
  let last = '';
  for (let i = 0; i < PRESET; i++) {
    const v = 2 + i;
    last = `10.70.${v >> 8}.${v & 255}`;
    writeFileSync(join(dir, last), `preset${i}\r\neth0`);
  }
  writeFileSync(join(dir, 'last_reserved_ip.0'), last);
}

function addDel(p: Plugin, input: string, tag: string, add: number[], del: number[], i: number): void {
  add.push(timed(p.file, 'ADD', `${tag}${i}`, input));
  del.push(timed(p.file, 'DEL', `${tag}${i}`, input));
}

function parallel(p: Plugin, input: string, command: string, n: number): Promise<number> {
  const t0 = performance.now();
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          const c = spawn(p.file, [], { env: env(command, `par${i}`), stdio: ['pipe', 'ignore', 'ignore'] });
          c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${p.label} ${command} par${i}: exit ${code}`))));
          c.stdin.end(input);
        }),
    ),
  ).then(() => performance.now() - t0);
}

async function main(): Promise<void> {
  if (!existsSync(plugins[0]!.file)) {
    console.log(`podnet-host-local not built (${join(DIST_BIN, 'podnet-host-local')}): run npm run build`);
    process.exitCode = 1;
    return;
  }
  const root = mkdtempSync(join(tmpdir(), 'phl-bench-'));
  try {
    const dirs = new Map(plugins.map((p) => [p.label, { empty: join(root, `${p.label}-empty`), full: join(root, `${p.label}-full`) }]));
    const res = new Map(plugins.map((p) => [p.label, { version: [] as number[], add: [] as number[], del: [] as number[], add10k: [] as number[], del10k: [] as number[] }]));

    for (const p of plugins) prepopulate(dirs.get(p.label)?.full ?? '');
    // podnet's first call on a store the reference made builds its index: once, timed.
    const pod = plugins[0] as Plugin;
    const migrateInput = config(dirs.get('podnet')?.full ?? '');
    const migration = timed(pod.file, 'ADD', 'migrate', migrateInput);
    timed(pod.file, 'DEL', 'migrate', migrateInput);
    for (const ref of plugins.slice(1)) {
      const i = config(dirs.get(ref.label)?.full ?? '');
      timed(ref.file, 'ADD', 'warm', i);
      timed(ref.file, 'DEL', 'warm', i);
    }

    for (let i = 0; i < RUNS; i++) {
      for (const p of plugins) {
        const r = res.get(p.label);
        const d = dirs.get(p.label);
        if (!r || !d) continue;
        r.version.push(timed(p.file, 'VERSION', 'v', ''));
        addDel(p, config(d.empty), 'e', r.add, r.del, i);
        addDel(p, config(d.full), 'f', r.add10k, r.del10k, i);
      }
    }

    console.log(`${RUNS} runs each, interleaved; ${PRESET} reservations preset for the "10k" rows\n`);
    for (const p of plugins) {
      const r = res.get(p.label);
      if (!r) continue;
      console.log(`${p.label.padEnd(W)} VERSION (bare start-up)  ${stat(r.version)}`);
      console.log(`${p.label.padEnd(W)} ADD, empty store         ${stat(r.add)}`);
      console.log(`${p.label.padEnd(W)} DEL, empty store         ${stat(r.del)}`);
      console.log(`${p.label.padEnd(W)} ADD, 10k reservations    ${stat(r.add10k)}`);
      console.log(`${p.label.padEnd(W)} DEL, 10k reservations    ${stat(r.del10k)}`);
    }
    console.log(`\npodnet index migration of ${PRESET} reference reservations (first ADD): ${f(migration)}`);
    const ratio = (a: number[], b: number[]) => (pct(a, 50) / pct(b, 50)).toFixed(2);
    for (const p of plugins) {
      const r = res.get(p.label);
      if (!r) continue;
      console.log(
        `${p.label.padEnd(W)} ADD p50 10k/empty ${ratio(r.add10k, r.add)}x   DEL p50 10k/empty ${ratio(r.del10k, r.del)}x   ADD p50 - VERSION p50 ${f(pct(r.add, 50) - pct(r.version, 50))}`,
      );
    }
    const b = res.get(REF_LABEL);
    for (const label of ['podnet', 'Debian 1.1.1']) {
      const a = res.get(label);
      if (!a || !b) continue;
      console.log(
        `${label}/${REF_LABEL} p50: VERSION ${ratio(a.version, b.version)}x  ADD ${ratio(a.add, b.add)}x  ADD 10k ${ratio(a.add10k, b.add10k)}x  DEL 10k ${ratio(a.del10k, b.del10k)}x`,
      );
    }

    console.log('');
    for (const p of plugins) {
      const dir = join(root, `${p.label}-parallel`);
      const input = config(dir);
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
