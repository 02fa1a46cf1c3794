import { CniError, ErrorCode, causeText, isCniError } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { formatResult, parseResult } from './result.js';
import type { Attachment, NetConf, Result } from './types.js';
import { validateContainerId, validateIfName, validateNetworkName } from './validate.js';
import {
  CURRENT_VERSION,
  DEFAULT_CONFIG_VERSION,
  SUPPORTED_VERSIONS,
  assertSupportedVersion,
  versionAtLeast,
} from './version.js';

export const VERBS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type Verb = (typeof VERBS)[number];

export type Env = Readonly<Record<string, string | undefined>>;

/** Everything a handler gets: the invocation's env, decoded, and its config. */
export interface CmdArgs {
  command: Exclude<Verb, 'VERSION'>;
  containerId: string;
  netns: string;
  ifName: string;
  /** Raw CNI_ARGS; parse with `parseCniArgs(args, knownKeys)`. */
  args: string;
  /** CNI_PATH split on ':'. */
  path: string[];
  /** The config exactly as received on stdin (delegation passes it on unchanged). */
  stdinData: Buffer;
  netConf: NetConf;
  /** prevResult decoded into the 1.x shape, when the config carries one. */
  prevResult?: Result;
  /** The whole environment, for delegation to another plugin. */
  env: Env;
  log: Logger;
}

export interface GcArgs extends CmdArgs {
  /** `cni.dev/valid-attachments` (or legacy `cni.dev/attachments`); undefined when neither is set. */
  validAttachments: Attachment[] | undefined;
}

export interface PluginFuncs {
  add(args: CmdArgs): Promise<Result>;
  del(args: CmdArgs): Promise<void>;
  check(args: CmdArgs): Promise<void>;
  gc(args: GcArgs): Promise<void>;
  status(args: CmdArgs): Promise<void>;
}

export interface PluginIo {
  env: Env;
  /** Read only when the verb needs a config (never for VERSION). */
  readStdin(): Buffer;
  stdout(text: string): void;
  /** Log destination when the config names no logFile; defaults to stderr. */
  stderr?: (text: string) => void;
}

export interface PluginInfo {
  name: string;
  about?: string;
}

/** Env each verb requires (upstream skel's table). */
const REQUIRED_ENV: Record<Exclude<Verb, 'VERSION'>, string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: ['CNI_PATH'],
};

/** The oldest config version that allows each verb. */
const MIN_VERSION: Partial<Record<Verb, string>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

/**
 * The CNI protocol in one place: decode env and stdin, check versions, call the handler, print
 * the result (converted to the config's cniVersion) or the error JSON, return the exit code.
 * Pure with respect to `io`; only run-main.ts touches `process`.
 */
export async function dispatch(funcs: PluginFuncs, info: PluginInfo, io: PluginIo): Promise<number> {
  let errorVersion = CURRENT_VERSION;
  try {
    const command = io.env.CNI_COMMAND ?? '';
    if (command === 'VERSION') {
      io.stdout(`${JSON.stringify({ cniVersion: CURRENT_VERSION, supportedVersions: SUPPORTED_VERSIONS })}\n`);
      return 0;
    }
    if (!command) {
      throw new CniError(ErrorCode.InvalidEnvironmentVariables, 'required env variables [CNI_COMMAND] missing', 'CNI_COMMAND');
    }
    if (!(VERBS as readonly string[]).includes(command)) {
      throw new CniError(ErrorCode.InvalidEnvironmentVariables, `unknown CNI_COMMAND: ${command}`, 'CNI_COMMAND');
    }
    const verb = command as Exclude<Verb, 'VERSION'>;
    const missing = REQUIRED_ENV[verb].filter((k) => !io.env[k]);
    if (missing.length) {
      throw new CniError(
        ErrorCode.InvalidEnvironmentVariables,
        `required env variables [${missing.join(' ')}] missing`,
        missing.join(','),
      );
    }

    const stdinData = io.readStdin();
    const netConf = decodeConf(stdinData);
    assertSupportedVersion(netConf.cniVersion);
    errorVersion = netConf.cniVersion;
    const min = MIN_VERSION[verb];
    if (min && !versionAtLeast(netConf.cniVersion, min)) {
      throw new CniError(
        ErrorCode.IncompatibleVersion,
        `config version "${netConf.cniVersion}" does not allow ${verb} (needs ${min} or later)`,
      );
    }
    validateNetworkName(netConf.name);

    const containerId = io.env.CNI_CONTAINERID ?? '';
    const ifName = io.env.CNI_IFNAME ?? '';
    if (verb === 'ADD' || verb === 'DEL' || verb === 'CHECK') {
      validateContainerId(containerId);
      validateIfName(ifName);
    }

    const log = createLogger({
      level: typeof netConf.logLevel === 'string' ? netConf.logLevel : undefined,
      file: typeof netConf.logFile === 'string' ? netConf.logFile : undefined,
      base: { plugin: info.name, cmd: verb, ...(containerId ? { containerID: containerId } : {}) },
      ...(io.stderr ? { write: io.stderr } : {}),
    });

    const args: CmdArgs = {
      command: verb,
      containerId,
      netns: io.env.CNI_NETNS ?? '',
      ifName,
      args: io.env.CNI_ARGS ?? '',
      path: (io.env.CNI_PATH ?? '').split(':').filter(Boolean),
      stdinData,
      netConf,
      env: io.env,
      log,
    };
    if (netConf.prevResult !== undefined && netConf.prevResult !== null) {
      args.prevResult = parseResult(netConf.prevResult, netConf.cniVersion);
    }

    switch (verb) {
      case 'ADD': {
        const result = await funcs.add(args);
        io.stdout(`${JSON.stringify(formatResult(result, netConf.cniVersion), null, 2)}\n`);
        return 0;
      }
      case 'DEL':
        await funcs.del(args);
        return 0;
      case 'CHECK':
        await funcs.check(args);
        return 0;
      case 'GC':
        await funcs.gc({ ...args, validAttachments: decodeAttachments(netConf) });
        return 0;
      case 'STATUS':
        await funcs.status(args);
        return 0;
    }
  } catch (e) {
    const err = isCniError(e) ? e : new CniError(ErrorCode.Internal, causeText(e));
    io.stdout(`${JSON.stringify(err.toJSON(errorVersion), null, 2)}\n`);
    return 1;
  }
}

function decodeConf(stdin: Buffer): NetConf {
  let conf: unknown;
  try {
    conf = JSON.parse(stdin.toString('utf8'));
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `failed to decode network config: ${causeText(e)}`);
  }
  if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) {
    throw new CniError(ErrorCode.DecodingFailure, 'failed to decode network config: not a JSON object');
  }
  const c = conf as Record<string, unknown>;
  if (c.cniVersion === undefined || c.cniVersion === '') {
    c.cniVersion = DEFAULT_CONFIG_VERSION;
    c.cniVersionDefaulted = true;
  } else if (typeof c.cniVersion !== 'string') {
    throw new CniError(ErrorCode.DecodingFailure, 'failed to decode network config: cniVersion must be a string');
  }
  return c as NetConf;
}

function decodeAttachments(conf: NetConf): Attachment[] | undefined {
  const key = 'cni.dev/valid-attachments' in conf ? 'cni.dev/valid-attachments' : 'cni.dev/attachments';
  const raw = conf[key];
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) throw new CniError(ErrorCode.DecodingFailure, `failed to decode "${key}": not a list`);
  return raw.map((a, i) => {
    const o = a as Record<string, unknown> | null;
    if (!o || typeof o.containerID !== 'string' || typeof o.ifname !== 'string') {
      throw new CniError(ErrorCode.DecodingFailure, `failed to decode "${key}"[${i}]: need containerID and ifname strings`);
    }
    return { containerID: o.containerID, ifname: o.ifname };
  });
}
