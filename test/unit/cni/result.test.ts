import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../lib/cni/errors.js';
import { formatResult, parseResult } from '../../../lib/cni/result.js';
import type { Result } from '../../../lib/cni/types.js';
import { compareVersions } from '../../../lib/cni/version.js';
import { ALL_VERSIONS } from '../../helpers/env.js';

/** What the bridge returns for a dual-stack pod, in the internal 1.x shape. */
const full: Result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:f4:01:01' },
    { name: 'veth1234', mac: '0e:11:22:33:44:55' },
    { name: 'eth0', mac: '0a:58:0a:f4:01:05', mtu: 1450, sandbox: '/var/run/netns/pod' },
  ],
  ips: [
    { address: '10.244.1.5/24', gateway: '10.244.1.1', interface: 2 },
    { address: 'fd00:10:244:1::5/64', gateway: 'fd00:10:244:1::1', interface: 2 },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.244.1.1', mtu: 1400, priority: 10 },
    { dst: '::/0' },
  ],
  dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
};

describe('formatResult', () => {
  it.each(['1.0.0', '1.1.0'])('keeps the 1.x shape for %s', (v) => {
    expect(formatResult(full, v)).toEqual({ ...full, cniVersion: v });
  });

  it.each(['0.3.0', '0.3.1', '0.4.0'])('adds ip versions and drops 1.x-only fields for %s', (v) => {
    expect(formatResult(full, v)).toEqual({
      cniVersion: v,
      interfaces: [
        { name: 'cni0', mac: '0a:58:0a:f4:01:01' },
        { name: 'veth1234', mac: '0e:11:22:33:44:55' },
        { name: 'eth0', mac: '0a:58:0a:f4:01:05', sandbox: '/var/run/netns/pod' },
      ],
      ips: [
        { version: '4', address: '10.244.1.5/24', gateway: '10.244.1.1', interface: 2 },
        { version: '6', address: 'fd00:10:244:1::5/64', gateway: 'fd00:10:244:1::1', interface: 2 },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }, { dst: '::/0' }],
      dns: full.dns,
    });
  });

  it.each(['0.1.0', '0.2.0'])('uses ip4/ip6 with the first IP of each family for %s', (v) => {
    expect(formatResult(full, v)).toEqual({
      cniVersion: v,
      ip4: { ip: '10.244.1.5/24', gateway: '10.244.1.1', routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }] },
      ip6: { ip: 'fd00:10:244:1::5/64', gateway: 'fd00:10:244:1::1', routes: [{ dst: '::/0' }] },
      dns: full.dns,
    });
  });

  it('omits empty sections', () => {
    expect(formatResult({ cniVersion: '1.1.0' }, '1.0.0')).toEqual({ cniVersion: '1.0.0' });
    expect(formatResult({ cniVersion: '1.1.0' }, '0.2.0')).toEqual({ cniVersion: '0.2.0' });
  });
});

describe.each(ALL_VERSIONS)('round trip through %s', (v) => {
  it('parses what it formats, losing only what the version cannot carry', () => {
    const back = parseResult(formatResult(full, v), '1.1.0');
    if (compareVersions(v, '1.0.0') >= 0) {
      expect(back).toEqual({ ...full, cniVersion: '1.1.0' });
    } else if (compareVersions(v, '0.3.0') >= 0) {
      expect(back.ips).toEqual(full.ips);
      expect(back.interfaces?.[2]).toEqual({ name: 'eth0', mac: '0a:58:0a:f4:01:05', sandbox: '/var/run/netns/pod' });
      expect(back.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.244.1.1' }, { dst: '::/0' }]);
    } else {
      expect(back.interfaces).toBeUndefined();
      expect(back.ips).toEqual([
        { address: '10.244.1.5/24', gateway: '10.244.1.1' },
        { address: 'fd00:10:244:1::5/64', gateway: 'fd00:10:244:1::1' },
      ]);
      expect(back.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.244.1.1' }, { dst: '::/0' }]);
    }
    expect(back.dns).toEqual(full.dns);
  });

  it('uses the fallback version when the result has none', () => {
    const shaped = formatResult(full, v);
    delete shaped.cniVersion;
    expect(parseResult(shaped, v).ips?.[0]?.address).toBe('10.244.1.5/24');
  });
});

describe('parseResult rejects malformed input with code 6', () => {
  it.each([
    ['not an object', 'x'],
    ['unknown version', { cniVersion: '9.9.9' }],
    ['ips not a list', { cniVersion: '1.0.0', ips: {} }],
    ['ip without address', { cniVersion: '1.0.0', ips: [{ gateway: '10.0.0.1' }] }],
    ['interface index out of range', { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.2/24', interface: 3 }] }],
    ['route without dst', { cniVersion: '0.4.0', routes: [{ gw: '10.0.0.1' }] }],
    ['ip4 not an object', { cniVersion: '0.2.0', ip4: 'x' }],
    ['mtu not a number', { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', mtu: '1500' }] }],
    ['dns nameservers not strings', { cniVersion: '1.0.0', dns: { nameservers: [1] } }],
  ])('%s', (_, raw) => {
    expect(() => parseResult(raw, '1.0.0')).toThrow(expect.objectContaining({ code: ErrorCode.DecodingFailure }));
  });
});
