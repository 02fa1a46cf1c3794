import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { delegate, findInPath } from '../../../lib/cni/delegate.js';
import { ErrorCode } from '../../../lib/cni/errors.js';

let dir: string;
let empty: string;

/** Write an executable shell script standing in for a delegated plugin. */
function fakePlugin(name: string, body: string): void {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pnt-delegate-'));
  empty = mkdtempSync(join(tmpdir(), 'pnt-delegate-empty-'));
  // Echoes back what it was given, as a 0.4.0 result whose gateway is the command it saw.
  fakePlugin('echo-ipam', `conf=$(cat); printf '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.9.0.2/24","gateway":"10.9.0.1"}],"dns":{"domain":"%s","options":["%s"]}}' "$CNI_CONTAINERID" "$CNI_COMMAND"`);
  fakePlugin('failing-ipam', `cat >/dev/null; echo '{"cniVersion":"1.0.0","code":100,"msg":"no IP addresses available","details":"10.9.0.0/24"}'; exit 1`);
  fakePlugin('crashing-ipam', `cat >/dev/null; echo 'panic: oops' >&2; exit 2`);
  fakePlugin('garbage-ipam', `cat >/dev/null; echo 'hello'`);
  writeFileSync(join(dir, 'not-executable'), '');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(empty, { recursive: true, force: true });
});

describe('findInPath', () => {
  it('finds the first executable in CNI_PATH order', () => {
    expect(findInPath('echo-ipam', [empty, dir])).toBe(join(dir, 'echo-ipam'));
  });
  it.each(['missing', 'not-executable'])('reports %s with the path searched', (name) => {
    expect(() => findInPath(name, [empty, dir])).toThrow(expect.objectContaining({ code: ErrorCode.InvalidNetworkConfig, message: expect.stringContaining(empty) }));
  });
  it.each(['', '../bin/sh', '/bin/sh'])('rejects type %j', (t) => {
    expect(() => findInPath(t, [dir])).toThrow(expect.objectContaining({ code: ErrorCode.InvalidNetworkConfig }));
  });
});

describe('delegate', () => {
  const env = { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1' };

  it('runs ADD with our env and decodes the result into the 1.x shape', async () => {
    const r = await delegate('ADD', 'echo-ipam', '{}', env, [dir]);
    expect(r).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.9.0.2/24', gateway: '10.9.0.1' }], dns: { domain: 'ctr1', options: ['ADD'] } });
  });

  it('sets CNI_COMMAND to the delegated verb and returns nothing for DEL', async () => {
    expect(await delegate('DEL', 'echo-ipam', '{}', env, [dir])).toBeUndefined();
  });

  it('passes the delegate error code and message through', async () => {
    await expect(delegate('ADD', 'failing-ipam', '{}', env, [dir])).rejects.toThrow(
      expect.objectContaining({ code: 100, message: 'no IP addresses available', details: '10.9.0.0/24' }),
    );
  });

  it('turns a crash without error JSON into 999 with its stderr', async () => {
    await expect(delegate('ADD', 'crashing-ipam', '{}', env, [dir])).rejects.toThrow(expect.objectContaining({ code: 999, message: expect.stringContaining('panic: oops') }));
  });

  it('reports an undecodable result with code 6', async () => {
    await expect(delegate('ADD', 'garbage-ipam', '{}', env, [dir])).rejects.toThrow(expect.objectContaining({ code: ErrorCode.DecodingFailure }));
  });
});
