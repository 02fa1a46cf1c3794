import { CniError, ErrorCode } from './errors.js';

/** Every spec version podnet speaks, oldest first. */
export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';
/** What a config without `cniVersion` means (SPEC.md: "0.1.0 if absent"). */
export const DEFAULT_CONFIG_VERSION = '0.1.0';

const SEMVER = /^(\d+)\.(\d+)\.(\d+)$/;

/** Compare two x.y.z versions: negative, zero or positive. Throws code 1 on malformed input. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export const versionAtLeast = (v: string, min: string): boolean => compareVersions(v, min) >= 0;

function parseVersion(v: string): number[] {
  const m = SEMVER.exec(v);
  if (!m) throw new CniError(ErrorCode.IncompatibleVersion, `invalid version "${v}": must be of the form x.y.z`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

export function isSupportedVersion(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Fail with code 1 unless podnet speaks `v`. */
export function assertSupportedVersion(v: string): void {
  parseVersion(v);
  if (!isSupportedVersion(v)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `incompatible CNI versions: config is "${v}", plugin supports [${SUPPORTED_VERSIONS.join(' ')}]`,
    );
  }
}
