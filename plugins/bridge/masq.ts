import { CniError, ErrorCode, causeText } from '../../lib/cni/errors.js';
import { CommandError } from '../../lib/linux/exec.js';
import {
  MASQ_CHAIN,
  MASQ_TABLE,
  type MasqTarget,
  iptChainsOfNetwork,
  iptMasqAdd,
  iptMasqDelete,
  nftApplyCreating,
  nftDeleteRules,
  nftFindRules,
  nftMasqBaseLines,
  nftMasqRuleLines,
} from './masq-rules.js';
import type { Netfilter, NftRule } from '../../lib/linux/netfilter.js';
import { SPOOFCHK_FAMILY, spoofchkBaseLines, spoofchkRuleLines } from './spoofchk.js';
import type { Attachment } from '../../lib/cni/types.js';
import { calcAttachmentKey, calcIptablesChain, calcIptablesComment, calcNetworkKey, calcRuleComment } from './names.js';
import type { BridgeConf } from './netconf.js';

/**
 * The bridge's firewall state for one attachment: masquerade rules (`ipMasq`) and the MAC spoof
 * check (`macspoofchk`), added in one nft transaction and found again by key.
 */
export interface Masq {
  add(targets: readonly MasqTarget[], spoof?: { hostIface: string; mac: string }): Promise<void>;
  /** Remove this attachment's rules wherever they are (idempotent). */
  remove(): Promise<void>;
  /** Which of `targets` lack a masquerade rule (for CHECK). */
  missing(targets: readonly MasqTarget[]): Promise<MasqTarget[]>;
  /** Remove every rule of this network whose attachment is not in `valid`. */
  gc(valid: readonly Attachment[]): Promise<void>;
}

export type Backend = 'nftables' | 'iptables';

export function resolveBackend(nf: Netfilter, conf: BridgeConf): Backend {
  return conf.ipMasqBackend ?? (nf.hasNft() ? 'nftables' : 'iptables');
}

const startsWithKey = (key: string) => (comment: string) => comment === key || comment.startsWith(`${key} `);

export function createMasq(nf: Netfilter, conf: BridgeConf, containerId: string, ifName: string): Masq {
  const key = calcAttachmentKey(conf.name, containerId, ifName);
  const comment = calcRuleComment(conf.name, containerId, ifName);
  // Computed only on the iptables path (SHA-512, see names.ts).
  let chainName: string | undefined;
  const chainOf = (): string => (chainName ??= calcIptablesChain(conf.name, containerId));
  const backend = resolveBackend(nf, conf);

  const listOurs = async (family: string, pick: (c: string) => boolean): Promise<NftRule[]> =>
    nf.hasNft() ? nftFindRules(nf, family, MASQ_TABLE, pick) : [];

  return {
    async add(targets, spoof) {
      const lines: string[] = [];
      const base: string[] = [];
      if (targets.length && backend === 'nftables') {
        lines.push(...nftMasqRuleLines(comment, targets));
        base.push(...nftMasqBaseLines());
      }
      if (spoof) {
        lines.push(...spoofchkRuleLines(comment, spoof.hostIface, spoof.mac));
        base.push(...spoofchkBaseLines());
      }
      const nftJob = lines.length ? nftApplyCreating(nf, lines, base) : Promise.resolve();
      const iptJob = targets.length && backend === 'iptables' ? iptMasqAdd(nf, chainOf(), calcIptablesComment(conf.name, containerId), targets) : Promise.resolve();
      const [a, b] = await Promise.allSettled([nftJob, iptJob]);
      if (a.status === 'rejected') throw new CniError(ErrorCode.Internal, `failed to add nftables rules: ${causeText(a.reason)}`);
      if (b.status === 'rejected') throw new CniError(ErrorCode.Internal, `failed to add iptables masquerade: ${causeText(b.reason)}`);
    },

    async remove() {
      const jobs: Promise<void>[] = [];
      if (nf.hasNft() && (conf.ipMasq || conf.macspoofchk)) {
        jobs.push(
          (async () => {
            const pick = startsWithKey(key);
            const [inet, bridge] = await Promise.all([
              conf.ipMasq ? listOurs('inet', pick) : Promise.resolve([]),
              conf.macspoofchk ? listOurs(SPOOFCHK_FAMILY, pick) : Promise.resolve([]),
            ]);
            await nftDeleteRules(nf, [...inet, ...bridge]);
          })(),
        );
      }
      // iptables when configured (or the only tool); rules of the reference plugin are found too.
      if (conf.ipMasq && (backend === 'iptables' || !nf.hasNft())) jobs.push(iptMasqDelete(nf, new Set([chainOf()])));
      const settled = await Promise.allSettled(jobs);
      const failed = settled.find((s) => s.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    },

    async missing(targets) {
      if (backend === 'nftables') {
        const rules = await listOurs('inet', startsWithKey(key));
        return targets.filter((t) => !rules.some((r) => r.chain === MASQ_CHAIN && JSON.stringify(r.expr ?? []).includes(`"right":"${t.ip}"`)));
      }
      const out: MasqTarget[] = [];
      for (const family of [4, 6] as const) {
        const mine = targets.filter((t) => t.family === family);
        if (!mine.length) continue;
        const saved = await nf.iptablesSaveNat(family);
        if (saved.code !== 0) throw new CommandError(`${family === 4 ? 'iptables' : 'ip6tables'}-save`, saved);
        for (const t of mine) {
          const jump = saved.stdout.split('\n').some((l) => l.startsWith('-A POSTROUTING') && l.includes(`-s ${t.ip}/`) && l.endsWith(`-j ${chainOf()}`));
          if (!jump) out.push(t);
        }
      }
      return out;
    },

    async gc(valid) {
      const prefix = calcNetworkKey(conf.name);
      const validKeys = new Set(valid.map((a) => calcAttachmentKey(conf.name, a.containerID, a.ifname)));
      const stale = (c: string): boolean => c.startsWith(prefix) && !validKeys.has(c.split(' ')[0] as string);
      const errors: unknown[] = [];
      if (nf.hasNft()) {
        try {
          const [inet, bridge] = await Promise.all([listOurs('inet', stale), listOurs(SPOOFCHK_FAMILY, stale)]);
          await nftDeleteRules(nf, [...inet, ...bridge]);
        } catch (e) {
          errors.push(e);
        }
      }
      // iptables chains are per (network, container): stale when no valid attachment has that container.
      const validIds = new Set(valid.map((a) => a.containerID));
      const chains = new Set<string>();
      for (const family of [4, 6] as const) {
        if (!nf.hasIptables(family)) continue;
        const saved = await nf.iptablesSaveNat(family);
        if (saved.code !== 0) continue;
        for (const [c, id] of iptChainsOfNetwork(saved.stdout, conf.name)) if (!validIds.has(id)) chains.add(c);
      }
      if (chains.size) {
        try {
          await iptMasqDelete(nf, chains);
        } catch (e) {
          errors.push(e);
        }
      }
      if (errors.length) throw errors[0];
    },
  };
}
