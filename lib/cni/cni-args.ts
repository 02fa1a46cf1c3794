import { CniError, ErrorCode } from './errors.js';

/** Keys every runtime may send; containerd always adds IgnoreUnknown=1 and the K8S_* set. */
const COMMON_KEYS = ['IgnoreUnknown', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID'];

const truthy = (v: string | undefined): boolean => v !== undefined && /^(1|true)$/i.test(v);

/**
 * Parse CNI_ARGS (`K=V;K2=V2`). Keys outside `known` (and the common ones) are an error unless
 * IgnoreUnknown is 1/true, as in upstream's `types.LoadArgs`.
 */
export function parseCniArgs(raw: string, known: readonly string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  if (!raw) return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) {
      throw new CniError(ErrorCode.InvalidEnvironmentVariables, `invalid CNI_ARGS pair "${pair}": expected KEY=VALUE`, 'CNI_ARGS');
    }
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  if (!truthy(out.get('IgnoreUnknown'))) {
    const unknown = [...out.keys()].filter((k) => !COMMON_KEYS.includes(k) && !known.includes(k));
    if (unknown.length) {
      throw new CniError(ErrorCode.UnsupportedField, `unknown CNI_ARGS keys [${unknown.join(' ')}] (set IgnoreUnknown=1 to allow)`, 'CNI_ARGS');
    }
  }
  return out;
}
