import type { Logger } from '../lib/cni/log.js';
import { ProcSysctl } from '../lib/linux/sysctl.js';
import type { Metrics } from './metrics.js';
import { CONVERGED, type Stage, type StageOutcome } from './stage.js';
import type { DesiredState } from './types.js';

/**
 * kube-proxy's rules must see traffic between two pods on the same bridge (a pod talking to a
 * Service whose backend sits on the same node): that takes br_netfilter with
 * net.bridge.bridge-nf-call-iptables = 1 (and ip6tables) in the node's network namespace.
 * These sysctls exist per network namespace since Linux 5.3 and only once the br_netfilter module
 * is loaded; a container cannot load it, so its absence is reported (log, metric, readiness), not
 * fixed.
 *
 * `root` is /proc/sys normally; in the kind DaemonSet it is the host's /proc/sys/net mounted at
 * /host/proc/sys/net (see kind/podnet.yaml); tests point it at a temporary directory.
 */
export const BRNF_KEYS = ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables'] as const;

export interface BrNetfilterStatus {
  ok: boolean;
  /** What was set (key → true when it had to be written). */
  written: string[];
  message: string;
}

/** Both sysctls set to 1 where they can be; what could not, said plainly. */
export async function ensureBrNetfilter(root: string): Promise<BrNetfilterStatus> {
  const sysctl = new ProcSysctl(root);
  const written: string[] = [];
  const problems: string[] = [];
  for (const key of BRNF_KEYS) {
    const name = `net/bridge/${key}`;
    try {
      if (sysctl.ensure(name, '1')) written.push(key);
    } catch (e) {
      problems.push(
        (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? `${sysctl.path(name)} does not exist: the br_netfilter kernel module is not loaded (run "modprobe br_netfilter" on the host)`
          : `failed to set sysctl "${sysctl.path(name)}": ${(e as Error).message}`,
      );
    }
  }
  if (problems.length) return { ok: false, written, message: problems.join('; ') };
  return { ok: true, written, message: written.length ? `set ${written.join(', ')} to 1` : 'already 1' };
}

/**
 * The br_netfilter stage: checked at the first pass and every full one, and at every pass while
 * it is not right; the state is logged when it changes. Missing is a condition (only the host can
 * load the module), a failed write an error.
 */
export class BrNetfilterStage implements Stage {
  readonly name = 'br_netfilter';
  readonly needs = 'nothing' as const;
  private ok: boolean | undefined;
  /** What the last check found (for /readyz). */
  message = 'not checked yet';

  constructor(
    private readonly root: string,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  async reconcile(_desired: DesiredState, full: boolean): Promise<StageOutcome> {
    if (this.ok === true && !full) return CONVERGED;
    const s = await ensureBrNetfilter(this.root);
    if (s.ok !== this.ok || s.written.length) {
      if (s.ok) this.log.info('br_netfilter ok', { detail: s.message });
      else this.log.error('br_netfilter not available: Services between pods on one node will not work', { detail: s.message });
    }
    this.ok = s.ok;
    this.message = s.message;
    this.metrics.brNetfilterOk = s.ok ? 1 : 0;
    return s.ok ? CONVERGED : { errors: [], conditions: [`br_netfilter: ${s.message}`] };
  }
}
