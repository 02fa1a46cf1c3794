import { runMain } from '../../lib/cni/run-main.js';
import { createHostLocalPlugin } from './host-local.js';

export function main(): Promise<number> {
  return runMain(createHostLocalPlugin(), { name: 'podnet-host-local', about: 'podnet host-local IPAM' });
}
