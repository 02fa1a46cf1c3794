import { MASQ_TABLE } from './masq-rules.js';
import { nftQuote } from '../../lib/linux/netfilter.js';

/**
 * MAC spoof check (`macspoofchk`): frames entering the bridge from a pod's host-side veth must
 * carry the pod interface's MAC, anything else is dropped. One rule per attachment in the shared
 * table `bridge podnet-bridge`, tagged with the attachment key like the masquerade rules (so DEL
 * and GC find it without the netns). The reference plugin builds two chains per pod for the same
 * effect; a chain costs a kernel grace period, a rule does not.
 */
export const SPOOFCHK_FAMILY = 'bridge';
export const SPOOFCHK_CHAIN = 'prerouting';

export function spoofchkBaseLines(): string[] {
  return [
    `add table ${SPOOFCHK_FAMILY} ${MASQ_TABLE} { comment ${nftQuote('podnet-bridge: MAC spoof checks (macspoofchk)')}; }`,
    `add chain ${SPOOFCHK_FAMILY} ${MASQ_TABLE} ${SPOOFCHK_CHAIN} { type filter hook prerouting priority -300; policy accept; }`,
  ];
}

export function spoofchkRuleLines(comment: string, hostIface: string, mac: string): string[] {
  return [
    `add rule ${SPOOFCHK_FAMILY} ${MASQ_TABLE} ${SPOOFCHK_CHAIN} iifname ${nftQuote(hostIface)} ` +
      `ether saddr != ${mac.toLowerCase()} drop comment ${nftQuote(comment)}`,
  ];
}
