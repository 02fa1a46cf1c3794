import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/cni/errors.js';
import { runPlugin } from '../helpers/cni.js';
import { REFERENCE_BIN } from '../helpers/env.js';
import { HOST_LOCAL, assertBuilt, indexEntries, removeDir, reservations, tempDataDir } from '../helpers/host-local.js';

// Switching between the reference host-local (Debian's containernetworking-plugins) and
// podnet-host-local on one store: each honours the other's reservations and releases them.

const REFERENCE = join(REFERENCE_BIN, 'host-local');
const hasReferenceIpam = existsSync(REFERENCE);

let dataDir: string;
beforeAll(assertBuilt);
beforeEach(() => {
  dataDir = tempDataDir('phl');
});
afterEach(() => removeDir(dataDir));

// The reference speaks up to 1.0.0.
const conf = (extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0',
  name: 'phlcompat',
  type: 'bridge',
  ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.50.0.0/24' }], [{ subnet: 'fd00:0:0:1::/64' }]] },
  ...extra,
});

const run = (file: string, command: string, containerId: string, config: unknown = conf(), ifName = 'eth0') =>
  runPlugin(file, { command, containerId, netns: '/var/run/netns/phl-none', ifName }, config);

const addrs = (r: { json: Record<string, unknown> | undefined }) => ((r.json?.ips ?? []) as { address: string }[]).map((i) => i.address);

describe.runIf(hasReferenceIpam)('podnet-host-local and the reference host-local on one store', () => {
  it('podnet honours, checks and releases reservations the reference made (migration on first use)', async () => {
    const a = await run(REFERENCE, 'ADD', 'refA');
    const b = await run(REFERENCE, 'ADD', 'refB');
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(addrs(a)).toEqual(['10.50.0.2/24', 'fd00:0:0:1::2/64']);
    expect(reservations(dataDir, 'phlcompat')).toMatchObject({ '10.50.0.2': 'refA\r\neth0', 'fd00:0:0:1::2': 'refA\r\neth0' });

    const c = await run(HOST_LOCAL, 'ADD', 'podC');
    expect(c.code, c.stdout).toBe(0);
    expect(addrs(c)).toEqual(['10.50.0.4/24', 'fd00:0:0:1::4/64']); // after the reference's cursor
    expect(indexEntries(dataDir, 'phlcompat')).toEqual(['podC:eth0', 'refA:eth0', 'refB:eth0']);

    expect((await run(HOST_LOCAL, 'CHECK', 'refA', conf({ prevResult: a.json }))).code).toBe(0);
    const dup = await run(HOST_LOCAL, 'ADD', 'refB');
    expect(dup.json).toMatchObject({ code: ErrorCode.DuplicateAttachment });

    expect((await run(HOST_LOCAL, 'DEL', 'refA')).code).toBe(0);
    expect(Object.keys(reservations(dataDir, 'phlcompat'))).toEqual(['10.50.0.3', '10.50.0.4', 'fd00:0:0:1::3', 'fd00:0:0:1::4']);
    expect(existsSync(join(dataDir, 'phlcompat', 'lock'))).toBe(true); // the reference's lock file is left alone
  });

  it('the reference honours, checks and releases reservations podnet made', async () => {
    const p = await run(HOST_LOCAL, 'ADD', 'podP');
    expect(addrs(p)).toEqual(['10.50.0.2/24', 'fd00:0:0:1::2/64']);
    const r = await run(REFERENCE, 'ADD', 'refR');
    expect(r.code, r.stdout).toBe(0);
    expect(addrs(r)).toEqual(['10.50.0.3/24', 'fd00:0:0:1::3/64']);
    expect((await run(REFERENCE, 'CHECK', 'podP', conf({ prevResult: p.json }))).code).toBe(0);
    const dup = await run(REFERENCE, 'ADD', 'podP');
    expect(dup.code).not.toBe(0);
    expect(dup.stdout).toContain('duplicate allocation is not allowed');

    expect((await run(REFERENCE, 'DEL', 'podP')).code).toBe(0);
    expect(Object.keys(reservations(dataDir, 'phlcompat'))).toEqual(['10.50.0.3', 'fd00:0:0:1::3']);
    // podnet notices the change it did not make: its index entry for podP is gone or ignored
    const again = await run(HOST_LOCAL, 'ADD', 'podP');
    expect(again.code, again.stdout).toBe(0);
    expect(addrs(again)).toEqual(['10.50.0.4/24', 'fd00:0:0:1::4/64']);
  });

  it('podnet releases what the reference reserved after podnet had built its index (interleaved use)', async () => {
    expect((await run(HOST_LOCAL, 'ADD', 'pod1')).code).toBe(0);
    expect((await run(REFERENCE, 'ADD', 'ref1')).code).toBe(0);
    expect((await run(HOST_LOCAL, 'ADD', 'pod2')).code).toBe(0);
    expect((await run(REFERENCE, 'ADD', 'ref2')).code).toBe(0);
    // one round-robin cursor for both: .2 pod1, .3 ref1, .4 pod2, .5 ref2
    expect(reservations(dataDir, 'phlcompat')).toMatchObject({
      '10.50.0.2': 'pod1\r\neth0',
      '10.50.0.3': 'ref1\r\neth0',
      '10.50.0.4': 'pod2\r\neth0',
      '10.50.0.5': 'ref2\r\neth0',
    });
    expect(readFileSync(join(dataDir, 'phlcompat', 'last_reserved_ip.0'), 'utf8')).toBe('10.50.0.5');
    for (const id of ['ref1', 'ref2', 'pod1']) expect((await run(HOST_LOCAL, 'DEL', id)).code).toBe(0);
    expect((await run(REFERENCE, 'DEL', 'pod2')).code).toBe(0);
    expect(reservations(dataDir, 'phlcompat')).toEqual({});
    expect((await run(HOST_LOCAL, 'DEL', 'pod2')).code).toBe(0);
    expect(indexEntries(dataDir, 'phlcompat')).toEqual([]);
  });

  it('both release legacy reservations that hold only the container ID', async () => {
    expect((await run(HOST_LOCAL, 'ADD', 'pod1')).code).toBe(0);
    writeFileSync(join(dataDir, 'phlcompat', '10.50.0.77'), 'legacy1');
    writeFileSync(join(dataDir, 'phlcompat', '10.50.0.78'), 'legacy2');
    const dup = await run(HOST_LOCAL, 'ADD', 'legacy1');
    expect(dup.json).toMatchObject({ code: ErrorCode.DuplicateAttachment, msg: expect.stringContaining('10.50.0.77') });
    expect((await run(HOST_LOCAL, 'DEL', 'legacy1')).code).toBe(0);
    expect((await run(REFERENCE, 'DEL', 'legacy2')).code).toBe(0);
    expect(Object.keys(reservations(dataDir, 'phlcompat'))).toEqual(['10.50.0.2', 'fd00:0:0:1::2']);
  });

  it('the reference is not confused by podnet\'s own files (index entries, stamp) when it walks the store', async () => {
    for (const id of ['p1', 'p2', 'p3']) expect((await run(HOST_LOCAL, 'ADD', id)).code).toBe(0);
    // The reference reads every file below the network directory on CHECK, DEL and ADD.
    expect((await run(REFERENCE, 'CHECK', 'p9', conf({ prevResult: { cniVersion: '1.0.0', ips: [] } }))).code).not.toBe(0);
    expect((await run(REFERENCE, 'DEL', 'p2')).code).toBe(0);
    expect((await run(REFERENCE, 'ADD', 'r1')).code).toBe(0);
    expect(Object.keys(reservations(dataDir, 'phlcompat'))).toHaveLength(6);
    expect(indexEntries(dataDir, 'phlcompat')).toEqual(['p1:eth0', 'p2:eth0', 'p3:eth0']); // untouched by the reference
    const p2 = await run(HOST_LOCAL, 'CHECK', 'p2', conf({ prevResult: { cniVersion: '1.0.0', ips: [] } }));
    expect(p2.json).toMatchObject({ code: ErrorCode.CheckFailed });
    expect(indexEntries(dataDir, 'phlcompat')).toEqual(['p1:eth0', 'p3:eth0', 'r1:eth0']); // rebuilt after the foreign change
  });
});
