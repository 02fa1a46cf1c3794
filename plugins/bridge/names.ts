import { createHash } from 'node:crypto';

/**
 * Deterministic names and keys, so every verb finds what ADD made from (network, containerID,
 * ifname) alone — even when the pod's namespace is gone.
 */
const hex = (algo: 'sha256' | 'sha512', s: string): string => createHash(algo).update(s).digest('hex');

/** Host end of the pod's veth: `veth` + 11 hex digits (15 characters, IFNAMSIZ-1). */
export const calcHostVethName = (containerId: string, ifName: string): string =>
  `veth${hex('sha256', `${containerId}/${ifName}`).slice(0, 11)}`;

/** Host end of the VLAN gateway veth pair (`<bridge>.<vlan>` is the other end). */
export const calcVlanPeerName = (bridge: string, vlan: number): string => `veth${hex('sha256', `${bridge}.${vlan}`).slice(0, 11)}`;

/** Prefix shared by all rules of one network. */
export const calcNetworkKey = (network: string): string => `podnet:${hex('sha256', network).slice(0, 12)}:`;

/** Key of one attachment; rule comments start with it. */
export const calcAttachmentKey = (network: string, containerId: string, ifName: string): string =>
  `${calcNetworkKey(network)}${hex('sha256', `${ifName}:${containerId}`).slice(0, 16)}`;

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
