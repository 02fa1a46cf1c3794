import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/cni/errors.js';
import { runPlugin } from '../helpers/cni.js';
import { HOST_LOCAL, HOST_LOCAL_TEST, assertBuilt, indexEntries, removeDir, reservations, tempDataDir } from '../helpers/host-local.js';

// Many processes on one store at once, and processes killed with SIGKILL at chosen points:
// the store stays consistent, the lock is recovered, DEL and GC clean up.

let dataDir: string;
beforeAll(assertBuilt);
beforeEach(() => {
  dataDir = tempDataDir('phl');
});
afterEach(() => removeDir(dataDir));

const NET = 'phlconc';
const conf = (cniVersion = '1.1.0', extra: Record<string, unknown> = {}) => ({
  cniVersion,
  name: NET,
  type: 'podnet-bridge',
  ipam: { type: 'podnet-host-local', dataDir, ranges: [[{ subnet: '10.60.0.0/16' }], [{ subnet: 'fd00:60::/64' }]] },
  ...extra,
});
const env = (command: string, containerId: string, extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH ?? '',
  CNI_COMMAND: command,
  CNI_CONTAINERID: containerId,
  CNI_NETNS: '/var/run/netns/phl-none',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/nonexistent',
  ...extra,
});
const run = (command: string, containerId: string, config: unknown = conf()) =>
  runPlugin(HOST_LOCAL, { command, containerId, netns: '/var/run/netns/phl-none', ifName: 'eth0' }, config);

/** Start ADD paused at `point`, wait until it says so (it then holds the lock), and SIGKILL it. */
async function killAt(point: 'locked' | 'after-ip' | 'after-index', containerId: string): Promise<void> {
  const p = execa(HOST_LOCAL_TEST, [], {
    input: JSON.stringify(conf()),
    env: env('ADD', containerId, { PODNET_TEST_PAUSE: `${point}:60000` }),
    extendEnv: false,
    reject: false,
  });
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no pause at ${point}: ${seen}`)), 20_000);
    p.stderr?.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('"test pause"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  p.kill('SIGKILL');
  const r = await p;
  expect(r.signal).toBe('SIGKILL');
}

/** Every reservation file holds `<id>\r\n<ifname>`; podnet's temp dir holds nothing once idle. */
function expectConsistent(): void {
  for (const [ip, content] of Object.entries(reservations(dataDir, NET))) expect(content, ip).toMatch(/^[A-Za-z0-9][\w.-]*\r\neth0$/);
  const tmp = join(dataDir, NET, 'podnet', 'tmp');
  if (existsSync(tmp)) expect(readdirSync(tmp)).toEqual([]);
}

describe('podnet-host-local under concurrency', () => {
  it('100 ADD processes at once get 100 distinct addresses per family; 100 DELs empty the store', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `par${i}`);
    const t0 = Date.now();
    const adds = await Promise.all(ids.map((id) => run('ADD', id)));
    const addMs = Date.now() - t0;
    for (const [i, r] of adds.entries()) expect(r.code, `${ids[i]}: ${r.stdout} ${r.stderr}`).toBe(0);
    const v4 = adds.map((r) => (r.json?.ips as { address: string }[])[0]?.address);
    const v6 = adds.map((r) => (r.json?.ips as { address: string }[])[1]?.address);
    expect(new Set(v4).size).toBe(100);
    expect(new Set(v6).size).toBe(100);
    const files = reservations(dataDir, NET);
    expect(Object.keys(files)).toHaveLength(200);
    expect(indexEntries(dataDir, NET)).toHaveLength(100);
    for (const [i, r] of adds.entries()) {
      const ip = (r.json?.ips as { address: string }[])[0]?.address.split('/')[0] ?? '';
      expect(files[ip]).toBe(`${ids[i]}\r\neth0`);
    }
    expectConsistent();

    const t1 = Date.now();
    const dels = await Promise.all(ids.map((id) => run('DEL', id)));
    const delMs = Date.now() - t1;
    for (const r of dels) expect(r.code, r.stdout).toBe(0);
    expect(reservations(dataDir, NET)).toEqual({});
    expect(indexEntries(dataDir, NET)).toEqual([]);
    expectConsistent();
    console.log(`100 parallel ADD: ${addMs} ms, 100 parallel DEL: ${delMs} ms`);
  });

  it('SIGKILL while holding the lock: the next ADD takes the stale lock over within a few seconds', async () => {
    expect((await run('ADD', 'before')).code).toBe(0);
    await killAt('locked', 'victim');
    expect(existsSync(join(dataDir, NET, 'podnet', 'lock'))).toBe(true);
    const t0 = Date.now();
    const r = await run('ADD', 'after');
    const waited = Date.now() - t0;
    expect(r.code, r.stdout).toBe(0);
    expect(waited).toBeLessThan(8000);
    expect(Object.values(reservations(dataDir, NET)).filter((c) => c.startsWith('victim'))).toEqual([]);
    expect(indexEntries(dataDir, NET)).toEqual(['after:eth0', 'before:eth0']);
    expectConsistent();
    console.log(`lock of a killed holder taken over after ${waited} ms`);
  });

  it('SIGKILL after the reservation files, before the index: the next session rebuilds, DEL releases', async () => {
    expect((await run('ADD', 'before')).code).toBe(0);
    await killAt('after-ip', 'victim');
    expect(Object.values(reservations(dataDir, NET)).filter((c) => c.startsWith('victim'))).toHaveLength(2);
    expect(indexEntries(dataDir, NET)).toEqual(['before:eth0']);
    expect(readFileSync(join(dataDir, NET, 'podnet', 'stamp'), 'utf8')).toBe('dirty');
    const dup = await run('ADD', 'victim');
    expect(dup.json).toMatchObject({ code: 102 });
    expect(indexEntries(dataDir, NET)).toEqual(['before:eth0', 'victim:eth0']);
    const after = await run('ADD', 'after');
    expect(after.code, after.stdout).toBe(0);
    expect((after.json?.ips as { address: string }[])[0]?.address).toBe('10.60.0.4/16');
    expect((await run('DEL', 'victim')).code).toBe(0);
    expect(Object.values(reservations(dataDir, NET)).filter((c) => c.startsWith('victim'))).toEqual([]);
    expect(indexEntries(dataDir, NET)).toEqual(['after:eth0', 'before:eth0']);
    expectConsistent();
  });

  it('SIGKILL after the index, before the stamp: CHECK and DEL see the reservation', async () => {
    expect((await run('ADD', 'before')).code).toBe(0);
    await killAt('after-index', 'victim');
    expect(indexEntries(dataDir, NET)).toEqual(['before:eth0', 'victim:eth0']);
    const check = await run('CHECK', 'victim', conf('1.1.0', { prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.60.0.3/16' }, { address: 'fd00:60::3/64' }] } }));
    expect(check.code, check.stdout).toBe(0);
    expect((await run('DEL', 'victim')).code).toBe(0);
    expect(indexEntries(dataDir, NET)).toEqual(['before:eth0']);
    expect(Object.keys(reservations(dataDir, NET))).toEqual(['10.60.0.2', 'fd00:60::2']);
    expectConsistent();
  });

  it('GC cleans up after killed ADDs', async () => {
    expect((await run('ADD', 'keep')).code).toBe(0);
    await killAt('after-ip', 'orphan');
    await killAt('after-index', 'ghost');
    const gc = await run('GC', 'x', conf('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] }));
    expect(gc.code, gc.stdout).toBe(0);
    expect(Object.values(reservations(dataDir, NET))).toEqual(['keep\r\neth0', 'keep\r\neth0']);
    expect(indexEntries(dataDir, NET)).toEqual(['keep:eth0']);
    expectConsistent();
  });

  it('ADDs killed at random moments never leave a corrupt store', async () => {
    const ids = Array.from({ length: 24 }, (_, i) => `rnd${i}`);
    await Promise.all(
      ids.map(async (id, i) => {
        const p = execa(HOST_LOCAL, [], { input: JSON.stringify(conf()), env: env('ADD', id), extendEnv: false, reject: false });
        setTimeout(() => p.kill('SIGKILL'), 10 + ((i * 37) % 90));
        await p;
      }),
    );
    // Whatever survived is whole; new ADDs work (after any stale lock expired); DEL empties.
    for (const [ip, content] of Object.entries(reservations(dataDir, NET))) expect(content, ip).toMatch(/^rnd\d+\r\neth0$/);
    const fresh = await run('ADD', 'fresh');
    expect(fresh.code, fresh.stdout).toBe(0);
    expectConsistent();
    for (const id of [...ids, 'fresh']) expect((await run('DEL', id)).code).toBe(0);
    expect(reservations(dataDir, NET)).toEqual({});
    expect(indexEntries(dataDir, NET)).toEqual([]);
    const last = readFileSync(join(dataDir, NET, 'last_reserved_ip.0'), 'utf8');
    expect(last).toMatch(/^10\.60\.\d+\.\d+$/);
  });
});

/** Start a test-build ADD paused at `point` for `ms`; resolves once it says so. */
async function startPaused(containerId: string, point: 'locked' | 'after-ip', ms: number) {
  const p = execa(HOST_LOCAL_TEST, [], { input: JSON.stringify(conf()), env: env('ADD', containerId, { PODNET_TEST_PAUSE: `${point}:${ms}` }), extendEnv: false, reject: false });
  await pausedAt(p, containerId);
  // Wrapped: an async function returning the (thenable) process would wait for its exit.
  return { proc: p };
}

describe('a stale lock holder that resumes', () => {
  it.each(['locked', 'after-ip'] as const)(
    'stopped at "%s" past the takeover: B takes over, C enters, A resumes and aborts (11) without writing or unlocking; D cannot enter while C is inside',
    async (point) => {
      expect((await run('ADD', 'before')).code).toBe(0);
      const { proc: a } = await startPaused('holderA', point, 200);
      a.kill('SIGSTOP');
      try {
        // B waits until A's lock is stale (A, stopped, refreshes nothing), takes it over, finishes.
        const b = await run('ADD', 'takerB');
        expect(b.code, b.stdout).toBe(0);
        const { proc: c } = await startPaused('insideC', 'locked', 60_000);
        try {
          a.kill('SIGCONT');
          const ra = await a;
          expect(ra.exitCode, ra.stdout).not.toBe(0);
          expect(JSON.parse(ra.stdout)).toMatchObject({ code: ErrorCode.TryAgainLater, msg: expect.stringContaining('taken over by another process') });
          // C's lock is still in place: D gives up instead of entering beside C.
          const d = await execa(HOST_LOCAL_TEST, [], { input: JSON.stringify(conf()), env: env('ADD', 'enterD', { PODNET_TEST_LOCK_TIMEOUT_MS: '500' }), extendEnv: false, reject: false });
          expect(JSON.parse(d.stdout), d.stdout).toMatchObject({ code: ErrorCode.TryAgainLater });
        } finally {
          c.kill('SIGKILL');
          await c;
        }
      } finally {
        a.kill('SIGCONT');
        a.kill('SIGKILL');
        await a;
      }
      const owners = Object.values(reservations(dataDir, NET));
      expect(owners.filter((o) => o.startsWith('holderA'))).toEqual([]);
      expect(owners.sort()).toEqual(['before\r\neth0', 'before\r\neth0', 'takerB\r\neth0', 'takerB\r\neth0']);
      // After C's (killed) lock goes stale, the store works and is consistent.
      expect((await run('ADD', 'afterE')).code).toBe(0);
      expect(indexEntries(dataDir, NET)).toEqual(['afterE:eth0', 'before:eth0', 'takerB:eth0']);
      expectConsistent();
    },
  );
});

describe('test hooks are compiled out of the shipped executable', () => {
  /** Start a test-build ADD that holds the lock (paused at "locked") until killed. */
  async function holdLock(containerId: string) {
    const p = execa(HOST_LOCAL_TEST, [], { input: JSON.stringify(conf()), env: env('ADD', containerId, { PODNET_TEST_PAUSE: 'locked:60000' }), extendEnv: false, reject: false });
    await pausedAt(p, 'holder');
    // Wrapped: an async function returning the (thenable) process would wait for its exit.
    return { proc: p };
  }

  it('PODNET_TEST_LOCK_TIMEOUT_MS: the test build gives up (11), the shipped one waits and takes the stale lock over', async () => {
    const { proc: holder } = await holdLock('holder');
    try {
      const knob = { PODNET_TEST_LOCK_TIMEOUT_MS: '300' };
      const test = await execa(HOST_LOCAL_TEST, [], { input: JSON.stringify(conf()), env: env('ADD', 'viaTest', knob), extendEnv: false, reject: false });
      expect(JSON.parse(test.stdout)).toMatchObject({ code: 11 });
      const shipped = await execa(HOST_LOCAL, [], { input: JSON.stringify(conf()), env: env('ADD', 'viaShipped', knob), extendEnv: false, reject: false });
      expect(shipped.exitCode, shipped.stdout).toBe(0);
    } finally {
      holder.kill('SIGKILL');
      await holder;
    }
  });

  it('PODNET_TEST_PAUSE: the shipped executable never pauses', async () => {
    const r = await execa(HOST_LOCAL, [], { input: JSON.stringify(conf()), env: env('ADD', 'nopause', { PODNET_TEST_PAUSE: 'locked:60000' }), extendEnv: false, reject: false, timeout: 30_000 });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stderr).not.toContain('test pause');
  });
});

/** Resolves once a test-hooks build logs that it stopped at its pause point (20 s at most). */
function pausedAt(p: { stderr?: NodeJS.ReadableStream | null }, who: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${who} never paused: ${seen}`)), 20_000);
    p.stderr?.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('"test pause"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}
