import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { run } from '../linux/exec.js';
import type { Env, Verb } from './dispatch.js';
import { CniError, ErrorCode } from './errors.js';
import { parseResult } from './result.js';
import type { Result } from './types.js';

/** A plugin that is not in CNI_PATH: code 7 for ADD/DEL/CHECK; STATUS reports it as code 50. */
export class PluginNotFoundError extends CniError {
  constructor(type: string, paths: readonly string[]) {
    super(ErrorCode.InvalidNetworkConfig, `failed to find plugin "${type}" in path [${paths.join(' ')}]`);
    this.name = 'PluginNotFoundError';
  }
}

/** Find an executable plugin named `type` in the CNI_PATH directories, as libcni does. */
export function findInPath(type: string, paths: readonly string[]): string {
  if (!type || type.includes('/')) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid plugin type "${type}"`);
  }
  for (const dir of paths) {
    const candidate = join(dir, type);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new PluginNotFoundError(type, paths);
}

/**
 * Run another plugin (an IPAM, usually) with the same contract: our env with CNI_COMMAND set to
 * `verb`, `stdinData` on its stdin. Its error JSON comes back as a CniError with its own code;
 * an ADD result comes back decoded into the 1.x shape.
 */
export async function delegate(
  verb: Exclude<Verb, 'VERSION'>,
  type: string,
  stdinData: Buffer | string,
  env: Env,
  paths: readonly string[],
): Promise<Result | undefined> {
  const file = findInPath(type, paths);
  const r = await run(file, [], { input: stdinData, env: { ...env, CNI_COMMAND: verb } });
  if (r.code !== 0) throw decodeDelegateError(type, r.stdout, r.stderr, r.code);
  if (verb !== 'ADD') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(r.stdout);
  } catch {
    throw new CniError(ErrorCode.DecodingFailure, `failed to decode result of plugin "${type}": ${r.stdout.slice(0, 200)}`);
  }
  return parseResult(raw, '1.1.0');
}

function decodeDelegateError(type: string, stdout: string, stderr: string, code: number): CniError {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === 'number' && typeof e.msg === 'string') {
      return new CniError(e.code, e.msg, typeof e.details === 'string' ? e.details : '');
    }
  } catch {
    // not an error JSON; fall through
  }
  const why = stderr.trim() || stdout.trim() || `exit code ${code}`;
  return new CniError(ErrorCode.Internal, `plugin "${type}" failed: ${why.slice(0, 500)}`);
}
