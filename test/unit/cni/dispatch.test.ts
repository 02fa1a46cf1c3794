import { describe, expect, it } from 'vitest';
import { dispatch, type CmdArgs, type GcArgs, type PluginFuncs } from '../../../lib/cni/dispatch.js';
import { CniError, ErrorCode } from '../../../lib/cni/errors.js';
import type { Result } from '../../../lib/cni/types.js';
import { ALL_VERSIONS } from '../../helpers/env.js';

/** A plugin that records what it was called with. */
function recordingPlugin(result: Result = { cniVersion: '1.1.0', ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }] }) {
  const calls: { verb: string; args: CmdArgs | GcArgs }[] = [];
  const funcs: PluginFuncs = {
    add: async (a) => (calls.push({ verb: 'ADD', args: a }), result),
    del: async (a) => void calls.push({ verb: 'DEL', args: a }),
    check: async (a) => void calls.push({ verb: 'CHECK', args: a }),
    gc: async (a) => void calls.push({ verb: 'GC', args: a }),
    status: async (a) => void calls.push({ verb: 'STATUS', args: a }),
  };
  return { funcs, calls };
}

const baseEnv = {
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/var/run/netns/x',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
};

async function invoke(funcs: PluginFuncs, env: Record<string, string | undefined>, stdin: string | object) {
  let out = '';
  let stdinReads = 0;
  const code = await dispatch(funcs, { name: 'test' }, {
    env,
    readStdin: () => {
      stdinReads += 1;
      return Buffer.from(typeof stdin === 'string' ? stdin : JSON.stringify(stdin));
    },
    stdout: (t) => {
      out += t;
    },
    stderr: () => {},
  });
  return { code, out, json: out ? (JSON.parse(out) as Record<string, unknown>) : undefined, stdinReads };
}

describe('dispatch', () => {
  it('answers VERSION without reading stdin', async () => {
    const { funcs, calls } = recordingPlugin();
    const r = await invoke(funcs, { CNI_COMMAND: 'VERSION' }, 'not json');
    expect(r.code).toBe(0);
    expect(r.stdinReads).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: [...ALL_VERSIONS] });
    expect(calls).toHaveLength(0);
  });

  it.each([
    ['missing CNI_COMMAND', {}, ErrorCode.InvalidEnvironmentVariables, /CNI_COMMAND/],
    ['unknown CNI_COMMAND', { CNI_COMMAND: 'FROB' }, ErrorCode.InvalidEnvironmentVariables, /FROB/],
    ['ADD without CNI_NETNS', { ...baseEnv, CNI_COMMAND: 'ADD', CNI_NETNS: undefined }, ErrorCode.InvalidEnvironmentVariables, /CNI_NETNS/],
    ['ADD without CNI_PATH and CNI_IFNAME', { ...baseEnv, CNI_COMMAND: 'ADD', CNI_PATH: undefined, CNI_IFNAME: '' }, ErrorCode.InvalidEnvironmentVariables, /CNI_IFNAME CNI_PATH/],
    ['DEL without CNI_CONTAINERID', { ...baseEnv, CNI_COMMAND: 'DEL', CNI_CONTAINERID: undefined }, ErrorCode.InvalidEnvironmentVariables, /CNI_CONTAINERID/],
    ['bad container ID', { ...baseEnv, CNI_COMMAND: 'ADD', CNI_CONTAINERID: '../etc' }, ErrorCode.InvalidEnvironmentVariables, /containerID/],
    ['ifname too long', { ...baseEnv, CNI_COMMAND: 'ADD', CNI_IFNAME: 'a234567890123456' }, ErrorCode.InvalidEnvironmentVariables, /15/],
    ['ifname with slash', { ...baseEnv, CNI_COMMAND: 'DEL', CNI_IFNAME: 'a/b' }, ErrorCode.InvalidEnvironmentVariables, /interface name/],
    ['ifname ..', { ...baseEnv, CNI_COMMAND: 'DEL', CNI_IFNAME: '..' }, ErrorCode.InvalidEnvironmentVariables, /interface name/],
  ])('rejects %s', async (_, env, code, msg) => {
    const { funcs, calls } = recordingPlugin();
    const r = await invoke(funcs, env, { cniVersion: '1.0.0', name: 'net', type: 't' });
    expect(r.code).toBe(1);
    expect(r.json?.code).toBe(code);
    expect(r.json?.msg).toMatch(msg);
    expect(calls).toHaveLength(0);
  });

  it.each([
    ['invalid JSON', '{"cniVersion":', ErrorCode.DecodingFailure],
    ['a JSON array', '[]', ErrorCode.DecodingFailure],
    ['empty stdin', '', ErrorCode.DecodingFailure],
    ['unknown cniVersion', { cniVersion: '0.5.0', name: 'n', type: 't' }, ErrorCode.IncompatibleVersion],
    ['malformed cniVersion', { cniVersion: 'one', name: 'n', type: 't' }, ErrorCode.IncompatibleVersion],
    ['missing name', { cniVersion: '1.0.0', type: 't' }, ErrorCode.InvalidNetworkConfig],
    ['name with slash', { cniVersion: '1.0.0', name: 'a/b', type: 't' }, ErrorCode.InvalidNetworkConfig],
    ['name ..', { cniVersion: '1.0.0', name: '..', type: 't' }, ErrorCode.InvalidNetworkConfig],
    ['malformed prevResult', { cniVersion: '1.0.0', name: 'n', type: 't', prevResult: { ips: [{ gateway: 'x' }] } }, ErrorCode.DecodingFailure],
  ])('rejects a config with %s', async (_, stdin, code) => {
    const { funcs, calls } = recordingPlugin();
    const r = await invoke(funcs, { ...baseEnv, CNI_COMMAND: 'ADD' }, stdin);
    expect(r.code).toBe(1);
    expect(r.json?.code).toBe(code);
    expect(calls).toHaveLength(0);
  });

  it('treats a config without cniVersion as 0.1.0', async () => {
    const { funcs } = recordingPlugin();
    const r = await invoke(funcs, { ...baseEnv, CNI_COMMAND: 'ADD' }, { name: 'n', type: 't' });
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '0.1.0', ip4: { ip: '10.1.0.5/24', gateway: '10.1.0.1' } });
  });

  describe.each(ALL_VERSIONS)('cniVersion %s', (version) => {
    const conf = { cniVersion: version, name: 'net', type: 't' };
    const allows = (min: string) => version.localeCompare(min, undefined, { numeric: true }) >= 0;

    it('ADD prints the result in the config version and passes decoded args', async () => {
      const { funcs, calls } = recordingPlugin();
      const r = await invoke(funcs, { ...baseEnv, CNI_COMMAND: 'ADD', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p' }, conf);
      expect(r.code).toBe(0);
      expect(r.json?.cniVersion).toBe(version);
      const a = calls[0]!.args;
      expect(a.containerId).toBe('c0ffee');
      expect(a.path).toEqual(['/opt/cni/bin', '/usr/lib/cni']);
      expect(a.args).toBe('IgnoreUnknown=1;K8S_POD_NAME=p');
      expect(a.netConf.name).toBe('net');
    });

    it('DEL prints nothing', async () => {
      const { funcs, calls } = recordingPlugin();
      const r = await invoke(funcs, { ...baseEnv, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, conf);
      expect(r).toMatchObject({ code: 0, out: '' });
      expect(calls.map((c) => c.verb)).toEqual(['DEL']);
    });

    it.each([
      ['CHECK', '0.4.0'],
      ['GC', '1.1.0'],
      ['STATUS', '1.1.0'],
    ])('%s is gated at %s', async (verb, min) => {
      const { funcs, calls } = recordingPlugin();
      const r = await invoke(funcs, { ...baseEnv, CNI_COMMAND: verb }, conf);
      if (allows(min)) {
        expect(r).toMatchObject({ code: 0, out: '' });
        expect(calls.map((c) => c.verb)).toEqual([verb]);
      } else {
        expect(r.code).toBe(1);
        expect(r.json).toMatchObject({ cniVersion: version, code: ErrorCode.IncompatibleVersion });
        expect(calls).toHaveLength(0);
      }
    });

    it('prints a thrown CniError with its code, and anything else as 999', async () => {
      const failing: PluginFuncs = {
        ...recordingPlugin().funcs,
        add: async () => {
          throw new CniError(ErrorCode.TryAgainLater, 'busy', 'store locked');
        },
        del: async () => {
          throw new TypeError('boom');
        },
      };
      const add = await invoke(failing, { ...baseEnv, CNI_COMMAND: 'ADD' }, conf);
      expect(add.code).toBe(1);
      expect(add.json).toEqual({ cniVersion: version, code: 11, msg: 'busy', details: 'store locked' });
      const del = await invoke(failing, { ...baseEnv, CNI_COMMAND: 'DEL' }, conf);
      expect(del.json).toEqual({ cniVersion: version, code: 999, msg: 'boom' });
    });

    it('decodes a prevResult given in this version', async () => {
      const { funcs, calls } = recordingPlugin();
      const prev =
        version < '0.3.0'
          ? { cniVersion: version, ip4: { ip: '10.1.0.5/24', gateway: '10.1.0.1' } }
          : { cniVersion: version, ips: [{ ...(version < '1.0.0' ? { version: '4' } : {}), address: '10.1.0.5/24', gateway: '10.1.0.1' }] };
      const r = await invoke(funcs, { ...baseEnv, CNI_COMMAND: 'DEL' }, { ...conf, prevResult: prev });
      expect(r.code).toBe(0);
      expect(calls[0]!.args.prevResult?.ips).toEqual([{ address: '10.1.0.5/24', gateway: '10.1.0.1' }]);
    });
  });

  describe('GC attachments', () => {
    const conf = { cniVersion: '1.1.0', name: 'net', type: 't' };
    it.each([
      ['cni.dev/valid-attachments', [{ containerID: 'a', ifname: 'eth0' }]],
      ['cni.dev/attachments', [{ containerID: 'b', ifname: 'net1' }]],
    ])('reads %s', async (key, list) => {
      const { funcs, calls } = recordingPlugin();
      const r = await invoke(funcs, { CNI_COMMAND: 'GC', CNI_PATH: '/x' }, { ...conf, [key]: list });
      expect(r.code).toBe(0);
      expect((calls[0]!.args as GcArgs).validAttachments).toEqual(list);
    });

    it('passes undefined when no key is present (release nothing)', async () => {
      const { funcs, calls } = recordingPlugin();
      await invoke(funcs, { CNI_COMMAND: 'GC', CNI_PATH: '/x' }, conf);
      expect((calls[0]!.args as GcArgs).validAttachments).toBeUndefined();
    });

    it('rejects malformed attachments with code 6', async () => {
      const { funcs, calls } = recordingPlugin();
      const r = await invoke(funcs, { CNI_COMMAND: 'GC', CNI_PATH: '/x' }, { ...conf, 'cni.dev/valid-attachments': [{ containerID: 1 }] });
      expect(r.json?.code).toBe(ErrorCode.DecodingFailure);
      expect(calls).toHaveLength(0);
    });
  });
});
