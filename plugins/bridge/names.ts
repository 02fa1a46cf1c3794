/**
 * Deterministic names and keys, so every verb finds what ADD made from (network, containerID,
 * ifname) alone — even when the pod's namespace is gone.
 *
 * Names use FNV-1a (64 bit, lib/hash/fnv.ts). Only the reference-compatible iptables chain name
 * needs SHA-512, and loads node:crypto when (and only when) the iptables backend is used.
 */
import { fnv1a64Hex } from '../../lib/hash/fnv.js';

const hex = (algo: 'fnv' | 'sha512', s: string): string =>
  algo === 'fnv' ? fnv1a64Hex(s) : process.getBuiltinModule('node:crypto').createHash('sha512').update(s).digest('hex');

/** Host end of the pod's veth: `veth` + 11 hex digits (15 characters, IFNAMSIZ-1). */
export const calcHostVethName = (containerId: string, ifName: string): string =>
  `veth${hex('fnv', `${containerId}/${ifName}`).slice(0, 11)}`;

/** Host end of the VLAN gateway veth pair (`<bridge>.<vlan>` is the other end). */
export const calcVlanPeerName = (bridge: string, vlan: number): string => `veth${hex('fnv', `${bridge}.${vlan}`).slice(0, 11)}`;

/** Prefix shared by all rules of one network. */
export const calcNetworkKey = (network: string): string => `podnet:${hex('fnv', network).slice(0, 12)}:`;

/** Key of one attachment; rule comments start with it. */
export const calcAttachmentKey = (network: string, containerId: string, ifName: string): string =>
  `${calcNetworkKey(network)}${hex('fnv', `${ifName}:${containerId}`).slice(0, 16)}`;

/** The comment on an attachment's nft rules: key first, then a readable tail, ≤ 128 bytes. */
export function calcRuleComment(network: string, containerId: string, ifName: string): string {
  const tail = ` net=${network} if=${ifName} id=${containerId}`.replace(/["\\]/g, '');
  return `${calcAttachmentKey(network, containerId, ifName)}${tail}`.slice(0, 128);
}

/** The reference plugin's iptables chain name (utils.FormatChainName): CNI- + 24 hex digits. */
export const calcIptablesChain = (network: string, containerId: string): string =>
  `CNI-${hex('sha512', network + containerId)}`.slice(0, 28);

/** The reference plugin's iptables comment (utils.FormatComment). */
export const calcIptablesComment = (network: string, containerId: string): string =>
  `name: ${JSON.stringify(network)} id: ${JSON.stringify(containerId)}`;
