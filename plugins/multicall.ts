import { basename } from 'node:path';
import { dispatch, type PluginIo } from '../lib/cni/dispatch.js';
import { CniError, ErrorCode } from '../lib/cni/errors.js';
import { CURRENT_VERSION } from '../lib/cni/version.js';
import { PLUGIN_NAMES, PLUGINS, isPluginName } from './registry.js';

/**
 * The multi-call executable: one binary answering to each plugin's name (busybox-style), so an
 * install is one file plus links; `podnet <plugin>` works too. A name it does not know is a
 * failure like any other: the spec's error JSON on stdout.
 */
export async function multicall(argv0: string, argv: readonly string[], io: PluginIo): Promise<number> {
  let name = basename(argv0);
  if (!isPluginName(name) && argv[0] !== undefined && isPluginName(argv[0])) name = argv[0];
  if (!isPluginName(name)) {
    const e = new CniError(
      ErrorCode.Internal,
      `unknown plugin name "${name}": run as one of ${PLUGIN_NAMES.join(', ')} (a link to this file), or as "podnet <plugin>"`,
    );
    io.stdout(`${JSON.stringify(e.toJSON(CURRENT_VERSION), null, 2)}\n`);
    return 1;
  }
  return dispatch(await PLUGINS[name].load(), { name }, io);
}
