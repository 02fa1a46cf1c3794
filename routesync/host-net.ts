import { canonicalIp, parseIp } from '../lib/addr/addr.js';
import { type Runner, processRunner } from '../lib/linux/exec.js';
import { type IpChange, type IpError, IpBatch, IprouteCli, type IpRunner, KernelInputError, Step, ipError } from '../lib/linux/ip.js';
import type { Family, LocalAddress, Reachability } from './types.js';

/**
 * What the daemon asks of the node's network stack (the seam its reconcilers use; tests pass a
 * fake or the real one wrapped into a namespace). IpHostNet is the real one, on the shared
 * kernel layer (lib/linux/ip.ts): typed batches with JSON output and numeric protocols (-N), a
 * fixed number of processes per reconcile whatever the number of nodes. Every value read from
 * `ip -json` is checked before use; route changes are typed operations that the kernel layer
 * validates before rendering, and each comes back with its own outcome (no line numbers).
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
  /** Apply route changes in one batch (`-force`: each runs whatever the others do); one outcome
   * per change, in order: undefined when it took effect, else the kernel's (or the validator's)
   * error. */
  applyRoutes(changes: readonly RouteChange[]): Promise<(IpError | undefined)[]>;
}

/** A change to a route: `ip route add|replace|del` as the kernel layer types it. */
export type RouteChange = Extract<IpChange, { kind: 'route' }>;

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
    const ip = canonicalIp(a);
    if (ip === undefined) return undefined;
    dst = `${ip}/${len}`;
  } else {
    const ip = canonicalIp(r.dst);
    if (ip === undefined) return undefined;
    dst = `${ip}/${family === 4 ? 32 : 128}`;
  }
  const gwText = r.gateway ?? r.via?.host;
  const gw = gwText ? canonicalIp(gwText) : undefined;
  return {
    dst,
    family,
    gateway: gw ?? gwText,
    dev: r.dev,
    // iproute2 leaves out `proto boot` (3), the default of `ip route add`, unless -d is given.
    protocol: String(r.protocol ?? '3'),
    metric: typeof r.metric === 'number' ? r.metric : 0,
    type: ROUTE_TYPES[String(r.type ?? '1')] ?? String(r.type),
  };
}

export class IpHostNet implements HostNet {
  private readonly ip: IpRunner;

  constructor(runner: Runner = processRunner) {
    this.ip = new IprouteCli(runner);
  }

  async addresses(): Promise<LocalAddress[]> {
    const b = new IpBatch();
    const links = b.links();
    await b.run(this.ip);
    const out: LocalAddress[] = [];
    for (const l of links.value) {
      for (const a of l.addrs) {
        const [address, prefix] = a.cidr.split('/') as [string, string];
        out.push({ ifname: l.ifname, mtu: l.mtu ?? 0, address, prefix: Number(prefix), family: a.family });
      }
    }
    return out;
  }

  async reachability(ips: readonly string[]): Promise<Map<string, Reachability>> {
    const out = new Map<string, Reachability>();
    if (ips.length === 0) return out;
    const b = new IpBatch({ force: true });
    const steps = ips.map((ip) => (parseIp(ip) ? b.routes({ kind: 'route-get', dst: ip }) : undefined));
    await b.run(this.ip);
    ips.forEach((ip, i) => {
      const step = steps[i];
      if (!step) {
        out.set(ip, { ok: false, error: `"${ip}" is not an IP address` });
        return;
      }
      if (!step.ok) {
        out.set(ip, { ok: false, error: step.error?.raw ?? 'failed' });
        return;
      }
      const e = step.value[0] as IpRouteJson | undefined;
      if (!e) {
        out.set(ip, { ok: false, error: 'no answer from ip route get' });
        return;
      }
      const gw = e.gateway ?? e.via?.host;
      const gwOk = gw === undefined || parseIp(gw) !== undefined;
      out.set(ip, {
        ok: true,
        dev: typeof e.dev === 'string' ? e.dev : '',
        ...(gw && gwOk ? { gateway: gw } : {}),
        ...(e.type === 'local' ? { local: true } : {}),
      });
    });
    return out;
  }

  async routes(): Promise<KernelRoute[]> {
    const read = async (family: Family): Promise<KernelRoute[]> => {
      const b = new IpBatch({ numeric: true, family });
      const step = b.routes({ kind: 'route-show', table: 'main' });
      const r = await b.run(this.ip);
      if (!r.ok) throw new Error(`failed to list IPv${family} routes: ${r.error?.message ?? 'failed'}`);
      return step.value.map((e) => toKernelRoute(e as IpRouteJson, family)).filter((k): k is KernelRoute => k !== undefined);
    };
    const [v4, v6] = await Promise.all([read(4), read(6)]);
    return [...v4, ...v6];
  }

  async applyRoutes(changes: readonly RouteChange[]): Promise<(IpError | undefined)[]> {
    const b = new IpBatch({ force: true });
    // Each change becomes a step of the batch, or is refused by the kernel layer's checks.
    const steps = changes.map((c): { step: Step<void> } | { refused: IpError } => {
      try {
        return { step: b.add(c) };
      } catch (e) {
        if (e instanceof KernelInputError) return { refused: ipError(e.message) };
        throw e;
      }
    });
    await b.run(this.ip);
    return steps.map((s) => ('step' in s ? s.step.error : s.refused));
  }
}
