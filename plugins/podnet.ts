import { basename } from 'node:path';

/**
 * The multi-call executable: one binary, answering to each plugin's name (busybox-style), so an
 * install is one file plus links. Each plugin's module is loaded only when it is the one asked
 * for; `podnet <plugin>` works too.
 */
const PLUGINS: Record<string, () => Promise<{ main(): Promise<number> }>> = {
  'podnet-bridge': () => import('./bridge/main.js'),
  'podnet-host-local': () => import('../ipam/host-local/main.js'),
};

async function start(): Promise<number> {
  let name = basename(process.argv0 || process.argv[0] || '');
  if (!(name in PLUGINS) && process.argv[2] && process.argv[2] in PLUGINS) {
    name = process.argv[2];
  }
  const load = PLUGINS[name];
  if (!load) {
    process.stderr.write(`podnet: run as one of ${Object.keys(PLUGINS).join(', ')} (a link to this file), or as "podnet <plugin>"\n`);
    return 2;
  }
  const plugin = await load();
  return plugin.main();
}

start().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`podnet: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
