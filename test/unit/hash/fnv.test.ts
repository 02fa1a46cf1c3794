import { describe, expect, it } from 'vitest';
import { fnv1a32, fnv1a64, fnv1a64Hex } from '../../../lib/hash/fnv.js';

describe('lib/hash/fnv: FNV-1a', () => {
  it('matches the published test vectors (ASCII: code units and bytes agree)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    expect(fnv1a64('')).toBe(0xcbf29ce484222325n);
    expect(fnv1a64Hex('a')).toBe('af63dc4c8601ec8c');
    expect(fnv1a64Hex('foobar')).toBe('85944171f73967e8');
  });

  it('64 bits read UTF-8 bytes; 32 bits read UTF-16 code units (the index buckets were built so)', () => {
    expect(fnv1a64Hex('\u00e9')).toBe('0ac21707b7181e01');
    // One step of 0xe9, not two of the UTF-8 bytes 0xc3 0xa9.
    expect(fnv1a32('\u00e9')).toBe(Math.imul(0x811c9dc5 ^ 0xe9, 0x01000193) >>> 0);
    expect(fnv1a32('\u00e9')).not.toBe(Math.imul(Math.imul(0x811c9dc5 ^ 0xc3, 0x01000193) ^ 0xa9, 0x01000193) >>> 0);
    expect(fnv1a64Hex('')).toHaveLength(16);
  });
});
