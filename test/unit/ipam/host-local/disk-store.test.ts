import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../../plugins/cni/errors.js';
import { DiskStore, INDEX_NAME, LOCK_NAME, TMP_NAME } from '../../../../ipam/host-local/store/disk-store.js';

let root: string;
let dir: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'phl-ds-'));
  dir = join(root, 'net');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const store = (opts = {}) => new DiskStore(root, 'net', opts);
const index = () => (existsSync(join(dir, INDEX_NAME)) ? readdirSync(join(dir, INDEX_NAME)).filter((n) => n !== '.stamp').sort() : []);
const ipFiles = () => readdirSync(dir).filter((n) => /^[0-9a-f.:]+$/.test(n) && n.includes('.') !== n.includes(':')).sort();
const read = (name: string) => readFileSync(join(dir, name), 'utf8');
/** A change the way the reference makes it: a file appears, and the directory's mtime moves on. */
function foreignWrite(name: string, content: string) {
  writeFileSync(join(dir, name), content);
  const t = new Date(Date.now() + 5000);
  utimesSync(dir, t, t);
}

describe('DiskStore', () => {
  it('writes the reference layout and an index entry; release removes both and is idempotent', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }, { ip: 'fd00::2', setIndex: 1 }]));
    expect(read('10.0.0.2')).toBe('c1\r\neth0');
    expect(read('fd00::2')).toBe('c1\r\neth0');
    expect(read('last_reserved_ip.0')).toBe('10.0.0.2');
    expect(read('last_reserved_ip.1')).toBe('fd00::2');
    expect(index()).toEqual(['c1:eth0']);
    expect(JSON.parse(readFileSync(join(dir, INDEX_NAME, 'c1:eth0'), 'utf8'))).toEqual({ containerID: 'c1', ifname: 'eth0', ips: ['10.0.0.2', 'fd00::2'] });
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false);
    expect(readdirSync(join(dir, TMP_NAME))).toEqual([]);

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

  it('ignores index entries whose files belong to someone else (killed between entry and file)', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    // the entry of an ADD killed before its file was written, for an address c1 now holds
    writeFileSync(join(dir, INDEX_NAME, 'ghost:eth0'), JSON.stringify({ containerID: 'ghost', ifname: 'eth0', ips: ['10.0.0.2', '10.0.0.3'] }));
    writeFileSync(join(dir, TMP_NAME, 'leftover'), 'ghost\r\neth0');
    await s.withLock((tx) => {
      expect(tx.getByAttachment('ghost', 'eth0')).toEqual([]);
      expect(tx.isReserved('10.0.0.3')).toBe(false);
      tx.reserve('ghost', 'eth0', [{ ip: '10.0.0.3', setIndex: 0 }]);
    });
    expect(readdirSync(join(dir, TMP_NAME))).toEqual([]);
    expect(JSON.parse(readFileSync(join(dir, INDEX_NAME, 'ghost:eth0'), 'utf8')).ips).toEqual(['10.0.0.3']);
    expect(await s.withLock((tx) => tx.release('ghost', 'eth0'))).toEqual(['10.0.0.3']);
    expect(read('10.0.0.2')).toBe('c1\r\neth0');
  });

  it('reserves all or nothing: a taken address undoes the others and the index entry', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('c1', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    const err = await s
      .withLock((tx) => tx.reserve('c2', 'eth0', [{ ip: '10.0.0.3', setIndex: 0 }, { ip: '10.0.0.2', setIndex: 1 }]))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.AddressUnavailable, message: expect.stringContaining('10.0.0.2') });
    expect(ipFiles()).toEqual(['10.0.0.2']);
    expect(index()).toEqual(['c1:eth0']);
    expect(existsSync(join(dir, 'last_reserved_ip.1'))).toBe(false);
  });

  it('GC: lists by walking the files and rebuilds the index without what it released', async () => {
    const s = store();
    await s.withLock((tx) => {
      tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]);
      tx.reserve('b', 'eth0', [{ ip: '10.0.0.3', setIndex: 0 }]);
    });
    writeFileSync(join(dir, INDEX_NAME, 'ghost:eth0'), JSON.stringify({ containerID: 'ghost', ifname: 'eth0', ips: ['10.0.0.9'] }));
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

  it('keeps unsafe or long owners in hashed entries', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '10.0.0.7'), '../../evil\r\neth0');
    const long = 'x'.repeat(240);
    const s = store();
    await s.withLock((tx) => tx.reserve(long, 'eth0', [{ ip: '10.0.0.8', setIndex: 0 }]));
    expect(index().every((n) => /^~[0-9a-f]{32}$/.test(n))).toBe(true);
    expect(index()).toHaveLength(2);
    expect(existsSync(join(root, 'evil'))).toBe(false);
    expect(await s.withLock((tx) => tx.release('../../evil', 'eth0'))).toEqual(['10.0.0.7']);
    expect(await s.withLock((tx) => tx.release(long, 'eth0'))).toEqual(['10.0.0.8']);
    expect(index()).toEqual([]);
  });

  it('writes the stamp only when the directory changed', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    const stamp = join(dir, INDEX_NAME, '.stamp');
    const before = statSync(stamp, { bigint: true }).mtimeNs;
    await s.withLock((tx) => tx.getByAttachment('a', 'eth0'));
    expect(statSync(stamp, { bigint: true }).mtimeNs).toBe(before);
    expect(JSON.parse(readFileSync(stamp, 'utf8')).mtimeNs).toBe(statSync(dir, { bigint: true }).mtimeNs.toString());
  });

  it('trusts the index across its own operations (no rebuild: a planted entry survives)', async () => {
    const s = store();
    await s.withLock((tx) => tx.reserve('a', 'eth0', [{ ip: '10.0.0.2', setIndex: 0 }]));
    writeFileSync(join(dir, INDEX_NAME, 'planted:eth0'), JSON.stringify({ containerID: 'planted', ifname: 'eth0', ips: [] }));
    await s.withLock((tx) => tx.reserve('b', 'eth0', [{ ip: '10.0.0.3', setIndex: 0 }]));
    await s.withLock((tx) => tx.release('a', 'eth0'));
    expect(index()).toEqual(['b:eth0', 'planted:eth0']);
    foreignWrite('10.0.0.9', 'ref\r\neth0');
    await s.withLock((tx) => tx.getByAttachment('b', 'eth0'));
    expect(index()).toEqual(['b:eth0', 'ref:eth0']);
  });
});
