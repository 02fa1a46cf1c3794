import { describe, expect, it } from 'vitest';
import {
  calcAttachmentKey,
  calcHostVethName,
  calcIptablesChain,
  calcNetworkKey,
  calcRuleComment,
  calcVlanPeerName,
} from '../../../plugins/bridge/names.js';

/**
 * Names and keys are found again by later verbs (and by later versions of podnet, after an
 * upgrade, for pods made before it): they must never change. Values computed with the FNV-1a
 * of plugins/bridge/names.ts before it moved to lib/hash.
 */
describe('bridge names and keys stay what they were', () => {
  it('host veth and VLAN peer names', () => {
    expect(calcHostVethName('dummy', 'eth0')).toBe('vethe8cdd01c5ef');
    expect(calcHostVethName('0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0', 'net1')).toBe('vethb87a6e1a24a');
    expect(calcVlanPeerName('cni0', 100)).toBe('veth62b0745e89b');
  });

  it('rule keys and comments, and the reference iptables chain', () => {
    expect(calcNetworkKey('podnet')).toBe('podnet:9ab16e5a1554:');
    expect(calcAttachmentKey('podnet', 'dummy', 'eth0')).toBe('podnet:9ab16e5a1554:cbb89d804883aefa');
    expect(calcRuleComment('podnet', 'dummy', 'eth0')).toBe('podnet:9ab16e5a1554:cbb89d804883aefa net=podnet if=eth0 id=dummy');
    expect(calcIptablesChain('podnet', 'dummy')).toBe('CNI-ef2700b91b9e6b3b654a5cc9');
  });
});
