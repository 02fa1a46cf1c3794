import { runMain } from '../../lib/cni/run-main.js';
import { createBridgePlugin } from './bridge.js';

export function main(): Promise<number> {
  return runMain(createBridgePlugin(), { name: 'podnet-bridge', about: 'podnet bridge plugin' });
}
