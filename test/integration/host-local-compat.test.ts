import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/cni/errors.js';
import { runPlugin } from '../helpers/cni.js';
import { debianCniBin } from '../helpers/env.js';
import { HOST_LOCAL, assertBuilt, indexEntries, removeDir, reservations, tempDataDir } from '../helpers/host-local.js';
import { UPSTREAM_CNI_VERSION, upstreamCniBin } from '../helpers/peers.js';

// Switching between the reference host-local and podnet-host-local on one store: each honours
// the other's reservations and releases them. Against the current upstream release (what a
// kind node ships, speaking 1.1.0 with GC) and Debian 12's 1.1.1 (up to 1.0.0): a Debian node's
// existing store was written by the latter, and a switch to podnet must keep it.

const REFERENCES = [
  { label: `upstream ${UPSTREAM_CNI_VERSION}`, bin: upstreamCniBin, cniVersion: '1.1.0', gc: true },
  { label: "Debian 12's 1.1.1", bin: debianCniBin, cniVersion: '1.0.0', gc: false },
] as const;

describe.each(REFERENCES.map((r) => [r.label, r] as const))('podnet-host-local and the reference host-local (%s) on one store', (_label, ref) => {
  let dataDir: string;
  let REFERENCE: string;
  beforeAll(() => {
    assertBuilt();
    // Throws, naming the command that provides it, when this reference is missing.
    REFERENCE = join(ref.bin(), 'host-local');
    if (!existsSync(REFERENCE)) throw new Error(`no ${REFERENCE}`);
  });
  beforeEach(() => {
    dataDir = tempDataDir('phl');
  });
  afterEach(() => removeDir(dataDir));

  const conf = (extra: Record<string, unknown> = {}) => ({
    cniVersion: ref.cniVersion,
    name: 'phlcompat',
    type: 'bridge',
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.50.0.0/24' }], [{ subnet: 'fd00:0:0:1::/64' }]] },
    ...extra,
  });

  const run = (file: string, command: string, containerId: string, config: unknown = conf(), ifName = 'eth0') =>
    runPlugin(file, { command, containerId, netns: '/var/run/netns/phl-none', ifName }, config);

  const addrs = (r: { json: Record<string, unknown> | undefined }) => ((r.json?.ips ?? []) as { address: string }[]).map((i) => i.address);

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
    expect((await run(REFERENCE, 'CHECK', 'p9', conf({ prevResult: { cniVersion: ref.cniVersion, ips: [] } }))).code).not.toBe(0);
    expect((await run(REFERENCE, 'DEL', 'p2')).code).toBe(0);
    expect((await run(REFERENCE, 'ADD', 'r1')).code).toBe(0);
    expect(Object.keys(reservations(dataDir, 'phlcompat'))).toHaveLength(6);
    expect(indexEntries(dataDir, 'phlcompat')).toEqual(['p1:eth0', 'p2:eth0', 'p3:eth0']); // untouched by the reference
    const p2 = await run(HOST_LOCAL, 'CHECK', 'p2', conf({ prevResult: { cniVersion: ref.cniVersion, ips: [] } }));
    expect(p2.json).toMatchObject({ code: ErrorCode.CheckFailed });
    expect(indexEntries(dataDir, 'phlcompat')).toEqual(['p1:eth0', 'p3:eth0', 'r1:eth0']); // rebuilt after the foreign change
  });

  // Debian's 1.1.1 predates GC (spec 1.1.0): the case exists for the upstream release only.
  if (ref.gc) it('GC of either releases the other\'s reservations that are not valid attachments (spec 1.1.0)', async () => {
    for (const [file, id] of [[HOST_LOCAL, 'pod1'], [REFERENCE, 'ref1'], [HOST_LOCAL, 'pod2'], [REFERENCE, 'ref2']] as const) {
      expect((await run(file, 'ADD', id)).code).toBe(0);
    }
    const gc = (file: string, keep: string[]) =>
      runPlugin(file, { command: 'GC' }, conf({ 'cni.dev/valid-attachments': keep.map((containerID) => ({ containerID, ifname: 'eth0' })) }));
    const owners = () => [...new Set(Object.values(reservations(dataDir, 'phlcompat')).map((v) => v.split('\r\n')[0]))].sort();

    // The reference's GC drops podnet's pod2 and its own ref2.
    const byRef = await gc(REFERENCE, ['pod1', 'ref1']);
    expect(byRef.code, byRef.stdout + byRef.stderr).toBe(0);
    expect(owners()).toEqual(['pod1', 'ref1']);
    // podnet notices what the reference removed, then its own GC drops the reference's ref1.
    const byPodnet = await gc(HOST_LOCAL, ['pod1']);
    expect(byPodnet.code, byPodnet.stdout + byPodnet.stderr).toBe(0);
    expect(owners()).toEqual(['pod1']);
    expect(indexEntries(dataDir, 'phlcompat')).toEqual(['pod1:eth0']);
    // The released addresses are free for both again.
    const again = await run(REFERENCE, 'ADD', 'ref3');
    expect(again.code, again.stdout).toBe(0);
    expect(Object.keys(reservations(dataDir, 'phlcompat'))).toHaveLength(4);
  });

  it('mixed writers: 50 podnet + 50 reference ADDs at once on one store, four rounds: none fails, every address distinct', async () => {
    // The two plugins lock differently (flock on `lock`, podnet/lock), so a reference ADD can take
    // the address podnet just picked: podnet moves on to the next free one, as the reference does.
    const wide = conf({ ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.51.0.0/16' }]] } });
    const failures: string[] = [];
    for (let round = 0; round < 4; round++) {
      const jobs = Array.from({ length: 100 }, (_, i) => ({ file: i % 2 ? REFERENCE : HOST_LOCAL, id: `mix${round}x${i}${i % 2 ? 'ref' : 'pod'}` }));
      const results = await Promise.all(jobs.map((j) => run(j.file, 'ADD', j.id, wide)));
      results.forEach((r, i) => {
        if (r.code !== 0) failures.push(`${jobs[i]?.id}: ${r.stdout}`);
      });
    }
    expect(failures).toEqual([]);
    const files = reservations(dataDir, 'phlcompat');
    expect(Object.keys(files)).toHaveLength(400);
    expect(new Set(Object.values(files)).size).toBe(400);
  });
});
