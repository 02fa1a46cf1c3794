import { ifNameProblem } from '../linux/values.js';
import { CniError, ErrorCode } from './errors.js';

/** SPEC.md: container ID and network name must match this; both end up in paths and keys. */
const ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function validateContainerId(id: string): void {
  if (!id) throw new CniError(ErrorCode.UnknownContainer, 'missing containerID');
  if (!ID_PATTERN.test(id)) {
    throw new CniError(ErrorCode.InvalidEnvironmentVariables, `invalid characters in containerID "${id}"`, 'CNI_CONTAINERID');
  }
}

/** CNI_IFNAME: an interface name by the kernel's rules, in bytes (lib/linux/values.ts). */
export function validateIfName(name: string): void {
  const why = ifNameProblem(name);
  if (why) throw new CniError(ErrorCode.InvalidEnvironmentVariables, `invalid interface name "${name}": ${why}`, 'CNI_IFNAME');
}

export function validateNetworkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name === '') {
    throw new CniError(ErrorCode.InvalidNetworkConfig, 'missing network name');
  }
  if (!ID_PATTERN.test(name)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `invalid characters in network name "${name}": must match ${ID_PATTERN.source}`,
    );
  }
}
