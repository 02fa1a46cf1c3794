import { readFileSync, writeSync } from 'node:fs';
import { dispatch, type PluginFuncs, type PluginInfo } from './dispatch.js';

/** The only place a plugin touches `process`: wire dispatch to the real env, stdin and stdout. */
export function runMain(funcs: PluginFuncs, info: PluginInfo): Promise<number> {
  return dispatch(funcs, info, {
    env: process.env,
    readStdin: () => readStdinFully(),
    stdout: (text) => writeAll(1, text),
    stderr: (text) => writeAll(2, text),
  });
}

function readStdinFully(): Buffer {
  try {
    return readFileSync(0);
  } catch (e) {
    // No stdin at all (closed descriptor) decodes as an empty config, which fails with code 6.
    if ((e as NodeJS.ErrnoException).code === 'EBADF') return Buffer.alloc(0);
    throw e;
  }
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}
