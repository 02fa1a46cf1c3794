import type { DesiredState } from './types.js';

/**
 * One piece of node state the daemon keeps in line with the desired state: routes, masquerade
 * rules, the CNI config, br_netfilter. A pass computes the desired state once and hands it to
 * every stage in turn; a stage reports what went wrong instead of throwing (a throw counts as one
 * error of that stage), so one failing stage never stops the others.
 *
 * - `errors`: failures the daemon may fix by trying again: the pass is retried with backoff.
 * - `conditions`: not converged for a reason outside the daemon (no podCIDR yet, br_netfilter
 *   not loaded, another owner's route in the way): reported, rechecked at the next resync.
 */
export interface StageOutcome {
  errors: string[];
  conditions: string[];
}

/**
 * What a pass must have learnt from the kernel before a stage may act on the desired state:
 *  - `peers`: this node's addresses and the reachability of every peer. Without the answers every
 *    peer looks unreachable, and acting would delete good routes and masquerade exemptions;
 *  - `addresses`: this node's addresses (its own podCIDR checks, the uplink's MTU);
 *  - `nothing`: the stage does not read the desired state.
 */
export type StageNeeds = 'peers' | 'addresses' | 'nothing';

export interface Stage {
  /** Metric label and log field ("routes", "masquerade", "conflist", "br_netfilter"). */
  readonly name: string;
  readonly needs: StageNeeds;
  /** `full`: re-read the kernel (or the file) instead of trusting what the stage last did. */
  reconcile(desired: DesiredState, full: boolean): Promise<StageOutcome>;
}

export const CONVERGED: Readonly<StageOutcome> = Object.freeze({ errors: [], conditions: [] });
