import { describe, expect, it } from 'vitest';
import { CniError } from '../../../lib/cni/errors.js';
import { type BatchRequest, BridgeBatch, IpBatch, KernelInputError, renderIpOp } from '../../../lib/linux/ip.js';

/** A runner answering one canned process outcome, recording the request. */
const answer = (stdout: string, stderr = '', code = stderr ? 1 : 0) => {
  const seen: BatchRequest[] = [];
  return { seen, runner: { exec: async (req: BatchRequest) => (seen.push(req), { code, stdout, stderr }) } };
};

describe('IpBatch: every step returns its own handle', () => {
  it('returns each show step its own decoded output and no failures on success', async () => {
    const b = new IpBatch();
    const up = b.add({ kind: 'link-up', dev: 'a' });
    const a = b.link('a');
    const c = b.link('b');
    const { runner, seen } = answer('[{"ifindex":2,"ifname":"a","address":"02:00:00:00:00:01","addr_info":[{"family":"inet","local":"10.0.0.1","prefixlen":24,"scope":"global"}]}]\n[{"ifindex":3,"ifname":"b"}]\n');
    const r = await b.run(runner);
    expect(r.ok).toBe(true);
    expect(up.ok).toBe(true);
    expect(a.value?.ifname).toBe('a');
    expect(a.value?.addrs).toEqual([{ family: 4, cidr: '10.0.0.1/24', scope: 'global', tentative: false, dadfailed: false }]);
    expect(c.value?.ifname).toBe('b');
    expect(seen[0]?.lines).toEqual(['link set dev a up', 'addr show dev a', 'addr show dev b']);
  });

  it('maps "Command failed -:N" to the step and the kernel message before it; later steps did not run', async () => {
    const b = new IpBatch();
    const add = b.add({ kind: 'link-add-bridge', name: 'br0' });
    const up = b.add({ kind: 'link-up', dev: 'br0' });
    const r = await b.run(answer('', 'RTNETLINK answers: File exists\nCommand failed -:1\n').runner);
    expect(r.ok).toBe(false);
    expect(add.error).toMatchObject({ message: 'File exists', exists: true, notFound: false });
    expect(up.ok).toBe(false);
    expect(up.error?.message).toMatch(/not run/);
  });

  it('collects several failures in force mode; show outputs go to the show steps that ran', async () => {
    const b = new IpBatch({ force: true });
    const show = b.link('br0');
    const addr = b.add({ kind: 'addr-add', dev: 'br0', cidr: '10.0.0.1/24', broadcast: true });
    const del = b.add({ kind: 'link-del', dev: 'nope' });
    const after = b.link('br1');
    await b.run(answer('[{"ifindex":4,"ifname":"br0"}]\n[{"ifindex":5,"ifname":"br1"}]\n', 'Error: ipv4: Address already assigned.\nCommand failed -:2\nDevice "nope" does not exist.\nCommand failed -:3\n').runner);
    expect(show.value?.ifname).toBe('br0');
    expect(addr.error).toMatchObject({ message: 'ipv4: Address already assigned.', exists: true });
    expect(del.error).toMatchObject({ message: 'Device "nope" does not exist.', notFound: true });
    expect(after.value?.ifindex).toBe(5);
  });

  it('reports a failure before any line (nsenter, a required sysctl) on every step', async () => {
    const b = new IpBatch({ netns: '/var/run/netns/p', sysctls: [{ key: 'net/ipv6/conf/eth0/disable_ipv6', value: '0', required: true }] });
    const a = b.add({ kind: 'link-up', dev: 'eth0' });
    const s = b.link('eth0');
    await b.run(answer('', 'failed to write sysctl net/ipv6/conf/eth0/disable_ipv6\n', 97).runner);
    expect(a.error?.message).toBe('failed to write sysctl net/ipv6/conf/eth0/disable_ipv6');
    expect(s.error?.message).toBe('failed to write sysctl net/ipv6/conf/eth0/disable_ipv6');
    expect(() => s.value).toThrow(/disable_ipv6/);
  });

  it('bridge batches render VLAN entries', () => {
    const b = new BridgeBatch({ force: true });
    b.add({ kind: 'vlan', verb: 'add', dev: 'veth1', vid: 10, pvidUntagged: true, master: true });
    b.add({ kind: 'vlan', verb: 'del', dev: 'veth1', vid: 1 });
    expect(b.lines).toEqual(['vlan add dev veth1 vid 10 pvid untagged master', 'vlan del dev veth1 vid 1']);
  });
});

describe('no input text reaches ip as is', () => {
  const refused: [string, () => unknown][] = [
    ['a newline in an interface name', () => renderIpOp({ kind: 'link-del', dev: 'x\nlink add y type bridge' })],
    ['# in an interface name', () => renderIpOp({ kind: 'link-up', dev: 'x#y' })],
    ['a quoted interface name', () => renderIpOp({ kind: 'link-up', dev: "'eth2'" })],
    ['16 bytes of name', () => renderIpOp({ kind: 'link-up', dev: 'é'.repeat(8) })],
    ['a route dst with a command', () => renderIpOp({ kind: 'route', verb: 'add', dst: '10.66.0.0/16 dev lo\nlink add X type bridge' })],
    ['a leading-zero address', () => renderIpOp({ kind: 'addr-add', dev: 'eth0', cidr: '010.0.0.1/24' })],
    ['a gateway that is no address', () => renderIpOp({ kind: 'route', verb: 'add', dst: '0.0.0.0/0', via: '10.0.0.1 dev lo' })],
    ['a MAC with text after it', () => renderIpOp({ kind: 'link-address', dev: 'br0', mac: '02:00:00:00:00:01 up' })],
    ['a netns path with #', () => renderIpOp({ kind: 'link-add-veth', name: 'v', peer: { name: 'eth0', netns: '/var/run/netns/a#b' } })],
    ['a metric that is no integer', () => renderIpOp({ kind: 'route', verb: 'add', dst: '10.0.0.0/8', metric: 1.5 })],
    ['a sysctl key that climbs', () => new IpBatch({ netns: '/var/run/netns/p', sysctls: [{ key: 'net/../../etc/x', value: '1' }] })],
    ['a sysctl value with a newline', () => new IpBatch({ netns: '/var/run/netns/p', sysctls: [{ key: 'net/ipv4/ip_forward', value: '1\n0' }] })],
  ];
  it.each(refused)('refuses %s before anything runs', (_what, f) => {
    expect(f).toThrow(KernelInputError);
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(CniError);
    }
  });

  it('prints addresses canonically, whatever their input spelling', () => {
    expect(renderIpOp({ kind: 'addr-add', dev: 'eth0', cidr: 'FD00:0:0::5/64', broadcast: true })).toBe('addr add fd00::5/64 dev eth0');
    expect(renderIpOp({ kind: 'route', verb: 'add', dst: '::ffff:10.1.0.0/120', via: '10.0.0.1', dev: 'eth0' })).toBe('route add 10.1.0.0/24 via 10.0.0.1 dev eth0');
    expect(renderIpOp({ kind: 'link-up', dev: 'é'.repeat(7) })).toBe(`link set dev ${'é'.repeat(7)} up`);
  });
});
