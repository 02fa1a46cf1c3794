import type { PluginFuncs } from '../lib/cni/dispatch.js';

/**
 * Every CNI plugin podnet ships, by the name it runs as — its `"type"` in a network config, its
 * folder and its link to the multi-call executable. The one list: the multi-call executable
 * (multicall.ts) dispatches on it, the build makes one link per name, the bridge runs an `ipam`
 * entry in its own process, the tests make their CNI bin dirs from it. Each loader imports its
 * plugin only when called, so a plugin invocation never loads another plugin's code. Data only
 * (type imports aside), so that scripts/build.mjs can read it without bundling.
 */
export const PLUGINS = {
  'podnet-bridge': { kind: 'main', load: async () => (await import('./bridge/bridge.js')).createBridgePlugin() },
  'podnet-host-local': {
    kind: 'ipam',
    load: async () => {
      const [{ createHostLocalPlugin }, { testHookDeps }] = await Promise.all([import('../ipam/host-local/host-local.js'), import('../ipam/host-local/test-hooks.js')]);
      // The hooks exist only in the test build (dist/test/bin); the shipped one compiles them out.
      return createHostLocalPlugin(testHookDeps());
    },
  },
} as const satisfies Record<string, { kind: 'main' | 'ipam'; load: () => Promise<PluginFuncs> }>;

export type PluginName = keyof typeof PLUGINS;
export const PLUGIN_NAMES = Object.keys(PLUGINS) as PluginName[];

export const isPluginName = (name: string): name is PluginName => Object.hasOwn(PLUGINS, name);

/** The IPAM plugins that may run inside the plugin that delegates to them: type → loader. */
export const IN_PROCESS_IPAM: Readonly<Record<string, () => Promise<PluginFuncs>>> = Object.fromEntries(
  Object.entries(PLUGINS)
    .filter(([, p]) => p.kind === 'ipam')
    .map(([name, p]) => [name, p.load]),
);
