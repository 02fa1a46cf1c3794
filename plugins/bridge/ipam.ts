import { type DelegateDeps, type FindInPath, delegate, findInPath } from '../../lib/cni/delegate.js';
import type { CmdArgs, PluginFuncs, Verb } from '../../lib/cni/dispatch.js';
import { pluginRunner } from '../../lib/linux/exec.js';
import { IN_PROCESS_IPAM } from '../registry.js';
import { testForceIpamExec } from './test-hooks.js';

/**
 * The bridge's IPAM, as one more set of CNI handlers: any CNI IPAM plugin, found through
 * CNI_PATH and executed (upstream's `ipam.ExecAdd`…), except podnet's own IPAM plugins
 * (plugins/registry.ts), which run in this process when their executable is in CNI_PATH — same
 * code, same config, same on-disk store, minus one Node start-up. Their result is used as the
 * handler returns it: an exec'd IPAM's result passes through the config version's JSON shape,
 * which before 1.0.0 cannot carry route mtu/advmss/priority/table/scope, and before 0.3.0 only
 * one address per family. Tests compare both paths through `forceExec` (the test build reads it
 * from PODNET_TEST_IPAM_EXEC: plugins/bridge/test-hooks.ts; the shipped build never execs it).
 */
export type Ipam = PluginFuncs;

export interface IpamDeps {
  /** Where a plugin is in CNI_PATH (lib/cni/delegate.ts `findInPath`); both paths ask it. */
  findInPath: FindInPath;
  /** Runs an exec'd IPAM (lib/linux/exec.ts). */
  runner: DelegateDeps['runner'];
  /** IPAM types that may run in-process: type → loader of its handlers. */
  inProcess: Readonly<Record<string, () => Promise<PluginFuncs>>>;
  /** Exec this invocation's IPAM even when it could run in-process (a test's comparison). */
  forceExec: (args: CmdArgs) => boolean;
}

export const defaultIpamDeps = (): IpamDeps => ({
  findInPath: (type, paths) => findInPath(type, paths),
  runner: pluginRunner,
  inProcess: IN_PROCESS_IPAM,
  forceExec: testForceIpamExec,
});

export function createIpam(type: string, deps: IpamDeps): Ipam {
  const delegateDeps: DelegateDeps = { find: deps.findInPath, runner: deps.runner };
  /** The in-process handlers, or undefined when this IPAM is exec'd. */
  const local = async (args: CmdArgs): Promise<PluginFuncs | undefined> => {
    const load = deps.inProcess[type];
    if (!load || deps.forceExec(args)) return undefined;
    // Only when the runtime could have exec'd it: same lookup, same error when it is missing.
    deps.findInPath(type, args.path);
    return load();
  };
  const exec = (verb: Exclude<Verb, 'VERSION'>, args: CmdArgs) =>
    delegate(verb, type, { stdinData: args.stdinData, env: args.env, paths: args.path, confVersion: args.netConf.cniVersion }, delegateDeps);

  /** A verb without a result: the same call either way. */
  async function forward<A extends CmdArgs>(verb: 'DEL' | 'CHECK' | 'GC' | 'STATUS', args: A, call: (f: PluginFuncs, a: A) => Promise<void>): Promise<void> {
    const funcs = await local(args);
    if (funcs) await call(funcs, { ...args, command: verb });
    else await exec(verb, args);
  }

  return {
    async add(args) {
      const funcs = await local(args);
      if (funcs) return funcs.add({ ...args, command: 'ADD' });
      const r = await exec('ADD', args);
      if (!r) throw new Error(`IPAM plugin "${type}" returned no result`);
      return r;
    },
    del: (args) => forward('DEL', args, (f, a) => f.del(a)),
    check: (args) => forward('CHECK', args, (f, a) => f.check(a)),
    gc: (args) => forward('GC', args, (f, a) => f.gc(a)),
    status: (args) => forward('STATUS', args, (f, a) => f.status(a)),
  };
}
