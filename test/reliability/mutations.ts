/**
 * Mutations of valid files for the fuzz tests: bit flips, byte sets, insertions (random bytes or
 * tokens that mean something in some format), deletions, duplicated slices, interesting integers
 * written over 1, 2, 4 or 8 bytes (little- or big-endian), and truncation. Positions are stored as
 * plain integers taken modulo the length, so that fast-check shrinks them well.
 */
import fc from 'fast-check';

export type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly byte: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'token'; readonly at: number; readonly token: string }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'duplicate'; readonly at: number; readonly length: number; readonly to: number }
  | {
      readonly kind: 'word';
      readonly at: number;
      readonly value: bigint;
      readonly width: 1 | 2 | 4 | 8;
      readonly bigEndian: boolean;
    }
  | { readonly kind: 'truncate'; readonly at: number };

const at = fc.nat();
const INTERESTING = [
  0n,
  1n,
  0x7fn,
  0x80n,
  0xffn,
  0x7fffn,
  0xffffn,
  0x7fffffffn,
  0x80000000n,
  0xfffffffen,
  0xffffffffn,
  2n ** 53n,
  2n ** 63n - 1n,
  2n ** 64n - 1n,
];
const TOKENS = [
  '\n',
  '\r\n',
  ',',
  ';',
  '\t',
  '"',
  "'",
  'NaN',
  'inf',
  '1e999',
  '-1',
  '0',
  '99999999999999999999',
  '{',
  '}',
  '[',
  ']',
  ':',
  'null',
  '(',
  ')',
  'True',
  "'shape': (",
  'PK\x03\x04',
  'PK\x01\x02',
  'PK\x05\x06',
  '\x93NUMPY',
  // path strings (a TF.js manifest's shard paths): out of the folder, a device, a URL
  '../',
  '/dev/zero',
  'file:',
  './',
  // deep nesting, repeated keys (a second header key that NumPy would take), long headers
  '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[',
  "'descr': '<f8', ",
  '"shape": [1], ',
  ' '.repeat(256),
];

export const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at, byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at,
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({ kind: fc.constant('token' as const), at, token: fc.constantFrom(...TOKENS) }),
  fc.record({ kind: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 32 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at, length: fc.integer({ min: 1, max: 64 }), to: at }),
  fc.record({
    kind: fc.constant('word' as const),
    at,
    value: fc.constantFrom(...INTERESTING),
    width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
    bigEndian: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at }),
);

export const mutationsArbitrary = fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 });

function splice(
  bytes: Uint8Array,
  start: number,
  deleteCount: number,
  insert: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(bytes.length - deleteCount + insert.length);
  out.set(bytes.subarray(0, start));
  out.set(insert, start);
  out.set(bytes.subarray(start + deleteCount), start + insert.length);
  return out;
}

export function applyMutation(bytes: Uint8Array, m: Mutation): Uint8Array {
  const n = bytes.length;
  const pos = n === 0 ? 0 : m.at % n;
  switch (m.kind) {
    case 'flip': {
      if (n === 0) return bytes;
      const out = bytes.slice();
      out[pos] ^= 1 << m.bit;
      return out;
    }
    case 'set': {
      if (n === 0) return bytes;
      const out = bytes.slice();
      out[pos] = m.byte;
      return out;
    }
    case 'insert':
      return splice(bytes, m.at % (n + 1), 0, m.bytes);
    case 'token':
      return splice(bytes, m.at % (n + 1), 0, new Uint8Array(Buffer.from(m.token, 'latin1')));
    case 'delete':
      return splice(bytes, pos, Math.min(m.length, n - pos));
    case 'duplicate': {
      const slice = bytes.slice(pos, pos + m.length);
      return splice(bytes, m.to % (n + 1), 0, slice);
    }
    case 'word': {
      const out = bytes.slice();
      let value = m.value;
      for (let i = 0; i < m.width; i++) {
        const index = pos + (m.bigEndian ? m.width - 1 - i : i);
        if (index < n) out[index] = Number(value & 0xffn);
        value >>= 8n;
      }
      return out;
    }
    case 'truncate':
      return bytes.subarray(0, m.at % (n + 1));
  }
}

export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  return mutations.reduce(applyMutation, bytes);
}
