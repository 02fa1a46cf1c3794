// Bridge plugin: the upstream reference (bridge + host-local of the release scripts/peers.sh
// builds, the yardstick), Debian 12's (/usr/lib/cni, 1.1.1: what a Debian node runs) and podnet
// (dist/bin podnet-bridge + podnet-host-local) side by side, same config (isGateway, ipMasq,
// cniVersion 1.0.0, the highest Debian's speak), inside a node network namespace, a fresh pod
// namespace per ADD. Prints p50/p95 of ADD and DEL, the ratios to the upstream reference, and
// the wall time of 40 parallel ADDs (and DELs), the median of PBR_BENCH_PAR_ROUNDS rounds (3). Measures, never asserts.
// PBR_BENCH_ALT=/path/to/another/podnet adds that build as "podnet (alt)", to compare two
// builds of podnet within one run (the machine is shared: runs apart are not comparable).
//
// The floor: dist/bench/podnet-empty, an empty single executable built exactly as podnet is (same
// Node, same SEA options), run in the same wrapper, interleaved with the others. What podnet costs
// beyond it is podnet's own: add_excess = (podnet ADD p50 − empty p50) / reference ADD p50, and
// par40_excess the same for 40 at once (wall). CPU time (user + sys of the plugin and everything
// it runs, from this process's reaped-children counters) is printed per ADD and per DEL.
//
// The outer process makes the node namespace and re-runs this script inside it (`ip netns exec`,
// which also remounts /sys as a runtime's node has it), so plugin spawns are timed without any
// wrapper process.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST_BENCH, DIST_BIN, DIST_TEST_BIN, debianCniBin } from '../helpers/env.js';
import { UPSTREAM_CNI_VERSION, upstreamCniBin } from '../helpers/peers.js';
import { PLUGIN_NAMES } from '../../plugins/registry.js';
import { CLK_TCK, machineCpu } from './clock.js';

const DIST = join(DIST_BIN, 'podnet');
const EMPTY = join(DIST_BENCH, 'podnet-empty');
const REF_LABEL = `ref ${UPSTREAM_CNI_VERSION}`;
const DEBIAN_LABEL = 'Debian 1.1.1';
const ITER = Number(process.env.PBR_BENCH_ITER ?? 30);
const PAR = 40;
const PAR_ROUNDS = Number(process.env.PBR_BENCH_PAR_ROUNDS ?? 3);

function sh(file: string, args: string[], input = ''): string {
  const r = spawnSync(file, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

if (process.argv[2] !== '--inner') {
  if (process.getuid?.() !== 0) {
    console.log('bridge bench: needs root (network namespaces); skipped');
    process.exit(0);
  }
  const node = `pbrbench${process.pid}`;
  sh('ip', ['netns', 'add', node]);
  try {
    sh('ip', ['-n', node, 'link', 'set', 'lo', 'up']);
    const r = spawnSync('ip', ['netns', 'exec', node, process.execPath, process.argv[1] as string, '--inner'], {
      stdio: 'inherit',
      env: { ...process.env, PBR_BENCH_TAG: String(process.pid) },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    // Pod namespaces the inner run could not remove (it removes its own on success).
    for (const ns of sh('ip', ['netns', 'list']).split('\n')) {
      const name = ns.split(' ')[0];
      if (name?.startsWith(`pbrbp${process.pid}x`)) spawnSync('ip', ['netns', 'del', name]);
    }
    spawnSync('ip', ['netns', 'del', node]);
  }
} else {
  inner().then(
    () => {},
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}

interface Impl {
  label: string;
  file: string;
  conf: Record<string, unknown>;
  env: Record<string, string>;
}

async function inner(): Promise<void> {
  // Both references are found (or the bench fails naming the command) before anything is made.
  const [upstream, debian] = [upstreamCniBin(), debianCniBin()];
  const work = mkdtempSync(join(tmpdir(), 'pbr-bench-'));
  const bin = join(work, 'bin');
  const debBin = join(work, 'bin-debian'); // bridge execs its IPAM by name from CNI_PATH
  mkdirSync(bin);
  mkdirSync(debBin);
  for (const n of ['bridge', 'host-local']) symlinkSync(join(upstream, n), join(bin, n));
  for (const n of ['bridge', 'host-local']) symlinkSync(join(debian, n), join(debBin, n));
  for (const n of PLUGIN_NAMES) symlinkSync(DIST, join(bin, n));
  const conf = (type: string, ipam: string, br: string, net: string, subnet: string) => ({
    cniVersion: '1.0.0',
    name: net,
    type,
    bridge: br,
    isGateway: true,
    ipMasq: true,
    ipam: { type: ipam, dataDir: join(work, 'ipam'), ranges: [[{ subnet }]] },
  });
  const alt = process.env.PBR_BENCH_ALT;
  const altBin = join(work, 'bin-alt');
  if (alt) {
    mkdirSync(altBin);
    for (const n of PLUGIN_NAMES) symlinkSync(alt, join(altBin, n));
  }
  const baseEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_PATH: bin, CNI_IFNAME: 'eth0' };
  const impls: Impl[] = [
    { label: REF_LABEL, file: join(bin, 'bridge'), conf: conf('bridge', 'host-local', 'pbrbref', 'pbrbref', '10.201.0.0/16'), env: baseEnv },
    {
      label: DEBIAN_LABEL,
      file: join(debBin, 'bridge'),
      conf: conf('bridge', 'host-local', 'pbrbdeb', 'pbrbdeb', '10.205.0.0/16'),
      env: { ...baseEnv, CNI_PATH: debBin },
    },
    { label: 'podnet', file: join(bin, 'podnet-bridge'), conf: conf('podnet-bridge', 'podnet-host-local', 'pbrbpod', 'pbrbpod', '10.202.0.0/16'), env: baseEnv },
    {
      label: 'podnet + ref IPAM',
      file: join(bin, 'podnet-bridge'),
      conf: conf('podnet-bridge', 'host-local', 'pbrbpor', 'pbrbpor', '10.204.0.0/16'),
      env: baseEnv,
    },
    {
      // The test build's bridge (only it reads PODNET_TEST_IPAM_EXEC), exec'ing the shipped IPAM.
      label: 'podnet, IPAM exec',
      file: join(DIST_TEST_BIN, 'podnet-bridge'),
      conf: conf('podnet-bridge', 'podnet-host-local', 'pbrbpox', 'pbrbpox', '10.203.0.0/16'),
      env: { ...baseEnv, PODNET_TEST_IPAM_EXEC: '1' },
    },
  ];
  if (alt) {
    impls.push({
      label: 'podnet (alt)',
      file: join(altBin, 'podnet-bridge'),
      conf: conf('podnet-bridge', 'podnet-host-local', 'pbrbalt', 'pbrbalt', '10.206.0.0/16'),
      env: { ...baseEnv, CNI_PATH: altBin },
    });
  }
  let podN = 0;
  const pods: string[] = [];
  const newPod = (): string => {
    podN += 1;
    const name = `pbrbp${process.env.PBR_BENCH_TAG ?? process.pid}x${podN}`;
    sh('ip', ['netns', 'add', name]);
    pods.push(name);
    return `/var/run/netns/${name}`;
  };
  /** CPU time (ms) of this process's reaped children, user + sys (/proc/self/stat cutime, cstime). */
  const childCpuMs = (): number => {
    const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK;
  };
  const cpu: Record<string, number> = {};
  const invoke = (impl: Impl, cmd: string, id: string, netns: string, record = true): number => {
    const env = { ...impl.env, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: netns };
    const c0 = childCpuMs();
    const t0 = process.hrtime.bigint();
    const r = spawnSync(impl.file, [], { input: JSON.stringify(impl.conf), env, encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${impl.label} ${cmd} ${id} failed: ${r.stdout} ${r.stderr}`);
    if (record) cpu[`${impl.label} ${cmd}`] = (cpu[`${impl.label} ${cmd}`] ?? 0) + childCpuMs() - c0;
    return ms;
  };
  // The floor, in the same wrapper: same env and stdin as podnet's ADD.
  const podnetImpl = impls.find((i) => i.label === 'podnet') as Impl;
  const floor: Impl = { label: 'empty executable', file: EMPTY, conf: podnetImpl.conf, env: baseEnv };
  const hasFloor = existsSync(EMPTY);
  const q = (xs: number[], p: number): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
  };

  try {
    // Process start alone (VERSION), for scale.
    const starters = [[REF_LABEL, join(bin, 'bridge')], [DEBIAN_LABEL, join(debBin, 'bridge')], ['podnet', join(bin, 'podnet-bridge')]] as const;
    const start: Record<string, number[]> = Object.fromEntries(starters.map(([l]) => [l, []]));
    for (let i = 0; i < 15; i++) {
      for (const [label, file] of starters) {
        const t0 = process.hrtime.bigint();
        spawnSync(file, [], { env: { CNI_COMMAND: 'VERSION' } });
        start[label]?.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }

    // Sequential ADD then DEL, interleaved between implementations (and the floor); 3 warm-up
    // rounds first.
    const add: Record<string, number[]> = {};
    const del: Record<string, number[]> = {};
    const made: { impl: Impl; id: string; netns: string }[] = [];
    for (let i = -3; i < ITER; i++) {
      for (const impl of impls) {
        const netns = newPod();
        const id = `pbrb-${impl.label.replace(/\W/g, '')}-${i + 3}`;
        const ms = invoke(impl, 'ADD', id, netns, i >= 0);
        if (i >= 0) (add[impl.label] ??= []).push(ms);
        made.push({ impl, id, netns });
        if (hasFloor && impl === podnetImpl) {
          const floorMs = invoke(floor, 'ADD', id, netns, i >= 0);
          if (i >= 0) (add[floor.label] ??= []).push(floorMs);
        }
      }
    }
    for (const [i, m] of made.entries()) {
      const ms = invoke(m.impl, 'DEL', m.id, m.netns, i >= 3 * impls.length);
      if (i >= 3 * impls.length) (del[m.impl.label] ??= []).push(ms);
    }

    const row = (label: string, xs: number[] | undefined, ref: number[] | undefined) => {
      const p50 = q(xs ?? [], 50);
      const ratio = ref && label !== REF_LABEL ? `  ${(p50 / q(ref, 50)).toFixed(2)}× ${REF_LABEL}` : '';
      return `  ${label.padEnd(20)} p50 ${p50.toFixed(1).padStart(6)} ms   p95 ${q(xs ?? [], 95).toFixed(1).padStart(6)} ms${ratio}`;
    };
    console.log(`process start (VERSION), ${start[REF_LABEL]?.length} runs:`);
    for (const [l] of starters) console.log(row(l, start[l], start[REF_LABEL]));
    const cpuText = (label: string, cmd: string, n: number) => {
      const total = cpu[`${label} ${cmd}`];
      return total === undefined ? '' : `   cpu ${(total / n).toFixed(1).padStart(5)} ms`;
    };
    console.log(`ADD, ${ITER} runs each (fresh pod netns, ipMasq, isGateway, cniVersion 1.0.0); cpu = mean user+sys:`);
    for (const impl of [...impls, ...(hasFloor ? [floor] : [])]) console.log(row(impl.label, add[impl.label], add[REF_LABEL]) + cpuText(impl.label, 'ADD', ITER));
    console.log(`DEL, ${ITER} runs each:`);
    for (const impl of impls) console.log(row(impl.label, del[impl.label], del[REF_LABEL]) + cpuText(impl.label, 'DEL', ITER));

    // 40 parallel ADDs, then 40 parallel DELs, each implementation on its own (fresh) bridge; the
    // whole set PAR_ROUNDS times, each round in another order, and the median of the rounds taken
    // (one burst on a shared 2-core machine moves by a fifth from run to run).
    console.log(`${PAR} parallel ADDs / DELs (wall time, median of ${PAR_ROUNDS} rounds, range in brackets; cpu = the machine's busy time per pod, median):`);
    const bursts = impls
      .filter((i) => i.label !== 'podnet, IPAM exec')
      .map((impl) => ({
        label: impl.label,
        par: { ...impl, conf: { ...impl.conf, bridge: `${String(impl.conf.bridge)}p`, name: `${String(impl.conf.name)}p` } } as Impl,
        jobs: Array.from({ length: PAR }, (_, i) => ({ id: `pbrbpar${i}`, netns: newPod() })),
        add: [] as number[],
        del: [] as number[],
      }));
    /** Wall time of one burst: `impl` for every job at once, `cmd` each; the machine's CPU per job into `cpuPer`. */
    const cpuPer: Record<string, number[]> = {};
    const burst = (impl: Impl, jobs: readonly { id: string; netns: string }[], cmd: string) => {
      const t0 = process.hrtime.bigint();
      const c0 = machineCpu().busyMs;
      return Promise.all(
        jobs.map(
          (j) =>
            new Promise<void>((res, rej) => {
              const c = spawn(impl.file, [], { env: { ...impl.env, CNI_COMMAND: cmd, CNI_CONTAINERID: j.id, CNI_NETNS: j.netns } });
              let out = '';
              c.stdout.on('data', (buf: Buffer) => {
                out += buf.toString();
              });
              c.on('close', (code) => (code === 0 ? res() : rej(new Error(`${impl.label} parallel ${cmd} exited ${code}: ${out}`))));
              c.stdin.end(JSON.stringify(impl.conf));
            }),
        ),
      ).then(() => {
        (cpuPer[`${impl.label} ${cmd}`] ??= []).push((machineCpu().busyMs - c0) / jobs.length);
        return Number(process.hrtime.bigint() - t0) / 1e6;
      });
    };
    const floorRounds: number[] = [];
    for (let round = 0; round < PAR_ROUNDS; round++) {
      for (const b of [...bursts.slice(round % bursts.length), ...bursts.slice(0, round % bursts.length)]) {
        b.add.push(await burst(b.par, b.jobs, 'ADD'));
        b.del.push(await burst(b.par, b.jobs, 'DEL'));
      }
      if (hasFloor) floorRounds.push(await burst(floor, bursts[0]?.jobs ?? [], 'ADD'));
    }
    const med = (xs: number[]) => q(xs, 50);
    const range = (xs: number[]) => `[${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}]`;
    const wall: Record<string, [number, number]> = Object.fromEntries(bursts.map((b) => [b.label, [med(b.add), med(b.del)]]));
    const ranges: Record<string, string> = Object.fromEntries(bursts.map((b) => [b.label, `${range(b.add)} / ${range(b.del)}`]));
    const floorPar = hasFloor ? med(floorRounds) : NaN;
    const cpuPar = (label: string, ...cmds: string[]) => `cpu ${cmds.map((c) => med(cpuPer[`${label} ${c}`] ?? []).toFixed(1)).join(' / ')} ms`;
    const [ra, rd] = wall[REF_LABEL] ?? [NaN, NaN];
    const [pa] = wall.podnet ?? [NaN, NaN];
    console.log(`  ${REF_LABEL.padEnd(20)} ADD ${ra.toFixed(0).padStart(5)} ms   DEL ${rd.toFixed(0).padStart(5)} ms   ${ranges[REF_LABEL]}   ${cpuPar(REF_LABEL, 'ADD', 'DEL')}`);
    if (hasFloor) console.log(`  ${floor.label.padEnd(20)} run ${floorPar.toFixed(0).padStart(5)} ms   ${range(floorRounds)}   ${cpuPar(floor.label, 'ADD')}`);
    for (const l of [DEBIAN_LABEL, 'podnet', 'podnet + ref IPAM', ...(alt ? ['podnet (alt)'] : [])]) {
      const [a, d] = wall[l] ?? [NaN, NaN];
      console.log(`  ${l.padEnd(20)} ADD ${a.toFixed(0).padStart(5)} ms   DEL ${d.toFixed(0).padStart(5)} ms   ${(a / ra).toFixed(2)}× / ${(d / rd).toFixed(2)}× ${REF_LABEL}   ${ranges[l]}   ${cpuPar(l, 'ADD', 'DEL')}`);
    }
    console.log(`  (load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} CPUs)`);
    const p50 = (m: Record<string, number[]>, l: string) => q(m[l] ?? [], 50);
    console.log(`targets against ${REF_LABEL} (printed, not asserted):`);
    console.log(`  ADD p50 ≤ 1.3× ref: ${(p50(add, 'podnet') / p50(add, REF_LABEL)).toFixed(2)}×   (Debian 1.1.1: ${(p50(add, DEBIAN_LABEL) / p50(add, REF_LABEL)).toFixed(2)}×)`);
    console.log(`  DEL p50 ≤ 1.0× ref: ${(p50(del, 'podnet') / p50(del, REF_LABEL)).toFixed(2)}×   (Debian 1.1.1: ${(p50(del, DEBIAN_LABEL) / p50(del, REF_LABEL)).toFixed(2)}×)`);
    console.log(`  ${PAR} parallel ADDs ≤ 1.0× ref: ${(pa / ra).toFixed(2)}×`);
    if (hasFloor) {
      // The floor goals (issue 11): what podnet does beyond Node's own start ≤ the reference's
      // whole ADD; against the upstream reference, and Debian's 1.1.1 in parentheses.
      const excess = (ref: string) => (p50(add, 'podnet') - p50(add, floor.label)) / p50(add, ref);
      const parExcess = (ref: string) => (pa - floorPar) / (wall[ref]?.[0] ?? NaN);
      console.log(`  add_excess = (podnet ADD p50 − empty p50) / ref ADD p50 ≤ 1.0: ${excess(REF_LABEL).toFixed(2)}   (Debian 1.1.1: ${excess(DEBIAN_LABEL).toFixed(2)})`);
      console.log(
        `  par40_excess = (podnet ${PAR} at once − ${PAR} empty at once) / ref ${PAR} at once ≤ 1.0: ${parExcess(REF_LABEL).toFixed(2)}   (Debian 1.1.1: ${parExcess(DEBIAN_LABEL).toFixed(2)})`,
      );
      console.log(`  DEL p50 ≤ 0.8× ref: ${(p50(del, 'podnet') / p50(del, REF_LABEL)).toFixed(2)}×`);
    } else {
      console.log(`  (no ${EMPTY}: run npm run build for the floor figures)`);
    }
  } finally {
    for (const p of pods) spawnSync('ip', ['netns', 'del', p]);
    rmSync(work, { recursive: true, force: true });
  }
}

