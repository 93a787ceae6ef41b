/**
 * Reading and validating `.ecsr` bytes (docs/FORMAT-ECSR.md). Errors are plain `Error`s whose
 * message names the layer and the array index: the runtime cannot depend on the library's
 * EcpruneError, and the library wraps these messages with the file name.
 */
import { ACTIVATION_CODES, hasAlpha, type SparseActivation } from './activations.js';
import { huffmanDecode } from './huffman.js';
import type { CsrMatrix, IndexArray } from './kernels.js';

export const ECSR_MAGIC = 'ECSR';
/** Version 1: float32 or float16 values, plain CSR arrays. */
export const ECSR_VERSION = 1;
/** Version 2: quantised values (int8 per row, or a codebook per layer), entropy-coded with the column gaps. */
export const ECSR_VERSION_QUANTIZED = 2;
export const ECSR_HEADER_BYTES = 16;
/** Layer record header without alpha; leaky_relu and elu add a float32 alpha. */
export const ECSR_LAYER_HEADER_BYTES = 16;
export const ECSR_FLAG_METADATA = 1;
export const ECSR_VALUE_TYPES = { float32: 1, float16: 2, int8: 3, codebook: 4 } as const;
export type EcsrValueType = keyof typeof ECSR_VALUE_TYPES;
/** The value types of each version. */
const VERSION_OF: Record<EcsrValueType, number> = { float32: 1, float16: 1, int8: 2, codebook: 2 };

/**
 * A layer's quantised weights, in the order of its stored (non-zero) weights, row by row (CSR
 * order). int8: weight = codes[k] · scales[row], codes in −127..127. codebook: weight =
 * centroids[indices[k]], 2^bits centroids (bits 2..8).
 */
export type QuantizedValues =
  | { readonly kind: 'int8'; readonly scales: Float32Array; readonly codes: Int8Array }
  | {
      readonly kind: 'codebook';
      readonly bits: number;
      readonly centroids: Float32Array;
      readonly indices: Uint8Array;
    };

/** Codebook sizes the format allows: 2^2 .. 2^8 entries. */
export const CODEBOOK_BITS = { min: 2, max: 8 } as const;

/** A layer as stored: CSR weights, bias, activation. The arrays may be views into the file bytes. */
export interface SparseLayer extends CsrMatrix {
  readonly nnz: number;
  readonly activation: SparseActivation;
}

export interface ParsedEcsr {
  readonly valueType: EcsrValueType;
  readonly metadata: Readonly<Record<string, string>>;
  readonly layers: readonly SparseLayer[];
}

export const pad4 = (n: number): number => (n + 3) & ~3;

/** IEEE binary16 bits → number (exact: every float16 is a float32). */
export function float16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : Number.NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/**
 * The shortest decimal that rounds to the same float32: alpha is stored as float32, and this turns
 * 0.009999999776 back into the 0.01 the user wrote.
 */
export function shortestFloat32(v: number): number {
  for (let digits = 1; digits < 10; digits++) {
    const candidate = Number(v.toPrecision(digits));
    if (Math.fround(candidate) === v) return candidate;
  }
  return v;
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type ArrayKind = 'u8' | 'u16' | 'u32' | 'f32';
const WIDTH_KIND: Record<number, ArrayKind | undefined> = { 1: 'u8', 2: 'u16', 4: 'u32' };

/** Walks the file with a cursor; every read is bounds-checked so truncation is reported, not thrown as RangeError. */
class Reader {
  private readonly view: DataView;
  offset = 0;
  constructor(
    readonly bytes: Uint8Array,
    private readonly where: () => string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.byteLength;
  }

  need(size: number, what: string): void {
    if (this.offset + size > this.length) {
      throw new Error(
        `truncated .ecsr file: ${this.where()}${what} needs ${size} bytes at offset ${this.offset}, the file has ${this.length - this.offset} left`,
      );
    }
  }

  u8(): number {
    this.need(1, 'a field');
    return this.view.getUint8(this.offset++);
  }

  u16(): number {
    this.need(2, 'a field');
    const v = this.view.getUint16(this.offset, true);
    this.offset += 2;
    return v;
  }

  u32(): number {
    this.need(4, 'a field');
    const v = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return v;
  }

  f32(): number {
    this.need(4, 'a field');
    const v = this.view.getFloat32(this.offset, true);
    this.offset += 4;
    return v;
  }

  skipPadding(): void {
    const end = pad4(this.offset);
    this.need(end - this.offset, 'padding');
    for (; this.offset < end; this.offset++) {
      if (this.bytes[this.offset] !== 0) {
        throw new Error(`${this.where()}non-zero padding byte at offset ${this.offset}`);
      }
    }
  }

  /**
   * `count` elements as a typed array: a view into the file when the host is little-endian and the
   * position is aligned (the format makes it so when the buffer is), otherwise a decoded copy.
   */
  array(kind: ArrayKind, count: number, what: string): IndexArray | Float32Array {
    const size = kind === 'u8' ? 1 : kind === 'u16' ? 2 : 4;
    this.need(count * size, what);
    const at = this.bytes.byteOffset + this.offset;
    let out: IndexArray | Float32Array;
    if (littleEndianHost && at % size === 0) {
      const buffer = this.bytes.buffer;
      out =
        kind === 'u8'
          ? new Uint8Array(buffer, at, count)
          : kind === 'u16'
            ? new Uint16Array(buffer, at, count)
            : kind === 'u32'
              ? new Uint32Array(buffer, at, count)
              : new Float32Array(buffer, at, count);
    } else {
      const v = this.view;
      const o = this.offset;
      if (kind === 'u8') out = this.bytes.slice(o, o + count);
      else if (kind === 'u16') {
        out = Uint16Array.from({ length: count }, (_, i) => v.getUint16(o + 2 * i, true));
      } else if (kind === 'u32')
        out = Uint32Array.from({ length: count }, (_, i) => v.getUint32(o + 4 * i, true));
      else out = Float32Array.from({ length: count }, (_, i) => v.getFloat32(o + 4 * i, true));
    }
    this.offset += count * size;
    this.skipPadding();
    return out;
  }

  float16Array(count: number, what: string): Float32Array {
    this.need(count * 2, what);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = float16ToNumber(this.view.getUint16(this.offset + 2 * i, true));
    this.offset += count * 2;
    this.skipPadding();
    return out;
  }
}

function checkFinite(values: Float32Array, name: string, where: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new Error(`${where}${name}[${i}] is ${values[i]}, not a finite number`);
    }
  }
}

function readMetadata(r: Reader): Record<string, string> {
  const length = r.u32();
  r.need(length, 'the metadata block');
  const at = r.offset;
  let parsed: unknown;
  try {
    // `fatal` rejects invalid UTF-8 instead of silently substituting U+FFFD
    const text = new TextDecoder('utf-8', { fatal: true }).decode(r.bytes.subarray(at, at + length));
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`the metadata block is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error('the metadata block is not a JSON object');
  }
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== 'string') throw new Error(`metadata '${key}' is not a string`);
  }
  r.offset = at + length;
  r.skipPadding();
  return parsed as Record<string, string>;
}

/**
 * The start of a record in both versions: shape and nnz (checked), the activation code (checked)
 * and the three bytes at offsets 13–15, whose meaning depends on the version.
 */
function readRecordStart(r: Reader, l: number, previousOut: number | undefined) {
  const where = `layer ${l}: `;
  const nOut = r.u32();
  const nIn = r.u32();
  const nnz = r.u32();
  const code = r.u8();
  const bytes = [r.u8(), r.u8(), r.u8()] as const;
  if (nOut === 0 || nIn === 0) throw new Error(`${where}invalid shape ${nOut}x${nIn}`);
  if (previousOut !== undefined && nIn !== previousOut) {
    throw new Error(`${where}takes ${nIn} inputs but layer ${l - 1} has ${previousOut} outputs`);
  }
  if (nnz > nOut * nIn) throw new Error(`${where}nnz ${nnz} exceeds ${nOut}x${nIn} = ${nOut * nIn}`);
  const kind = ACTIVATION_CODES[code];
  if (kind === undefined) throw new Error(`${where}unknown activation code ${code}`);
  return { where, nOut, nIn, nnz, kind, bytes };
}

/** The activation of `kind`, reading its float32 alpha when it takes one. */
function readActivation(r: Reader, kind: SparseActivation['kind'], where: string): SparseActivation {
  if (!hasAlpha(kind)) return { kind } as SparseActivation;
  const alpha = r.f32();
  if (!Number.isFinite(alpha)) throw new Error(`${where}${kind} alpha is ${alpha}, not a finite number`);
  return { kind, alpha: shortestFloat32(alpha) };
}

function readLayer(
  r: Reader,
  l: number,
  valueType: EcsrValueType,
  previousOut: number | undefined,
): SparseLayer {
  const { where, nOut, nIn, nnz, kind, bytes } = readRecordStart(r, l, previousOut);
  const [colWidth, rowWidth, reserved] = bytes;
  const colKind = WIDTH_KIND[colWidth];
  const rowKind = WIDTH_KIND[rowWidth];
  if (colKind === undefined) {
    throw new Error(`${where}invalid column index width ${colWidth} (expected 1, 2 or 4)`);
  }
  if (rowKind === undefined) {
    throw new Error(`${where}invalid row pointer width ${rowWidth} (expected 1, 2 or 4)`);
  }
  if (nnz > 2 ** (8 * rowWidth) - 1) {
    throw new Error(`${where}row pointer width ${rowWidth} cannot hold nnz ${nnz}`);
  }
  if (reserved !== 0) throw new Error(`${where}reserved byte is ${reserved}, expected 0`);
  const activation = readActivation(r, kind, where);

  // one size check for the whole record, so a corrupt nnz is reported before anything is allocated
  const valueSize = valueType === 'float32' ? 4 : 2;
  const bodyBytes = pad4((nOut + 1) * rowWidth) + pad4(nnz * colWidth) + pad4(nnz * valueSize) + 4 * nOut;
  r.need(bodyBytes, `the ${nOut}x${nIn} layer with ${nnz} weights`);

  const rowPtr = r.array(rowKind, nOut + 1, 'row_ptr') as IndexArray;
  const colIdx = r.array(colKind, nnz, 'col_idx') as IndexArray;
  const values =
    valueType === 'float32' ? (r.array('f32', nnz, 'values') as Float32Array) : r.float16Array(nnz, 'values');
  const bias = r.array('f32', nOut, 'bias') as Float32Array;

  if (rowPtr[0] !== 0) throw new Error(`${where}row_ptr[0] is ${rowPtr[0]}, expected 0`);
  for (let i = 0; i < nOut; i++) {
    const start = rowPtr[i];
    const end = rowPtr[i + 1];
    if (end < start) {
      throw new Error(
        `${where}row_ptr is not monotone: row_ptr[${i + 1}] = ${end} < row_ptr[${i}] = ${start}`,
      );
    }
    if (end > nnz) throw new Error(`${where}row_ptr[${i + 1}] = ${end} exceeds nnz ${nnz}`);
    let previous = -1;
    for (let k = start; k < end; k++) {
      const j = colIdx[k];
      if (j >= nIn) {
        throw new Error(`${where}col_idx[${k}] = ${j} is out of range (n_in = ${nIn}) in row ${i}`);
      }
      if (j <= previous) {
        throw new Error(
          `${where}col_idx[${k}] = ${j} is not above the previous index ${previous} in row ${i}`,
        );
      }
      previous = j;
    }
  }
  if (rowPtr[nOut] !== nnz) {
    throw new Error(`${where}row_ptr[${nOut}] is ${rowPtr[nOut]}, expected nnz = ${nnz}`);
  }
  checkFinite(values, 'values', where);
  checkFinite(bias, 'bias', where);
  return { nOut, nIn, nnz, activation, rowPtr, colIdx, values, bias };
}

/** Decodes one coded stream at the reader's position and moves past it. */
function codedStream(r: Reader, what: string): Uint8Array {
  const { symbols, end } = huffmanDecode(r.bytes, r.offset, what);
  r.offset = end;
  return symbols;
}

/**
 * A version-2 record (docs/FORMAT-ECSR.md): the shape, the activation, the bias, the scales or the
 * codebook, then three coded streams (row lengths, column gaps, value symbols), decoded here into
 * the same CSR arrays as version 1, with dequantised float32 values.
 */
function readQuantizedLayer(
  r: Reader,
  l: number,
  valueType: EcsrValueType,
  previousOut: number | undefined,
): SparseLayer {
  const { where, nOut, nIn, nnz, kind, bytes } = readRecordStart(r, l, previousOut);
  const [bits, reservedLow, reservedHigh] = bytes;
  const int8 = valueType === 'int8';
  if (int8 ? bits !== 8 : bits < CODEBOOK_BITS.min || bits > CODEBOOK_BITS.max) {
    throw new Error(`${where}invalid bits ${bits} (${int8 ? '8 for int8' : '2 to 8 for a codebook'})`);
  }
  if (reservedLow !== 0 || reservedHigh !== 0) throw new Error(`${where}reserved bytes are not 0`);
  const activation = readActivation(r, kind, where);
  const tableSize = int8 ? nOut : 2 ** bits;
  r.need(4 * (nOut + tableSize), `the ${nOut}x${nIn} layer's bias and ${int8 ? 'scales' : 'codebook'}`);
  const bias = r.array('f32', nOut, 'bias') as Float32Array;
  const table = r.array('f32', tableSize, int8 ? 'scales' : 'codebook') as Float32Array;
  checkFinite(bias, 'bias', where);
  checkFinite(table, int8 ? 'scales' : 'codebook', where);

  // each stream checks its symbol count against its size before allocating
  const rowLengths = codedStream(r, `${where}row lengths`);
  const gaps = codedStream(r, `${where}column gaps`);
  const symbols = codedStream(r, `${where}values`);
  r.skipPadding();
  if (symbols.length !== nnz)
    throw new Error(`${where}${symbols.length} value symbols, expected nnz = ${nnz}`);

  const rowPtr = new Uint32Array(nOut + 1);
  const colIdx = nIn <= 0x10000 ? new Uint16Array(nnz) : new Uint32Array(nnz);
  const values = new Float32Array(nnz);
  let p = 0; // position in rowLengths
  let g = 0; // position in gaps
  let k = 0;
  for (let i = 0; i < nOut; i++) {
    // LEB128: 7 bits per byte, low bits first
    let length = 0;
    for (let shift = 0; ; shift += 7) {
      if (p >= rowLengths.length) throw new Error(`${where}the row lengths end before row ${i}`);
      if (shift > 28) throw new Error(`${where}row ${i}: the row length is too long a number`);
      const byte = rowLengths[p++];
      length += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
    }
    if (length > nIn || k + length > nnz) {
      throw new Error(`${where}row ${i} has ${length} weights: more than n_in ${nIn} or the nnz ${nnz} left`);
    }
    let column = -1;
    for (let e = 0; e < length; e++, k++) {
      // a gap is a run of 255s plus a last byte below 255: column = previous + 1 + gap
      let gap = 0;
      for (;;) {
        if (g >= gaps.length) throw new Error(`${where}the column gaps end in row ${i}`);
        const byte = gaps[g++];
        gap += byte;
        if (byte < 255) break;
        if (gap > nIn) throw new Error(`${where}row ${i}: a column gap passes n_in ${nIn}`);
      }
      column += 1 + gap;
      if (column >= nIn)
        throw new Error(`${where}row ${i}: column ${column} is out of range (n_in = ${nIn})`);
      colIdx[k] = column;
      const symbol = symbols[k];
      if (int8) {
        if (symbol === 0) throw new Error(`${where}value ${k} is the int8 code -128 (codes are -127..127)`);
        values[k] = (symbol - 128) * table[i];
      } else {
        if (symbol >= tableSize)
          throw new Error(`${where}value ${k} is codebook index ${symbol} of ${tableSize}`);
        values[k] = table[symbol];
      }
    }
    rowPtr[i + 1] = k;
  }
  if (k !== nnz) throw new Error(`${where}the rows hold ${k} weights, expected nnz = ${nnz}`);
  if (p !== rowLengths.length || g !== gaps.length) {
    throw new Error(`${where}unused symbols after the last row (row lengths or column gaps)`);
  }
  return { nOut, nIn, nnz, activation, rowPtr, colIdx, values, bias };
}

export function parseEcsr(input: ArrayBuffer | Uint8Array): ParsedEcsr {
  let bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  // Views need the file's start 4-aligned in its buffer; otherwise copy once so that they can be taken.
  if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice();
  let layerIndex = -1;
  const r = new Reader(bytes, () => (layerIndex >= 0 ? `layer ${layerIndex}: ` : ''));

  if (bytes.byteLength < 4 || String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]) !== ECSR_MAGIC) {
    const found = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new Error(`not an .ecsr file: the magic is '${found}', expected 'ECSR' (45 43 53 52)`);
  }
  r.offset = 4;
  const version = r.u16();
  if (version !== ECSR_VERSION && version !== ECSR_VERSION_QUANTIZED) {
    throw new Error(
      `unsupported .ecsr version ${version} (this runtime reads ${ECSR_VERSION} and ${ECSR_VERSION_QUANTIZED})`,
    );
  }
  const flags = r.u16();
  if ((flags & ~ECSR_FLAG_METADATA) !== 0) throw new Error(`unknown .ecsr flags 0x${flags.toString(16)}`);
  const layerCount = r.u32();
  if (layerCount === 0) throw new Error('the .ecsr file has no layers');
  const typeCode = r.u8();
  const valueType = (Object.keys(ECSR_VALUE_TYPES) as EcsrValueType[]).find(
    (t) => ECSR_VALUE_TYPES[t] === typeCode,
  );
  if (valueType === undefined || VERSION_OF[valueType] !== version) {
    throw new Error(
      `unknown value type ${typeCode} for version ${version} (expected ${version === 1 ? '1 = float32 or 2 = float16' : '3 = int8 or 4 = codebook'})`,
    );
  }
  for (let i = 0; i < 3; i++) if (r.u8() !== 0) throw new Error(`header reserved byte ${13 + i} is not 0`);

  const metadata = flags & ECSR_FLAG_METADATA ? readMetadata(r) : {};
  const layers: SparseLayer[] = [];
  for (let l = 0; l < layerCount; l++) {
    layerIndex = l;
    // each record needs at least its header: a huge corrupt layer count fails here, not in a loop
    r.need(ECSR_LAYER_HEADER_BYTES, `the record header (the file announces ${layerCount} layers)`);
    const previousOut = layers[l - 1]?.nOut;
    layers.push(
      version === ECSR_VERSION
        ? readLayer(r, l, valueType, previousOut)
        : readQuantizedLayer(r, l, valueType, previousOut),
    );
  }
  if (r.offset !== r.length) {
    throw new Error(`${r.length - r.offset} unexpected bytes after the last layer (offset ${r.offset})`);
  }
  return { valueType, metadata, layers };
}
