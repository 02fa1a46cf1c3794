import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT } from '../helpers/env.js';
import { PEER_VERSIONS } from '../helpers/peers.js';

/**
 * The real components the cluster runs, built from their Go modules by scripts/peers.sh into a
 * cache outside the checkout (`scripts/peers.sh --dir NAME` names the directory; a missing build
 * is built on first use — it prints what it does and how long it takes).
 */
export const PEERS_SH = process.env.PODNET_PEERS_SH ?? join(REPO_ROOT, 'scripts', 'peers.sh');

export const CLUSTER_PEERS = {
  kubernetes: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy', 'kubectl', 'agnhost', 'e2e.test'],
  etcd: ['etcd'],
  containerd: ['containerd', 'containerd-shim-runc-v2', 'ctr'],
  'cni-plugins': ['loopback', 'portmap', 'bridge', 'host-local'],
} as const;
export type PeerName = keyof typeof CLUSTER_PEERS;

/** The peer's directory, or undefined when it is not built (`--dir` exits 1 then). */
export async function peerDir(name: string): Promise<string | undefined> {
  const r = await execa('bash', [PEERS_SH, '--dir', name], { stdin: 'ignore', reject: false });
  return r.exitCode === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/** bin/ of every peer the cluster needs, building what is missing (output to our stderr). */
export async function ensurePeers(names: readonly string[], say: (m: string) => void, required: Record<string, readonly string[]> = CLUSTER_PEERS): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const missing: string[] = [];
  for (const name of names) {
    const dir = await peerDir(name);
    if (dir && (required[name] ?? []).every((exe) => existsSync(join(dir, 'bin', exe)))) out[name] = join(dir, 'bin');
    else missing.push(name);
  }
  if (missing.length > 0) {
    say(`building ${missing.join(', ')} from their Go modules: one time, about ${missing.includes('kubernetes') ? '20-25 min (Kubernetes; measured on 2 shared cores: 20 min cold, ~1 min with a warm Go build cache)' : '1-3 min'}; the cache is reused after that`);
    const started = Date.now();
    await execa('bash', [PEERS_SH, ...missing], { stdin: 'ignore', stdout: 'inherit', stderr: 'inherit' });
    say(`built in ${((Date.now() - started) / 60_000).toFixed(1)} min`);
    for (const name of missing) {
      const dir = await peerDir(name);
      if (!dir) throw new Error(`scripts/peers.sh ${name} finished but --dir ${name} still says it is not built`);
      const bin = join(dir, 'bin');
      const absent = (required[name] ?? []).filter((exe) => !existsSync(join(bin, exe)));
      if (absent.length) throw new Error(`scripts/peers.sh ${name} did not produce ${absent.join(', ')} in ${bin}`);
      out[name] = bin;
    }
  }
  return out;
}

/** runc: the one scripts/peers.sh builds next to containerd 2, else Debian's. */
export function runcPath(containerdBin: string): string {
  const own = join(containerdBin, 'runc');
  if (existsSync(own)) return own;
  for (const p of ['/usr/sbin/runc', '/usr/bin/runc']) if (existsSync(p)) return p;
  throw new Error('failed to find runc: neither scripts/peers.sh containerd nor Debian runc provide it');
}

/** A version pinned in scripts/peers.versions (read once by test/helpers/peers.ts). */
export function peerVersion(key: string): string {
  const v = PEER_VERSIONS[key];
  if (!v) throw new Error(`failed to find ${key} in scripts/peers.versions`);
  return v;
}
