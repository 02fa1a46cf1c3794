import type { CmdArgs } from '../../lib/cni/dispatch.js';

/**
 * Test hooks of the bridge, compiled in only where a test asks for them — the same switch as
 * host-local's (ipam/host-local/test-hooks.ts): scripts/build.mjs defines PODNET_TEST_HOOKS as
 * `true` for dist/test/bin and `false` for the shipped dist/bin, where esbuild then drops this
 * code. Source runs (unit tests) have no define: hooks off, as shipped.
 *
 *   PODNET_TEST_IPAM_EXEC=1   exec podnet's own IPAM even where it could run in this process
 *                             (the integration test and the bench compare both paths)
 */
declare const PODNET_TEST_HOOKS: boolean | undefined;

/** Does this invocation ask for the exec'd IPAM? Never in a build without the hooks (the define
 * read inline, as in host-local's test-hooks.ts, so esbuild folds it while parsing). */
export const testForceIpamExec = (args: CmdArgs): boolean =>
  typeof PODNET_TEST_HOOKS !== 'undefined' && PODNET_TEST_HOOKS && args.env.PODNET_TEST_IPAM_EXEC === '1';
