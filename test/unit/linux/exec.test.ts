import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommandError, type Runner, pluginRunner, processRunner, run, runBlocking, runInBackground } from '../../../lib/linux/exec.js';
import { bindingSpawner, checked, childProcessSpawner, nodeSpawner } from '../../../lib/linux/spawn.js';

it("this Node has the spawn bindings, and the plugins' runners use them", () => {
  expect(bindingSpawner).toBeDefined();
  expect(nodeSpawner).toBe(bindingSpawner);
});

// The schedules of the one runner contract give the same outcomes (real processes: /bin/sh),
// the plugins' two on Node's spawn bindings and on node:child_process (a Node without them).
describe.each<[string, typeof run]>([
  ['run (asynchronous spawn)', run],
  ['runBlocking (spawn bindings)', (f, a, o) => runBlocking(f, a, o, bindingSpawner)],
  ['runBlocking (node:child_process)', (f, a, o) => runBlocking(f, a, o, childProcessSpawner)],
  ['runInBackground (spawn bindings, on anonymous files)', (f, a, o) => runInBackground(f, a, o, bindingSpawner)],
  ['runInBackground (node:child_process, on anonymous files)', (f, a, o) => runInBackground(f, a, o, childProcessSpawner)],
])('%s', (_name, runOne) => {
  it('passes input, returns stdout, stderr and the exit code', async () => {
    const r = await runOne('sh', ['-c', 'read x; echo "out $x"; echo err >&2; exit 3'], { input: 'hello\n' });
    expect(r).toEqual({ code: 3, stdout: 'out hello\n', stderr: 'err\n' });
  });

  it('a missing tool is exit code 127 with a message, never a rejection', async () => {
    const r = await runOne('/nonexistent/podnet-no-such-tool', []);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/podnet-no-such-tool/);
  });

  it('a file that cannot be executed is exit code 126', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-exec-test-'));
    try {
      const file = join(dir, 'not-executable');
      writeFileSync(file, '#!/bin/sh\n', { mode: 0o644 });
      const r = await runOne(file, []);
      expect(r.code).toBe(126);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('throwOnError rejects with a CommandError carrying the result', async () => {
    const e = await runOne('sh', ['-c', 'echo nope >&2; exit 1'], { throwOnError: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CommandError);
    expect((e as CommandError).result).toMatchObject({ code: 1, stderr: 'nope\n' });
    expect((e as CommandError).message).toMatch(/^sh -c .*: nope$/);
  });

  it('a child past its timeout is killed (128 + 9)', async () => {
    const started = Date.now();
    // `exec`: the sleep is the child itself, so the kill ends it (a grandchild would outlive it).
    const r = await runOne('sh', ['-c', 'exec sleep 5'], { timeout: 100 });
    expect(r.code).toBe(137);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it("a child whose own child holds its output open: the outcome by the timeout, with what it wrote", async () => {
    const started = Date.now();
    const r = await runOne('sh', ['-c', 'sleep 5 & echo $!'], { timeout: 500 });
    const grandchild = Number(r.stdout.trim());
    try {
      expect(r.code).toBe(0);
      expect(grandchild).toBeGreaterThan(1);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      if (grandchild > 1) {
        try {
          process.kill(grandchild, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('a child that exits without reading its input is no failure', async () => {
    const r = await runOne('sh', ['-c', 'exit 0'], { input: 'x'.repeat(1 << 20) });
    expect(r.code).toBe(0);
  });

  it('large input and output pass whole', async () => {
    const input = `${'0123456789'.repeat(100_000)}\n`;
    const r = await runOne('sh', ['-c', 'cat; cat >&2 </dev/null; echo done >&2'], { input });
    expect(r.stdout).toBe(input);
    expect(r.stderr).toBe('done\n');
  });

  it('env replaces the environment when given', async () => {
    const r = await runOne('/bin/sh', ['-c', 'echo "$PODNET_EXEC_TEST"'], { env: { PODNET_EXEC_TEST: 'yes' } });
    expect(r.stdout).toBe('yes\n');
  });

  it('without env the child gets this process environment', async () => {
    process.env.PODNET_EXEC_TEST_INHERIT = 'inherited';
    try {
      const r = await runOne('/bin/sh', ['-c', 'echo "$PODNET_EXEC_TEST_INHERIT"']);
      expect(r.stdout).toBe('inherited\n');
    } finally {
      delete process.env.PODNET_EXEC_TEST_INHERIT;
    }
  });

  it('an argument or environment entry with a NUL byte is refused before anything starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-exec-test-'));
    try {
      const marker = join(dir, 'ran');
      for (const [args, env] of [
        [['-c', `touch ${marker}`, 'a\0b'], undefined],
        [['-c', `touch ${marker}`], { X: 'a\0b' }],
      ] as const) {
        const r = await runOne('/bin/sh', args, env ? { env } : {});
        expect(r.code).toBe(126);
        expect(r.stderr).toMatch(/NUL byte|null bytes/);
      }
      expect(existsSync(marker)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('runners', () => {
  /** Starts a child that waits for a marker file, then tries to create the marker itself. */
  async function overlaps(runner: Runner, background: boolean): Promise<boolean> {
    const marker = `/tmp/podnet-exec-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const waiting = runner.run('sh', ['-c', `for i in $(seq 1 50); do [ -e ${marker} ] && exit 0; sleep 0.02; done; exit 1`], { background });
    // Blocking: the child has already given up by now; in the background it is still waiting.
    await runner.run('sh', ['-c', `touch ${marker}`]);
    const r = await waiting;
    await runner.run('rm', ['-f', marker]);
    return r.code === 0;
  }

  it('pluginRunner waits for a child unless the call is in the background; processRunner never waits', async () => {
    expect(await overlaps(pluginRunner, false)).toBe(false);
    expect(await overlaps(pluginRunner, true)).toBe(true);
    expect(await overlaps(processRunner, false)).toBe(true);
  });
});

describe('spawn.ts checked', () => {
  it('a spawner that throws (an option its binding refuses) gives an outcome, never a throw or a rejection', async () => {
    const s = checked({
      wait: () => {
        throw new TypeError('bad option');
      },
      start: () => {
        throw new TypeError('bad option');
      },
    });
    expect(s.wait('/bin/true', [], { input: Buffer.alloc(0), timeout: 1000, maxBuffer: 1024 }).error).toMatchObject({ message: 'bad option' });
    expect((await s.start('/bin/true', [], { stdio: [0, 1, 2], timeout: 1000 })).error).toMatchObject({ message: 'bad option' });
    expect((await runBlocking('/bin/true', [], {}, s)).code).toBe(126);
  });
});
