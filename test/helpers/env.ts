import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The checkout's root: found by walking up, so it holds also when this file runs bundled. */
export const REPO_ROOT = findRepoRoot(import.meta.dirname);

function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'lib', 'cni')) && existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no podnet checkout above ${from}`);
  }
}
export const DIST_BIN = join(REPO_ROOT, 'dist', 'bin');
/** Not shipped: the plugins with test hooks compiled in (scripts/build.mjs). */
export const DIST_TEST_BIN = join(REPO_ROOT, 'dist', 'test', 'bin');
/** Not shipped: the empty single executable, the floor of every invocation (scripts/build.mjs). */
export const DIST_BENCH = join(REPO_ROOT, 'dist', 'bench');
export const isRoot = process.getuid?.() === 0;
/**
 * Debian 12's reference plugins (containernetworking-plugins 1.1.1): what a Debian node runs.
 * The suite compares with the current upstream release instead (test/helpers/peers.ts); Debian's
 * stay only where they tell something — their portmap stops at CNI 1.0.0, so they show what a
 * conflist must do for an older node, and they are a second column in the bench.
 */
export const DEBIAN_CNI_BIN = '/usr/lib/cni';

/** DEBIAN_CNI_BIN; throws, naming the command, when the package is missing. */
export function debianCniBin(): string {
  if (!existsSync(join(DEBIAN_CNI_BIN, 'portmap'))) {
    throw new Error(`Debian's reference plugins are missing in ${DEBIAN_CNI_BIN}: apt-get install containernetworking-plugins (scripts/setup.sh does)`);
  }
  return DEBIAN_CNI_BIN;
}
export const hasBuild = existsSync(join(DIST_BIN, 'podnet'));
export const ALL_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** A short unique tag for names of namespaces, links and dirs a test makes (pid + counter). */
let counter = 0;
export function uniqueTag(prefix: string): string {
  counter += 1;
  return `${prefix}${process.pid.toString(36)}${counter.toString(36)}`;
}
