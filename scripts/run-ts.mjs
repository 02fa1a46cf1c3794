// Run a TypeScript entry point on this Node (22): esbuild bundles it to a temporary ESM file
// inside the repo (so node_modules resolve; dependencies stay external), then it runs with the
// remaining arguments, and its exit code or signal becomes ours. Used by `npm run demo` and
// `npm run bench`.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Bundle `entry` and return the path of the runnable .mjs and a cleanup function. */
export async function bundleTs(entry) {
  const cacheDir = join(root, 'node_modules', '.cache', 'podnet-run-ts');
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, 'run-'));
  const outfile = join(work, `${basename(entry, '.ts')}.mjs`);
  await esbuild.build({
    entryPoints: [resolve(entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'warning',
  });
  return { outfile, cleanup: () => rmSync(work, { recursive: true, force: true }) };
}

/** Run a bundled entry with args; resolves to its exit code (128+n for a signal). */
export function runBundled(outfile, args) {
  return new Promise((resolveCode) => {
    const child = spawn(process.execPath, ['--enable-source-maps', outfile, ...args], { stdio: 'inherit', cwd: root });
    const forward = (sig) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolveCode(code ?? (signal ? 128 + 15 : 1));
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [entry, ...args] = process.argv.slice(2);
  if (!entry) {
    console.error('usage: node scripts/run-ts.mjs <entry.ts> [args...]');
    process.exit(2);
  }
  const { outfile, cleanup } = await bundleTs(entry);
  try {
    process.exitCode = await runBundled(outfile, args);
  } finally {
    cleanup();
  }
}
