import type { CmdArgs } from '../../lib/cni/dispatch.js';
import type { HostLocalDeps } from './host-local.js';
import type { DiskStoreOptions, PausePoint } from './store/disk-store.js';

/**
 * Test hooks of the host-local executable, compiled in only where a test asks for them:
 * scripts/build.mjs defines PODNET_TEST_HOOKS as `true` for dist/test/bin (which the
 * concurrency tests run) and `false` for the shipped dist/bin, where esbuild then drops this
 * code and no environment can stall or reconfigure a plugin. Source runs (unit tests) have no
 * define: hooks off, as shipped.
 *
 *   PODNET_TEST_PAUSE=<point>:<ms>     stop at a PausePoint for ms (logs "test pause" first)
 *   PODNET_TEST_LOCK_TIMEOUT_MS=<ms>   give up waiting for the store lock sooner
 *   PODNET_TEST_STORE_INDEX=off        no index: every lookup walks the files (bench: what the
 *                                      index pays)
 */
declare const PODNET_TEST_HOOKS: boolean | undefined;

/** The store options a test asked for in the invocation's env. */
function testDiskOptions(args: CmdArgs): DiskStoreOptions {
  const opts: DiskStoreOptions = {};
  const timeout = Number(args.env.PODNET_TEST_LOCK_TIMEOUT_MS);
  if (Number.isInteger(timeout) && timeout > 0) opts.lockTimeoutMs = timeout;
  if (args.env.PODNET_TEST_STORE_INDEX === 'off') opts.index = false;
  const pause = /^(locked|after-index|after-ip):([0-9]+)$/.exec(args.env.PODNET_TEST_PAUSE ?? '');
  if (pause) {
    const [, at, ms] = pause;
    opts.pause = (point: PausePoint) => {
      if (point !== at) return;
      args.log.warn('test pause', { point, ms: Number(ms) });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(ms));
    };
  }
  return opts;
}

/**
 * The deps the executable's main passes: test options only in a build with the hooks. The define
 * is read here, in the one expression that refers to testDiskOptions, so that esbuild folds it
 * while parsing and drops the function (a flag imported from another module is folded only after
 * tree shaking, which leaves the dead code in the shipped bundle; executables.test.ts checks).
 */
export const testHookDeps = (): HostLocalDeps => (typeof PODNET_TEST_HOOKS !== 'undefined' && PODNET_TEST_HOOKS ? { diskOptions: testDiskOptions } : {});
