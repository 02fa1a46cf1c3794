import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './env.js';

/**
 * The real peers the tests run podnet against, built from their Go modules by
 * `scripts/peers.sh` (versions pinned in scripts/peers.versions) into a cache outside the
 * checkout. Tests never skip for a missing peer: `peerDir` throws with the command that builds
 * it, so the suite fails loudly instead (`scripts/setup.sh` builds every peer).
 */
export type PeerName = 'cni-plugins' | 'libcni' | 'cri-tools' | 'containerd' | 'etcd' | 'kubernetes';

export const PEERS_SCRIPT = join(REPO_ROOT, 'scripts', 'peers.sh');

/** scripts/peers.versions as KEY → value (e.g. CNI_PLUGINS_VERSION → v1.10.0). */
export const PEER_VERSIONS: Readonly<Record<string, string>> = Object.fromEntries(
  readFileSync(join(REPO_ROOT, 'scripts', 'peers.versions'), 'utf8')
    .split('\n')
    .map((line) => /^([A-Z0-9_]+)=(\S+)\s*$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1]!, m[2]!]),
);

/** The reference CNI plugins' release the suite compares with. */
export const UPSTREAM_CNI_VERSION = PEER_VERSIONS.CNI_PLUGINS_VERSION ?? 'unknown';

const dirs = new Map<PeerName, string>();

/** A peer's directory (its executables are in `bin/`), or undefined when it is not built. */
export function findPeer(name: PeerName): string | undefined {
  const known = dirs.get(name);
  if (known) return known;
  const r = spawnSync('bash', [PEERS_SCRIPT, '--dir', name], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const dir = r.stdout.trim();
  dirs.set(name, dir);
  return dir;
}

/** A peer's directory; throws, naming the command that builds it, when it is not built. */
export function peerDir(name: PeerName): string {
  const dir = findPeer(name);
  if (!dir) throw new Error(`peer ${name} is not built: run \`scripts/peers.sh ${name}\` (scripts/setup.sh builds every peer)`);
  return dir;
}

/** `<peer>/bin/<file>`; throws like `peerDir`. */
export function peerBin(name: PeerName, file: string): string {
  return join(peerDir(name), 'bin', file);
}

/** The upstream reference plugins (bridge, host-local, portmap, loopback, …) at UPSTREAM_CNI_VERSION. */
export function upstreamCniBin(): string {
  return join(peerDir('cni-plugins'), 'bin');
}
