import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';

// scripts/code-cache.cjs makes the code caches the plugin executables carry (scripts/build.mjs);
// scripts/sea-main.cjs trusts V8 to refuse one that does not fit. Both hold here, in this Node.
const CODE_CACHE = join(import.meta.dirname, '..', '..', '..', 'scripts', 'code-cache.cjs');
const dir = mkdtempSync(join(tmpdir(), 'pnt-code-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const source = `(function (exports, require, module, __filename, __dirname) {
  function lazy(n) { return n * 2; }
  function notCalled() { return 'never'; }
  if (process.argv[2] === 'ok') require('node:fs').writeSync(1, String(lazy(21)));
  else process.exitCode = 3;
})`;
const file = join(dir, 'bundle.cjs');
writeFileSync(file, source);
const cacheOf = (mode: string, ...args: string[]) => {
  const out = join(dir, `${mode}-${args.join('-')}.cache`);
  const stdout = execFileSync(process.execPath, [CODE_CACHE, file, out, mode, ...args], { encoding: 'utf8' });
  return { out, stdout };
};

describe('scripts/code-cache.cjs', () => {
  it('a run writes a cache holding the functions it called, bigger than the up-front one; V8 accepts both', () => {
    const cold = cacheOf('cold');
    const run = cacheOf('run', 'ok');
    expect(run.stdout).toBe('42');
    const coldData = readFileSync(cold.out);
    const runData = readFileSync(run.out);
    expect(runData.length).toBeGreaterThan(coldData.length);
    for (const cachedData of [coldData, runData]) expect(new Script(source, { filename: 'podnet.cjs', cachedData }).cachedDataRejected).toBe(false);
  });

  it('a failing run writes no cache', () => {
    const failed = join(dir, 'failed.cache');
    expect(() => execFileSync(process.execPath, [CODE_CACHE, file, failed, 'run', 'fail'])).toThrow();
    expect(() => readFileSync(failed)).toThrow();
  });

  it('V8 rejects a cache made for other source (what sea-main.cjs reports)', () => {
    // V8 tells sources apart by length (and its flags), not content: the build makes each cache
    // from the very bundle it ships beside it.
    const cachedData = readFileSync(cacheOf('run', 'ok').out);
    expect(new Script(source.replace('n * 2', 'n * 20'), { filename: 'podnet.cjs', cachedData }).cachedDataRejected).toBe(true);
  });
});
