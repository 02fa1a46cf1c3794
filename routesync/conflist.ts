import defaultTemplate from '../conf/routesync-template.json' with { type: 'json' };

/**
 * The CNI network configuration list this node's runtime uses, rendered (pure) from a template
 * and the node's podCIDRs and uplink MTU. The default template is conf/routesync-template.json
 * (compiled in); `--conflist-template PATH` swaps in another one.
 *
 * Filled in per node, in the first plugin of type podnet-bridge:
 *  - `mtu`: the MTU of the interface that holds this node's InternalIP (left out when unknown,
 *    so the plugin's default applies);
 *  - `ipam.ranges`: one range set per podCIDR (IPv4 first), `[[{"subnet": "<podCIDR>"}], …]`.
 * Everything else comes from the template as is.
 *
 * Choices in the default template: bridge `podnet0` (not `cni0`, so podnet never shares a bridge
 * with another CNI or the reference bridge plugin's default); `ipMasq: false` because the daemon
 * masquerades cluster-wide (architecture.md); `hairpinMode: true` so a pod reaches itself through
 * its own Service; IPAM dataDir on tmpfs (/run) so a reboot frees every IP; the stock `portmap`
 * for hostPort.
 */
export const CONFLIST_NAME = '10-podnet.conflist';
export const BRIDGE_TYPE = 'podnet-bridge';

export type ConflistTemplate = { plugins: Record<string, unknown>[] } & Record<string, unknown>;

/** The built-in template: conf/routesync-template.json, bundled into the executable. */
export const DEFAULT_TEMPLATE: Readonly<ConflistTemplate> = defaultTemplate;

/** Check a template's shape; returns an error message or undefined. */
export function checkTemplate(t: unknown): string | undefined {
  if (!t || typeof t !== 'object' || Array.isArray(t)) return 'template is not a JSON object';
  const o = t as Record<string, unknown>;
  if (typeof o.name !== 'string' || o.name === '') return 'template has no "name"';
  if (typeof o.cniVersion !== 'string') return 'template has no "cniVersion"';
  if (!Array.isArray(o.plugins) || o.plugins.length === 0) return 'template has no "plugins" list';
  const bridge = o.plugins.find((p) => p && typeof p === 'object' && (p as Record<string, unknown>).type === BRIDGE_TYPE);
  if (!bridge) return `template has no plugin of type "${BRIDGE_TYPE}"`;
  const ipam = (bridge as Record<string, unknown>).ipam;
  if (!ipam || typeof ipam !== 'object' || typeof (ipam as Record<string, unknown>).type !== 'string') {
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

/** Render the conflist text for this node (stable: same input → same bytes). */
export function calcConflist(template: ConflistTemplate, node: ConflistNodeInput): string {
  const copy = structuredClone(template) as ConflistTemplate;
  const bridge = copy.plugins.find((p) => p.type === BRIDGE_TYPE) as Record<string, unknown>;
  if (node.mtu !== undefined && Number.isInteger(node.mtu) && node.mtu > 0) bridge.mtu = node.mtu;
  else delete bridge.mtu;
  const ipam = { ...(bridge.ipam as Record<string, unknown>) };
  ipam.ranges = node.podCIDRs.map((subnet) => [{ subnet }]);
  delete ipam.subnet;
  bridge.ipam = ipam;
  return `${JSON.stringify(copy, null, 2)}\n`;
}
