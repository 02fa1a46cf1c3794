/** The CNI spec's well-known error codes (SPEC.md "Error"), plus podnet's plugin-specific ones (100+). */
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironmentVariables: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  InvalidNetns: 8,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  Internal: 999,
  /** podnet: no free address left in a range set (host-local). */
  AddressesExhausted: 100,
  /** podnet: a requested address is taken or outside every range set (host-local). */
  AddressUnavailable: 101,
  /** podnet: the (container, ifname) attachment already exists (host-local reservation, bridge ADD twice). */
  DuplicateAttachment: 102,
  /** podnet: kernel state does not match what ADD made (bridge CHECK). */
  CheckFailed: 110,
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The one error type every podnet plugin throws; dispatch prints it as the spec's error JSON. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, msg: string, details = '', options?: { cause?: unknown }) {
    super(msg, options);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return this.details
      ? { cniVersion, code: this.code, msg: this.message, details: this.details }
      : { cniVersion, code: this.code, msg: this.message };
  }
}

export const isCniError = (e: unknown): e is CniError => e instanceof CniError;

/** The message of any thrown value, for wrapping: `failed to <verb> <object>: ${causeText(e)}`. */
export function causeText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Wrap an unknown failure as a CniError of `code` unless it already is one. */
export function wrapError(e: unknown, code: number, msg: string): CniError {
  if (isCniError(e)) return e;
  return new CniError(code, `${msg}: ${causeText(e)}`, '', { cause: e });
}
