import { describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../../lib/cni/cni-args.js';
import { ErrorCode } from '../../../lib/cni/errors.js';
import { validateContainerId, validateIfName, validateNetworkName } from '../../../lib/cni/validate.js';

describe('parseCniArgs', () => {
  it('parses K=V pairs, keeping "=" inside values', () => {
    const m = parseCniArgs('IP=10.0.0.2,fd00::2;MAC=aa:bb:cc:dd:ee:ff;X=a=b', ['IP', 'MAC', 'X']);
    expect(Object.fromEntries(m)).toEqual({ IP: '10.0.0.2,fd00::2', MAC: 'aa:bb:cc:dd:ee:ff', X: 'a=b' });
  });

  it('accepts the keys containerd always sends', () => {
    const m = parseCniArgs('K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u');
    expect(m.get('K8S_POD_NAME')).toBe('web');
  });

  it('rejects unknown keys unless IgnoreUnknown is set', () => {
    expect(() => parseCniArgs('FOO=1', ['IP'])).toThrow(expect.objectContaining({ code: ErrorCode.UnsupportedField, message: expect.stringContaining('FOO') }));
    expect(parseCniArgs('IgnoreUnknown=1;FOO=1', ['IP']).get('FOO')).toBe('1');
    expect(parseCniArgs('IgnoreUnknown=true;FOO=1').get('FOO')).toBe('1');
    expect(() => parseCniArgs('IgnoreUnknown=0;FOO=1')).toThrow();
  });

  it('rejects malformed pairs with code 4', () => {
    expect(() => parseCniArgs('IP')).toThrow(expect.objectContaining({ code: ErrorCode.InvalidEnvironmentVariables }));
    expect(() => parseCniArgs('=x')).toThrow(expect.objectContaining({ code: ErrorCode.InvalidEnvironmentVariables }));
  });

  it('treats empty input and empty pairs as nothing', () => {
    expect(parseCniArgs('').size).toBe(0);
    expect(parseCniArgs(';;').size).toBe(0);
  });
});

describe('validation', () => {
  it.each(['abc', 'A1', '0_x.y-z', 'a'.repeat(200)])('accepts container ID %s', (id) => {
    expect(() => validateContainerId(id)).not.toThrow();
  });
  it.each(['', '-a', '.a', 'a/b', 'a b', '../x'])('rejects container ID %j', (id) => {
    expect(() => validateContainerId(id)).toThrow();
  });
  it.each(['eth0', 'net1', 'a'.repeat(15)])('accepts ifname %s', (n) => expect(() => validateIfName(n)).not.toThrow());
  it.each(['', '.', '..', 'a'.repeat(16), 'e/0', 'e:0', 'e 0', 'e\t0'])('rejects ifname %j', (n) => {
    expect(() => validateIfName(n)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidEnvironmentVariables }));
  });
  it.each(['podnet', 'my-net.v1_2'])('accepts network name %s', (n) => expect(() => validateNetworkName(n)).not.toThrow());
  it.each(['', '..', 'a/b', '/abs', 'x y', 3])('rejects network name %j with code 7', (n) => {
    expect(() => validateNetworkName(n)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidNetworkConfig }));
  });
});
