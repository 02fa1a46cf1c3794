import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { pluginVersions } from '../../helpers/cni-runtime.js';
import { DIST_BIN } from '../../helpers/env.js';
import { reservations as storeReservations } from '../../helpers/host-local.js';
import { upstreamCniBin } from '../../helpers/peers.js';

/**
 * Which plugins the client suites drive. podnet's own by default (what these suites exist for);
 * `PODNET_CLIENTS_PLUGINS=reference` runs the same suites against the upstream reference bridge
 * and host-local (scripts/peers.sh cni-plugins), to tell a client or harness problem from a
 * podnet one.
 */
export const FLAVOUR: 'podnet' | 'reference' = process.env.PODNET_CLIENTS_PLUGINS === 'reference' ? 'reference' : 'podnet';

export const TYPES =
  FLAVOUR === 'podnet' ? { bridge: 'podnet-bridge', ipam: 'podnet-host-local' } : { bridge: 'bridge', ipam: 'host-local' };

/** The chained and helper plugins a runtime's bin dir has next to podnet (kind ships both). */
const STOCK = ['loopback', 'portmap'] as const;

/** Where each executable in the bin dir comes from (throws when the upstream plugins are not built). */
export function pluginSources(): Record<string, string> {
  const upstream = upstreamCniBin();
  const own =
    FLAVOUR === 'podnet'
      ? { [TYPES.bridge]: join(DIST_BIN, TYPES.bridge), [TYPES.ipam]: join(DIST_BIN, TYPES.ipam) }
      : { [TYPES.bridge]: join(upstream, 'bridge'), [TYPES.ipam]: join(upstream, 'host-local') };
  return { ...own, ...Object.fromEntries(STOCK.map((p) => [p, join(upstream, p)])) };
}

/** Missing executables, as a message for a clearly failing beforeAll (`npm run build` makes podnet's). */
export function missingPlugins(): string | undefined {
  let sources: Record<string, string>;
  try {
    sources = pluginSources();
  } catch (e) {
    return (e as Error).message;
  }
  const missing = Object.values(sources).filter((f) => !existsSync(f));
  if (missing.length === 0) return undefined;
  return `missing plugin executables: ${missing.join(', ')}${FLAVOUR === 'podnet' ? ' (run `npm run build`)' : ''}`;
}

/**
 * A runtime's CNI bin dir: links named as the plugin types. The links keep their names, so the
 * multi-call podnet executable dispatches on them exactly as from /opt/cni/bin.
 */
export function makeBinDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(pluginSources())) symlinkSync(target, join(dir, name));
  return dir;
}

/**
 * Whether a stock plugin (the upstream loopback, portmap) supports a spec version, asked the way
 * libcni asks (CNI_COMMAND=VERSION). Upstream's speak every version up to 1.1.0.
 */
export function stockSupports(plugin: (typeof STOCK)[number], version: string): boolean {
  return pluginVersions(join(upstreamCniBin(), plugin)).includes(version);
}

export interface ConflistOptions {
  name: string;
  cniVersion: string;
  bridge: string;
  subnet: string;
  dataDir: string;
  /**
   * Chain portmap after the bridge, as kind's conflist does. Default: when the stock portmap
   * supports the version (asked, as libcni does; Debian 12's stopped at 1.0.0, upstream's take 1.1.0).
   */
  portmap?: boolean;
}

/** A conflist shaped like the one podnet-routesync writes: bridge + host-local (+ portmap). */
export function bridgeConflist(o: ConflistOptions): Record<string, unknown> {
  const plugins: Record<string, unknown>[] = [
    {
      type: TYPES.bridge,
      bridge: o.bridge,
      isGateway: true,
      ipMasq: false,
      hairpinMode: true,
      ipam: {
        type: TYPES.ipam,
        ranges: [[{ subnet: o.subnet }]],
        routes: [{ dst: '0.0.0.0/0' }],
        dataDir: o.dataDir,
      },
    },
  ];
  if (o.portmap ?? stockSupports('portmap', o.cniVersion)) plugins.push({ type: 'portmap', capabilities: { portMappings: true } });
  return { cniVersion: o.cniVersion, name: o.name, plugins };
}

export interface Reservation {
  containerId: string;
  ifName: string;
}

/**
 * The host-local store's reservations for a network (`<dataDir>/<network>/<ip>` holding
 * `<containerID>\r\n<ifname>`), as ip → owner. Other files (lock, last_reserved_ip.N) are skipped.
 */
export function reservations(dataDir: string, network: string): Map<string, Reservation> {
  return new Map(
    Object.entries(storeReservations(dataDir, network)).map(([ip, content]) => {
      const [containerId = '', ifName = ''] = content.split(/\r?\n/);
      return [ip, { containerId: containerId.trim(), ifName: ifName.trim() }];
    }),
  );
}

/**
 * Files in a network's store whose name or content names the container: none may be left after
 * DEL, whatever extra bookkeeping the IPAM keeps next to the reference layout.
 */
export function storeFilesNaming(dataDir: string, network: string, containerId: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && (e.name.includes(containerId) || readFileSync(p, 'utf8').includes(containerId))) hits.push(p);
    }
  };
  walk(join(dataDir, network));
  return hits;
}
