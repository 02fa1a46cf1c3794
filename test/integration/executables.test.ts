import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPlugin } from '../helpers/cni.js';
import { ALL_VERSIONS, DIST_BIN, hasBuild } from '../helpers/env.js';
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
  });

  it('runs host-local ADD and DEL from the copy', async () => {
    const conf = { cniVersion: '1.0.0', name: 'pntexe', type: 'podnet-host-local', ipam: { type: 'podnet-host-local', dataDir: join(dir, 'ipam'), subnet: '10.123.0.0/24' } };
    const inv = { containerId: 'exe1', netns: '/var/run/netns/none', ifName: 'eth0', path: bin };
    const add = await runPlugin(join(bin, 'podnet-host-local'), { ...inv, command: 'ADD' }, conf);
    expect(add.json).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.123.0.2/24', gateway: '10.123.0.1' }] });
    expect((await runPlugin(join(bin, 'podnet-host-local'), { ...inv, command: 'DEL' }, conf)).code).toBe(0);
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
