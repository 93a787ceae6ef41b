/**
 * `.ecsr`, the compact sparse deployment format (docs/FORMAT-ECSR.md): write from an Mlp, and read
 * back into a dense Mlp through the runtime's own loader, so the library and `ecprune/runtime` can
 * never disagree about what a file means.
 */
import { EcpruneError } from '../errors.js';
import type { Activation } from '../model/activations.js';
import { matrix } from '../model/matrix.js';
import { type Layer, type Mlp, validateMlp } from '../model/mlp.js';
import {
  ACTIVATION_CODES,
  CODEBOOK_BITS,
  ECSR_FLAG_METADATA,
  ECSR_HEADER_BYTES,
  ECSR_LAYER_HEADER_BYTES,
  ECSR_MAGIC,
  ECSR_VALUE_TYPES,
  ECSR_VERSION,
  ECSR_VERSION_QUANTIZED,
  type EcsrValueType,
  hasAlpha,
  huffmanEncode,
  loadEcsr,
  pad4,
  type QuantizedValues,
} from '../runtime/index.js';

export interface WriteEcsrOptions {
  /** float16 halves the size of the weights; biases always stay float32. Default float32 (version 1). */
  readonly valueType?: 'float32' | 'float16';
  /**
   * Quantised values of every layer (src/quantize), in the order of the layer's non-zero weights:
   * writes version 2, all layers int8 or all codebooks. `valueType` must then be left out.
   */
  readonly quantized?: readonly QuantizedValues[];
  /** Stored as a UTF-8 JSON object (source file, pruning settings, ...). */
  readonly metadata?: Record<string, string>;
}

/** Smallest of 1, 2, 4 bytes that holds `max`. */
const widthFor = (max: number): 1 | 2 | 4 => (max <= 0xff ? 1 : max <= 0xffff ? 2 : 4);

/** The smallest magnitude that rounds to float16 infinity: halfway between 65504 (the largest float16) and 2^16. */
const FLOAT16_LIMIT = 65520;

/** number → IEEE binary16 bits, round to nearest, ties to even (subnormals included); |v| < 65520. */
export function float16Bits(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  const roundEven = (x: number) => {
    const r = Math.round(x);
    return r - x === 0.5 && r % 2 === 1 ? r - 1 : r;
  };
  // subnormal range: multiples of 2^-24. A result of 1024 is 0x0400, the smallest normal: still right.
  if (a < 2 ** -14) return sign | roundEven(a * 2 ** 24);
  let e = Math.floor(Math.log2(a));
  // Math.log2 may be off by one ulp next to powers of two: make sure 2^e <= a < 2^(e+1)
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  // 1024 + mantissa in [1024, 2048]; 2048 carries into the exponent field, which is again right
  const significand = roundEven(a * 2 ** (10 - e));
  return sign | (((e + 15) << 10) + significand - 1024);
}

/**
 * CSR of the non-zero weights. `values` holds float32 values, or float16 bits when asked for
 * float16; weights that round to zero in float16 are dropped too.
 */
function toCsr(layer: Layer, l: number, valueType: EcsrValueType) {
  const { rows, cols, data } = layer.weight;
  const rowPtr = [0];
  const colIdx: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let w = data[i * cols + j];
      if (w === 0) continue;
      if (valueType === 'float16') {
        if (Math.abs(w) >= FLOAT16_LIMIT) {
          throw new EcpruneError(
            'unsupported',
            `weight [${i}, ${j}] = ${w} is outside the float16 range (|w| < 65520); write float32 values instead`,
            undefined,
            `layer ${l}`,
          );
        }
        w = float16Bits(w);
        if ((w & 0x7fff) === 0) continue;
      }
      colIdx.push(j);
      values.push(w);
    }
    rowPtr.push(colIdx.length);
  }
  return { rowPtr, colIdx, values };
}

/** The metadata block's JSON bytes, checked. */
function metadataBytesOf(metadata: Record<string, string> | undefined): Uint8Array | undefined {
  if (metadata === undefined) return undefined;
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw new EcpruneError('usage', `metadata '${key}' must be a string`);
  }
  return new TextEncoder().encode(JSON.stringify(metadata));
}

/** Growing little-endian byte output, for the version-2 records whose size is known only once coded. */
class ByteSink {
  private chunks: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  private typed(view: (d: DataView) => void, size: number): void {
    const b = new Uint8Array(size);
    view(new DataView(b.buffer));
    this.bytes(b);
  }
  u8(v: number): void {
    this.bytes(Uint8Array.of(v));
  }
  u16(v: number): void {
    this.typed((d) => d.setUint16(0, v, true), 2);
  }
  u32(v: number): void {
    this.typed((d) => d.setUint32(0, v, true), 4);
  }
  f32s(values: ArrayLike<number>): void {
    this.typed((d) => {
      for (let i = 0; i < values.length; i++) d.setFloat32(4 * i, values[i], true);
    }, 4 * values.length);
  }
  pad(): void {
    this.bytes(new Uint8Array(pad4(this.length) - this.length));
  }
  result(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/**
 * The three symbol streams of a version-2 layer: row lengths (LEB128 bytes), column gaps (runs of
 * 255 plus a last byte), value symbols (int8 code + 128, or the codebook index).
 */
export function quantizedStreams(
  layer: Layer,
  q: QuantizedValues,
): { rowLengths: Uint8Array; gaps: Uint8Array; values: Uint8Array } {
  const { rows, cols, data } = layer.weight;
  const rowLengths: number[] = [];
  const gaps: number[] = [];
  for (let i = 0; i < rows; i++) {
    let length = 0;
    let previous = -1;
    for (let j = 0; j < cols; j++) {
      if (data[i * cols + j] === 0) continue;
      length++;
      let gap = j - previous - 1;
      for (; gap >= 255; gap -= 255) gaps.push(255);
      gaps.push(gap);
      previous = j;
    }
    for (; length >= 0x80; length = Math.floor(length / 128)) rowLengths.push(0x80 | (length & 0x7f));
    rowLengths.push(length);
  }
  const values = q.kind === 'int8' ? Uint8Array.from(q.codes, (c) => c + 128) : q.indices.slice();
  return { rowLengths: Uint8Array.from(rowLengths), gaps: Uint8Array.from(gaps), values };
}

/** Checks that `q` fits layer `l` (one value per non-zero weight, tables of the right size, finite). */
function checkQuantized(layer: Layer, q: QuantizedValues, l: number): void {
  const fail = (message: string) => {
    throw new EcpruneError('usage', message, undefined, `layer ${l}`);
  };
  let nnz = 0;
  for (const w of layer.weight.data) if (w !== 0) nnz++;
  if (q.kind === 'int8') {
    if (q.codes.length !== nnz) fail(`${q.codes.length} int8 codes for ${nnz} non-zero weights`);
    if (q.scales.length !== layer.weight.rows)
      fail(`${q.scales.length} scales for ${layer.weight.rows} rows`);
    if (q.codes.some((c) => c === -128)) fail('int8 code -128 (codes are -127..127)');
    if (!q.scales.every(Number.isFinite)) fail('a scale is not finite');
  } else {
    if (!Number.isInteger(q.bits) || q.bits < CODEBOOK_BITS.min || q.bits > CODEBOOK_BITS.max) {
      fail(`codebook bits ${q.bits} (expected ${CODEBOOK_BITS.min} to ${CODEBOOK_BITS.max})`);
    }
    if (q.centroids.length !== 2 ** q.bits) fail(`${q.centroids.length} centroids for ${q.bits} bits`);
    if (q.indices.length !== nnz) fail(`${q.indices.length} codebook indices for ${nnz} non-zero weights`);
    if (q.indices.some((v) => v >= q.centroids.length)) fail('a codebook index is beyond the codebook');
    if (!q.centroids.every(Number.isFinite)) fail('a centroid is not finite');
  }
}

/** Version 2 (docs/FORMAT-ECSR.md): quantised values and entropy-coded streams. */
function writeQuantizedEcsr(
  mlp: Mlp,
  quantized: readonly QuantizedValues[],
  metadata?: Uint8Array,
): Uint8Array {
  if (quantized.length !== mlp.layers.length) {
    throw new EcpruneError('usage', `${quantized.length} quantised layers for ${mlp.layers.length} layers`);
  }
  const kind = quantized[0].kind;
  if (quantized.some((q) => q.kind !== kind)) {
    throw new EcpruneError('usage', 'every layer of a .ecsr file has the same value type (int8 or codebook)');
  }
  const out = new ByteSink();
  out.bytes(new TextEncoder().encode(ECSR_MAGIC));
  out.u16(ECSR_VERSION_QUANTIZED);
  out.u16(metadata ? ECSR_FLAG_METADATA : 0);
  out.u32(mlp.layers.length);
  out.bytes(Uint8Array.of(ECSR_VALUE_TYPES[kind], 0, 0, 0));
  if (metadata) {
    out.u32(metadata.length);
    out.bytes(metadata);
    out.pad();
  }
  mlp.layers.forEach((layer, l) => {
    const q = quantized[l];
    checkQuantized(layer, q, l);
    const act = layer.activation;
    out.u32(layer.weight.rows);
    out.u32(layer.weight.cols);
    out.u32(q.kind === 'int8' ? q.codes.length : q.indices.length);
    out.u8(ACTIVATION_CODES.indexOf(act.kind));
    out.u8(q.kind === 'int8' ? 8 : q.bits);
    out.u16(0);
    if (act.kind === 'leaky_relu' || act.kind === 'elu') out.f32s([act.alpha]);
    out.f32s(layer.bias);
    out.f32s(q.kind === 'int8' ? q.scales : q.centroids);
    const { rowLengths, gaps, values } = quantizedStreams(layer, q);
    for (const stream of [rowLengths, gaps, values]) out.bytes(huffmanEncode(stream));
    out.pad();
  });
  return out.result();
}

/**
 * Writes `mlp` as `.ecsr` bytes. Zero weights are not stored. With `quantized`, version 2 with
 * the given quantised values; otherwise version 1 with float32 or float16 values.
 */
export function writeEcsr(mlp: Mlp, options: WriteEcsrOptions = {}): Uint8Array {
  validateMlp(mlp);
  const metadataBytes = metadataBytesOf(options.metadata);
  if (options.quantized !== undefined) {
    if (options.valueType !== undefined) {
      throw new EcpruneError('usage', 'quantised values replace the value type: give one or the other');
    }
    return writeQuantizedEcsr(mlp, options.quantized, metadataBytes);
  }
  const valueType: EcsrValueType = options.valueType ?? 'float32';
  if (valueType !== 'float32' && valueType !== 'float16') {
    throw new EcpruneError('usage', `unknown .ecsr value type '${valueType}'`);
  }
  const valueSize = valueType === 'float32' ? 4 : 2;

  const parts = mlp.layers.map((layer, l) => toCsr(layer, l, valueType));
  let size = ECSR_HEADER_BYTES + (metadataBytes ? 4 + pad4(metadataBytes.length) : 0);
  const layouts = mlp.layers.map((layer, l) => {
    const nnz = parts[l].colIdx.length;
    const rowWidth = widthFor(nnz);
    const colWidth = widthFor(layer.weight.cols - 1);
    size +=
      ECSR_LAYER_HEADER_BYTES +
      (hasAlpha(layer.activation.kind) ? 4 : 0) +
      pad4((layer.weight.rows + 1) * rowWidth) +
      pad4(nnz * colWidth) +
      pad4(nnz * valueSize) +
      4 * layer.weight.rows;
    return { nnz, rowWidth, colWidth };
  });

  // A fresh buffer is zero-filled, so every reserved and padding byte is already 0.
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  let at = 0;
  const u8 = (v: number) => view.setUint8(at++, v);
  const u16 = (v: number) => {
    view.setUint16(at, v, true);
    at += 2;
  };
  const u32 = (v: number) => {
    view.setUint32(at, v, true);
    at += 4;
  };
  const f32 = (v: number) => {
    view.setFloat32(at, v, true);
    at += 4;
  };
  const ints = (values: readonly number[], width: 1 | 2 | 4) => {
    for (const v of values) (width === 1 ? u8 : width === 2 ? u16 : u32)(v);
    at = pad4(at);
  };

  for (let i = 0; i < 4; i++) u8(ECSR_MAGIC.charCodeAt(i));
  u16(ECSR_VERSION);
  u16(metadataBytes ? ECSR_FLAG_METADATA : 0);
  u32(mlp.layers.length);
  u8(ECSR_VALUE_TYPES[valueType]);
  at = ECSR_HEADER_BYTES;
  if (metadataBytes) {
    u32(metadataBytes.length);
    bytes.set(metadataBytes, at);
    at = pad4(at + metadataBytes.length);
  }
  mlp.layers.forEach((layer, l) => {
    const { rowPtr, colIdx, values } = parts[l];
    const { nnz, rowWidth, colWidth } = layouts[l];
    const act = layer.activation;
    u32(layer.weight.rows);
    u32(layer.weight.cols);
    u32(nnz);
    u8(ACTIVATION_CODES.indexOf(act.kind));
    u8(colWidth);
    u8(rowWidth);
    u8(0);
    if (act.kind === 'leaky_relu' || act.kind === 'elu') f32(act.alpha);
    ints(rowPtr, rowWidth);
    ints(colIdx, colWidth);
    if (valueType === 'float16') ints(values, 2);
    else for (const v of values) f32(v);
    for (const b of layer.bias) f32(b);
  });
  if (at !== size) throw new EcpruneError('internal', `.ecsr writer wrote ${at} bytes, planned ${size}`);
  return bytes;
}

/** 2^28 weights (1 GiB of float32): beyond any MLP ecprune prunes on one machine. */
const MAX_DENSE_WEIGHTS = 2 ** 28;

export interface ReadEcsrOptions {
  /**
   * The most weights (all layers, dense) the reader may allocate; default 2^28 (1 GiB of float32).
   * A sparse file is small whatever shape its headers declare (a forged n_in costs 4 bytes), so
   * the declared dense size is checked against this budget before anything dense is allocated:
   * a caller that holds a memory budget (a service reading untrusted files) passes its own.
   */
  readonly maxDenseWeights?: number;
}

/**
 * Reads `.ecsr` bytes into a dense Mlp (for pruning further, exporting to other formats, or
 * comparing). Validation is the runtime's; its messages become EcpruneError('input') naming `file`.
 * The dense matrices are allocated only when their declared size fits `maxDenseWeights`.
 */
export function readEcsrAsMlp(
  bytes: ArrayBuffer | Uint8Array,
  file?: string,
  options: ReadEcsrOptions = {},
): Mlp {
  let model: ReturnType<typeof loadEcsr>;
  try {
    model = loadEcsr(bytes);
  } catch (error) {
    throw new EcpruneError('input', error instanceof Error ? error.message : String(error), file);
  }
  const maxDenseWeights = options.maxDenseWeights ?? MAX_DENSE_WEIGHTS;
  const denseValues = model.layers.reduce((sum, layer) => sum + layer.nOut * layer.nIn, 0);
  if (denseValues > maxDenseWeights) {
    const shapes = model.layers.map((layer) => `${layer.nOut}x${layer.nIn}`).join(', ');
    throw new EcpruneError(
      'limit',
      `the layers (${shapes}) hold ${denseValues} weights once dense, more than the reader's budget of ${maxDenseWeights} (maxDenseWeights)`,
      file,
    );
  }
  const layers: Layer[] = model.layers.map((layer) => {
    const weight = matrix(layer.nOut, layer.nIn);
    for (let i = 0; i < layer.nOut; i++) {
      for (let k = layer.rowPtr[i]; k < layer.rowPtr[i + 1]; k++) {
        weight.data[i * layer.nIn + layer.colIdx[k]] = layer.values[k];
      }
    }
    // copies, so the Mlp never aliases the caller's bytes; the activation types are structurally equal
    return { weight, bias: layer.bias.slice(), activation: { ...layer.activation } as Activation };
  });
  return validateMlp({ layers }, file);
}
