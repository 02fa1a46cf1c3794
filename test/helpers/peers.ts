import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './env.js';

/**
 * The real peers scripts/peers.sh builds from their Go modules (cri-tools, containerd 2,
 * cni-plugins v1.10 …), located the way the script says: `scripts/peers.sh --dir NAME`.
 * A peer that is not built is an error naming the command that builds it — a tier that needs
 * it fails, it is never skipped.
 */
const PEERS_SH = join(REPO_ROOT, 'scripts', 'peers.sh');

const dirs = new Map<string, string>();

/** The directory of a built peer (its executables are in `<dir>/bin`); throws when not built. */
export function peerDir(name: string): string {
  const hit = dirs.get(name);
  if (hit) return hit;
  const r = spawnSync('bash', [PEERS_SH, '--dir', name], { encoding: 'utf8', cwd: REPO_ROOT });
  const dir = r.stdout.trim();
  if (r.status !== 0 || !dir) {
    const why = (r.stderr || r.error?.message || '').trim();
    throw new Error(`peer ${name} is not available${why ? ` (${why})` : ''}: run scripts/peers.sh ${name}`);
  }
  dirs.set(name, dir);
  return dir;
}

/** An executable of a built peer: `<peerDir(name)>/bin/<file>`. */
export function peerBin(name: string, file: string): string {
  return join(peerDir(name), 'bin', file);
}
