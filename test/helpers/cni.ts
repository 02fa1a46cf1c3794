import { execa } from 'execa';
import type { Netns } from './netns.js';

export interface Invocation {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION' | string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  /** CNI_PATH; defaults to the directory of the executable. */
  path?: string;
  args?: string;
  /** Extra or overriding env; a value of undefined removes the variable. */
  env?: Record<string, string | undefined>;
  /** Run inside this namespace (the test's "node", or its name), never the root one. */
  node?: Netns | string;
  timeout?: number;
}

export interface PluginRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout decoded as JSON when it is JSON. */
  json: Record<string, unknown> | undefined;
}

/** Run a CNI plugin executable exactly as a runtime does: env + config on stdin. */
export async function runPlugin(file: string, inv: Invocation, config: unknown): Promise<PluginRun> {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    CNI_COMMAND: inv.command,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: inv.netns,
    CNI_IFNAME: inv.ifName,
    CNI_PATH: inv.path ?? file.slice(0, file.lastIndexOf('/')),
    CNI_ARGS: inv.args,
    ...inv.env,
  };
  const clean = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  const input = typeof config === 'string' ? config : JSON.stringify(config);
  const node = typeof inv.node === 'string' ? inv.node : inv.node?.name;
  const cmd = node ? (['ip', ['netns', 'exec', node, file]] as const) : ([file, []] as const);
  const r = await execa(cmd[0], [...cmd[1]], { input, env: clean, extendEnv: false, reject: false, timeout: inv.timeout ?? 60_000 });
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}
