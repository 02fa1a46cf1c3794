import { describe, expect, it } from 'vitest';
import type { HostNet, KernelRoute } from '../../../plugins/routesync/host-net.js';
import { toKernelRoute } from '../../../plugins/routesync/host-net.js';
import { calcRouteChanges, reconcileRoutes, routeLines } from '../../../plugins/routesync/reconcile-routes.js';
import type { DesiredRoute } from '../../../plugins/routesync/types.js';
import { parseBatchFailures } from '../../../plugins/linux/ip-async.js';

const P = 112;
const want = (dst: string, via: string, node = 'n'): DesiredRoute => ({ dst, via, family: dst.includes(':') ? 6 : 4, node });
const kr = (dst: string, gateway: string | undefined, protocol: string, metric?: number): KernelRoute => ({
  dst,
  family: dst.includes(':') ? 6 : 4,
  gateway,
  dev: 'eth0',
  protocol,
  metric: metric ?? (dst.includes(':') ? 1024 : 0),
  type: 'unicast',
});

describe('calcRouteChanges', () => {
  it('adds missing routes, replaces a changed gateway, deletes ours that are no longer wanted', () => {
    const c = calcRouteChanges(
      [want('10.244.1.0/24', '172.18.0.3'), want('10.244.2.0/24', '172.18.0.9'), want('10.244.3.0/24', '172.18.0.5')],
      [kr('10.244.2.0/24', '172.18.0.4', '112'), kr('10.244.3.0/24', '172.18.0.5', '112'), kr('10.244.9.0/24', '172.18.0.8', '112')],
      P,
    );
    expect(c.replace.map((r) => r.dst)).toEqual(['10.244.1.0/24', '10.244.2.0/24']);
    expect(c.remove.map((r) => r.dst)).toEqual(['10.244.9.0/24']);
    expect(c.inPlace).toBe(1);
    expect(c.conflicts).toEqual([]);
  });

  it('never touches routes of other protocols, and reports one occupying our destination', () => {
    const c = calcRouteChanges(
      [want('10.244.1.0/24', '172.18.0.3'), want('10.244.2.0/24', '172.18.0.4')],
      [kr('10.244.1.0/24', '172.18.0.77', '4'), kr('10.99.0.0/16', '172.18.0.1', '4'), kr('172.18.0.0/16', undefined, '2')],
      P,
    );
    expect(c.replace.map((r) => r.dst)).toEqual(['10.244.2.0/24']);
    expect(c.remove).toEqual([]);
    expect(c.conflicts).toMatchObject([{ route: { dst: '10.244.1.0/24' }, existing: { protocol: '4', gateway: '172.18.0.77' } }]);
  });

  it('a foreign route with the same destination but another metric is not a conflict', () => {
    const c = calcRouteChanges([want('10.244.1.0/24', '172.18.0.3')], [kr('10.244.1.0/24', '172.18.0.77', '4', 100)], P);
    expect(c.replace).toHaveLength(1);
    expect(c.conflicts).toEqual([]);
  });

  it('IPv6 routes compare with the kernel default metric 1024; stray copies of ours go', () => {
    const c = calcRouteChanges(
      [want('fd00:10:244:1::/64', 'fc00::3')],
      [kr('fd00:10:244:1::/64', 'fc00::3', '112', 1024), kr('fd00:10:244:1::/64', 'fc00::3', '112', 50)],
      P,
    );
    expect(c.inPlace).toBe(1);
    expect(c.remove).toMatchObject([{ metric: 50 }]);
  });

  it('renders deletions first, then replacements, with our protocol', () => {
    const c = calcRouteChanges([want('10.244.1.0/24', '172.18.0.3')], [kr('10.244.9.0/24', '172.18.0.8', '112')], P);
    expect(routeLines(c, P).lines).toEqual([
      'route del 10.244.9.0/24 proto 112 metric 0 table main',
      'route replace 10.244.1.0/24 via 172.18.0.3 proto 112 table main',
    ]);
  });
});

describe('reconcileRoutes with a recording HostNet', () => {
  it('sends one batch and maps failed lines back to routes', async () => {
    const batches: string[][] = [];
    const net: HostNet = {
      addresses: async () => [],
      reachability: async () => new Map(),
      routes: async () => [kr('10.244.9.0/24', '172.18.0.8', '112')],
      applyRoutes: async (lines) => {
        batches.push([...lines]);
        return new Map([[3, 'Error: Nexthop has invalid gateway.']]);
      },
    };
    const r = await reconcileRoutes(net, [want('10.244.1.0/24', '172.18.0.3'), want('10.244.2.0/24', '9.9.9.9')], P);
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(3);
    expect(r.removed).toBe(1);
    expect(r.replaced).toBe(1);
    expect(r.programmed).toEqual({ 4: 1, 6: 0 });
    expect(r.errors).toEqual(['failed to replace route "10.244.2.0/24": Error: Nexthop has invalid gateway.']);
  });
});

describe('iproute2 output parsing', () => {
  it('maps batch failures to their line', () => {
    const m = parseBatchFailures('Error: Nexthop has invalid gateway.\nCommand failed -:2\nRTNETLINK answers: No such process\nCommand failed -:3\n');
    expect([...m]).toEqual([
      [2, 'Error: Nexthop has invalid gateway.'],
      [3, 'RTNETLINK answers: No such process'],
    ]);
  });

  it('normalises routes from ip -N -j route show', () => {
    expect(toKernelRoute({ dst: '10.244.1.0/24', gateway: '172.18.0.3', dev: 'eth0', protocol: '112' }, 4)).toEqual(kr('10.244.1.0/24', '172.18.0.3', '112'));
    expect(toKernelRoute({ dst: '10.1.2.3', dev: 'eth0', protocol: '4' }, 4)).toMatchObject({ dst: '10.1.2.3/32', gateway: undefined });
    expect(toKernelRoute({ dst: 'default', gateway: '192.0.2.1' }, 4)).toMatchObject({ dst: '0.0.0.0/0', protocol: '3' });
    expect(toKernelRoute({ dst: 'FD00:0:0::/64', gateway: 'FC00::0003', protocol: '112', metric: 1024 }, 6)).toMatchObject({ dst: 'fd00::/64', gateway: 'fc00::3', metric: 1024 });
    expect(toKernelRoute({ dst: 'fd00::/64', via: { family: 'inet6', host: 'fe80::1' }, protocol: 112 }, 6)).toMatchObject({ gateway: 'fe80::1', protocol: '112' });
  });
});

describe('route types from ip -N -d', () => {
  it('maps numeric rtm_type to names (unicast routes are the only ones that count as ours)', () => {
    expect(toKernelRoute({ type: '1', dst: '10.1.0.0/24', protocol: '112' }, 4)?.type).toBe('unicast');
    expect(toKernelRoute({ type: '6', dst: '10.1.0.0/24', protocol: '112' }, 4)?.type).toBe('blackhole');
    expect(toKernelRoute({ type: 'unicast', dst: '10.1.0.0/24' }, 4)?.type).toBe('unicast');
  });
});
