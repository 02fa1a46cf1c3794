import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../lib/cni/log.js';

describe('createLogger', () => {
  it('writes JSON lines at or above the level, stamped with the base fields', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', base: { plugin: 'p' }, write: (l) => lines.push(l) });
    log.debug('hidden');
    log.info('shown', { ip: '10.0.0.2' });
    log.error('bad');
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ level: 'info', plugin: 'p', msg: 'shown', ip: '10.0.0.2' }),
      expect.objectContaining({ level: 'error', msg: 'bad' }),
    ]);
  });

  it('defaults to warn for an unknown level', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'loud', write: (l) => lines.push(l) });
    log.info('no');
    log.warn('yes');
    expect(lines).toHaveLength(1);
  });

  it('appends to the named log file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pnt-log-'));
    try {
      const file = join(dir, 'plugin.log');
      createLogger({ level: 'debug', file }).debug('one');
      createLogger({ level: 'debug', file }).debug('two');
      expect(readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).msg)).toEqual(['one', 'two']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never throws when the file cannot be written', () => {
    expect(() => createLogger({ level: 'debug', file: '/nonexistent-dir/x.log' }).error('lost')).not.toThrow();
  });
});
