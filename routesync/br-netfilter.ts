import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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

export async function ensureBrNetfilter(root: string): Promise<BrNetfilterStatus> {
  const dir = join(root, 'net', 'bridge');
  const written: string[] = [];
  const problems: string[] = [];
  for (const key of BRNF_KEYS) {
    const file = join(dir, key);
    let value: string;
    try {
      value = (await readFile(file, 'utf8')).trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      problems.push(
        code === 'ENOENT'
          ? `${file} does not exist: the br_netfilter kernel module is not loaded (run "modprobe br_netfilter" on the host)`
          : `failed to read sysctl "${file}": ${(e as Error).message}`,
      );
      continue;
    }
    if (value === '1') continue;
    try {
      await writeFile(file, '1\n');
      written.push(key);
    } catch (e) {
      problems.push(`failed to write sysctl "${file}": ${(e as Error).message}`);
    }
  }
  if (problems.length) return { ok: false, written, message: problems.join('; ') };
  return { ok: true, written, message: written.length ? `set ${written.join(', ')} to 1` : 'already 1' };
}
