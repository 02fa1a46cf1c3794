import { describe, expect, it } from 'vitest';
import { decodeBatch, isExists, isNotFound } from '../../../lib/linux/ip.js';

describe('decodeBatch', () => {
  it('returns one JSON array per show command and no failures on success', () => {
    const r = decodeBatch({ code: 0, stdout: '[{"ifname":"a"}]\n[{"ifname":"b"}]\n', stderr: '' });
    expect(r.ok).toBe(true);
    expect(r.outputs.map((o) => o[0]?.ifname)).toEqual(['a', 'b']);
  });

  it('maps "Command failed -:N" to the line and the kernel message before it', () => {
    const r = decodeBatch({ code: 1, stdout: '', stderr: 'RTNETLINK answers: File exists\nCommand failed -:1\n' });
    expect(r.ok).toBe(false);
    expect(r.failures).toEqual([{ line: 1, message: 'File exists' }]);
    expect(isExists(r.failures[0]?.message ?? '')).toBe(true);
  });

  it('collects several failures in -force mode', () => {
    const r = decodeBatch({
      code: 1,
      stdout: '[{"ifname":"br0"}]\n',
      stderr: 'Error: ipv4: Address already assigned.\nCommand failed -:2\nDevice "nope" does not exist.\nCommand failed -:3\n',
    });
    expect(r.failures).toEqual([
      { line: 2, message: 'ipv4: Address already assigned.' },
      { line: 3, message: 'Device "nope" does not exist.' },
    ]);
    expect(isExists(r.failures[0]?.message ?? '')).toBe(true);
    expect(isNotFound(r.failures[1]?.message ?? '')).toBe(true);
    expect(r.outputs).toHaveLength(1);
  });

  it('reports a failure before any line (nsenter, a required sysctl) as line 0', () => {
    const r = decodeBatch({ code: 97, stdout: '', stderr: 'failed to write sysctl net/ipv6/conf/eth0/disable_ipv6\n' });
    expect(r.failures).toEqual([{ line: 0, message: 'failed to write sysctl net/ipv6/conf/eth0/disable_ipv6' }]);
  });
});
