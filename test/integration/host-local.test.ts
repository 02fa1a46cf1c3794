import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/cni/errors.js';
import { versionAtLeast } from '../../lib/cni/version.js';
import { runPlugin } from '../helpers/cni.js';
import { ALL_VERSIONS, isRoot } from '../helpers/env.js';
import { HOST_LOCAL, assertBuilt, indexEntries, removeDir, reservations, snapshot, tempDataDir, tutorialConf } from '../helpers/host-local.js';

// Black box: the built executable, driven through env + stdin as a runtime does. host-local
// touches only files, so these run without root and without a network namespace.

let dataDir: string;
beforeAll(assertBuilt);
beforeEach(() => {
  dataDir = tempDataDir('phl');
});
afterEach(() => removeDir(dataDir));

const run = (command: string, config: unknown, more: { containerId?: string; ifName?: string; args?: string; env?: Record<string, string | undefined> } = {}) =>
  runPlugin(HOST_LOCAL, { command, containerId: more.containerId ?? 'ctr1', netns: '/var/run/netns/phl-none', ifName: more.ifName ?? 'eth0', ...(more.args ? { args: more.args } : {}), ...(more.env ? { env: more.env } : {}) }, config);

describe('podnet-host-local: VERSION and the tutorial config', () => {
  it('answers VERSION with every supported version', async () => {
    const r = await runPlugin(HOST_LOCAL, { command: 'VERSION' }, '');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: [...ALL_VERSIONS] });
  });

  it('ADD with the tutorial config returns the 0.2.0 shape and writes the reference layout; DEL releases', async () => {
    const conf = tutorialConf(dataDir);
    const r = await run('ADD', conf);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '0.2.0', ip4: { ip: '10.22.0.2/16', gateway: '10.22.0.1', routes: [{ dst: '0.0.0.0/0' }] } });
    expect(reservations(dataDir, 'mynet')).toEqual({ '10.22.0.2': 'ctr1\r\neth0' });
    expect(readFileSync(join(dataDir, 'mynet', 'last_reserved_ip.0'), 'utf8')).toBe('10.22.0.2');
    const r2 = await run('ADD', conf, { containerId: 'ctr2' });
    expect((r2.json?.ip4 as { ip: string }).ip).toBe('10.22.0.3/16');
    const d = await run('DEL', conf);
    expect(d).toMatchObject({ code: 0, stdout: '' });
    expect(reservations(dataDir, 'mynet')).toEqual({ '10.22.0.3': 'ctr2\r\neth0' });
    expect(indexEntries(dataDir, 'mynet')).toEqual(['ctr2:eth0']);
  });
});

describe.each(ALL_VERSIONS)('podnet-host-local executable, cniVersion %s', (v) => {
  const dual = () => ({
    cniVersion: v,
    name: 'phlnet',
    type: 'podnet-bridge',
    ipam: {
      type: 'podnet-host-local',
      dataDir,
      ranges: [[{ subnet: '10.40.0.0/24', gateway: '10.40.0.254' }], [{ subnet: 'fd00:40::/120' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: 'fd00::/8', gw: 'fd00:40::1' }],
    },
  });

  it('ADD, CHECK, DEL, GC and STATUS behave as the spec says for this version', async () => {
    const add = await run('ADD', dual());
    expect(add.code).toBe(0);
    if (!versionAtLeast(v, '0.3.0')) {
      expect(add.json).toEqual({
        cniVersion: v,
        ip4: { ip: '10.40.0.1/24', gateway: '10.40.0.254', routes: [{ dst: '0.0.0.0/0' }] },
        ip6: { ip: 'fd00:40::2/120', gateway: 'fd00:40::1', routes: [{ dst: 'fd00::/8', gw: 'fd00:40::1' }] },
      });
    } else {
      const ver = versionAtLeast(v, '1.0.0') ? {} : { version: '4' };
      const ver6 = versionAtLeast(v, '1.0.0') ? {} : { version: '6' };
      expect(add.json).toEqual({
        cniVersion: v,
        ips: [
          { ...ver, address: '10.40.0.1/24', gateway: '10.40.0.254' },
          { ...ver6, address: 'fd00:40::2/120', gateway: 'fd00:40::1' },
        ],
        routes: [{ dst: '0.0.0.0/0' }, { dst: 'fd00::/8', gw: 'fd00:40::1' }],
      });
    }
    expect(reservations(dataDir, 'phlnet')).toEqual({ '10.40.0.1': 'ctr1\r\neth0', 'fd00:40::2': 'ctr1\r\neth0' });

    const other = await run('ADD', dual(), { containerId: 'ctr2', ifName: 'net1' });
    expect(other.code).toBe(0);

    const check = await run('CHECK', { ...dual(), prevResult: add.json });
    if (versionAtLeast(v, '0.4.0')) {
      expect(check).toMatchObject({ code: 0, stdout: '' });
      const bad = await run('CHECK', { ...dual(), prevResult: other.json });
      expect(bad.code).not.toBe(0);
      expect(bad.json).toMatchObject({ cniVersion: v, code: ErrorCode.CheckFailed });
    } else {
      expect(check.code).not.toBe(0);
      expect(check.json).toMatchObject({ code: ErrorCode.IncompatibleVersion });
    }

    const gc = await run('GC', { ...dual(), 'cni.dev/valid-attachments': [{ containerID: 'ctr1', ifname: 'eth0' }] });
    const status = await run('STATUS', dual());
    if (v === '1.1.0') {
      expect(gc).toMatchObject({ code: 0, stdout: '' });
      expect(Object.keys(reservations(dataDir, 'phlnet'))).toEqual(['10.40.0.1', 'fd00:40::2']);
      expect(status).toMatchObject({ code: 0, stdout: '' });
    } else {
      expect(gc.code).not.toBe(0);
      expect(gc.json).toMatchObject({ code: ErrorCode.IncompatibleVersion });
      expect(status.code).not.toBe(0);
      expect(status.json).toMatchObject({ code: ErrorCode.IncompatibleVersion });
      expect(Object.keys(reservations(dataDir, 'phlnet'))).toHaveLength(4);
    }

    for (const [id, ifName] of [['ctr1', 'eth0'], ['ctr2', 'net1'], ['ctr1', 'eth0']] as const) {
      expect(await run('DEL', dual(), { containerId: id, ifName })).toMatchObject({ code: 0, stdout: '' });
    }
    expect(reservations(dataDir, 'phlnet')).toEqual({});
    expect(indexEntries(dataDir, 'phlnet')).toEqual([]);
  });

  it('honours requested addresses (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips) or refuses them with 101', async () => {
    const viaArgs = await run('ADD', dual(), { args: 'IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.40.0.20' });
    expect(viaArgs.code).toBe(0);
    expect(Object.keys(reservations(dataDir, 'phlnet'))).toContain('10.40.0.20');
    const viaRc = await run('ADD', { ...dual(), runtimeConfig: { ips: ['10.40.0.21/24', 'fd00:40::21'] } }, { containerId: 'ctr2' });
    expect(viaRc.code).toBe(0);
    expect(JSON.stringify(viaRc.json)).toContain('fd00:40::21/120');
    const viaConf = await run('ADD', { ...dual(), args: { cni: { ips: ['10.40.0.22'] } } }, { containerId: 'ctr3' });
    expect(viaConf.code).toBe(0);
    const before = snapshot(dataDir);
    const taken = await run('ADD', { ...dual(), runtimeConfig: { ips: ['10.40.0.21'] } }, { containerId: 'ctr4' });
    expect(taken.code).not.toBe(0);
    expect(taken.json).toMatchObject({ cniVersion: v, code: ErrorCode.AddressUnavailable, msg: expect.stringContaining('10.40.0.21') });
    expect(snapshot(dataDir)).toEqual(before);
  });
});

describe('podnet-host-local: bad input changes nothing', () => {
  const good = () => tutorialConf(dataDir, '1.0.0', 'phlbad');
  let before: Record<string, string>;
  beforeEach(async () => {
    expect((await run('ADD', good(), { containerId: 'existing' })).code).toBe(0);
    before = snapshot(dataDir);
  });

  async function expectError(r: Awaited<ReturnType<typeof run>>, code: number, msg?: RegExp | string) {
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    expect(r.json).toMatchObject({ code, ...(msg ? { msg: typeof msg === 'string' ? expect.stringContaining(msg) : expect.stringMatching(msg) } : {}) });
    expect(snapshot(dataDir)).toEqual(before);
  }

  it('invalid JSON: 6', async () => {
    await expectError(await run('ADD', '{"cniVersion": "1.0.0", "name": '), ErrorCode.DecodingFailure);
  });

  it('missing env: 4, naming the variable', async () => {
    await expectError(await run('ADD', good(), { env: { CNI_CONTAINERID: undefined } }), ErrorCode.InvalidEnvironmentVariables, 'CNI_CONTAINERID');
    await expectError(await run('ADD', good(), { env: { CNI_COMMAND: undefined } }), ErrorCode.InvalidEnvironmentVariables, 'CNI_COMMAND');
    await expectError(await run('DEL', good(), { env: { CNI_IFNAME: undefined } }), ErrorCode.InvalidEnvironmentVariables, 'CNI_IFNAME');
  });

  it('unknown cniVersion: 1', async () => {
    await expectError(await run('ADD', { ...good(), cniVersion: '9.9.9' }), ErrorCode.IncompatibleVersion);
    await expectError(await run('ADD', { ...good(), cniVersion: 'one' }), ErrorCode.IncompatibleVersion);
  });

  it('invalid subnet, /32, /31: 7', async () => {
    for (const subnet of ['10.22.0.0/33', 'bogus', '10.22.0.1/32', '10.22.0.0/31', '10.22.0.5/16']) {
      const conf = good();
      await expectError(await run('ADD', { ...conf, ipam: { ...(conf.ipam as object), subnet } }), ErrorCode.InvalidNetworkConfig, /invalid ipam config/);
    }
  });

  it('configs that cannot work: subnet 0.0.0.0/0, a gateway outside its subnet: 7, nothing reserved', async () => {
    before = snapshot(dataDir);
    const conf = good();
    const ipam = conf.ipam as object;
    for (const [bad, msg] of [
      [{ subnet: '0.0.0.0/0' }, /0\.0\.0\.0\/0 is the whole address space/],
      [{ subnet: '192.168.77.0/24', gateway: '10.22.0.1' }, /gateway 10\.22\.0\.1 not in network 192\.168\.77\.0\/24/],
      [{ subnet: undefined, ranges: [[{ subnet: '10.22.0.0/16' }], [{ subnet: 'fd00:22::/64', gateway: 'fd00:99::1' }]] }, /gateway fd00:99::1 not in network/],
    ] as const) {
      await expectError(await run('ADD', { ...conf, ipam: { ...ipam, ...bad } }), ErrorCode.InvalidNetworkConfig, msg);
    }
    expect(snapshot(dataDir)).toEqual(before);
  });

  it('network name with "/" or "..": 7, and no directory made anywhere', async () => {
    for (const name of ['../escape', 'a/b', '..']) {
      await expectError(await run('ADD', { ...good(), name }), ErrorCode.InvalidNetworkConfig, 'network name');
    }
    expect(existsSync(join(dataDir, '..', 'escape'))).toBe(false);
  });

  it('ifname over 15 characters: 4', async () => {
    await expectError(await run('ADD', good(), { ifName: 'a'.repeat(16) }), ErrorCode.InvalidEnvironmentVariables, 'longer than 15 characters');
  });

  it('duplicate attachment: 102', async () => {
    await expectError(await run('ADD', good(), { containerId: 'existing' }), ErrorCode.DuplicateAttachment, 'duplicate allocation is not allowed');
  });

  it('range exhausted: 100 with a clear message, nothing reserved', async () => {
    const small = { ...good(), name: 'phlsmall', ipam: { type: 'podnet-host-local', dataDir, subnet: '10.99.0.0/30' } };
    expect((await run('ADD', small, { containerId: 'only' })).code).toBe(0);
    before = snapshot(dataDir);
    await expectError(await run('ADD', small, { containerId: 'one-too-many' }), ErrorCode.AddressesExhausted, 'no IP addresses available in range set: 10.99.0.1-10.99.0.2');
    const status = await run('STATUS', { ...small, cniVersion: '1.1.0' });
    expect(status.json).toMatchObject({ code: ErrorCode.PluginNotAvailable, msg: expect.stringContaining('no free addresses left in range set 0') });
  });

  it('dataDir below a regular file: 5 with the path', async () => {
    writeFileSync(join(dataDir, 'plain-file'), 'x');
    before = snapshot(dataDir);
    const bad = join(dataDir, 'plain-file', 'networks');
    await expectError(await run('ADD', { ...good(), ipam: { ...(good().ipam as object), dataDir: bad } }), ErrorCode.IoFailure, join(bad, 'phlbad'));
  });

  it.runIf(isRoot)('dataDir not writable for the (non-root) caller: 5 with the path', async () => {
    const locked = join(dataDir, 'locked');
    mkdirSync(locked, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    before = snapshot(dataDir);
    const conf = { ...good(), ipam: { ...(good().ipam as object), dataDir: locked } };
    const r = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', HOST_LOCAL], {
      input: JSON.stringify(conf),
      env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_NETNS: '/x', CNI_IFNAME: 'eth0', CNI_PATH: '/x' },
      extendEnv: false,
      reject: false,
    });
    expect(r.exitCode).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: ErrorCode.IoFailure, msg: expect.stringContaining(join(locked, 'phlbad')) });
    expect(snapshot(dataDir)).toEqual(before);
  });
});
