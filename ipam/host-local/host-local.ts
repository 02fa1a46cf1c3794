// PLACEHOLDER — replaced by the host-local work (issue 2).
import type { PluginFuncs } from '../../plugins/cni/dispatch.js';
import { CniError, ErrorCode } from '../../plugins/cni/errors.js';

const notYet = async (): Promise<never> => {
  throw new CniError(ErrorCode.Internal, 'podnet-host-local is not implemented yet');
};

export function createHostLocalPlugin(): PluginFuncs {
  return { add: notYet, del: notYet, check: notYet, gc: notYet, status: notYet };
}
