import { describe, expect, it } from 'vitest';
import { SUPPORTED_VERSIONS } from '../../../lib/cni/version.js';
import { multicall } from '../../../plugins/multicall.js';
import { PLUGIN_NAMES } from '../../../plugins/registry.js';

function io(env: Record<string, string> = { CNI_COMMAND: 'VERSION' }) {
  const out: string[] = [];
  return {
    out,
    io: {
      env,
      readStdin: () => Buffer.from('{}'),
      stdout: (t: string) => void out.push(t),
      stderr: () => {},
    },
  };
}

describe('the multi-call front end', () => {
  it.each(PLUGIN_NAMES)('runs %s by the name it is called as, or by its first argument', async (name) => {
    for (const [argv0, argv] of [[`/opt/cni/bin/${name}`, []], ['/opt/cni/bin/podnet', [name]]] as const) {
      const o = io();
      expect(await multicall(argv0, argv, o.io)).toBe(0);
      expect(JSON.parse(o.out.join(''))).toEqual({ cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] });
    }
  });

  it.each([
    ['/opt/cni/bin/podnet-nope', []],
    ['/opt/cni/bin/podnet', []],
    ['/opt/cni/bin/podnet', ['bridge']],
  ] as const)('answers %s %j with the spec’s error JSON on stdout and a non-zero exit', async (argv0, argv) => {
    const o = io();
    expect(await multicall(argv0, argv, o.io)).not.toBe(0);
    const err = JSON.parse(o.out.join('')) as { cniVersion: string; code: number; msg: string };
    expect(err).toEqual({ cniVersion: '1.1.0', code: 999, msg: expect.stringContaining(`unknown plugin name "${argv0.split('/').at(-1)}"`) });
    for (const name of PLUGIN_NAMES) expect(err.msg).toContain(name);
  });
});
