import { describe, expect, it } from 'vitest';
import { type DelegateDeps, delegate, findInPath } from '../../../lib/cni/delegate.js';
import { ErrorCode } from '../../../lib/cni/errors.js';
import type { RunOptions, RunResult } from '../../../lib/linux/exec.js';

const DIR = '/fake/cni/bin';
const EMPTY = '/fake/empty';
/** What the fake file system holds: executables only; `not-executable` exists without the x bit. */
const EXECUTABLES = new Set([`${DIR}/echo-ipam`, `${DIR}/failing-ipam`, `${DIR}/crashing-ipam`, `${DIR}/garbage-ipam`, `${DIR}/bare-ipam`]);
const executable = (f: string) => EXECUTABLES.has(f);

type Answer = (input: string, env: Readonly<Record<string, string | undefined>>) => RunResult;
const ok = (stdout: string): RunResult => ({ code: 0, stdout, stderr: '' });
/** The delegated plugins, as the runner answers for them. */
const PLUGINS: Record<string, Answer> = {
  // Echoes back what it was given, as a 0.4.0 result whose dns carries the container and command it saw.
  'echo-ipam': (_input, env) =>
    ok(
      JSON.stringify({
        cniVersion: '0.4.0',
        ips: [{ version: '4', address: '10.9.0.2/24', gateway: '10.9.0.1' }],
        dns: { domain: env.CNI_CONTAINERID, options: [env.CNI_COMMAND] },
      }),
    ),
  'failing-ipam': () => ({ code: 1, stdout: '{"cniVersion":"1.0.0","code":100,"msg":"no IP addresses available","details":"10.9.0.0/24"}', stderr: '' }),
  'crashing-ipam': () => ({ code: 2, stdout: '', stderr: 'panic: oops\n' }),
  'garbage-ipam': () => ok('hello\n'),
  // A result without cniVersion: its shape is the config's version's (libcni fixupResultVersion).
  'bare-ipam': (input) =>
    ok(
      (JSON.parse(input) as { shape: string }).shape === 'v02'
        ? '{"ip4":{"ip":"10.9.0.7/24","gateway":"10.9.0.1","routes":[{"dst":"0.0.0.0/0"}]},"ip6":{"ip":"fd09::7/64"}}'
        : '{"ips":[{"address":"10.9.0.7/24","gateway":"10.9.0.1"}],"routes":[{"dst":"0.0.0.0/0","mtu":1400}]}',
    ),
};

function fakeDeps(): DelegateDeps & { calls: { file: string; opts: RunOptions | undefined }[] } {
  const calls: { file: string; opts: RunOptions | undefined }[] = [];
  return {
    calls,
    find: (type, paths) => findInPath(type, paths, executable),
    runner: {
      async run(file, _args, opts) {
        calls.push({ file, opts });
        const answer = PLUGINS[file.slice(DIR.length + 1)];
        if (!answer) throw new Error(`unexpected exec of ${file}`);
        return answer(String(opts?.input ?? ''), opts?.env ?? {});
      },
    },
  };
}

describe('findInPath', () => {
  it('finds the first executable in CNI_PATH order', () => {
    expect(findInPath('echo-ipam', [EMPTY, DIR], executable)).toBe(`${DIR}/echo-ipam`);
  });
  it.each(['missing', 'not-executable'])('reports %s with the path searched', (name) => {
    expect(() => findInPath(name, [EMPTY, DIR], executable)).toThrow(
      expect.objectContaining({ code: ErrorCode.InvalidNetworkConfig, message: expect.stringContaining(EMPTY) }),
    );
  });
  it.each(['', '../bin/sh', '/bin/sh'])('rejects type %j', (t) => {
    expect(() => findInPath(t, [DIR], executable)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidNetworkConfig }));
  });
  it('by default asks the file system: an executable is found, a plain file is not', () => {
    expect(findInPath('sh', ['/nonexistent', '/bin'])).toBe('/bin/sh');
    expect(() => findInPath('passwd', ['/etc'])).toThrow(expect.objectContaining({ code: ErrorCode.InvalidNetworkConfig }));
  });
});

describe('delegate', () => {
  const env = { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1' };
  const call = (confVersion = '1.0.0', stdinData = '{}') => ({ stdinData, env, paths: [EMPTY, DIR], confVersion });

  it('runs ADD with our env and decodes the result into the 1.x shape', async () => {
    const deps = fakeDeps();
    const r = await delegate('ADD', 'echo-ipam', call('1.0.0', '{"x":1}'), deps);
    expect(r).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.9.0.2/24', gateway: '10.9.0.1' }], dns: { domain: 'ctr1', options: ['ADD'] } });
    expect(deps.calls.map((c) => [c.file, c.opts?.input])).toEqual([[`${DIR}/echo-ipam`, '{"x":1}']]);
  });

  it('sets CNI_COMMAND to the delegated verb and returns nothing for DEL', async () => {
    const deps = fakeDeps();
    expect(await delegate('DEL', 'echo-ipam', call(), deps)).toBeUndefined();
    expect(deps.calls[0]?.opts?.env?.CNI_COMMAND).toBe('DEL');
  });

  it('passes the delegate error code and message through', async () => {
    await expect(delegate('ADD', 'failing-ipam', call(), fakeDeps())).rejects.toThrow(
      expect.objectContaining({ code: 100, message: 'no IP addresses available', details: '10.9.0.0/24' }),
    );
  });

  it('turns a crash without error JSON into 999 with its stderr', async () => {
    await expect(delegate('ADD', 'crashing-ipam', call(), fakeDeps())).rejects.toThrow(
      expect.objectContaining({ code: 999, message: expect.stringContaining('panic: oops') }),
    );
  });

  it('reports an undecodable result with code 6', async () => {
    await expect(delegate('ADD', 'garbage-ipam', call(), fakeDeps())).rejects.toThrow(expect.objectContaining({ code: ErrorCode.DecodingFailure }));
  });

  it('reports a plugin missing from CNI_PATH without running anything', async () => {
    const deps = fakeDeps();
    await expect(delegate('ADD', 'missing', call(), deps)).rejects.toThrow(expect.objectContaining({ code: ErrorCode.InvalidNetworkConfig }));
    expect(deps.calls).toEqual([]);
  });

  it('reads a result without cniVersion in the config version, as libcni does', async () => {
    // A 0.2.0 config: the bare result is in 0.2.0's shape (ip4/ip6), not read as 1.1.0 (which would find no ips).
    const v02 = await delegate('ADD', 'bare-ipam', call('0.2.0', '{"shape":"v02"}'), fakeDeps());
    expect(v02).toEqual({
      cniVersion: '1.1.0',
      ips: [{ address: '10.9.0.7/24', gateway: '10.9.0.1' }, { address: 'fd09::7/64' }],
      routes: [{ dst: '0.0.0.0/0' }],
    });
    // A 1.0.0 config: the same plugin's 1.x shape, route extras kept.
    const v1 = await delegate('ADD', 'bare-ipam', call('1.0.0', '{"shape":"v1"}'), fakeDeps());
    expect(v1).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.9.0.7/24', gateway: '10.9.0.1' }], routes: [{ dst: '0.0.0.0/0', mtu: 1400 }] });
    // A 0.2.0-shaped result read as 1.1.0 (the old behaviour) would have had no addresses at all.
    const asV1 = await delegate('ADD', 'bare-ipam', call('1.1.0', '{"shape":"v02"}'), fakeDeps());
    expect(asV1?.ips).toBeUndefined();
  });
});
