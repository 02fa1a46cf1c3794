import defaultTemplate from '../conf/routesync-template.json' with { type: 'json' };
import { type JsonObject, isJsonObject } from '../lib/cni/json.js';
import { compareVersions } from '../lib/cni/version.js';

/**
 * The CNI network configuration list this node's runtime uses, rendered (pure) from a template
 * and the node's podCIDRs and uplink MTU. The default template is conf/routesync-template.json
 * (compiled in); `--conflist-template PATH` swaps in another one.
 *
 * Filled in per node, in the first plugin of type podnet-bridge:
 *  - `mtu`: the MTU of the interface that holds this node's InternalIP (left out when unknown,
 *    so the plugin's default applies);
 *  - `ipam.ranges`: one range set per podCIDR (IPv4 first), `[[{"subnet": "<podCIDR>"}], …]`.
 *  - `cniVersion` / `cniVersions`: limited to what every chained plugin supports
 *    (calcChainVersions), when the caller knows that.
 * Everything else comes from the template as is.
 *
 * Choices in the default template: bridge `podnet0` (not `cni0`, so podnet never shares a bridge
 * with another CNI or the reference bridge plugin's default); `ipMasq: false` because the daemon
 * masquerades cluster-wide (architecture.md); `hairpinMode: true` so a pod reaches itself through
 * its own Service; IPAM dataDir on tmpfs (/run) so a reboot frees every IP; the stock `portmap`
 * for hostPort.
 *
 * Versions, and why two keys: containerd 1.6 and 1.7 link libcni 1.1, which ignores `cniVersions`,
 * hands `cniVersion` to every plugin and rejects a result in a version it does not know (1.1.0):
 * so `cniVersion` is 1.0.0. libcni ≥ 1.2 (containerd 2) takes the highest of `cniVersions` it
 * knows without asking the plugins, so that list holds only versions every chained plugin speaks:
 * 1.1.0 (GC, STATUS) where the installed portmap has it, else 1.0.0 alone.
 */
export const CONFLIST_NAME = '10-podnet.conflist';
export const BRIDGE_TYPE = 'podnet-bridge';

export type ConflistTemplate = { plugins: Record<string, unknown>[] } & Record<string, unknown>;

/** The built-in template: conf/routesync-template.json, bundled into the executable. */
export const DEFAULT_TEMPLATE: Readonly<ConflistTemplate> = defaultTemplate;

/** Check a template's shape; returns an error message or undefined. */
export function checkTemplate(t: unknown): string | undefined {
  if (!isJsonObject(t)) return 'template is not a JSON object';
  const o = t;
  if (typeof o.name !== 'string' || o.name === '') return 'template has no "name"';
  if (typeof o.cniVersion !== 'string') return 'template has no "cniVersion"';
  if (!Array.isArray(o.plugins) || o.plugins.length === 0) return 'template has no "plugins" list';
  const bridge = o.plugins.find((p) => isJsonObject(p) && p.type === BRIDGE_TYPE);
  if (!bridge) return `template has no plugin of type "${BRIDGE_TYPE}"`;
  const ipam = (bridge as JsonObject).ipam;
  if (!isJsonObject(ipam) || typeof ipam.type !== 'string') {
    return `the "${BRIDGE_TYPE}" plugin in the template has no "ipam" with a "type"`;
  }
  return undefined;
}

export interface ConflistNodeInput {
  /** Canonical podCIDRs of this node, IPv4 first. */
  podCIDRs: readonly string[];
  /** MTU of the uplink, if known. */
  mtu?: number | undefined;
}

/** What each plugin type of the chain supports; `undefined`: unknown (missing, or no answer). */
export type ChainSupport = ReadonlyMap<string, readonly string[] | undefined>;

export interface ChainVersions {
  cniVersion: string;
  /** Undefined when the template has no `cniVersions`. */
  cniVersions: string[] | undefined;
  /** Versions of the template left out, with the plugins that lack them (for the log). */
  dropped: { version: string; plugins: string[] }[];
}

/** The bridge the template's podnet-bridge plugin makes (the plugin's default: cni0). */
export function bridgeName(template: ConflistTemplate): string {
  const bridge = template.plugins.find((p) => p.type === BRIDGE_TYPE);
  return typeof bridge?.bridge === 'string' && bridge.bridge !== '' ? bridge.bridge : 'cni0';
}

/** Plugin types of a template's chain, in order, each once. */
export function chainTypes(template: ConflistTemplate): string[] {
  return [...new Set(template.plugins.map((p) => p.type).filter((t): t is string => typeof t === 'string'))];
}

/**
 * The template's versions limited to those every chained plugin supports (pure). A plugin whose
 * versions are unknown is trusted with `cniVersion` and nothing above it. `cniVersion` becomes
 * the highest common version not above the template's; undefined when there is none.
 */
export function calcChainVersions(template: ConflistTemplate, support: ChainSupport): ChainVersions | undefined {
  const base = String(template.cniVersion);
  const listed = Array.isArray(template.cniVersions) ? template.cniVersions.filter((v): v is string => typeof v === 'string') : undefined;
  const candidates = [...new Set([base, ...(listed ?? [])])].sort(compareVersions);
  const lacking = (v: string) =>
    chainTypes(template).filter((t) => {
      const s = support.get(t);
      return s === undefined ? compareVersions(v, base) > 0 : !s.includes(v);
    });
  const common = candidates.filter((v) => lacking(v).length === 0);
  const dropped = candidates.filter((v) => !common.includes(v)).map((version) => ({ version, plugins: lacking(version) }));
  const cniVersion = common.filter((v) => compareVersions(v, base) <= 0).at(-1);
  if (cniVersion === undefined) return undefined;
  return { cniVersion, cniVersions: listed ? common : undefined, dropped };
}

/** Render the conflist text for this node (stable: same input → same bytes). */
export function calcConflist(template: ConflistTemplate, node: ConflistNodeInput, versions?: ChainVersions): string {
  const copy = structuredClone(template) as ConflistTemplate;
  if (versions) {
    copy.cniVersion = versions.cniVersion;
    if (versions.cniVersions) copy.cniVersions = versions.cniVersions;
  }
  const bridge = copy.plugins.find((p) => p.type === BRIDGE_TYPE) as Record<string, unknown>;
  if (node.mtu !== undefined && Number.isInteger(node.mtu) && node.mtu > 0) bridge.mtu = node.mtu;
  else delete bridge.mtu;
  const ipam = { ...(bridge.ipam as Record<string, unknown>) };
  ipam.ranges = node.podCIDRs.map((subnet) => [{ subnet }]);
  delete ipam.subnet;
  bridge.ipam = ipam;
  return `${JSON.stringify(copy, null, 2)}\n`;
}
