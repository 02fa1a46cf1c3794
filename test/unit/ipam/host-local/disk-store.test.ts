import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../../lib/cni/errors.js';
import { DiskStore, INDEX_NAME, LOCK_NAME, STAMP_NAME, TMP_NAME, bucketName, bucketOf } from '../../../../ipam/host-local/store/disk-store.js';
import type { Owner } from '../../../../ipam/host-local/store/store.js';
import { indexEntries, indexedIps } from '../../../helpers/host-local.js';

let root: string;
let dir: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'phl-ds-'));
  dir = join(root, 'net');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const store = (opts = {}) => new DiskStore(root, 'net', opts);
const index = () => indexEntries(root, 'net');
const ipFiles = () => readdirSync(dir).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n) || /^[0-9a-f:]+$/.test(n)).sort();
const read = (name: string) => readFileSync(join(dir, name), 'utf8');
const stamp = () => readFileSync(join(dir, STAMP_NAME), 'utf8');
/** A change the way the reference makes it: a file appears, and the directory's mtime moves on. */
function foreignWrite(name: string, content: string) {
  writeFileSync(join(dir, name), content);
  const t = new Date(Date.now() + 5000);
  utimesSync(dir, t, t);
}
/** Put an entry straight into its bucket, as a stale leftover would be (no mtime change). */
function plant(owner: Owner, ips: string[]) {
  const path = join(dir, INDEX_NAME, bucketName(bucketOf(owner)));
  const entries = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : [];
  entries.push({ containerID: owner.containerId, ...(owner.ifName !== undefined ? { ifname: owner.ifName } : {}), ips });
  mkdirSync(join(dir, INDEX_NAME), { recursive: true });
  writeFileSync(path, JSON.stringify(entries));
}

describe('DiskStore', () => {
  it('writes the reference layout and indexes it; release removes both and is idempotent', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }, { ip: 'fd00::2', setIndex: 1 }]));
    expect(read('10.0.0.2')).toBe('c1\r\neth0');
    expect(read('fd00::2')).toBe('c1\r\neth0');
    expect(read('last_reserved_ip.0')).toBe('10.0.0.2');
    expect(read('last_reserved_ip.1')).toBe('fd00::2');
    expect(index()).toEqual(['c1:eth0']);
    expect(indexedIps(root, 'net', 'c1', 'eth0')).toEqual(['10.0.0.2', 'fd00::2']);
    expect(JSON.parse(stamp())).toEqual({ mtimeNs: statSync(dir, { bigint: true }).mtimeNs.toString() });
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false);
    expect(readdirSync(join(dir, TMP_NAME))).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(['10.0.0.2', 'fd00::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'podnet']);

    await s.withLock((tx) => {
      expect(tx.getByAttachment('c1', 'eth0').map((r) => r.ip)).toEqual(['10.0.0.2', 'fd00::2']);
      expect(tx.getByAttachment('c1', 'eth1')).toEqual([]);
      expect(tx.isReserved('10.0.0.2')).toBe(true);
      expect(tx.isReserved('10.0.0.3')).toBe(false);
      expect(tx.reservedIps().sort()).toEqual(['10.0.0.2', 'fd00::2']);
      expect(tx.lastReservedIp(1)).toBe('fd00::2');
      expect(tx.lastReservedIp(7)).toBeUndefined();
    });
    expect(await s.withLock((tx) => tx.release('c1', 'eth0'))).toEqual(['10.0.0.2', 'fd00::2']);
    expect(ipFiles()).toEqual([]);
    expect(index()).toEqual([]);
    expect(readdirSync(join(dir, INDEX_NAME))).toEqual([]);
    expect(await s.withLock((tx) => tx.release('c1', 'eth0'))).toEqual([]);
    expect(await s.withLock((tx) => tx.release('nobody', 'eth0'))).toEqual([]);
  });

  it('builds the index once from reservations the reference made (migration), leaving its files alone', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '10.0.0.2'), 'ref1\r\neth0');
    writeFileSync(join(dir, '10.0.0.3'), 'ref2\r\neth0');
    writeFileSync(join(dir, '10.0.0.4'), 'ref2\r\nnet1');
    writeFileSync(join(dir, '10.0.0.5'), 'legacy\n');
    writeFileSync(join(dir, 'lock'), '');
    writeFileSync(join(dir, 'last_reserved_ip.0'), '10.0.0.5');
    writeFileSync(join(dir, 'not-an-ip'), 'ref1\r\neth0');
    const s = store();
    await s.withLock((tx) => {
      expect(tx.getByAttachment('ref2', 'eth0').map((r) => r.ip)).toEqual(['10.0.0.3']);
      expect(tx.getByAttachment('legacy', 'eth0')).toEqual([{ ip: '10.0.0.5', owner: { containerId: 'legacy' } }]);
      expect(tx.lastReservedIp(0)).toBe('10.0.0.5');
    });
    expect(index()).toEqual(['legacy:', 'ref1:eth0', 'ref2:eth0', 'ref2:net1']);
    expect(await s.withLock((tx) => tx.release('ref1', 'eth0'))).toEqual(['10.0.0.2']);
    expect(read('not-an-ip')).toBe('ref1\r\neth0');
    expect(await s.withLock((tx) => tx.release('legacy', 'eth9'))).toEqual(['10.0.0.5']);
    expect(existsSync(join(dir, 'lock'))).toBe(true);
    expect(read('last_reserved_ip.0')).toBe('10.0.0.5');
    expect(ipFiles()).toEqual(['10.0.0.3', '10.0.0.4']);
  });

  it('notices changes made behind its back (directory mtime) and rebuilds the index', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    foreignWrite('10.0.0.9', 'ref\r\neth0');
    expect(await s.withLock((tx) => tx.release('ref', 'eth0'))).toEqual(['10.0.0.9']);
    // and a reservation released behind its back
    rmSync(join(dir, '10.0.0.2'));
    expect(await s.withLock((tx) => tx.getByAttachment('c1', 'eth0'))).toEqual([]);
    expect(index()).toEqual([]);
  });

  it('rebuilds after a session that died half-way (stamp left dirty)', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    // what a killed ADD leaves: a reservation file, no index entry, the stamp still dirty
    writeFileSync(join(dir, STAMP_NAME), 'dirty');
    writeFileSync(join(dir, '10.0.0.3'), 'victim\r\neth0');
    writeFileSync(join(dir, TMP_NAME, 'leftover'), 'victim\r\neth0');
    await s.withLock((tx) => expect(tx.getByAttachment('victim', 'eth0').map((r) => r.ip)).toEqual(['10.0.0.3']));
    expect(index()).toEqual(['c1:eth0', 'victim:eth0']);
    expect(readdirSync(join(dir, TMP_NAME))).toEqual([]);
    expect(stamp()).not.toBe('dirty');
  });

  it('ignores index entries whose files belong to someone else', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    plant({ containerId: 'ghost', ifName: 'eth0' }, ['10.0.0.2', '10.0.0.3']);
    await s.withLock((tx) => {
      expect(tx.getByAttachment('ghost', 'eth0')).toEqual([]);
      tx.reserve('ghost', 'eth0', [{ ip: '10.0.0.3', setIndex: 0 }]);
    });
    expect(indexedIps(root, 'net', 'ghost', 'eth0')).toEqual(['10.0.0.3']);
    expect(await s.withLock((tx) => tx.release('ghost', 'eth0'))).toEqual(['10.0.0.3']);
    expect(read('10.0.0.2')).toBe('c1\r\neth0');
    expect(index()).toEqual(['c1:eth0']);
  });

  it('trusts the index across its own sessions (a planted entry survives: no rebuild)', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    plant({ containerId: 'planted', ifName: 'eth0' }, []);
    await s.withLock((tx) => tx.reserve('b', 'eth0', [{ ip: '10.0.0.3', setIndex: 0 }]));
    await s.withLock((tx) => tx.release('a', 'eth0'));
    expect(index()).toEqual(['b:eth0', 'planted:eth0']);
    foreignWrite('10.0.0.9', 'ref\r\neth0');
    await s.withLock((tx) => tx.getByAttachment('b', 'eth0'));
    expect(index()).toEqual(['b:eth0', 'ref:eth0']);
  });

  it('writes nothing for read-only sessions', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    const before = statSync(join(dir, STAMP_NAME), { bigint: true }).mtimeNs;
    await s.withLock((tx) => tx.getByAttachment('a', 'eth0'));
    await s.withLock((tx) => tx.release('nobody', 'eth0'));
    expect(statSync(join(dir, STAMP_NAME), { bigint: true }).mtimeNs).toBe(before);
  });

  it('rebuilds when the index directory is gone although the stamp matches', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    rmSync(join(dir, INDEX_NAME), { recursive: true });
    expect(await s.withLock((tx) => tx.release('a', 'eth0'))).toEqual(['10.0.0.2']);
  });

  it('rebuilds when a bucket is damaged although the stamp matches', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    writeFileSync(join(dir, INDEX_NAME, bucketName(bucketOf({ containerId: 'a', ifName: 'eth0' }))), '[{"containerID":');
    await s.withLock((tx) => tx.getByAttachment('a', 'eth0'));
    expect(index()).toEqual(['a:eth0']);
    expect(await s.withLock((tx) => tx.release('a', 'eth0'))).toEqual(['10.0.0.2']);
  });

  it('reserves all or nothing: a taken address undoes the others', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    const err = await s
      .withLock((tx) => tx.reserve('c2', 'eth0', [{ ip: '10.0.0.3', setIndex: 0 }, { ip: '10.0.0.2', setIndex: 1 }]))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.AddressUnavailable, message: expect.stringContaining('10.0.0.2') });
    expect(ipFiles()).toEqual(['10.0.0.2']);
    expect(existsSync(join(dir, 'last_reserved_ip.1'))).toBe(false);
    // the failed session left the stamp dirty; the next one rebuilds and finds only c1
    expect(stamp()).toBe('dirty');
    await s.withLock((tx) => expect(tx.getByAttachment('c2', 'eth0')).toEqual([]));
    expect(index()).toEqual(['c1:eth0']);
  });

  it('GC: lists by walking the files and rebuilds the index without what it released', async () => {
    const s = store();
    await s.withLock((tx) => {
      tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]);
      tx.reserve('b', 'eth0', [{ ip: '10.0.0.3', setIndex: 0 }]);
    });
    plant({ containerId: 'ghost', ifName: 'eth0' }, ['10.0.0.9']);
    await s.withLock(async (tx) => {
      const all = await tx.list();
      expect(all.map((r) => r.ip).sort()).toEqual(['10.0.0.2', '10.0.0.3']);
      tx.releaseReservations(all.filter((r) => r.owner.containerId === 'b'));
    });
    expect(ipFiles()).toEqual(['10.0.0.2']);
    expect(index()).toEqual(['a:eth0']);
  });

  it('GC does not release a reservation whose owner changed since the listing', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    await s.withLock((tx) => tx.releaseReservations([{ ip: '10.0.0.2', owner: { containerId: 'b', ifName: 'eth0' } }]));
    expect(ipFiles()).toEqual(['10.0.0.2']);
    expect(index()).toEqual(['a:eth0']);
  });

  it('fails with code 11 naming the lock when another process holds it, and takes over a stale lock', async () => {
    mkdirSync(join(dir, LOCK_NAME), { recursive: true });
    const held = store({ lockTimeoutMs: 300 });
    const t0 = Date.now();
    const err = await held.withLock(() => 1).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.TryAgainLater, message: expect.stringContaining(join(dir, LOCK_NAME)) });
    expect(Date.now() - t0).toBeLessThan(2000);
    const old = new Date(Date.now() - 10_000);
    utimesSync(join(dir, LOCK_NAME), old, old);
    expect(await store({ lockTimeoutMs: 300 }).withLock(() => 2)).toBe(2);
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false);
  });

  it('serialises concurrent sessions in one process', async () => {
    const s = store();
    const order: string[] = [];
    await Promise.all(
      ['a', 'b', 'c'].map((id, i) =>
        s.withLock(async (tx) => {
          order.push(`start ${id}`);
          await new Promise((r) => setTimeout(r, 20));
          tx.reserve(id, 'eth0', [{ ip: `10.0.0.${i + 2}`, setIndex: 0 }]);
          order.push(`end ${id}`);
        }),
      ),
    );
    for (let i = 0; i < order.length; i += 2) expect(order[i + 1]?.slice(4)).toBe(order[i]?.slice(6));
    expect(ipFiles()).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4']);
  });

  it('fails with code 5 and the path when the store cannot be created', async () => {
    writeFileSync(join(root, 'file'), '');
    const s = new DiskStore(join(root, 'file', 'sub'), 'net');
    await expect(s.withLock(() => 1)).rejects.toMatchObject({ code: ErrorCode.IoFailure, message: expect.stringContaining(join(root, 'file', 'sub', 'net')) });
    expect(() => s.probe()).toThrow(expect.objectContaining({ code: ErrorCode.PluginNotAvailable, message: expect.stringContaining(join(root, 'file')) }));
    expect(s.exists()).toBe(false);
  });

  it('probe lists reservations without the lock', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    mkdirSync(join(dir, LOCK_NAME));
    expect(s.probe()).toEqual(['10.0.0.2']);
  });

  it('handles owners whose IDs would be unsafe as file names', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '10.0.0.7'), '../../evil\r\neth0');
    const long = 'x'.repeat(300);
    const s = store();
    await s.withLock((tx) => tx.reserve(long, 'eth0', [{ ip: '10.0.0.8', setIndex: 0 }]));
    expect(index()).toEqual([`${long}:eth0`, '../../evil:eth0'].sort());
    expect(readdirSync(join(dir, INDEX_NAME)).every((n) => /^[0-9a-f]{2}\.json$/.test(n))).toBe(true);
    expect(existsSync(join(root, 'evil'))).toBe(false);
    expect(await s.withLock((tx) => tx.release('../../evil', 'eth0'))).toEqual(['10.0.0.7']);
    expect(await s.withLock((tx) => tx.release(long, 'eth0'))).toEqual(['10.0.0.8']);
    expect(index()).toEqual([]);
  });

  it('without the index (index: false) gives the same answers by walking the files, and writes no podnet/index', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '10.0.0.9'), 'ref\r\neth0');
    const s = store({ index: false });
    await s.withLock((tx) => tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }, { ip: 'fd00::2', setIndex: 1 }]));
    await s.withLock((tx) => {
      expect(tx.getByAttachment('c1', 'eth0').map((r) => r.ip).sort()).toEqual(['10.0.0.2', 'fd00::2']);
      expect(tx.getByAttachment('ref', 'eth0').map((r) => r.ip)).toEqual(['10.0.0.9']);
    });
    expect(await s.withLock((tx) => tx.release('ref', 'eth0'))).toEqual(['10.0.0.9']);
    expect(await s.withLock((tx) => tx.release('c1', 'eth0'))).toEqual(expect.arrayContaining(['10.0.0.2', 'fd00::2']));
    expect(ipFiles()).toEqual([]);
    expect(existsSync(join(dir, INDEX_NAME))).toBe(false);
    expect(read('last_reserved_ip.1')).toBe('fd00::2');
  });

  it('a session that fails after reserving (here: in the caller) removes its reservation files again', async () => {
    const s = store();
    const err = await s
      .withLock((tx) => {
        tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]);
        throw new Error('boom');
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.IoFailure, message: expect.stringContaining('boom') });
    expect(ipFiles()).toEqual([]);
    await s.withLock((tx) => expect(tx.getByAttachment('c1', 'eth0')).toEqual([]));
  });
});
