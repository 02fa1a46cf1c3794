import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../lib/cni/log.js';
import { ChangeTracker } from './change-tracker.js';
import { CONFLIST_NAME, type ConflistTemplate, calcChainVersions, calcConflist, chainTypes } from './conflist.js';
import type { Metrics } from './metrics.js';
import type { VersionLookup } from './plugin-versions.js';
import type { Stage, StageOutcome } from './stage.js';
import type { DesiredState } from './types.js';

/**
 * Writes the CNI network configuration list, atomically and only when its bytes change.
 *
 * Atomic: the new content goes to a temporary file in the same directory, is fsynced, then
 * renamed over the target (rename(2) within one filesystem is atomic), and the directory is
 * fsynced. A runtime listing the directory meanwhile sees the old file or the new one, never half
 * of one. The temporary name starts with a dot and ends in `.tmp`: libcni (what containerd and
 * CRI-O use) loads only `*.conf`, `*.conflist` and `*.json`, so it never picks the temp file up.
 */
export interface ConflistWriteResult {
  written: boolean;
  path: string;
  /** Config files that sort before ours: the runtime uses the first one, not ours. */
  shadowedBy: string[];
}

const CNI_EXTENSIONS = ['.conf', '.conflist', '.json'];

export async function writeConflistIfChanged(dir: string, name: string, content: string): Promise<ConflistWriteResult> {
  const path = join(dir, name);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const shadowedBy = (await readdir(dir))
    .filter((f) => f !== name && CNI_EXTENSIONS.some((ext) => f.endsWith(ext)) && f < name)
    .sort();
  let current: string | undefined;
  try {
    current = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`failed to read cni config "${path}": ${(e as Error).message}`, { cause: e });
  }
  if (current === content) return { written: false, path, shadowedBy };

  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new Error(`failed to write cni config "${path}": ${(e as Error).message}`, { cause: e });
  }
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // Directory fsync is best effort (some filesystems refuse it); the rename is done.
  }
  return { written: true, path, shadowedBy };
}

export interface ConflistStageOptions {
  cniConfDir: string;
  template: ConflistTemplate;
  /** The CNI versions a chained plugin supports (asked from the node's CNI bin dir). */
  pluginVersions: VersionLookup;
}

/**
 * The CNI config stage: this node's podCIDRs and uplink MTU rendered into the template, with the
 * versions every chained plugin speaks, written when its bytes change. No config while this
 * node's own podCIDR is missing or refused (a condition: the runtime then keeps the node's
 * network not ready, which is the truth). The last good file stays when rendering fails.
 */
export class ConflistStage implements Stage {
  readonly name = 'conflist';
  readonly needs = 'addresses' as const;
  private readonly dropped = new ChangeTracker<string>();
  private readonly noUplink = new ChangeTracker<string>();

  constructor(
    private readonly o: ConflistStageOptions,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  async reconcile(desired: DesiredState): Promise<StageOutcome> {
    const { o, metrics, log } = this;
    const self = desired.self;
    if (!self.ok) return { errors: [], conditions: [`${self.reason}: ${self.message}; CNI config not written`] };
    const mtu = desired.uplink?.mtu;
    const missing = this.noUplink.update(new Map(desired.uplink ? [] : [['uplink', self.internalIPs.join(',')]]));
    if (missing.started.length) log.warn("no local interface holds this node's InternalIP; CNI config gets no mtu", { internalIPs: self.internalIPs });

    const types = chainTypes(o.template);
    const support = new Map(await Promise.all(types.map(async (t) => [t, await o.pluginVersions(t)] as const)));
    const versions = calcChainVersions(o.template, support);
    if (!versions) return { errors: [`no CNI version of the template is supported by every chained plugin (${types.join(', ')})`], conditions: [] };
    const left = this.dropped.update(new Map(versions.dropped.map((d) => [d.version, d.plugins.join(',')])));
    for (const d of versions.dropped) {
      if (left.started.some(([v]) => v === d.version)) log.info('cni version left out of the config: a chained plugin lacks it', d);
    }

    const content = calcConflist(o.template, { podCIDRs: self.podCIDRs, mtu }, versions);
    const w = await writeConflistIfChanged(o.cniConfDir, CONFLIST_NAME, content);
    metrics.conflistWritten = 1;
    if (w.written) {
      metrics.conflistWrites += 1;
      log.info('cni config written', { path: w.path, podCIDRs: self.podCIDRs, mtu });
    }
    const conditions = w.shadowedBy.length ? [`cni config ${w.shadowedBy.join(', ')} sorts before ${CONFLIST_NAME} in ${o.cniConfDir}; the runtime uses that one`] : [];
    return { errors: [], conditions };
  }
}
