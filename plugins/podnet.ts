import { CniError, ErrorCode, causeText } from '../lib/cni/errors.js';
import { processIo } from '../lib/cni/run-main.js';
import { CURRENT_VERSION } from '../lib/cni/version.js';
import { multicall } from './multicall.js';

/** The entry point of the multi-call executable (multicall.ts chooses the plugin, registry.ts lists them). */
const io = processIo();
multicall(process.argv0 || process.argv[0] || '', process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // Only a plugin that fails to load gets here (dispatch reports everything else): still JSON.
    io.stdout(`${JSON.stringify(new CniError(ErrorCode.Internal, causeText(e)).toJSON(CURRENT_VERSION), null, 2)}\n`);
    process.exitCode = 1;
  },
);
