// PLACEHOLDER — replaced by the bridge work (issue 3).
import type { PluginFuncs } from '../cni/dispatch.js';
import { CniError, ErrorCode } from '../cni/errors.js';

const notYet = async (): Promise<never> => {
  throw new CniError(ErrorCode.Internal, 'podnet-bridge is not implemented yet');
};

export function createBridgePlugin(): PluginFuncs {
  return { add: notYet, del: notYet, check: notYet, gc: notYet, status: notYet };
}
