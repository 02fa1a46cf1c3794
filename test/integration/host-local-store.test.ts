import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync, writeSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bucketOf } from '../../ipam/host-local/store/owner-index.js';
import { ErrorCode } from '../../lib/cni/errors.js';
import { runPlugin } from '../helpers/cni.js';
import { isRoot } from '../helpers/env.js';
import { HOST_LOCAL, assertBuilt, indexEntries, removeDir, reservations, snapshot, tempDataDir } from '../helpers/host-local.js';

// No reservation is lost or corrupted: the store never follows a symbolic link, treats a
// store directory that is a link one way in every verb, and a failed ADD reserves nothing (a
// full disk during commit). The built executable, driven as a runtime does.

const NET = 'pstnet';
let dataDir: string;
let outside: string;
beforeAll(assertBuilt);
beforeEach(() => {
  dataDir = tempDataDir('pst');
  outside = tempDataDir('pst-outside');
});
afterEach(() => {
  removeDir(dataDir);
  removeDir(outside);
});

const conf = (dir = dataDir, extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.1.0',
  name: NET,
  type: 'podnet-host-local',
  ipam: { type: 'podnet-host-local', dataDir: dir, ranges: [[{ subnet: '10.77.0.0/24' }]] },
  ...extra,
});
const run = (command: string, containerId: string, config: unknown = conf()) =>
  runPlugin(HOST_LOCAL, { command, containerId, netns: '/var/run/netns/pst-none', ifName: 'eth0' }, config);
const store = (...p: string[]) => join(dataDir, NET, ...p);

describe('podnet-host-local never follows a symbolic link inside the store', () => {
  /** A directory (or file) outside the store that must come through untouched. */
  function victim(kind: 'dir' | 'file'): { path: string; before: Record<string, string> } {
    const path = join(outside, `victim-${kind}`);
    if (kind === 'dir') {
      mkdirSync(path);
      writeFileSync(join(path, 'keep.txt'), 'precious');
      writeFileSync(join(path, '00.json'), 'not a bucket');
    } else {
      writeFileSync(path, 'precious');
    }
    return { path, before: snapshot(outside) };
  }

  it.each([
    ['podnet/tmp', 'dir', 'refused'],
    ['podnet/index', 'dir', 'refused'],
    ['podnet/stamp', 'file', 'refused'],
    // DEL never reads the round-robin cursor: it releases, and leaves the link alone.
    ['last_reserved_ip.0', 'file', 'released'],
  ] as const)('%s as a link to a %s: ADD fails with 5 naming it, DEL is %s, the target is untouched', async (part, kind, del) => {
    expect((await run('ADD', 'first')).code).toBe(0);
    const v = victim(kind);
    rmSync(store(part), { recursive: true, force: true });
    symlinkSync(v.path, store(part));
    const reserved = reservations(dataDir, NET);

    const add = await run('ADD', 'second');
    expect(add.code, add.stdout).not.toBe(0);
    expect(add.json).toMatchObject({ code: ErrorCode.IoFailure, msg: expect.stringContaining(store(part)) });
    expect(reservations(dataDir, NET)).toEqual(reserved);
    const r = await run('DEL', 'first');
    if (del === 'refused') {
      expect(r.json).toMatchObject({ code: ErrorCode.IoFailure, msg: expect.stringContaining(store(part)) });
      expect(reservations(dataDir, NET)).toEqual(reserved);
    } else {
      expect(r.code, r.stdout).toBe(0);
      expect(reservations(dataDir, NET)).toEqual({});
    }
    expect(snapshot(outside)).toEqual(v.before);
  });

  it('a link named like an address counts as taken, is never read through and never released', async () => {
    mkdirSync(store(), { recursive: true });
    writeFileSync(join(outside, 'target'), 'first\r\neth0');
    symlinkSync(join(outside, 'target'), store('10.77.0.2'));
    const add = await run('ADD', 'first');
    expect(add.code, add.stdout).toBe(0);
    expect((add.json?.ips as { address: string }[])[0]?.address).toBe('10.77.0.3/24');
    expect((await run('DEL', 'first')).code).toBe(0);
    expect(existsSync(store('10.77.0.2'))).toBe(true);
    expect(readFileSync(join(outside, 'target'), 'utf8')).toBe('first\r\neth0');
    expect(existsSync(store('10.77.0.3'))).toBe(false);
  });

  it('<dataDir>/<network> itself a link to a directory: every verb uses it (ADD, CHECK, DEL, GC, STATUS)', async () => {
    const real = join(outside, 'moved-store');
    mkdirSync(real);
    symlinkSync(real, store());
    const add = await run('ADD', 'viaLink');
    expect(add.code, add.stdout).toBe(0);
    expect(readdirSync(real)).toContain('10.77.0.2');
    expect((await run('CHECK', 'viaLink', conf(dataDir, { prevResult: add.json }))).code).toBe(0);
    expect((await run('STATUS', 'x')).code).toBe(0);
    expect((await run('DEL', 'viaLink')).code).toBe(0);
    expect(reservations(dataDir, NET)).toEqual({});
    expect(existsSync(join(real, '10.77.0.2'))).toBe(false);

    expect((await run('ADD', 'stale')).code).toBe(0);
    const gc = await run('GC', 'x', conf(dataDir, { 'cni.dev/valid-attachments': [] }));
    expect(gc.code, gc.stdout).toBe(0);
    expect(reservations(dataDir, NET)).toEqual({});
    expect(indexEntries(dataDir, NET)).toEqual([]);
  });
});

describe.runIf(isRoot)('podnet-host-local on a full disk', () => {
  let mnt: string;
  beforeEach(() => {
    mnt = tempDataDir('pst-full');
    // A private tmpfs of 64 pages under the test's own temp dir, unmounted after.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0755', 'pst-full', mnt]);
  });
  afterEach(() => {
    execFileSync('umount', [mnt]);
    removeDir(mnt);
  });

  /** Fill the file system, then free exactly one 4 kB page. */
  function fillLeavingOnePage(): string {
    const filler = join(mnt, 'filler');
    const fd = openSync(filler, 'w');
    const page = Buffer.alloc(4096, 1);
    let size = 0;
    try {
      for (;;) {
        writeSync(fd, page);
        size += page.length;
      }
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      closeSync(fd);
    }
    truncateSync(filler, size - 4096);
    return filler;
  }

  it('ADD that cannot write its index fails with 5 and leaves no reservation; the retry succeeds', async () => {
    const dir = join(mnt, 'ipam');
    const c = conf(dir);
    expect((await run('ADD', 'first', c)).code).toBe(0);
    // The victim's bucket is a new file: it needs the page the reservation file already took.
    const victim = Array.from({ length: 50 }, (_, i) => `victim${i}`).find(
      (id) => bucketOf({ containerId: id, ifName: 'eth0' }) !== bucketOf({ containerId: 'first', ifName: 'eth0' }),
    ) as string;
    const filler = fillLeavingOnePage();
    const before = reservations(dir, NET);

    const r = await run('ADD', victim, c);
    expect(r.code, r.stdout).not.toBe(0);
    expect(r.json).toMatchObject({ code: ErrorCode.IoFailure });
    expect(reservations(dir, NET)).toEqual(before);

    rmSync(filler);
    const retry = await run('ADD', victim, c);
    expect(retry.code, retry.stdout).toBe(0);
    expect(Object.values(reservations(dir, NET))).toContain(`${victim}\r\neth0`);
    expect(indexEntries(dir, NET)).toEqual(['first:eth0', `${victim}:eth0`].sort());
    renameSync(dir, join(mnt, 'checked')); // the store stays readable: nothing half-written
  });
});
