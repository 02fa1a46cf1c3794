import { type AsyncRunner, ipBatch, ipJson } from '../lib/linux/ip-async.js';
import { parseIp } from './cidr.js';
import type { Family, LocalAddress, Reachability } from './types.js';

/**
 * What the daemon asks of the node's network stack (the seam its reconcilers use; tests pass a
 * fake or the real one wrapped into a namespace). IprouteCli is the real one: iproute2 with
 * JSON output, numeric protocols (-N) and batches, a fixed number of processes per reconcile
 * whatever the number of nodes.
 */
export interface KernelRoute {
  /** Canonical CIDR (host routes get /32 or /128). */
  dst: string;
  family: Family;
  gateway?: string | undefined;
  dev?: string | undefined;
  /** Numeric protocol as text ("2" kernel, "4" static, "112" ours). */
  protocol: string;
  metric: number;
  type: string;
}

export interface HostNet {
  addresses(): Promise<LocalAddress[]>;
  /** `ip route get` for each address (one batch). Keys are canonical IP texts. */
  reachability(ips: readonly string[]): Promise<Map<string, Reachability>>;
  /** Every route of the main table, both families. */
  routes(): Promise<KernelRoute[]>;
  /** Apply `ip route …` commands in one batch; returns the failed ones (1-based line → error). */
  applyRoutes(lines: readonly string[]): Promise<Map<number, string>>;
}

interface IpAddrJson {
  ifname?: string;
  mtu?: number;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

interface IpRouteJson {
  type?: string;
  dst?: string;
  gateway?: string;
  via?: { family?: string; host?: string };
  dev?: string;
  protocol?: string | number;
  metric?: number;
  prefsrc?: string;
}

/** rtm_type numbers (`ip -N` prints them numerically) → names. */
const ROUTE_TYPES: Record<string, string> = { '1': 'unicast', '2': 'local', '3': 'broadcast', '4': 'anycast', '5': 'multicast', '6': 'blackhole', '7': 'unreachable', '8': 'prohibit', '9': 'throw', '10': 'nat' };

/** Normalise one `ip -N -d -j route show` entry. */
export function toKernelRoute(r: IpRouteJson, family: Family): KernelRoute | undefined {
  if (!r.dst) return undefined;
  let dst: string;
  if (r.dst === 'default') dst = family === 4 ? '0.0.0.0/0' : '::/0';
  else if (r.dst.includes('/')) {
    const [a, len] = r.dst.split('/');
    const ip = parseIp(a ?? '');
    if (!ip.ok) return undefined;
    dst = `${ip.value.text}/${len}`;
  } else {
    const ip = parseIp(r.dst);
    if (!ip.ok) return undefined;
    dst = `${ip.value.text}/${family === 4 ? 32 : 128}`;
  }
  const gwText = r.gateway ?? r.via?.host;
  const gw = gwText ? parseIp(gwText) : undefined;
  return {
    dst,
    family,
    gateway: gw && gw.ok ? gw.value.text : gwText,
    dev: r.dev,
    // iproute2 leaves out `proto boot` (3), the default of `ip route add`, unless -d is given.
    protocol: String(r.protocol ?? '3'),
    metric: typeof r.metric === 'number' ? r.metric : 0,
    type: ROUTE_TYPES[String(r.type ?? '1')] ?? String(r.type),
  };
}

export class IprouteCli implements HostNet {
  constructor(private readonly runner: AsyncRunner) {}

  async addresses(): Promise<LocalAddress[]> {
    const links = await ipJson<IpAddrJson[]>(this.runner, ['addr', 'show']);
    const out: LocalAddress[] = [];
    for (const l of links) {
      for (const a of l.addr_info ?? []) {
        if ((a.family !== 'inet' && a.family !== 'inet6') || !a.local || typeof a.prefixlen !== 'number') continue;
        const ip = parseIp(a.local);
        if (!ip.ok) continue;
        out.push({ ifname: l.ifname ?? '?', mtu: l.mtu ?? 0, address: ip.value.text, prefix: a.prefixlen, family: ip.value.family });
      }
    }
    return out;
  }

  async reachability(ips: readonly string[]): Promise<Map<string, Reachability>> {
    const out = new Map<string, Reachability>();
    if (ips.length === 0) return out;
    const { stdout, failures } = await ipBatch(this.runner, ips.map((ip) => `route get ${ip}`), { json: true });
    for (const line of stdout.split('\n')) {
      if (!line.trim()) continue;
      let entries: IpRouteJson[];
      try {
        entries = JSON.parse(line) as IpRouteJson[];
      } catch {
        continue;
      }
      for (const e of entries) {
        const ip = e.dst ? parseIp(e.dst) : undefined;
        if (!ip || !ip.ok) continue;
        const gw = e.gateway ?? e.via?.host;
        out.set(ip.value.text, {
          ok: true,
          dev: e.dev ?? '',
          ...(gw ? { gateway: gw } : {}),
          ...(e.type === 'local' ? { local: true } : {}),
        });
      }
    }
    for (const [line, error] of failures) {
      const ip = ips[line - 1];
      if (ip !== undefined && !out.has(ip)) out.set(ip, { ok: false, error });
    }
    for (const ip of ips) if (!out.has(ip)) out.set(ip, { ok: false, error: 'no answer from ip route get' });
    return out;
  }

  async routes(): Promise<KernelRoute[]> {
    const [v4, v6] = await Promise.all([
      ipJson<IpRouteJson[]>(this.runner, ['-N', '-d', '-4', 'route', 'show', 'table', 'main']),
      ipJson<IpRouteJson[]>(this.runner, ['-N', '-d', '-6', 'route', 'show', 'table', 'main']),
    ]);
    const out: KernelRoute[] = [];
    for (const r of v4) {
      const k = toKernelRoute(r, 4);
      if (k) out.push(k);
    }
    for (const r of v6) {
      const k = toKernelRoute(r, 6);
      if (k) out.push(k);
    }
    return out;
  }

  async applyRoutes(lines: readonly string[]): Promise<Map<number, string>> {
    const { failures } = await ipBatch(this.runner, lines);
    return failures;
  }
}
