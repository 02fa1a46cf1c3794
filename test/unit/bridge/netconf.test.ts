import { describe, expect, it } from 'vitest';
import { CniError } from '../../../lib/cni/errors.js';
import type { NetConf } from '../../../lib/cni/types.js';
import { loadBridgeConf } from '../../../plugins/bridge/netconf.js';

const base = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.0.0', name: 'n', type: 'podnet-bridge', ...extra }) as NetConf;

function errorOf(f: () => unknown): CniError {
  try {
    f();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('loadBridgeConf', () => {
  it('fills upstream defaults', () => {
    const c = loadBridgeConf(base(), '');
    expect(c.bridge).toBe('cni0');
    expect(c.isGateway).toBe(false);
    expect(c.mtu).toBe(0);
    expect(c.vlan).toBe(0);
    expect(c.vlanTrunk).toEqual([]);
    expect(c.ipamType).toBe('');
    expect(c.ipMasqBackend).toBeUndefined();
    expect(c.mac).toBeUndefined();
  });

  it('isDefaultGateway implies isGateway', () => {
    expect(loadBridgeConf(base({ isDefaultGateway: true }), '').isGateway).toBe(true);
  });

  it.each([
    ['mtu', 67],
    ['mtu', 65536],
    ['mtu', 1500.5],
    ['vlan', -1],
    ['vlan', 4095],
    ['isGateway', 'yes'],
    ['ipMasq', 1],
    ['ipMasqBackend', 'pf'],
    ['bridge', 'a-very-long-bridge-name'],
    ['bridge', 'br/0'],
    ['bridge', ''],
  ])('rejects %s = %j with code 7 naming the key', (key, value) => {
    const e = errorOf(() => loadBridgeConf(base({ [key]: value }), ''));
    expect(e.code).toBe(7);
    expect(e.message).toContain(`"${key}"`);
  });

  it('accepts mtu and vlan at the edges', () => {
    expect(loadBridgeConf(base({ mtu: 68 }), '').mtu).toBe(68);
    expect(loadBridgeConf(base({ mtu: 65535 }), '').mtu).toBe(65535);
    expect(loadBridgeConf(base({ vlan: 4094 }), '').vlan).toBe(4094);
  });

  it('refuses hairpinMode together with promiscMode', () => {
    const e = errorOf(() => loadBridgeConf(base({ hairpinMode: true, promiscMode: true }), ''));
    expect(e.code).toBe(7);
    expect(e.message).toMatch(/hairpin.*promisc/);
  });

  it('collects vlanTrunk like upstream', () => {
    const c = loadBridgeConf(base({ vlanTrunk: [{ minID: 10, maxID: 12 }, { id: 5 }, { id: 11 }] }), '');
    expect(c.vlanTrunk).toEqual([5, 10, 11, 12]);
    expect(errorOf(() => loadBridgeConf(base({ vlanTrunk: [{ minID: 10 }] }), '')).code).toBe(7);
    expect(errorOf(() => loadBridgeConf(base({ vlanTrunk: [{ minID: 12, maxID: 10 }] }), '')).code).toBe(7);
    expect(errorOf(() => loadBridgeConf(base({ vlanTrunk: [{ id: 4095 }] }), '')).code).toBe(7);
  });

  it('takes the MAC from runtimeConfig over args over CNI_ARGS', () => {
    const env = 'IgnoreUnknown=1;MAC=02:00:00:00:00:01';
    expect(loadBridgeConf(base(), env).mac).toBe('02:00:00:00:00:01');
    expect(loadBridgeConf(base({ args: { cni: { mac: '02:00:00:00:00:02' } } }), env).mac).toBe('02:00:00:00:00:02');
    expect(
      loadBridgeConf(base({ args: { cni: { mac: '02:00:00:00:00:02' } }, runtimeConfig: { mac: '02:00:00:00:00:0A' } }), env).mac,
    ).toBe('02:00:00:00:00:0a');
  });

  it('rejects bad MACs (code 7 in the config, 4 in CNI_ARGS)', () => {
    expect(errorOf(() => loadBridgeConf(base({ runtimeConfig: { mac: 'nope' } }), '')).code).toBe(7);
    expect(errorOf(() => loadBridgeConf(base({ runtimeConfig: { mac: '01:00:00:00:00:01' } }), '')).code).toBe(7);
    expect(errorOf(() => loadBridgeConf(base(), 'MAC=zz')).code).toBe(4);
  });

  it('allows IP in CNI_ARGS (for the IPAM) but not unknown keys', () => {
    expect(() => loadBridgeConf(base(), 'IP=10.0.0.5')).not.toThrow();
    expect(errorOf(() => loadBridgeConf(base(), 'FOO=1')).code).toBe(2);
  });

  it('treats ipam: {} as L2 only, and refuses IPAM with disableContainerInterface', () => {
    expect(loadBridgeConf(base({ ipam: {} }), '').ipamType).toBe('');
    expect(loadBridgeConf(base({ ipam: { type: 'host-local' } }), '').ipamType).toBe('host-local');
    expect(errorOf(() => loadBridgeConf(base({ ipam: { type: 'x' }, disableContainerInterface: true }), '')).code).toBe(7);
  });

  it('keeps the config dns only when something is set', () => {
    expect(loadBridgeConf(base({ dns: {} }), '').dns).toBeUndefined();
    expect(loadBridgeConf(base({ dns: { nameservers: ['1.1.1.1'] } }), '').dns).toEqual({ nameservers: ['1.1.1.1'] });
  });
});
