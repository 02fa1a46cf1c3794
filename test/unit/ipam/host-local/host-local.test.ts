import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CmdArgs, dispatch } from '../../../../lib/cni/dispatch.js';
import { ErrorCode } from '../../../../lib/cni/errors.js';
import { silentLogger } from '../../../../lib/cni/log.js';
import type { NetConf } from '../../../../lib/cni/types.js';
import { versionAtLeast } from '../../../../lib/cni/version.js';
import { createHostLocalPlugin } from '../../../../ipam/host-local/host-local.js';
import { MemoryStore } from '../../../../ipam/host-local/store/memory-store.js';
import { ALL_VERSIONS } from '../../../helpers/env.js';
import { indexEntries } from '../../../helpers/host-local.js';

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'phl-hl-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

interface Call {
  code: number;
  out: unknown;
}

/** Run the plugin through dispatch exactly as the executable does, with env and stdin in memory. */
async function call(verb: string, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<Call> {
  let stdout = '';
  const code = await dispatch(createHostLocalPlugin(), { name: 'podnet-host-local' }, {
    env: { CNI_COMMAND: verb, CNI_CONTAINERID: 'ctr1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...env },
    readStdin: () => Buffer.from(JSON.stringify(config)),
    stdout: (t) => {
      stdout += t;
    },
    stderr: () => undefined,
  });
  return { code, out: stdout.trim() ? JSON.parse(stdout) : undefined };
}

const netConf = (cniVersion: string, ipam: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  cniVersion,
  name: 'phlnet',
  type: 'podnet-host-local',
  ipam: { type: 'podnet-host-local', dataDir, ranges: [[{ subnet: '10.22.0.0/16' }], [{ subnet: 'fd00:22::/64' }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }], ...ipam },
  ...extra,
});
const ipFiles = () => readdirSync(join(dataDir, 'phlnet')).filter((n) => /^[0-9.]+$|:/.test(n)).sort();

describe.each(ALL_VERSIONS)('host-local handlers, cniVersion %s', (v) => {
  const legacy = !versionAtLeast(v, '0.3.0');

  it('ADD returns the result in the config\'s shape', async () => {
    const r = await call('ADD', netConf(v));
    expect(r.code).toBe(0);
    if (legacy) {
      expect(r.out).toEqual({
        cniVersion: v,
        ip4: { ip: '10.22.0.2/16', gateway: '10.22.0.1', routes: [{ dst: '0.0.0.0/0' }] },
        ip6: { ip: 'fd00:22::2/64', gateway: 'fd00:22::1', routes: [{ dst: '::/0' }] },
      });
    } else if (versionAtLeast(v, '1.0.0')) {
      expect(r.out).toEqual({
        cniVersion: v,
        ips: [
          { address: '10.22.0.2/16', gateway: '10.22.0.1' },
          { address: 'fd00:22::2/64', gateway: 'fd00:22::1' },
        ],
        routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
      });
    } else {
      expect(r.out).toEqual({
        cniVersion: v,
        ips: [
          { version: '4', address: '10.22.0.2/16', gateway: '10.22.0.1' },
          { version: '6', address: 'fd00:22::2/64', gateway: 'fd00:22::1' },
        ],
        routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
      });
    }
    expect(ipFiles()).toEqual(['10.22.0.2', 'fd00:22::2']);
  });

  it('ADD fills dns from resolvConf', async () => {
    const rc = join(dataDir, 'resolv.conf');
    writeFileSync(rc, 'nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n');
    const r = await call('ADD', netConf(v, { resolvConf: rc }));
    expect(r.code).toBe(0);
    expect((r.out as { dns: unknown }).dns).toEqual({ nameservers: ['10.96.0.10'], search: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] });
  });

  it('ADD twice for the same attachment fails with 102, DEL releases, DEL again succeeds', async () => {
    expect((await call('ADD', netConf(v))).code).toBe(0);
    const dup = await call('ADD', netConf(v));
    expect(dup).toMatchObject({ code: 1, out: { code: ErrorCode.DuplicateAttachment } });
    expect((await call('DEL', netConf(v))).code).toBe(0);
    expect(ipFiles()).toEqual([]);
    expect(await call('DEL', netConf(v))).toEqual({ code: 0, out: undefined });
    expect((await call('DEL', netConf(v), { CNI_CONTAINERID: 'never-added' })).code).toBe(0);
  });

  it('CHECK needs 0.4.0 or later and compares the reservation with prevResult', async () => {
    const added = await call('ADD', netConf(v));
    const check = await call('CHECK', netConf(v, {}, { prevResult: added.out }));
    if (!versionAtLeast(v, '0.4.0')) {
      expect(check).toMatchObject({ code: 1, out: { code: ErrorCode.IncompatibleVersion } });
      return;
    }
    expect(check).toEqual({ code: 0, out: undefined });
    const other = await call('CHECK', netConf(v, {}, { prevResult: added.out }), { CNI_IFNAME: 'eth1' });
    expect(other).toMatchObject({ code: 1, out: { code: ErrorCode.CheckFailed, msg: expect.stringContaining('no address reserved') } });
    const wrong = JSON.parse(JSON.stringify(added.out).replace('10.22.0.2/16', '10.22.0.9/16'));
    expect(await call('CHECK', netConf(v, {}, { prevResult: wrong }))).toMatchObject({
      code: 1,
      out: { code: ErrorCode.CheckFailed, msg: expect.stringContaining('10.22.0.9 from prevResult is not reserved') },
    });
    const missing = { cniVersion: v, ips: [{ address: '10.22.0.2/16', gateway: '10.22.0.1' }, { address: '192.168.0.1/24' }] };
    expect(await call('CHECK', netConf(v, {}, { prevResult: missing }))).toMatchObject({
      code: 1,
      out: { code: ErrorCode.CheckFailed, msg: expect.stringContaining('reserved fd00:22::2 is missing from prevResult') },
    });
  });

  it('GC and STATUS need 1.1.0', async () => {
    const gc = await call('GC', netConf(v, {}, { 'cni.dev/valid-attachments': [] }));
    const status = await call('STATUS', netConf(v));
    if (v !== '1.1.0') {
      expect(gc).toMatchObject({ code: 1, out: { code: ErrorCode.IncompatibleVersion } });
      expect(status).toMatchObject({ code: 1, out: { code: ErrorCode.IncompatibleVersion } });
    } else {
      expect(gc).toEqual({ code: 0, out: undefined });
      expect(status).toEqual({ code: 0, out: undefined });
    }
  });
});

describe('GC', () => {
  it('releases every reservation not in cni.dev/valid-attachments (or the legacy key); no key releases nothing', async () => {
    for (const [id, ifname] of [['a', 'eth0'], ['a', 'net1'], ['b', 'eth0'], ['c', 'eth0']]) {
      expect((await call('ADD', netConf('1.1.0'), { CNI_CONTAINERID: id as string, CNI_IFNAME: ifname as string })).code).toBe(0);
    }
    expect(ipFiles()).toHaveLength(8);
    expect((await call('GC', netConf('1.1.0'))).code).toBe(0);
    expect(ipFiles()).toHaveLength(8);
    const gc1 = await call('GC', netConf('1.1.0', {}, { 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }, { containerID: 'b', ifname: 'eth0' }] }));
    expect(gc1.code).toBe(0);
    expect(ipFiles()).toEqual(['10.22.0.2', '10.22.0.4', 'fd00:22::2', 'fd00:22::4']);
    const gc2 = await call('GC', netConf('1.1.0', {}, { 'cni.dev/attachments': [{ containerID: 'b', ifname: 'eth0' }] }));
    expect(gc2.code).toBe(0);
    expect(ipFiles()).toEqual(['10.22.0.4', 'fd00:22::4']);
    expect(indexEntries(dataDir, 'phlnet')).toEqual(['b:eth0']);
  });

  it('does nothing (and creates nothing) for a network without a store', async () => {
    expect((await call('GC', netConf('1.1.0', {}, { 'cni.dev/valid-attachments': [] }))).code).toBe(0);
    expect(readdirSync(dataDir)).toEqual([]);
  });
});

describe('STATUS', () => {
  it('fails with 50 when a range set has no free address left', async () => {
    const small = { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/30' }]] };
    expect((await call('STATUS', netConf('1.1.0', small))).code).toBe(0);
    expect((await call('ADD', netConf('1.1.0', small))).code).toBe(0);
    const r = await call('STATUS', netConf('1.1.0', small));
    expect(r).toMatchObject({ code: 1, out: { code: ErrorCode.PluginNotAvailable, msg: 'no free addresses left in range set 1 (10.1.0.1-10.1.0.2): all 1 are reserved' } });
  });

  it('fails with 50 and the path when the store is not usable', async () => {
    writeFileSync(join(dataDir, 'file'), '');
    const r = await call('STATUS', netConf('1.1.0', { dataDir: join(dataDir, 'file') }));
    expect(r).toMatchObject({ code: 1, out: { code: ErrorCode.PluginNotAvailable, msg: expect.stringContaining(join(dataDir, 'file', 'phlnet')) } });
  });
});

describe('in-process use (as the bridge plugin calls it)', () => {
  it('relies only on CmdArgs: the bridge\'s whole config with an ipam section, its own env', async () => {
    const store = new MemoryStore();
    const plugin = createHostLocalPlugin({ store: () => store });
    const conf = {
      cniVersion: '1.0.0',
      name: 'br-net',
      type: 'podnet-bridge',
      bridge: 'cni0',
      isGateway: true,
      ipam: { type: 'podnet-host-local', subnet: '10.30.0.0/24', gateway: '10.30.0.254' },
      runtimeConfig: { ips: ['10.30.0.10'] },
    } as NetConf;
    const args: CmdArgs = {
      command: 'ADD',
      containerId: 'pod1',
      netns: '/proc/1/ns/net',
      ifName: 'eth0',
      args: 'IgnoreUnknown=1;K8S_POD_NAME=web',
      path: [],
      stdinData: Buffer.from('not used'),
      netConf: conf,
      env: {},
      log: silentLogger,
    };
    expect(await plugin.add(args)).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.30.0.10/24', gateway: '10.30.0.254' }] });
    expect(store.reservations.get('10.30.0.10')).toEqual({ containerId: 'pod1', ifName: 'eth0' });
    await plugin.check({ ...args, command: 'CHECK', prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.30.0.10/24' }] } });
    await plugin.del({ ...args, command: 'DEL' });
    expect(store.reservations.size).toBe(0);
  });

  it('reserves nothing when resolvConf cannot be read (code 5)', async () => {
    const r = await call('ADD', netConf('1.0.0', { resolvConf: join(dataDir, 'missing.conf') }));
    expect(r).toMatchObject({ code: 1, out: { code: ErrorCode.IoFailure, msg: expect.stringContaining('missing.conf') } });
    expect(readdirSync(dataDir)).toEqual([]);
  });
});
