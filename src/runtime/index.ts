/**
 * `ecprune/runtime`: loads a `.ecsr` file (docs/FORMAT-ECSR.md) and runs the sparse network.
 * Dependency-free by design — nothing here imports from outside src/runtime — so it works alone in
 * Node and in browsers. Synchronous and single-threaded.
 */
import { activateInPlace, type SparseActivation } from './activations.js';
import { type EcsrValueType, parseEcsr, type SparseLayer } from './format.js';
import {
  type KernelCsc,
  type KernelCsr,
  nonzeroIndices,
  scatterThreshold,
  spmmPanel,
  spmv,
  spmvScatter,
  toCsc,
  toKernelCsr,
} from './kernels.js';
import { createWasmForward, type WasmForward } from './wasm-kernels.js';

export { ACTIVATION_CODES, hasAlpha, type SparseActivation } from './activations.js';
export {
  CODEBOOK_BITS,
  ECSR_FLAG_METADATA,
  ECSR_HEADER_BYTES,
  ECSR_LAYER_HEADER_BYTES,
  ECSR_MAGIC,
  ECSR_VALUE_TYPES,
  ECSR_VERSION,
  ECSR_VERSION_QUANTIZED,
  type EcsrValueType,
  float16ToNumber,
  pad4,
  type QuantizedValues,
  type SparseLayer,
} from './format.js';
export { huffmanEncode } from './huffman.js';
export type { IndexArray } from './kernels.js';

export interface SparseModel {
  readonly layers: readonly SparseLayer[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly valueType: EcsrValueType;
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * Runs `batch` samples: `input` is row-major batch x inputSize, the result a new row-major
   * batch x outputSize array. Reuses internal buffers, so a model must not be run re-entrantly.
   */
  run(input: Float32Array, batch: number): Float32Array;
}

/**
 * Samples per feature-major panel for batches > 1. Bounds the scratch memory (2 x widest layer x
 * 64 floats) and keeps a panel in L2; 64 measured as fast as whole-batch panels at batch 256.
 */
const PANEL = 64;

/** What the kernels run for one layer (`layers` keeps the arrays as stored). */
interface KernelLayer {
  readonly csr: KernelCsr;
  readonly activation: SparseActivation;
  /** Batch 1 scatters when fewer inputs than this are non-zero (0: always gathers). */
  readonly scatterBelow: number;
  /**
   * The CSC copy, built on the first batch-1 run that scatters. It takes as much memory again as
   * the stored weights (784-1024-1024-10 at 90%: 1.07 MiB for a 1.08 MiB file), so it is built
   * only when used: never for a model only run in batches, nor for a layer whose inputs are never
   * sparse enough. That first run takes longer: building it measured 1–7 ms per 100k weights.
   */
  csc: KernelCsc | undefined;
}

class EcsrModel implements SparseModel {
  readonly inputSize: number;
  readonly outputSize: number;
  private readonly widest: number;
  private readonly kernels: readonly KernelLayer[];
  // Ping-pong scratch, grown on demand and reused across calls: steady-state runs allocate only
  // the returned array.
  private ping = new Float32Array(0);
  private pong = new Float32Array(0);
  /** Batch 1: the positions of a layer's non-zero inputs, and the scatter kernel's double sums. */
  private nonzero = new Int32Array(0);
  private sums = new Float64Array(0);
  /**
   * The WebAssembly kernels (wasm-kernels.ts): batch 1 with the same sums as the JavaScript
   * kernels, bit for bit, batches in float32 SIMD, at a fraction of the cost per weight. Made on
   * the first run (undefined until then), so that loading allocates only in proportion to the
   * file: a forged header's huge layer widths cost nothing until someone runs the model. `null`
   * where WebAssembly is unavailable or refuses the module; the model then runs the JavaScript
   * kernels below.
   */
  private wasm: WasmForward | null | undefined;

  constructor(
    readonly layers: readonly SparseLayer[],
    readonly valueType: EcsrValueType,
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.inputSize = layers[0].nIn;
    this.outputSize = layers[layers.length - 1].nOut;
    this.widest = Math.max(this.inputSize, ...layers.map((layer) => layer.nOut));
    this.kernels = layers.map((layer) => {
      const csr = toKernelCsr(layer);
      return { csr, activation: layer.activation, scatterBelow: scatterThreshold(csr), csc: undefined };
    });
  }

  private scratch(size: number): void {
    if (this.ping.length < size) {
      this.ping = new Float32Array(size);
      this.pong = new Float32Array(size);
    }
  }

  run(input: Float32Array, batch: number): Float32Array {
    if (!Number.isInteger(batch) || batch < 0) {
      throw new Error(`batch must be a non-negative integer, got ${batch}`);
    }
    if (input.length !== batch * this.inputSize) {
      throw new Error(
        `input has ${input.length} values, expected batch ${batch} x ${this.inputSize} inputs = ${batch * this.inputSize}`,
      );
    }
    const output = new Float32Array(batch * this.outputSize);
    if (batch === 0) return output;
    // batch 1 with its own cost model: the WebAssembly kernels' relative costs differ from the JS ones
    this.wasm ??= createWasmForward(this.kernels.map(({ csr, activation }) => ({ csr, activation }))) ?? null;
    if (batch === 1) {
      if (this.wasm !== null) this.wasm.run(input, output);
      else this.runOne(input, output);
    } else if (this.wasm?.runsBatches) {
      this.wasm.runBatch(input, output, batch);
    } else {
      for (let b0 = 0; b0 < batch; b0 += PANEL) this.runPanel(input, output, b0, Math.min(PANEL, batch - b0));
    }
    return output;
  }

  /**
   * Batch 1 on the JavaScript kernels, where WebAssembly is unavailable (`wasm` null).
   * Reads the caller's input directly and writes the last layer straight into `output`.
   * Each layer scatters by column when few enough of its inputs are non-zero (`scatterThreshold`),
   * else gathers by row. Listing the non-zero inputs costs ~1.3 ns per input, against ~1 ns per
   * weight that the scatter skips.
   */
  private runOne(input: Float32Array, output: Float32Array): void {
    this.scratch(this.widest);
    if (this.sums.length === 0) {
      this.nonzero = new Int32Array(Math.max(...this.layers.map((layer) => layer.nIn)));
      this.sums = new Float64Array(Math.max(...this.layers.map((layer) => layer.nOut)));
    }
    const kernels = this.kernels;
    let x = input;
    for (let l = 0; l < kernels.length; l++) {
      const layer = kernels[l];
      const { nIn, nOut } = layer.csr;
      const y = l === kernels.length - 1 ? output : x === this.ping ? this.pong : this.ping;
      const count = layer.scatterBelow > 0 ? nonzeroIndices(x, nIn, this.nonzero) : nIn;
      if (count < layer.scatterBelow) {
        layer.csc ??= toCsc(layer.csr);
        spmvScatter(layer.csc, x, this.nonzero, count, y, this.sums);
      } else {
        spmv(layer.csr, x, y);
      }
      activateInPlace(layer.activation, y, nOut);
      x = y;
    }
  }

  /**
   * Samples b0 .. b0+count−1: transposed into a feature-major panel whose width is padded to a
   * multiple of 4 (the kernel has no scalar tail; padding columns start at zero and never mix with
   * the real ones), run through every layer, transposed back.
   */
  private runPanel(input: Float32Array, output: Float32Array, b0: number, count: number): void {
    const width = (count + 3) & ~3;
    this.scratch(this.widest * width);
    const nIn = this.inputSize;
    let x = this.ping;
    let y = this.pong;
    if (count < width) x.fill(0, 0, nIn * width);
    for (let b = 0; b < count; b++) {
      const row = (b0 + b) * nIn;
      for (let j = 0; j < nIn; j++) x[j * width + b] = input[row + j];
    }
    for (const { csr, activation } of this.kernels) {
      spmmPanel(csr, x, y, width);
      activateInPlace(activation, y, csr.nOut * width);
      [x, y] = [y, x];
    }
    const nOut = this.outputSize;
    for (let b = 0; b < count; b++) {
      const row = (b0 + b) * nOut;
      for (let i = 0; i < nOut; i++) output[row + i] = x[i * width + b];
    }
  }
}

/**
 * Parses and validates `.ecsr` bytes. Throws a plain `Error` naming the problem (bad magic,
 * unsupported version, truncation, an index out of range, ...). Where it can, the model keeps views
 * into `bytes` instead of copies: do not modify the bytes while the model is in use.
 */
export function loadEcsr(bytes: ArrayBuffer | Uint8Array): SparseModel {
  const { layers, valueType, metadata } = parseEcsr(bytes);
  return new EcsrModel(layers, valueType, metadata);
}
