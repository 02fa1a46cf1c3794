import { appendFileSync, writeSync } from 'node:fs';

/**
 * A plugin's log. Never stdout (that carries only the result or error): stderr by default, or
 * the file a network config names with `"logFile"`. Level from `"logLevel"`
 * (error | warn | info | debug, default warn). One JSON object per line.
 */
export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const;
type Level = keyof typeof LEVELS;

export interface LogOptions {
  level?: string | undefined;
  file?: string | undefined;
  /** Fields stamped on every line (plugin, command, containerID). */
  base?: Record<string, unknown>;
  /** Where lines go when no file is named; defaults to fd 2. */
  write?: (line: string) => void;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const max = LEVELS[(opts.level as Level) in LEVELS ? (opts.level as Level) : 'warn'];
  const sink =
    opts.write ??
    (opts.file
      ? (line: string) => appendFileSync(opts.file as string, line)
      : (line: string) => {
          writeSync(2, line);
        });
  const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[level] > max) return;
    try {
      sink(`${JSON.stringify({ ts: new Date().toISOString(), level, ...opts.base, msg, ...fields })}\n`);
    } catch {
      // A log that cannot be written must never fail the plugin.
    }
  };
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') };
}

export const silentLogger: Logger = { error() {}, warn() {}, info() {}, debug() {} };
