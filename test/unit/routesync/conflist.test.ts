import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONFLIST_NAME, DEFAULT_TEMPLATE, calcChainVersions, calcConflist, checkTemplate, type ConflistTemplate } from '../../../routesync/conflist.js';
import { parseVersionAnswer } from '../../../routesync/plugin-versions.js';
import { writeConflistIfChanged } from '../../../routesync/reconcile-conflist.js';
import { REPO_ROOT, isRoot } from '../../helpers/env.js';

const template = structuredClone(DEFAULT_TEMPLATE) as unknown as ConflistTemplate;

describe('conflist template', () => {
  it('the built-in template is conf/routesync-template.json', () => {
    const file = JSON.parse(readFileSync(join(REPO_ROOT, 'conf', 'routesync-template.json'), 'utf8'));
    expect(file).toEqual(DEFAULT_TEMPLATE);
    expect(checkTemplate(file)).toBeUndefined();
  });

  it('refuses templates the daemon cannot fill in', () => {
    expect(checkTemplate([])).toMatch(/not a JSON object/);
    expect(checkTemplate({ cniVersion: '1.1.0', plugins: [] })).toMatch(/no "name"/);
    expect(checkTemplate({ name: 'x', cniVersion: '1.1.0', plugins: [{ type: 'bridge' }] })).toMatch(/no plugin of type "podnet-bridge"/);
    expect(checkTemplate({ name: 'x', cniVersion: '1.1.0', plugins: [{ type: 'podnet-bridge' }] })).toMatch(/no "ipam"/);
  });
});

const ALL = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
const DEBIAN_PORTMAP = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0'];

describe('the conflist names only versions every runtime and every chained plugin speaks', () => {
  it('cniVersion is 1.0.0: libcni 1.1 (containerd 1.6/1.7) ignores cniVersions and rejects a 1.1.0 result', () => {
    expect(DEFAULT_TEMPLATE.cniVersion).toBe('1.0.0');
    const c = JSON.parse(calcConflist(template, { podCIDRs: ['10.244.3.0/24'] }, calcChainVersions(template, new Map([['podnet-bridge', ALL], ['portmap', ALL]]))));
    expect(c.cniVersion).toBe('1.0.0');
    expect(c.cniVersions).toEqual(['1.0.0', '1.1.0']); // libcni ≥ 1.2 picks 1.1.0: GC and STATUS
  });

  it('a portmap without 1.1.0 (Debian 12) keeps libcni ≥ 1.2 at 1.0.0, and says why', () => {
    const v = calcChainVersions(template, new Map([['podnet-bridge', ALL], ['portmap', DEBIAN_PORTMAP]]));
    expect(v).toEqual({ cniVersion: '1.0.0', cniVersions: ['1.0.0'], dropped: [{ version: '1.1.0', plugins: ['portmap'] }] });
    expect(JSON.parse(calcConflist(template, { podCIDRs: ['10.244.3.0/24'] }, v)).cniVersions).toEqual(['1.0.0']);
  });

  it('a plugin that cannot be asked is trusted with cniVersion only; an old one lowers cniVersion', () => {
    expect(calcChainVersions(template, new Map([['podnet-bridge', ALL]]))).toMatchObject({ cniVersion: '1.0.0', cniVersions: ['1.0.0'] });
    const t = { ...template, cniVersions: ['0.4.0', '1.0.0', '1.1.0'] };
    expect(calcChainVersions(t, new Map([['podnet-bridge', ALL], ['portmap', ['0.3.1', '0.4.0']]]))).toMatchObject({ cniVersion: '0.4.0', cniVersions: ['0.4.0'] });
    expect(calcChainVersions(template, new Map([['podnet-bridge', ALL], ['portmap', ['0.3.1']]]))).toBeUndefined();
  });

  it('a template without cniVersions gets none', () => {
    const { cniVersions: _, ...t } = template;
    const c = JSON.parse(calcConflist(t as ConflistTemplate, { podCIDRs: ['10.244.3.0/24'] }, calcChainVersions(t as ConflistTemplate, new Map([['podnet-bridge', ALL], ['portmap', ALL]]))));
    expect(c).not.toHaveProperty('cniVersions');
    expect(c.cniVersion).toBe('1.0.0');
  });

  it('reads a VERSION answer strictly (plugin output is untrusted)', () => {
    expect(parseVersionAnswer('{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}')).toEqual(['0.4.0', '1.0.0']);
    for (const bad of ['', 'x', '{}', '{"supportedVersions":[]}', '{"supportedVersions":["1.0.0\n"]}', '{"supportedVersions":[1]}', '{"supportedVersions":"1.0.0"}']) {
      expect(parseVersionAnswer(bad)).toBeUndefined();
    }
  });
});

describe('calcConflist', () => {
  it('single stack: podCIDR as one range set, uplink MTU, everything else from the template', () => {
    const c = JSON.parse(calcConflist(template, { podCIDRs: ['10.244.3.0/24'], mtu: 1450 }));
    expect(c).toEqual({
      cniVersion: '1.0.0',
      cniVersions: ['1.0.0', '1.1.0'],
      name: 'podnet',
      plugins: [
        {
          type: 'podnet-bridge',
          bridge: 'podnet0',
          isGateway: true,
          isDefaultGateway: true,
          ipMasq: false,
          hairpinMode: true,
          mtu: 1450,
          ipam: { type: 'podnet-host-local', ranges: [[{ subnet: '10.244.3.0/24' }]], dataDir: '/run/cni/podnet-ipam' },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
  });

  it('dual stack: one range set per family; unknown MTU leaves the key out', () => {
    const c = JSON.parse(calcConflist(template, { podCIDRs: ['10.244.3.0/24', 'fd00:10:244:3::/64'], mtu: undefined }));
    expect(c.plugins[0].ipam.ranges).toEqual([[{ subnet: '10.244.3.0/24' }], [{ subnet: 'fd00:10:244:3::/64' }]]);
    expect('mtu' in c.plugins[0]).toBe(false);
  });

  it('is stable (same input, same bytes) and does not modify the template', () => {
    const a = calcConflist(template, { podCIDRs: ['10.244.3.0/24'], mtu: 1500 });
    expect(calcConflist(template, { podCIDRs: ['10.244.3.0/24'], mtu: 1500 })).toBe(a);
    expect(template).toEqual(DEFAULT_TEMPLATE);
  });
});

describe('writeConflistIfChanged', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'prs-conf-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes, then leaves an unchanged file alone (same inode, same mtime), then replaces by rename', async () => {
    const target = join(dir, 'net.d');
    const a = calcConflist(template, { podCIDRs: ['10.244.3.0/24'], mtu: 1500 });
    expect(await writeConflistIfChanged(target, CONFLIST_NAME, a)).toMatchObject({ written: true, shadowedBy: [] });
    const st1 = statSync(join(target, CONFLIST_NAME));
    expect(st1.mode & 0o777).toBe(0o644);
    await new Promise((r) => setTimeout(r, 20));
    expect((await writeConflistIfChanged(target, CONFLIST_NAME, a)).written).toBe(false);
    const st2 = statSync(join(target, CONFLIST_NAME));
    expect([st2.ino, st2.mtimeMs]).toEqual([st1.ino, st1.mtimeMs]);
    const b = calcConflist(template, { podCIDRs: ['10.244.4.0/24'], mtu: 1500 });
    expect((await writeConflistIfChanged(target, CONFLIST_NAME, b)).written).toBe(true);
    const st3 = statSync(join(target, CONFLIST_NAME));
    expect(st3.ino).not.toBe(st1.ino); // a new file renamed over the old one, not rewritten in place
    expect(readFileSync(join(target, CONFLIST_NAME), 'utf8')).toBe(b);
    expect(readdirSync(target)).toEqual([CONFLIST_NAME]); // no temp file left
  });

  it('a reader racing the writer only ever sees a whole file', async () => {
    const contents = Array.from({ length: 40 }, (_, i) => calcConflist(template, { podCIDRs: [`10.244.${i}.0/24`], mtu: 1500 + i }));
    let stop = false;
    const seen = new Set<string>();
    const reader = (async () => {
      while (!stop) {
        try {
          const t = readFileSync(join(dir, CONFLIST_NAME), 'utf8');
          JSON.parse(t);
          seen.add(t);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (const c of contents) await writeConflistIfChanged(dir, CONFLIST_NAME, c);
    stop = true;
    await reader;
    for (const t of seen) expect(contents).toContain(t);
  });

  it('names the config files that sort before ours (the runtime would use them)', async () => {
    writeFileSync(join(dir, '05-other.conf'), '{}');
    writeFileSync(join(dir, '99-late.conflist'), '{}');
    writeFileSync(join(dir, '00-ignored.txt'), '');
    const r = await writeConflistIfChanged(dir, CONFLIST_NAME, '{}\n');
    expect(r.shadowedBy).toEqual(['05-other.conf']);
  });

  it.runIf(!isRoot)('reports a directory it cannot write to, naming the file', async () => {
    chmodSync(dir, 0o555);
    await expect(writeConflistIfChanged(dir, CONFLIST_NAME, '{}\n')).rejects.toThrow(/^failed to write cni config ".*10-podnet.conflist": EACCES/);
  });

  it('reports a config path it cannot replace (a directory there), leaving other configs intact and no temp file', async () => {
    await writeConflistIfChanged(dir, CONFLIST_NAME, '{"old":true}\n');
    // A directory where the config should be: reading it fails (EISDIR), nothing is written.
    const blocked = join(dir, 'sub');
    await writeConflistIfChanged(blocked, 'x.conflist', '{}\n');
    rmSync(join(blocked, 'x.conflist'));
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(blocked, 'x.conflist', 'child'), { recursive: true });
    await expect(writeConflistIfChanged(blocked, 'x.conflist', '{"new":true}\n')).rejects.toThrow(/^failed to (read|write) cni config/);
    expect(readdirSync(blocked).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readFileSync(join(dir, CONFLIST_NAME), 'utf8')).toBe('{"old":true}\n');
  });
});
