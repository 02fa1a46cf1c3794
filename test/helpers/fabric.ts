import { Netns } from './netns.js';

/**
 * The network of a kind cluster, made of namespaces only (root only; nothing in the root
 * namespace changes):
 *
 *   fabric ns   bridge br0 = 172.18.0.1/16 and fc00:f853:ccd:e793::1/64 — kind's Docker network
 *               and its gateway, which also stands in for "an address outside the cluster"
 *   node i ns   eth0 (veth into br0) = 172.18.0.(i+1)/16, fc00:f853:ccd:e793::(i+1)/64, default
 *               routes via the gateway, forwarding on; its podCIDRs are 10.244.i.0/24 and
 *               fd00:10:244:i::/64 (i = 1, 2, …)
 *
 * Used by the routesync integration lab and the e2e lab (`npm run demo`).
 */
export const FABRIC_V4 = '172.18.0.1';
export const FABRIC_V6 = 'fc00:f853:ccd:e793::1';

export interface FabricNode {
  name: string;
  ns: Netns;
  ip4: string;
  ip6: string;
  cidr4: string;
  cidr6: string;
}

export interface Fabric {
  ns: Netns;
  nodes: FabricNode[];
}

export interface FabricOptions {
  nodes: number;
  /** Prefix of generated namespace names, unless `names` gives them. */
  prefix: string;
  /** Exact namespace names: the fabric's, and node i's (1-based). */
  names?: { fabric: string; node(i: number): string };
  mtu?: number;
}

export async function createFabric(opts: FabricOptions): Promise<Fabric> {
  const mtu = opts.mtu ?? 1500;
  const nsFor = (name: string | undefined) => Netns.create(opts.prefix, name ? { name } : {});
  const fabric: Fabric = { ns: await nsFor(opts.names?.fabric), nodes: [] };
  try {
    await fabric.ns.exec('ip', ['-batch', '-'], {
      input: [`link add br0 type bridge`, `addr add ${FABRIC_V4}/16 dev br0`, `addr add ${FABRIC_V6}/64 dev br0 nodad`, 'link set br0 up'].join('\n'),
    });
    for (let i = 1; i <= opts.nodes; i++) {
      const node: FabricNode = {
        name: `node${i}`,
        ns: await nsFor(opts.names?.node(i)),
        ip4: `172.18.0.${i + 1}`,
        ip6: `fc00:f853:ccd:e793::${i + 1}`,
        cidr4: `10.244.${i}.0/24`,
        cidr6: `fd00:10:244:${i}::/64`,
      };
      fabric.nodes.push(node);
      await node.ns.exec('ip', ['-batch', '-'], {
        input: [
          `link add eth0 mtu ${mtu} type veth peer name ${node.name} netns ${fabric.ns.name}`,
          `addr add ${node.ip4}/16 dev eth0`,
          `addr add ${node.ip6}/64 dev eth0 nodad`,
          'link set eth0 up',
          `route add default via ${FABRIC_V4}`,
          `route add default via ${FABRIC_V6}`,
        ].join('\n'),
      });
      await node.ns.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
      await fabric.ns.exec('ip', ['link', 'set', node.name, 'mtu', String(mtu), 'master', 'br0', 'up']);
    }
    return fabric;
  } catch (e) {
    await destroyFabric(fabric);
    throw e;
  }
}

export async function destroyFabric(fabric: Fabric): Promise<void> {
  for (const n of fabric.nodes) await n.ns.destroy();
  await fabric.ns.destroy();
}
