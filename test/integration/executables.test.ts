import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPlugin } from '../helpers/cni.js';
import { ALL_VERSIONS, DIST_BIN, DIST_TEST_BIN, hasBuild } from '../helpers/env.js';
import { PLUGIN_NAMES } from '../../plugins/registry.js';

/**
 * The build's promise: dist/bin copied anywhere runs with no node_modules and no repository
 * around it, and the multi-call executable answers to each plugin name.
 */
describe.runIf(hasBuild)('dist/bin copied out of the repository', () => {
  let dir: string;
  let bin: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pnt-exe-'));
    bin = join(dir, 'bin');
    cpSync(DIST_BIN, bin, { recursive: true, verbatimSymlinks: true });
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(PLUGIN_NAMES)('%s (a link the build made) answers VERSION with every spec version', async (name) => {
    const r = await runPlugin(join(bin, name), { command: 'VERSION', env: { NODE_PATH: undefined } }, '');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: [...ALL_VERSIONS] });
    // V8 accepts the code cache the plugins carry (scripts/sea-main.cjs says so on stderr when not).
    expect(r.stderr).not.toContain('code cache');
  });

  it('runs host-local ADD and DEL from the copy', async () => {
    const conf = { cniVersion: '1.0.0', name: 'pntexe', type: 'podnet-host-local', ipam: { type: 'podnet-host-local', dataDir: join(dir, 'ipam'), subnet: '10.123.0.0/24' } };
    const inv = { containerId: 'exe1', netns: '/var/run/netns/none', ifName: 'eth0', path: bin };
    const add = await runPlugin(join(bin, 'podnet-host-local'), { ...inv, command: 'ADD' }, conf);
    expect(add.json).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.123.0.2/24', gateway: '10.123.0.1' }] });
    const del = await runPlugin(join(bin, 'podnet-host-local'), { ...inv, command: 'DEL' }, conf);
    expect(del.code).toBe(0);
    for (const r of [add, del]) expect(r.stderr).not.toContain('code cache');
  });

  it('NODE_V8_COVERAGE=<dir> makes neither the plugins nor the daemon write into that directory', async () => {
    const cov = join(dir, 'coverage');
    mkdirSync(cov);
    const r = await runPlugin(join(bin, 'podnet-bridge'), { command: 'VERSION', env: { NODE_V8_COVERAGE: cov } }, '');
    expect(r.code).toBe(0);
    execFileSync(join(bin, 'podnet-routesync'), ['--help'], { env: { NODE_V8_COVERAGE: cov }, stdio: 'ignore' });
    expect(readdirSync(cov)).toEqual([]);
    // The check can fail: a plain Node with the variable writes its file there.
    execFileSync(process.execPath, ['-e', ''], { env: { NODE_V8_COVERAGE: cov } });
    expect(readdirSync(cov).length).toBe(1);
  });

  it('answers to a link of another name, and to its own, with the spec\'s error JSON on stdout and a non-zero exit', async () => {
    symlinkSync('podnet', join(bin, 'podnet-unknown'));
    for (const file of ['podnet-unknown', 'podnet']) {
      const r = await runPlugin(join(bin, file), { command: 'VERSION' }, '');
      expect(r.code).not.toBe(0);
      expect(r.json).toEqual({ cniVersion: '1.1.0', code: 999, msg: expect.stringContaining(`unknown plugin name "${file}"`) });
      expect((r.json as { msg: string }).msg).toContain('podnet-bridge');
    }
  });

  it('runs a plugin named by its first argument', async () => {
    const out = execFileSync(join(bin, 'podnet'), ['podnet-host-local'], { env: { CNI_COMMAND: 'VERSION' }, encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ cniVersion: '1.1.0', supportedVersions: [...ALL_VERSIONS] });
  });

  it('starts the daemon from the copy', () => {
    expect(execFileSync(join(bin, 'podnet-routesync'), ['--help'], { encoding: 'utf8' })).toContain('--nodes-file');
  });
});

/**
 * NODE_OPTIONS in a runtime's environment must not reach Node inside a root plugin or the
 * daemon: `--require` would run any JavaScript as root, `--inspect` opens a debugger port.
 * The executables are built with the SEA option execArgvExtension "none".
 */
describe.runIf(hasBuild)('the executables ignore NODE_OPTIONS', () => {
  let dir: string;
  let marker: string;
  let hook: string;
  let adds = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pst-nodeopts-'));
    marker = join(dir, 'required-ran');
    hook = join(dir, 'hook.js');
    writeFileSync(hook, `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran'); process.stderr.write('HOOK RAN\\n');\n`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const cases: [string, (env: Record<string, string>) => Promise<{ code: number; stdout: string; stderr: string }>][] = [
    ['podnet-bridge VERSION', (env) => runPlugin(join(DIST_BIN, 'podnet-bridge'), { command: 'VERSION', env }, '')],
    ['podnet-host-local VERSION', (env) => runPlugin(join(DIST_BIN, 'podnet-host-local'), { command: 'VERSION', env }, '')],
    [
      'podnet-host-local ADD',
      (env) =>
        runPlugin(
          join(DIST_BIN, 'podnet-host-local'),
          { command: 'ADD', containerId: `pstopts${(adds += 1)}`, netns: '/var/run/netns/none', ifName: 'eth0', env },
          { cniVersion: '1.0.0', name: 'pstopts', type: 'podnet-host-local', ipam: { type: 'podnet-host-local', dataDir: join(dir, 'ipam'), subnet: '10.124.0.0/24' } },
        ),
    ],
    [
      'podnet-routesync --help',
      async (env) => {
        const r = await execa(join(DIST_BIN, 'podnet-routesync'), ['--help'], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });
        return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
      },
    ],
  ];

  it.each(cases)('%s: --require runs nothing', async (_name, run) => {
    const r = await run({ NODE_OPTIONS: `--require=${hook}` });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).not.toContain('HOOK RAN');
    expect(existsSync(marker)).toBe(false);
  });

  it.each(cases)('%s: --inspect opens no debugger', async (_name, run) => {
    const r = await run({ NODE_OPTIONS: '--inspect=127.0.0.1:0' });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).not.toContain('Debugger listening');
  });

  it('the check itself works: the same hook runs under a plain node', async () => {
    const r = await execa(process.execPath, ['-e', '0'], { env: { NODE_OPTIONS: `--require=${hook}` }, reject: false });
    expect(r.stderr).toContain('HOOK RAN');
    rmSync(marker, { force: true });
  });
});

/**
 * PODNET_TEST_IPAM_EXEC=1 (plugins/bridge/test-hooks.ts) makes the bridge exec podnet's own IPAM
 * instead of running it in-process; only the test build may read it. The CNI_PATH here holds a
 * fake podnet-host-local that leaves a marker when exec'd, and STATUS needs no namespace.
 */
describe.runIf(hasBuild)('only the test build reads PODNET_TEST_IPAM_EXEC', () => {
  let dir: string;
  let bin: string;
  let marker: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pnt-ipamexec-'));
    bin = join(dir, 'bin');
    marker = join(dir, 'exec-ran');
    mkdirSync(bin);
    const fake = join(bin, 'podnet-host-local');
    writeFileSync(fake, `#!/bin/sh\necho "$CNI_COMMAND" >> ${JSON.stringify(marker)}\n`);
    chmodSync(fake, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const status = (exe: string) =>
    runPlugin(
      exe,
      { command: 'STATUS', path: bin, env: { PODNET_TEST_IPAM_EXEC: '1', PODNET_IPAM_EXEC: '1' } },
      { cniVersion: '1.1.0', name: 'pntipamexec', type: 'podnet-bridge', bridge: 'pntbr0', ipam: { type: 'podnet-host-local', dataDir: join(dir, 'ipam'), subnet: '10.125.0.0/24' } },
    );

  it('the shipped executable holds no test hook at all; the test build holds them', () => {
    // The hooks' env names are in their code: where the names are absent, so is the code.
    expect(readFileSync(join(DIST_BIN, 'podnet')).includes('PODNET_TEST_')).toBe(false);
    expect(readFileSync(join(DIST_TEST_BIN, 'podnet')).includes('PODNET_TEST_PAUSE')).toBe(true);
  });

  it('dist/bin/podnet-bridge ignores it: its IPAM runs in-process', async () => {
    const r = await status(join(DIST_BIN, 'podnet-bridge'));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(existsSync(marker)).toBe(false);
  });

  it('dist/test/bin/podnet-bridge honours it: the IPAM in CNI_PATH is exec\'d', async () => {
    const r = await status(join(DIST_TEST_BIN, 'podnet-bridge'));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(existsSync(marker)).toBe(true);
    rmSync(marker);
  });
});
