import type { Logger } from '../lib/cni/log.js';
import type { Runner as AsyncRunner } from '../lib/linux/exec.js';
import { iptables, iptablesRestore, nftApply, nftJson, nftUsable, type IptablesTool as IpFamilyTool } from '../lib/linux/netfilter.js';
import type { Metrics } from './metrics.js';
import { CONVERGED, type Stage, type StageOutcome } from './stage.js';
import type { DesiredState } from './types.js';

/**
 * Cluster-wide masquerade, one rule set per node: traffic from any pod CIDR of the cluster to a
 * destination outside all of them is masqueraded; pod-to-pod traffic (same node or across nodes)
 * never is — Kubernetes requires pods to see each other's real IPs.
 *
 * nftables (preferred): a table of its own, `table inet podnet-routesync`, with two interval sets
 * of the pod CIDRs and one nat postrouting chain. The whole table is replaced in one `nft -f -`
 * transaction (create-if-missing, delete, re-create), so a set change is atomic and nothing
 * else's tables are touched.
 *
 * iptables fallback (no usable `nft`): chain PODNET-MASQ in the nat table of iptables and
 * ip6tables, replaced with `iptables-restore --noflush` (atomic per family), jumped to from
 * POSTROUTING: RETURN for every destination inside a pod CIDR, then MASQUERADE for every source
 * inside one.
 */
export const NFT_TABLE = 'podnet-routesync';
export const IPT_CHAIN = 'PODNET-MASQ';
const COMMENT = 'podnet-routesync: masquerade pod traffic leaving the cluster pod CIDRs';

export interface PodCidrs {
  v4: readonly string[];
  v6: readonly string[];
}

export interface MasqReconciler {
  readonly backend: 'nftables' | 'iptables' | 'none';
  /** Make the rules match `cidrs`. `verify` re-reads the kernel state instead of trusting memory. */
  ensure(cidrs: PodCidrs, verify: boolean): Promise<{ changed: boolean }>;
}

/** Pure: the nft script that (re)creates the table. */
export function calcNftScript(cidrs: PodCidrs): string {
  const set = (name: string, type: string, elems: readonly string[]) =>
    `  set ${name} {\n    type ${type}\n    flags interval\n${elems.length ? `    elements = { ${elems.join(', ')} }\n` : ''}  }\n`;
  return [
    `table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    set('pod-cidrs-v4', 'ipv4_addr', cidrs.v4) + set('pod-cidrs-v6', 'ipv6_addr', cidrs.v6).replace(/\n$/, ''),
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    ip saddr @pod-cidrs-v4 ip daddr != @pod-cidrs-v4 masquerade comment "${COMMENT}"`,
    `    ip6 saddr @pod-cidrs-v6 ip6 daddr != @pod-cidrs-v6 masquerade comment "${COMMENT}"`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

/** Pure: iptables-restore input replacing the chain for one family. */
export function calcIptablesRestore(cidrs: readonly string[]): string {
  const lines = ['*nat', `:${IPT_CHAIN} - [0:0]`];
  for (const c of cidrs) lines.push(`-A ${IPT_CHAIN} -d ${c} -j RETURN`);
  for (const c of cidrs) lines.push(`-A ${IPT_CHAIN} -s ${c} -m comment --comment "${COMMENT}" -j MASQUERADE`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

type NftElem = string | { prefix?: { addr?: string; len?: number } };

/** Pure: the set elements and rule count of a `nft -j list table` answer. */
export function readNftState(doc: readonly unknown[]): { v4: string[]; v6: string[]; rules: number; chain: boolean } {
  const out = { v4: [] as string[], v6: [] as string[], rules: 0, chain: false };
  for (const item of doc as Record<string, Record<string, unknown>>[]) {
    if (item.set && (item.set.name === 'pod-cidrs-v4' || item.set.name === 'pod-cidrs-v6')) {
      const fam = item.set.name === 'pod-cidrs-v4' ? 'v4' : 'v6';
      for (const e of (item.set.elem as NftElem[] | undefined) ?? []) {
        if (typeof e === 'string') out[fam].push(`${e}/${fam === 'v4' ? 32 : 128}`);
        else if (e.prefix?.addr !== undefined) out[fam].push(`${e.prefix.addr}/${e.prefix.len}`);
        else out[fam].push(JSON.stringify(e));
      }
    }
    if (item.chain && item.chain.name === 'postrouting' && item.chain.hook === 'postrouting') out.chain = true;
    if (item.rule && item.rule.chain === 'postrouting') out.rules += 1;
  }
  out.v4.sort();
  out.v6.sort();
  return out;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export class NftMasq implements MasqReconciler {
  readonly backend = 'nftables' as const;
  private applied: string | undefined;

  constructor(private readonly runner: AsyncRunner) {}

  async ensure(cidrs: PodCidrs, verify: boolean): Promise<{ changed: boolean }> {
    const script = calcNftScript(cidrs);
    if (script === this.applied && !verify) return { changed: false };
    if (script === this.applied || verify) {
      const doc = await nftJson(this.runner, ['list', 'table', 'inet', NFT_TABLE]);
      if (doc) {
        const s = readNftState(doc);
        if (s.chain && s.rules === 2 && sameList(s.v4, [...cidrs.v4].sort()) && sameList(s.v6, [...cidrs.v6].sort())) {
          this.applied = script;
          return { changed: false };
        }
      }
    }
    try {
      await nftApply(this.runner, script);
    } catch (e) {
      this.applied = undefined;
      throw new Error(`failed to apply nftables table "inet ${NFT_TABLE}": ${(e as Error).message}`, { cause: e });
    }
    this.applied = script;
    return { changed: true };
  }
}

export class IptablesMasq implements MasqReconciler {
  readonly backend = 'iptables' as const;
  private applied: string | undefined;

  constructor(private readonly runner: AsyncRunner) {}

  private async ensureFamily(tool: IpFamilyTool, cidrs: readonly string[]): Promise<void> {
    await iptablesRestore(this.runner, tool, calcIptablesRestore(cidrs));
    const jump = ['POSTROUTING', '-m', 'comment', '--comment', COMMENT, '-j', IPT_CHAIN];
    const check = await iptables(this.runner, tool, ['-t', 'nat', '-C', ...jump]);
    if (check.code === 0) return;
    const add = await iptables(this.runner, tool, ['-t', 'nat', '-A', ...jump]);
    if (add.code !== 0) throw new Error(`failed to add ${tool} jump to "${IPT_CHAIN}": ${add.stderr.trim()}`);
  }

  async ensure(cidrs: PodCidrs, verify: boolean): Promise<{ changed: boolean }> {
    const key = JSON.stringify(cidrs);
    if (key === this.applied && !verify) return { changed: false };
    this.applied = undefined;
    await this.ensureFamily('iptables', cidrs.v4);
    await this.ensureFamily('ip6tables', cidrs.v6);
    this.applied = key;
    return { changed: true };
  }
}

export class NoMasq implements MasqReconciler {
  readonly backend = 'none' as const;
  async ensure(): Promise<{ changed: boolean }> {
    return { changed: false };
  }
}

export type MasqMode = 'auto' | 'nftables' | 'iptables' | 'none';

/** Pick the backend: `auto` = nftables when `nft list tables` works, else iptables. */
export async function selectMasq(mode: MasqMode, runner: AsyncRunner): Promise<MasqReconciler> {
  if (mode === 'none') return new NoMasq();
  if (mode === 'nftables') return new NftMasq(runner);
  if (mode === 'iptables') return new IptablesMasq(runner);
  const probe = await nftUsable(runner);
  return probe.code === 0 ? new NftMasq(runner) : new IptablesMasq(runner);
}

/** The masquerade stage: the cluster's accepted pod CIDRs into the backend's rule set. */
export class MasqStage implements Stage {
  readonly name = 'masquerade';
  readonly needs = 'peers' as const;

  constructor(
    private readonly masq: MasqReconciler,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  async reconcile(desired: DesiredState, full: boolean): Promise<StageOutcome> {
    const cidrs = desired.clusterPodCIDRs;
    const r = await this.masq.ensure(cidrs, full);
    if (r.changed) {
      this.metrics.masqChanges += 1;
      this.log.info('masquerade rules updated', { backend: this.masq.backend, podCIDRs: cidrs.v4.length + cidrs.v6.length });
    }
    return CONVERGED;
  }
}
