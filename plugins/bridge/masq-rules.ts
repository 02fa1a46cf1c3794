import { CommandError } from '../../lib/linux/exec.js';
import { type IpFamily, type Netfilter, type NftRule, nftQuote } from '../../lib/linux/netfilter.js';

/**
 * Per-attachment masquerade, the `ipMasq` of the bridge plugin: traffic from the pod's address to
 * anything outside the pod's subnet (multicast excepted) leaves with the node's address.
 *
 * nftables: one shared table `inet podnet-bridge` with a NAT chain; each attachment adds one rule
 * per address, tagged with a comment that starts with the attachment's key. Finding rules by key
 * (not by address or netns) is what lets DEL and GC remove them after the pod's namespace is
 * gone. Adding a rule to an existing chain is cheap (~4 ms); creating a chain costs a kernel
 * grace period (~12 ms here), so the chain is created only when the first rule finds it missing.
 *
 * iptables: the reference plugin's layout, so rules it made are found too: a chain
 * `CNI-<hash(network+containerID)>` with ACCEPT for the subnet and MASQUERADE for the rest (not
 * multicast), and a POSTROUTING jump per address, all with the comment
 * `name: "<network>" id: "<containerID>"`.
 */
export const MASQ_TABLE = 'podnet-bridge';
export const MASQ_CHAIN = 'postrouting';

export interface MasqTarget {
  family: IpFamily;
  /** The pod address, no prefix. */
  ip: string;
  /** The pod's subnet in CIDR form (network address), e.g. 10.244.1.0/24. */
  subnet: string;
}

const MULTICAST: Record<IpFamily, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };
const NFT_PROTO: Record<IpFamily, string> = { 4: 'ip', 6: 'ip6' };

/** Lines that create the table and chain (idempotent). */
export function nftMasqBaseLines(): string[] {
  return [
    `add table inet ${MASQ_TABLE} { comment ${nftQuote('podnet-bridge: per-pod masquerade (ipMasq) and MAC spoof checks')}; }`,
    `add chain inet ${MASQ_TABLE} ${MASQ_CHAIN} { type nat hook postrouting priority srcnat; policy accept; }`,
  ];
}

/** One rule per address: from the pod, not to its subnet, not multicast → masquerade. */
export function nftMasqRuleLines(comment: string, targets: readonly MasqTarget[]): string[] {
  return targets.map((t) => {
    const p = NFT_PROTO[t.family];
    return (
      `add rule inet ${MASQ_TABLE} ${MASQ_CHAIN} ${p} saddr ${t.ip} ${p} daddr != ${t.subnet} ` +
      `${p} daddr != ${MULTICAST[t.family]} masquerade comment ${nftQuote(comment)}`
    );
  });
}

/**
 * Apply `lines` in one transaction; when a table or chain they use does not exist yet, apply
 * `baseLines` + `lines` instead (still one transaction, so parallel first pods cannot clash:
 * `add table`/`add chain` are idempotent).
 */
export async function nftApplyCreating(nf: Netfilter, lines: readonly string[], baseLines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  let r = await nf.nftApply(`${lines.join('\n')}\n`);
  if (r.code !== 0 && /No such file or directory/i.test(r.stderr)) {
    r = await nf.nftApply(`${[...baseLines, ...lines].join('\n')}\n`);
  }
  if (r.code !== 0) throw new CommandError('nft -f -', r);
}

/** Rules of `family table` whose comment starts with any of `prefixes` (or matches `pick`). */
export async function nftFindRules(
  nf: Netfilter,
  family: string,
  table: string,
  pick: (comment: string) => boolean,
): Promise<NftRule[]> {
  const rules = await nf.nftListTable(family, table);
  return (rules ?? []).filter((r) => r.comment !== undefined && pick(r.comment));
}

/** Delete rules by handle in one transaction; rules that vanished meanwhile are not an error. */
export async function nftDeleteRules(nf: Netfilter, rules: readonly NftRule[]): Promise<void> {
  if (rules.length === 0) return;
  const script = rules.map((r) => `delete rule ${r.family} ${r.table} ${r.chain} handle ${r.handle}`).join('\n');
  let r = await nf.nftApply(`${script}\n`);
  if (r.code !== 0 && /No such file or directory/i.test(r.stderr)) {
    // Someone removed one of them first (a concurrent DEL or GC): retry one by one.
    for (const rule of rules) {
      r = await nf.nftApply(`delete rule ${rule.family} ${rule.table} ${rule.chain} handle ${rule.handle}\n`);
      if (r.code !== 0 && !/No such file or directory/i.test(r.stderr)) break;
    }
    if (r.code !== 0 && /No such file or directory/i.test(r.stderr)) return;
  }
  if (r.code !== 0) throw new CommandError('nft -f -', r);
}

// ---------------------------------------------------------------- iptables (reference layout)

/** iptables-restore script adding the chain and the POSTROUTING jump for one family. */
export function iptMasqScript(chain: string, comment: string, targets: readonly MasqTarget[]): string {
  const c = iptQuote(comment);
  const lines = ['*nat', `:${chain} - [0:0]`];
  for (const t of targets) lines.push(`-A ${chain} -d ${t.subnet} -m comment --comment ${c} -j ACCEPT`);
  const fam = targets[0]?.family ?? 4;
  lines.push(`-A ${chain} ! -d ${MULTICAST[fam]} -m comment --comment ${c} -j MASQUERADE`);
  for (const t of targets) {
    lines.push(`-A POSTROUTING -s ${t.ip}/${fam === 4 ? 32 : 128} -m comment --comment ${c} -j ${chain}`);
  }
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}

export async function iptMasqAdd(nf: Netfilter, chain: string, comment: string, targets: readonly MasqTarget[]): Promise<void> {
  for (const family of [4, 6] as const) {
    const mine = targets.filter((t) => t.family === family);
    if (mine.length === 0) continue;
    const r = await nf.iptablesRestore(family, iptMasqScript(chain, comment, mine));
    if (r.code !== 0) throw new CommandError(`${family === 4 ? 'iptables' : 'ip6tables'}-restore`, r);
  }
}

/** The commands removing `chains` (and every POSTROUTING jump to them) from an iptables-save dump. */
export function iptRemovalScript(saved: string, chains: ReadonlySet<string>): string | undefined {
  const lines: string[] = [];
  const present = new Set<string>();
  for (const line of saved.split('\n')) {
    const decl = /^:(\S+) /.exec(line);
    if (decl?.[1] && chains.has(decl[1])) present.add(decl[1]);
    const jump = /^-A POSTROUTING (.*) -j (\S+)\s*$/.exec(line);
    if (jump?.[2] && chains.has(jump[2])) lines.push(`-D POSTROUTING ${jump[1]} -j ${jump[2]}`);
  }
  for (const chain of present) lines.push(`-F ${chain}`, `-X ${chain}`);
  if (lines.length === 0) return undefined;
  return `*nat\n${lines.join('\n')}\nCOMMIT\n`;
}

/** Remove chains (and jumps to them) in both families. */
export async function iptMasqDelete(nf: Netfilter, chains: ReadonlySet<string>): Promise<void> {
  await Promise.all(
    ([4, 6] as const).map(async (family) => {
      if (!nf.hasIptables(family)) return;
      const saved = await nf.iptablesSaveNat(family);
      if (saved.code !== 0) return; // no nat table support in this family: nothing of ours there
      const script = iptRemovalScript(saved.stdout, chains);
      if (!script) return;
      const r = await nf.iptablesRestore(family, script);
      if (r.code !== 0) throw new CommandError(`${family === 4 ? 'iptables' : 'ip6tables'}-restore`, r);
    }),
  );
}

/** Chains whose rules carry `name: "<network>" id: "<id>"`, with their container IDs. */
export function iptChainsOfNetwork(saved: string, network: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of saved.split('\n')) {
    const m = /^-A (CNI-[0-9a-f]+) .*--comment "name: \\"(.*?)\\" id: \\"(.*?)\\""/.exec(line);
    if (m?.[1] && m[2] === network && m[3] !== undefined) out.set(m[1], m[3]);
  }
  return out;
}

/** An iptables-restore argument: double-quoted, inner quotes escaped (as iptables-save prints). */
export const iptQuote = (s: string): string => `"${s.replace(/\\/g, '').replace(/"/g, '\\"')}"`;
