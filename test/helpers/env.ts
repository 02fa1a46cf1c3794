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
export const isRoot = process.getuid?.() === 0;
/** The reference plugins from Debian's containernetworking-plugins, when installed. */
export const REFERENCE_BIN = '/usr/lib/cni';
export const hasReference = existsSync(join(REFERENCE_BIN, 'bridge'));
export const hasBuild = existsSync(join(DIST_BIN, 'podnet'));
export const ALL_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** A short unique tag for names of namespaces, links and dirs a test makes (pid + counter). */
let counter = 0;
export function uniqueTag(prefix: string): string {
  counter += 1;
  return `${prefix}${process.pid.toString(36)}${counter.toString(36)}`;
}
