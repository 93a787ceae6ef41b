/**
 * Canonical Huffman coding of byte streams: the entropy coder of `.ecsr` version 2
 * (docs/FORMAT-ECSR.md, "Coded streams"). The decoder runs when a file is loaded; the encoder is
 * here too, next to it, so that the two cannot drift apart.
 *
 * A stream is: u32 symbol count, u32 byte length of the code bits, u8 `m` (the largest symbol),
 * ceil((m + 1) / 2) bytes of 4-bit code lengths (symbol 2k in the low nibble of byte k, 0 = the
 * symbol does not occur), then the code bits, most significant bit first, the last byte padded
 * with zeros. Codes are canonical (by length, then symbol) and at most 15 bits long, as in DEFLATE.
 * Measured against DEFLATE (fflate, level 9) on the same streams of MNIST 784-300-100-10 at 90 %
 * sparsity: bench/compression.ts.
 */

export const MAX_CODE_LENGTH = 15;

/** Code lengths for symbol frequencies (0 for an absent symbol), no longer than MAX_CODE_LENGTH. */
export function codeLengths(frequencies: readonly number[]): number[] {
  let counts = frequencies.slice();
  for (;;) {
    const lengths = unlimitedLengths(counts);
    if (Math.max(0, ...lengths) <= MAX_CODE_LENGTH) return lengths;
    // too deep: flatten the distribution (zlib's approach, rarely needed) and build again
    counts = counts.map((c) => (c === 0 ? 0 : (c >> 1) | 1));
  }
}

/** Huffman's construction; a lone symbol gets length 1. */
function unlimitedLengths(frequencies: readonly number[]): number[] {
  const lengths = frequencies.map(() => 0);
  type Node = { weight: number; symbols: number[] };
  let nodes: Node[] = [];
  frequencies.forEach((f, s) => {
    if (f > 0) nodes.push({ weight: f, symbols: [s] });
  });
  if (nodes.length === 1) lengths[nodes[0].symbols[0]] = 1;
  while (nodes.length > 1) {
    nodes.sort((a, b) => a.weight - b.weight);
    const [a, b] = nodes;
    for (const s of a.symbols) lengths[s]++;
    for (const s of b.symbols) lengths[s]++;
    nodes = [{ weight: a.weight + b.weight, symbols: [...a.symbols, ...b.symbols] }, ...nodes.slice(2)];
  }
  return lengths;
}

/** Canonical codes of the lengths: codes[s] for the symbols with lengths[s] > 0. */
function canonicalCodes(lengths: readonly number[]): number[] {
  const codes = lengths.map(() => 0);
  let code = 0;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    for (let s = 0; s < lengths.length; s++) if (lengths[s] === length) codes[s] = code++;
    code <<= 1;
  }
  return codes;
}

/** The stream of `symbols` (bytes), header included. */
export function huffmanEncode(symbols: Uint8Array): Uint8Array {
  const frequencies = new Array<number>(256).fill(0);
  for (const s of symbols) frequencies[s]++;
  let m = 0;
  for (let s = 0; s < 256; s++) if (frequencies[s] > 0) m = s;
  const lengths = codeLengths(frequencies.slice(0, m + 1));
  const codes = canonicalCodes(lengths);
  let bits = 0;
  for (const s of symbols) bits += lengths[s];
  const tableBytes = (m + 2) >> 1;
  const codeBytes = Math.ceil(bits / 8);
  const out = new Uint8Array(9 + tableBytes + codeBytes);
  const view = new DataView(out.buffer);
  view.setUint32(0, symbols.length, true);
  view.setUint32(4, codeBytes, true);
  out[8] = m;
  for (let s = 0; s <= m; s++) out[9 + (s >> 1)] |= lengths[s] << (4 * (s & 1));
  let at = 8 * (9 + tableBytes);
  for (const s of symbols) {
    const length = lengths[s];
    const code = codes[s];
    for (let b = length - 1; b >= 0; b--, at++) if ((code >> b) & 1) out[at >> 3] |= 0x80 >> (at & 7);
  }
  return out;
}

/**
 * Decodes the stream starting at `bytes[offset]`; returns the symbols and the offset after it.
 * Refuses, before allocating, a symbol count the code bits cannot hold (every code is ≥ 1 bit) and
 * lengths beyond the buffer; then an over-subscribed table, a bit pattern that is no code and
 * code bits that end early. Messages are plain Errors naming `what`.
 */
export function huffmanDecode(
  bytes: Uint8Array,
  offset: number,
  what: string,
): { symbols: Uint8Array; end: number } {
  const left = bytes.length - offset;
  if (left < 9) throw new Error(`${what}: truncated coded stream header at offset ${offset}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(offset, true);
  const codeBytes = view.getUint32(offset + 4, true);
  const m = bytes[offset + 8];
  const tableBytes = (m + 2) >> 1;
  if (9 + tableBytes + codeBytes > left) {
    throw new Error(
      `${what}: the coded stream announces ${9 + tableBytes + codeBytes} bytes at offset ${offset}, the file has ${left} left`,
    );
  }
  if (count > 8 * codeBytes) {
    throw new Error(
      `${what}: ${count} symbols cannot fit in ${codeBytes} bytes of code (at least 1 bit each)`,
    );
  }
  const lengths: number[] = [];
  for (let s = 0; s <= m; s++) lengths.push((bytes[offset + 9 + (s >> 1)] >> (4 * (s & 1))) & 15);
  // counts per length and the symbols in canonical order (puff.c's decoding tables)
  const perLength = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  for (const length of lengths) perLength[length]++;
  perLength[0] = 0;
  let available = 1;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    available = 2 * available - perLength[length];
    if (available < 0) throw new Error(`${what}: the code lengths are over-subscribed`);
  }
  const ordered: number[] = [];
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    for (let s = 0; s <= m; s++) if (lengths[s] === length) ordered.push(s);
  }
  const symbols = new Uint8Array(count);
  let at = 8 * (offset + 9 + tableBytes);
  const endBit = at + 8 * codeBytes;
  for (let n = 0; n < count; n++) {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let length = 1; ; length++) {
      if (length > MAX_CODE_LENGTH) throw new Error(`${what}: symbol ${n} is not a valid code`);
      if (at >= endBit) throw new Error(`${what}: the code bits end before symbol ${n} of ${count}`);
      code |= (bytes[at >> 3] >> (7 - (at & 7))) & 1;
      at++;
      const c = perLength[length];
      if (code - first < c) {
        symbols[n] = ordered[index + code - first];
        break;
      }
      index += c;
      first = (first + c) << 1;
      code <<= 1;
    }
  }
  return { symbols, end: offset + 9 + tableBytes + codeBytes };
}
