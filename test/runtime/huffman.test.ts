import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { codeLengths, huffmanDecode, huffmanEncode, MAX_CODE_LENGTH } from '../../src/runtime/huffman.js';
import { rng } from './helpers.js';

const roundTrip = (symbols: Uint8Array) => {
  const coded = huffmanEncode(symbols);
  const { symbols: decoded, end } = huffmanDecode(coded, 0, 'test');
  assert.deepEqual(decoded, symbols);
  assert.equal(end, coded.length);
  return coded;
};

/** Shannon entropy of the byte distribution of `symbols`, in bits. */
function entropyBits(symbols: Uint8Array): number {
  const counts = new Map<number, number>();
  for (const s of symbols) counts.set(s, (counts.get(s) ?? 0) + 1);
  let bits = 0;
  for (const c of counts.values()) bits -= c * Math.log2(c / symbols.length);
  return bits;
}

describe('canonical Huffman coder', () => {
  it('round-trips random streams, within one bit per symbol of the entropy', () => {
    const r = rng(1);
    const cases: [string, () => number][] = [
      ['uniform bytes', () => Math.floor(256 * r())],
      ['geometric', () => Math.min(255, Math.floor(-Math.log(1 - r()) * 3))],
      ['16 symbols', () => Math.floor(16 * r() * r())],
    ];
    for (const [what, draw] of cases) {
      for (const n of [1, 7, 1000, 20000]) {
        const symbols = Uint8Array.from({ length: n }, draw);
        const coded = roundTrip(symbols);
        const codeBits = 8 * (coded.length - 9 - ((coded[8] + 2) >> 1));
        assert.ok(codeBits <= entropyBits(symbols) + n + 8, `${what}, ${n}: ${codeBits} bits`);
      }
    }
  });

  it('round-trips the edge cases: empty, one symbol repeated, symbol 255 only, every byte once', () => {
    roundTrip(new Uint8Array(0));
    roundTrip(new Uint8Array(500).fill(7));
    roundTrip(new Uint8Array(3).fill(255));
    roundTrip(Uint8Array.from({ length: 256 }, (_, i) => i));
  });

  it('limits code lengths to 15 bits on Fibonacci frequencies (unlimited Huffman would need 25)', () => {
    const fib = [1, 1];
    while (fib.length < 26) fib.push(fib[fib.length - 1] + fib[fib.length - 2]);
    const lengths = codeLengths(fib);
    assert.ok(Math.max(...lengths) <= MAX_CODE_LENGTH);
    // a complete prefix code: Kraft sum exactly 1
    assert.equal(
      lengths.reduce((sum, l) => sum + 2 ** -l, 0),
      1,
    );
    const symbols = Uint8Array.from(fib.flatMap((f, s) => new Array<number>(Math.min(f, 2000)).fill(s)));
    roundTrip(symbols);
  });

  it('refuses forged headers before allocating, and corrupt tables and bits', () => {
    const coded = huffmanEncode(Uint8Array.from([1, 2, 2, 3, 3, 3]));
    const forged = coded.slice();
    new DataView(forged.buffer).setUint32(0, 0xffffffff, true); // 4 billion symbols in a few bytes
    assert.throws(() => huffmanDecode(forged, 0, 'x'), /cannot fit in/);
    const long = coded.slice();
    new DataView(long.buffer).setUint32(4, 1e9, true);
    assert.throws(() => huffmanDecode(long, 0, 'x'), /announces/);
    assert.throws(() => huffmanDecode(coded.subarray(0, 5), 0, 'x'), /truncated/);
    const overSubscribed = coded.slice();
    overSubscribed[9] = 0x11; // symbols 0 and 1 of length 1 ...
    overSubscribed[10] = 0x11; // ... and 2 and 3 as well
    assert.throws(() => huffmanDecode(overSubscribed, 0, 'x'), /over-subscribed/);
    const early = coded.slice();
    new DataView(early.buffer).setUint32(0, 8 * (coded.length - 11), true);
    assert.throws(() => huffmanDecode(early, 0, 'x'), /end before symbol/);
    // one symbol of length 1: a run of 15 ones is no code
    const lone = huffmanEncode(new Uint8Array(16));
    lone.fill(0xff, lone.length - 2);
    assert.throws(() => huffmanDecode(lone, 0, 'x'), /not a valid code/);
  });
});
