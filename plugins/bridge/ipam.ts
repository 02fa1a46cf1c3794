import { delegate, findInPath } from '../../lib/cni/delegate.js';
import type { CmdArgs, GcArgs, PluginFuncs, Verb } from '../../lib/cni/dispatch.js';
import { formatResult, parseResult } from '../../lib/cni/result.js';
import type { Result } from '../../lib/cni/types.js';

/**
 * The bridge's IPAM: any CNI IPAM plugin, found through CNI_PATH and executed (upstream's
 * `ipam.ExecAdd`…), except podnet's own host-local, which runs in this process when its
 * executable is in CNI_PATH — same code, same config, same on-disk store, minus ~25 ms of
 * process start. `PODNET_IPAM_EXEC=1` forces the exec path (used to compare both).
 */
export interface Ipam {
  add(args: CmdArgs): Promise<Result>;
  del(args: CmdArgs): Promise<void>;
  check(args: CmdArgs): Promise<void>;
  gc(args: GcArgs): Promise<void>;
  status(args: CmdArgs): Promise<void>;
}

export type DelegateFn = typeof delegate;

export interface IpamDeps {
  /** Exec an IPAM plugin (lib/cni/delegate.ts `delegate`). */
  exec: DelegateFn;
  /** IPAM types that may run in-process: type → loader of its handlers. */
  inProcess: Record<string, () => Promise<PluginFuncs>>;
}

export const defaultIpamDeps = (): IpamDeps => ({
  exec: delegate,
  inProcess: {
    // Loaded only when used, so an exec'd IPAM never pays for host-local's imports.
    'podnet-host-local': async () => (await import('../../ipam/host-local/host-local.js')).createHostLocalPlugin(),
  },
});

export function createIpam(type: string, deps: IpamDeps): Ipam {
  const local = async (args: CmdArgs): Promise<PluginFuncs | undefined> => {
    const load = deps.inProcess[type];
    if (!load || args.env.PODNET_IPAM_EXEC === '1') return undefined;
    // Only when the runtime could have exec'd it: same lookup, same error when it is missing.
    findInPath(type, args.path);
    return load();
  };
  const execVerb = (verb: Exclude<Verb, 'VERSION'>, args: CmdArgs): Promise<Result | undefined> =>
    deps.exec(verb, type, args.stdinData, args.env, args.path);

  /** A verb without a result: in-process when podnet's host-local is the IPAM, else exec'd. */
  async function forward<A extends CmdArgs>(verb: 'DEL' | 'CHECK' | 'GC' | 'STATUS', args: A, call: (f: PluginFuncs, a: A) => Promise<void>): Promise<void> {
    const funcs = await local(args);
    if (funcs) await call(funcs, { ...args, command: verb });
    else await execVerb(verb, args);
  }

  return {
    async add(args) {
      const funcs = await local(args);
      if (!funcs) {
        const r = await execVerb('ADD', args);
        if (!r) throw new Error(`IPAM plugin "${type}" returned no result`);
        return r;
      }
      // Through the same encode/decode as an exec'd plugin's stdout, so both paths agree exactly.
      const version = args.netConf.cniVersion;
      return parseResult(formatResult(await funcs.add({ ...args, command: 'ADD' }), version), version);
    },
    del: (args) => forward('DEL', args, (f, a) => f.del(a)),
    check: (args) => forward('CHECK', args, (f, a) => f.check(a)),
    gc: (args) => forward('GC', args, (f, a) => f.gc(a)),
    status: (args) => forward('STATUS', args, (f, a) => f.status(a)),
  };
}
