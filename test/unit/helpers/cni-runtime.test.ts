import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CniRuntime, type LibcniLine, type NetworkList, pickVersion } from '../../helpers/cni-runtime.js';

/**
 * The lab runtime negotiates like the libcni lines real nodes run (test/e2e/cri.test.ts measures
 * them through containerd): 1.1 hands `cniVersion` to the plugins as is and rejects a result it
 * does not know; ≥ 1.2 takes the highest of `cniVersions` it knows without asking the plugins.
 */

/** routesync's conflist on a node whose portmap speaks 1.1.0, and the one it wrote before the fix. */
const FIXED: NetworkList = { cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: 'n', plugins: [{ type: 'fake-a' }, { type: 'fake-b' }] };
const OLD: NetworkList = { ...FIXED, cniVersion: '1.1.0' };

describe('pickVersion', () => {
  it.each<[string, NetworkList, LibcniLine, string]>([
    ['1.1 ignores cniVersions', FIXED, '1.1', '1.0.0'],
    ['1.1 passes a version it cannot read results of', OLD, '1.1', '1.1.0'],
    ['≥ 1.2 takes the highest of cniVersions', FIXED, '>=1.2', '1.1.0'],
    ['≥ 1.2 skips versions above its own (1.1.0)', { ...FIXED, cniVersions: ['1.0.0', '1.1.0', '2.0.0'] }, '>=1.2', '1.1.0'],
    ['≥ 1.2 counts cniVersion in', { ...FIXED, cniVersion: '1.1.0', cniVersions: ['0.4.0'] }, '>=1.2', '1.1.0'],
    ['≥ 1.2 without cniVersions: cniVersion', { cniVersion: '0.4.0', name: 'n', plugins: [] }, '>=1.2', '0.4.0'],
    ['≥ 1.2 is the default', FIXED, undefined as unknown as LibcniLine, '1.1.0'],
  ])('%s', (_what, list, line, want) => {
    expect(pickVersion(list, line)).toBe(want);
  });
});

describe('CniRuntime with recording fake plugins', () => {
  let dir: string;
  const calls = () =>
    readFileSync(join(dir, 'calls'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' '));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pcr-rt-'));
    writeFileSync(join(dir, 'calls'), '');
    // Each fake records "<type> <verb> <cniVersion> <gc keys>" and answers ADD with an empty
    // result in the config's version; fake-b speaks only up to 1.0.0, as Debian 12's portmap.
    for (const [type, max] of [['fake-a', '1.1.0'], ['fake-b', '1.0.0']] as const) {
      writeFileSync(
        join(dir, type),
        [
          '#!/bin/sh',
          'conf=$(cat)',
          // The config's own cniVersion comes before prevResult's.
          `v=$(printf '%s' "$conf" | grep -o '"cniVersion":"[^"]*"' | head -n 1 | cut -d '"' -f 4)`,
          `keys=$(printf '%s' "$conf" | grep -o '"cni.dev/[a-z-]*"' | tr -d '"' | tr '\\n' ',')`,
          `echo "${type} $CNI_COMMAND $v $keys" >> ${JSON.stringify(join(dir, 'calls'))}`,
          `if [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"${max === '1.1.0' ? ',"1.1.0"' : ''}]}'; exit 0; fi`,
          `if [ "$v" = 1.1.0 ] && [ "${max}" = 1.0.0 ]; then echo '{"cniVersion":"1.0.0","code":1,"msg":"incompatible CNI versions"}'; exit 1; fi`,
          '[ "$CNI_COMMAND" = ADD ] && echo "{\\"cniVersion\\":\\"$v\\",\\"ips\\":[]}"',
          'exit 0',
          '',
        ].join('\n'),
      );
      chmodSync(join(dir, type), 0o755);
    }
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const runtime = (libcni: LibcniLine) => new CniRuntime({ binDirs: [dir], cacheDir: join(dir, 'cache'), libcni });
  const rt = { containerId: 'c1', netns: '/proc/self/ns/net', ifName: 'eth0' };
  const onlyA: NetworkList = { ...FIXED, plugins: [{ type: 'fake-a' }] };

  it('libcni 1.1 runs the fixed conflist at 1.0.0 through a 1.0.0 plugin', async () => {
    await runtime('1.1').add(FIXED, rt);
    expect(calls()).toEqual([['fake-a', 'ADD', '1.0.0', ''], ['fake-b', 'ADD', '1.0.0', '']]);
  });

  it('libcni 1.1 fails the old conflist: a 1.1.0 result is unknown to it (the containerd 1.6 bug)', async () => {
    await expect(runtime('1.1').add(OLD, rt)).rejects.toThrow(/plugin type="fake-a" failed \(add\): unsupported CNI result version "1\.1\.0"/);
    expect(calls()).toEqual([['fake-a', 'ADD', '1.1.0', '']]);
  });

  it('libcni ≥ 1.2 picks 1.1.0 without asking the plugins, so a 1.0.0-only plugin listed with 1.1.0 fails', async () => {
    await expect(runtime('>=1.2').add(FIXED, rt)).rejects.toThrow(/fake-b ADD failed \(code 1\)/);
    expect(calls().map((c) => c.slice(0, 3))).toEqual([['fake-a', 'ADD', '1.1.0'], ['fake-b', 'ADD', '1.1.0']]);
  });

  it('STATUS: only for lists at 1.1.0, to every plugin; libcni 1.1 has none', async () => {
    await runtime('>=1.2').status({ ...FIXED, cniVersions: ['1.0.0'] });
    expect(calls()).toEqual([]);
    await runtime('>=1.2').status(onlyA);
    expect(calls()).toEqual([['fake-a', 'STATUS', '1.1.0', '']]);
    await expect(runtime('1.1').status(onlyA)).rejects.toThrow(/libcni 1\.1 has no STATUS/);
  });

  it('GC: DEL for cached attachments not valid, then GC with both attachment keys at 1.1.0 only', async () => {
    const r = runtime('>=1.2');
    await r.add(onlyA, rt);
    await r.add(onlyA, { ...rt, containerId: 'c2' });
    writeFileSync(join(dir, 'calls'), '');
    await r.gc(onlyA, [{ containerID: 'c2', ifname: 'eth0' }]);
    expect(calls()).toEqual([
      ['fake-a', 'DEL', '1.1.0', ''],
      ['fake-a', 'GC', '1.1.0', 'cni.dev/valid-attachments,cni.dev/attachments,'],
    ]);
    // At 1.0.0 only the stale DEL: the GC verb needs 1.1.0.
    writeFileSync(join(dir, 'calls'), '');
    const at100 = { ...onlyA, cniVersions: ['1.0.0'] };
    await r.gc(at100, []);
    expect(calls()).toEqual([['fake-a', 'DEL', '1.0.0', '']]);
  });
});
