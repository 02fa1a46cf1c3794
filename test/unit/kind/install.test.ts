import { execFile, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../helpers/env.js';

/**
 * kind/install.sh (the DaemonSet's init container) against a temporary root that looks like a
 * kind node's /opt/cni/bin, with the stock plugins in it.
 */
const run = promisify(execFile);
const SCRIPT = join(REPO_ROOT, 'kind', 'install.sh');
const STOCK = ['host-local', 'ptp', 'portmap', 'loopback'];

describe('kind/install.sh', () => {
  let root: string;
  let src: string;
  let dest: string;
  const install = () => run('sh', [SCRIPT, '--src', src, '--dest', dest]);

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'prs-install-'));
    src = join(root, 'image', 'opt', 'podnet', 'bin');
    dest = join(root, 'host', 'opt', 'cni', 'bin');
    mkdirSync(src, { recursive: true });
    mkdirSync(dest, { recursive: true });
    writeFileSync(join(src, 'podnet'), 'podnet v1\n');
    chmodSync(join(src, 'podnet'), 0o700);
    for (const p of STOCK) writeFileSync(join(dest, p), `stock ${p}\n`, { mode: 0o755 });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const stockState = () => STOCK.map((p) => {
    const st = statSync(join(dest, p));
    return [p, readFileSync(join(dest, p), 'utf8'), st.ino, st.mtimeMs, st.mode];
  });

  it('installs podnet and links its plugin names, leaving the stock plugins and no temp file', async () => {
    const before = stockState();
    await install();
    expect(readFileSync(join(dest, 'podnet'), 'utf8')).toBe('podnet v1\n');
    expect(statSync(join(dest, 'podnet')).mode & 0o777).toBe(0o755);
    for (const l of ['podnet-bridge', 'podnet-host-local']) {
      expect(lstatSync(join(dest, l)).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(dest, l))).toBe('podnet');
      expect(readFileSync(join(dest, l), 'utf8')).toBe('podnet v1\n');
    }
    expect(stockState()).toEqual(before);
    expect(readdirSync(dest).sort()).toEqual(['host-local', 'loopback', 'podnet', 'podnet-bridge', 'podnet-host-local', 'portmap', 'ptp']);
  });

  it('is idempotent: an unchanged podnet is not rewritten', async () => {
    await install();
    const ino = statSync(join(dest, 'podnet')).ino;
    const { stdout } = await install();
    expect(stdout).toContain('is up to date');
    expect(statSync(join(dest, 'podnet')).ino).toBe(ino);
  });

  it('upgrades by rename: a process still holding the old file keeps it, a new open sees the whole new file', async () => {
    await install();
    const oldIno = statSync(join(dest, 'podnet')).ino;
    writeFileSync(join(src, 'podnet'), 'podnet v2\n');
    await install();
    expect(statSync(join(dest, 'podnet')).ino).not.toBe(oldIno);
    expect(readFileSync(join(dest, 'podnet-bridge'), 'utf8')).toBe('podnet v2\n');
  });

  it('replaces an executable that is running (no "text file busy")', async () => {
    copyFileSync('/bin/sleep', join(src, 'podnet'));
    await install();
    const running = spawn(join(dest, 'podnet'), ['30'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 100));
      writeFileSync(join(src, 'podnet'), 'podnet v3\n');
      await install();
      expect(readFileSync(join(dest, 'podnet'), 'utf8')).toBe('podnet v3\n');
      expect(running.exitCode).toBeNull();
    } finally {
      running.kill('SIGKILL');
    }
  });

  it('fixes a wrong link and removes leftovers of an interrupted install', async () => {
    writeFileSync(join(dest, 'podnet-bridge'), 'an old separate binary\n');
    writeFileSync(join(dest, '.podnet-install.12345'), 'half a copy');
    await install();
    expect(readlinkSync(join(dest, 'podnet-bridge'))).toBe('podnet');
    expect(existsSync(join(dest, '.podnet-install.12345'))).toBe(false);
  });

  it('creates a missing destination; fails clearly without a source, changing nothing', async () => {
    rmSync(dest, { recursive: true });
    await install();
    expect(existsSync(join(dest, 'podnet'))).toBe(true);
    rmSync(join(src, 'podnet'));
    rmSync(dest, { recursive: true });
    mkdirSync(dest);
    await expect(install()).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining(`failed to find "${src}/podnet"`) });
    expect(readdirSync(dest)).toEqual([]);
    await expect(run('sh', [SCRIPT, '--bogus'])).rejects.toMatchObject({ code: 2 });
  });
});
