/**
 * FNV-1a (Fowler–Noll–Vo; http://www.isthe.com/chongo/tech/comp/fnv/): for each input unit,
 * xor it into the hash, then multiply by the prime, modulo 2^bits. For names and buckets that
 * need spreading, not secrecy: loading node:crypto costs a plugin start-up several milliseconds.
 *
 * The two widths read their input differently, and both are on disk or in the kernel, so neither
 * may change: the 64-bit one reads the UTF-8 bytes (the standard FNV-1a of the text: the bridge's
 * veth names and rule keys); the 32-bit one reads UTF-16 code units (host-local's owner-index
 * buckets), which is the same for ASCII — every container ID (CNI_CONTAINERID is validated) and
 * almost every interface name — and differs only for non-ASCII interface names.
 */
const FNV32 = { offset: 0x811c9dc5, prime: 0x01000193 } as const;
const FNV64 = { offset: 0xcbf29ce484222325n, prime: 0x100000001b3n } as const;

const MASK64 = (1n << 64n) - 1n;

/** 32-bit FNV-1a over the UTF-16 code units of `s`, unsigned. Math.imul, no BigInt: the index
 * rebuild hashes every reservation's owner. */
export function fnv1a32(s: string): number {
  let h: number = FNV32.offset;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV32.prime);
  return h >>> 0;
}

/** 64-bit FNV-1a over the UTF-8 bytes of `s`. */
export function fnv1a64(s: string): bigint {
  let h: bigint = FNV64.offset;
  for (const b of Buffer.from(s, 'utf8')) h = ((h ^ BigInt(b)) * FNV64.prime) & MASK64;
  return h;
}

/** fnv1a64 as 16 hex digits. */
export const fnv1a64Hex = (s: string): string => fnv1a64(s).toString(16).padStart(16, '0');
