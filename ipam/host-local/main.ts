import { runMain } from '../../lib/cni/run-main.js';
import { createHostLocalPlugin } from './host-local.js';
import { testHookDeps } from './test-hooks.js';

export function main(): Promise<number> {
  return runMain(createHostLocalPlugin(testHookDeps()), { name: 'podnet-host-local', about: 'podnet host-local IPAM' });
}
