import { describe, expect, it } from 'vitest';
import { PluginNotFoundError } from '../../../lib/cni/delegate.js';
import type { CmdArgs, PluginFuncs } from '../../../lib/cni/dispatch.js';
import type { Result } from '../../../lib/cni/types.js';
import type { RunOptions } from '../../../lib/linux/exec.js';
import { type IpamDeps, createIpam, defaultIpamDeps } from '../../../plugins/bridge/ipam.js';
import { PLUGIN_NAMES } from '../../../plugins/registry.js';
import { FAKE_CNI_PATH, cmdArgs } from './fakes.js';

/** IPAM deps over a fake CNI_PATH holding `local-ipam` (in-process) and `other-ipam` (exec'd). */
function deps(stdout: string, forceExec = false) {
  const execs: RunOptions[] = [];
  const handled: string[] = [];
  const result: Result = { cniVersion: '1.1.0', ips: [{ address: '10.3.0.2/24' }], routes: [{ dst: '10.4.0.0/16', gw: '10.3.0.1', mtu: 1400, table: 7 }] };
  const funcs: PluginFuncs = {
    add: async (a) => {
      handled.push(`${a.command} ${a.containerId}`);
      return result;
    },
    del: async (a) => void handled.push(a.command),
    check: async (a) => void handled.push(a.command),
    gc: async (a) => void handled.push(a.command),
    status: async (a) => void handled.push(a.command),
  };
  const d: IpamDeps = {
    findInPath: (type, paths) => {
      if (paths.includes(FAKE_CNI_PATH) && (type === 'local-ipam' || type === 'other-ipam')) return `${FAKE_CNI_PATH}/${type}`;
      throw new PluginNotFoundError(type, paths);
    },
    runner: {
      async run(_file, _args, opts) {
        if (opts) execs.push(opts);
        return { code: 0, stdout, stderr: '' };
      },
    },
    inProcess: { 'local-ipam': async () => funcs },
    forceExec: () => forceExec,
  };
  return { d, execs, handled, result };
}

const args = (cniVersion: string, ipamType: string, over: Partial<CmdArgs> = {}) => cmdArgs({ cniVersion, ipam: { type: ipamType } }, over);

describe('the bridge IPAM seam', () => {
  it('runs podnet’s own IPAM plugins in-process by default (the registry’s list)', () => {
    expect(Object.keys(defaultIpamDeps().inProcess)).toEqual(['podnet-host-local']);
    expect(PLUGIN_NAMES).toContain('podnet-host-local');
  });

  it('exec: stdin unchanged, CNI_COMMAND per verb, a result without cniVersion read in the config version', async () => {
    const { d, execs } = deps('{"ip4":{"ip":"10.3.0.9/24","gateway":"10.3.0.1"}}');
    const a = args('0.2.0', 'other-ipam');
    const r = await createIpam('other-ipam', d).add(a);
    expect(r.ips).toEqual([{ address: '10.3.0.9/24', gateway: '10.3.0.1' }]);
    await createIpam('other-ipam', d).del({ ...a, command: 'DEL' });
    expect(execs.map((o) => [o.env?.CNI_COMMAND, String(o.input)])).toEqual([
      ['ADD', a.stdinData.toString()],
      ['DEL', a.stdinData.toString()],
    ]);
  });

  it('in-process: the handler’s result as it returned it, no JSON round trip (route extras kept at 0.4.0)', async () => {
    const { d, execs, handled, result } = deps('');
    const r = await createIpam('local-ipam', d).add(args('0.4.0', 'local-ipam', { command: 'DEL' }));
    expect(r).toBe(result);
    expect(r.routes?.[0]).toEqual({ dst: '10.4.0.0/16', gw: '10.3.0.1', mtu: 1400, table: 7 });
    // The handler sees the verb it serves, whatever the outer command was.
    expect(handled).toEqual(['ADD ctr1']);
    for (const verb of ['del', 'check', 'gc', 'status'] as const) {
      await createIpam('local-ipam', d)[verb]({ ...args('1.1.0', 'local-ipam'), validAttachments: undefined });
    }
    expect(handled.slice(1)).toEqual(['DEL', 'CHECK', 'GC', 'STATUS']);
    expect(execs).toEqual([]);
  });

  it('in-process only when the runtime could have exec’d it: missing from CNI_PATH is the same error', async () => {
    const { d, handled } = deps('');
    await expect(createIpam('local-ipam', d).add(args('1.0.0', 'local-ipam', { path: ['/elsewhere'] }))).rejects.toBeInstanceOf(PluginNotFoundError);
    expect(handled).toEqual([]);
  });

  it('forceExec execs even podnet’s own IPAM', async () => {
    const { d, execs, handled } = deps('{"cniVersion":"1.0.0","ips":[{"address":"10.3.0.5/24"}]}', true);
    const r = await createIpam('local-ipam', d).add(args('1.0.0', 'local-ipam'));
    expect(r.ips).toEqual([{ address: '10.3.0.5/24' }]);
    expect(handled).toEqual([]);
    expect(execs).toHaveLength(1);
  });

  it('the default deps ignore PODNET_TEST_IPAM_EXEC outside the test build (source runs: hooks off, as shipped)', () => {
    const a = args('1.0.0', 'podnet-host-local', { env: { PODNET_TEST_IPAM_EXEC: '1', PODNET_IPAM_EXEC: '1' } });
    expect(defaultIpamDeps().forceExec(a)).toBe(false);
  });
});
