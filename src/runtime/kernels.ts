/**
 * Sparse kernels: y = W x + b. Sums are carried in JS doubles and rounded to float32 once per
 * output, so they are at least as accurate as the dense float32 GEMM.
 *
 * Batch 1 runs on the WebAssembly versions of `spmv`, `spmvScatter` and `nonzeroIndices`
 * (wasm-kernels.ts: the same sums bit for bit, ~2× faster) wherever WebAssembly is available; the
 * ones here are its fallback and the tests' second implementation. Batches > 1 run the
 * WebAssembly batch kernel, or `spmmPanel` where it is unavailable.
 *
 * Chosen by measurement (Node 20, x64, 2-core AMD EPYC VM shared with other jobs; the timings
 * below are the best of interleaved runs):
 * - batch 1: two kernels, picked per layer and per call by `scatterThreshold`:
 *   - `spmv`, a CSR row gather: ~0.9 ns per stored weight, whatever the input;
 *   - `spmvScatter`, a CSC column scatter over the non-zero inputs only: ~0.85 ns per weight it
 *     touches, plus ~5 ns per non-zero input. Real inputs are mostly zeros (MNIST pixels ~81%,
 *     ReLU activations ~50% in the bench's nets), where it does a fraction of the gather's work.
 *   Whole batch-1 pass, 64-input pools, gather only → both: 784-1024-1024-10 at 90%, MNIST digits
 *   230 → 79 µs, uniform random pixels 230 → 130 µs (with the index types below); 784-300-100-10
 *   at 90%: 33 → 13 µs and 32 → 27 µs.
 * - batch ≥ 2: holding 8 (or 4) samples in registers per stored weight, reading them contiguously
 *   from a feature-major panel, is 2–4× faster per sample than repeating the batch-1 loop (which
 *   reloads every index and weight per sample), and far faster than striding through batch-major
 *   data. V8 does not vectorise, so the register blocking is spelled out by hand.
 * - index arrays: one element type per array across all layers (`toKernelCsr`). The file stores
 *   u8/u16/u32 by size; a kernel fed several of them turns polymorphic, and the whole batch-1
 *   forward pass measured 20–25% slower (784-300-100-10 at 90%: 33.7 µs vs 25.7 µs; batch 256
 *   12% slower). Uint16 where every index fits, else Uint32, measured the same as Int32 throughout,
 *   at half the memory.
 * - all of these are typed-array loops, whose speed depends on the isolate: once any ArrayBuffer in
 *   it has been detached (transferred to a worker, WebAssembly memory grown, or by tsx's module
 *   loader), V8 checks every typed-array access for it and they run ~1.5× slower (784-1024-1024-10
 *   at 90%: 123 → 187 µs). The timings above are from clean isolates.
 */

export type IndexArray = Uint8Array | Uint16Array | Uint32Array;

/** A CSR matrix as stored in the file: any index width. */
export interface CsrMatrix {
  readonly nOut: number;
  readonly nIn: number;
  readonly rowPtr: IndexArray;
  readonly colIdx: IndexArray;
  readonly values: Float32Array;
  readonly bias: Float32Array;
}

/** Index arrays as the kernels read them: 16-bit unless some index needs 32. */
export type KernelIndexArray = Uint16Array | Uint32Array;

/** CSR with the kernels' index types: row i of W is values[rowPtr[i] .. rowPtr[i+1]). */
export interface KernelCsr {
  readonly nOut: number;
  readonly nIn: number;
  readonly rowPtr: Uint32Array;
  readonly colIdx: KernelIndexArray;
  readonly values: Float32Array;
  readonly bias: Float32Array;
}

/** The same weights by column: column j of W is values[colPtr[j] .. colPtr[j+1]), rows ascending. */
export interface KernelCsc {
  readonly nOut: number;
  readonly nIn: number;
  readonly colPtr: Uint32Array;
  readonly rowIdx: KernelIndexArray;
  readonly values: Float32Array;
  readonly bias: Float32Array;
}

/** `indices` (all below `bound`) as Uint16Array when they fit, else Uint32Array; no copy when already so. */
function kernelIndices(indices: IndexArray, bound: number): KernelIndexArray {
  if (bound <= 0x10000) return indices instanceof Uint16Array ? indices : Uint16Array.from(indices);
  return indices instanceof Uint32Array ? indices : Uint32Array.from(indices);
}

/**
 * The stored matrix with the kernels' index types. Copies only the arrays of another type: the row
 * pointers (n_out + 1 entries) unless stored as u32, the column indices if stored as u8 (n_in ≤ 256,
 * so small) or as u32 although n_in ≤ 65536.
 */
export function toKernelCsr(m: CsrMatrix): KernelCsr {
  const { nOut, nIn, values, bias } = m;
  const rowPtr = m.rowPtr instanceof Uint32Array ? m.rowPtr : Uint32Array.from(m.rowPtr);
  return { nOut, nIn, rowPtr, colIdx: kernelIndices(m.colIdx, nIn), values, bias };
}

/**
 * The CSC copy of `m` (a counting sort by column; rows stay ascending within a column). Costs as
 * much memory again as the weights themselves (4 bytes per value, 2 or 4 per row index), which is
 * why the runtime builds it only for a layer whose batch-1 input is sparse enough to use it.
 */
export function toCsc(m: KernelCsr): KernelCsc {
  const { nOut, nIn, rowPtr, colIdx, values } = m;
  const nnz = rowPtr[nOut];
  const colPtr = new Uint32Array(nIn + 1);
  for (let k = 0; k < nnz; k++) colPtr[colIdx[k] + 1]++;
  for (let j = 0; j < nIn; j++) colPtr[j + 1] += colPtr[j];
  const next = colPtr.slice(0, nIn);
  const rowIdx = nOut <= 0x10000 ? new Uint16Array(nnz) : new Uint32Array(nnz);
  const cscValues = new Float32Array(nnz);
  for (let i = 0; i < nOut; i++) {
    for (let k = rowPtr[i]; k < rowPtr[i + 1]; k++) {
      const at = next[colIdx[k]]++;
      rowIdx[at] = i;
      cscValues[at] = values[k];
    }
  }
  return { nOut, nIn, colPtr, rowIdx, values: cscValues, bias: m.bias };
}

/**
 * Writes the positions of the non-zero entries of x[0 .. n) to `nonzero` (≥ n entries) and returns
 * how many there are. ±0 is zero; NaN is not (it must reach the output). Branch-free, on the float
 * bits: ReLU activations are zero in a random half of the positions, where `if (x[j] !== 0)`
 * mispredicted about every other input and measured 4× slower (1024 inputs: 5.7 µs vs 1.4 µs).
 */
export function nonzeroIndices(x: Float32Array, n: number, nonzero: Int32Array): number {
  const bits = new Uint32Array(x.buffer, x.byteOffset, n);
  let count = 0;
  for (let j = 0; j < n; j++) {
    nonzero[count] = j;
    // without the sign bit, a non-zero float is a positive int32, and 0 minus it has bit 31 set
    count += (0 - (bits[j] & 0x7fffffff)) >>> 31;
  }
  return count;
}

/**
 * Relative costs of the two batch-1 kernels, with the gather's cost per stored weight as the unit:
 * the scatter costs 0.8 per weight it touches (the weights of the non-zero inputs) plus 6 per
 * non-zero input (a column's set-up and loop exits); their per-output costs are about equal.
 * Fitted to both kernels' timings on the 56 layers of five nets (784-300-100-10, 784-1024-1024-10,
 * 784-2000-500-10, 256-512-256-10, 784-128-10) at 80–99% sparsity, with 10–100% of the inputs
 * non-zero: in four runs, picking by this model took 0.3–1.1% longer than always picking the
 * faster kernel would have (and half as long as always gathering).
 */
const SCATTER_COST_PER_WEIGHT = 0.8;
const SCATTER_COST_PER_INPUT = 6;

/**
 * Listing a layer's non-zero inputs costs ~1.3 per input: about what the scatter can save when the
 * columns are short, so layers with fewer weights than this per column (on average) always gather.
 */
const MIN_WEIGHTS_PER_COLUMN = 5;

/**
 * The number of non-zero inputs below which `spmvScatter` is predicted faster than `spmv`: the
 * gather's nnz against the scatter's 0.8 · nnz / n_in + 6 per non-zero input. Above n_in for long
 * columns (1024x784 at 90%: 913, so it always scatters); 0 (never) for columns holding fewer than 5
 * weights on average, e.g. a 10-output layer's.
 */
export function scatterThreshold(m: KernelCsr): number {
  const nnz = m.rowPtr[m.nOut];
  if (nnz < MIN_WEIGHTS_PER_COLUMN * m.nIn) return 0;
  return nnz / ((SCATTER_COST_PER_WEIGHT * nnz) / m.nIn + SCATTER_COST_PER_INPUT);
}

/**
 * Row gather, y[i] = b[i] + Σ_k values[k] · x[col[k]], for one sample (x has n_in entries, y n_out).
 * Four independent partial sums: with a single `s +=` chain the loop waits on the add latency (~4
 * cycles per weight); splitting it measured 20–40% faster. Eight weights per iteration, two per
 * sum: 3–13% faster than four, since V8 re-checks every typed array once per iteration (it does
 * not hoist those checks out of loops); sixteen was slower again.
 */
export function spmv(m: KernelCsr, x: Float32Array, y: Float32Array): void {
  const { rowPtr, colIdx, values, bias, nOut } = m;
  let start = rowPtr[0];
  for (let i = 0; i < nOut; i++) {
    const end = rowPtr[i + 1];
    let s0 = bias[i];
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let k = start;
    for (; k + 8 <= end; k += 8) {
      s0 += values[k] * x[colIdx[k]] + values[k + 4] * x[colIdx[k + 4]];
      s1 += values[k + 1] * x[colIdx[k + 1]] + values[k + 5] * x[colIdx[k + 5]];
      s2 += values[k + 2] * x[colIdx[k + 2]] + values[k + 6] * x[colIdx[k + 6]];
      s3 += values[k + 3] * x[colIdx[k + 3]] + values[k + 7] * x[colIdx[k + 7]];
    }
    for (; k + 4 <= end; k += 4) {
      s0 += values[k] * x[colIdx[k]];
      s1 += values[k + 1] * x[colIdx[k + 1]];
      s2 += values[k + 2] * x[colIdx[k + 2]];
      s3 += values[k + 3] * x[colIdx[k + 3]];
    }
    for (; k < end; k++) s0 += values[k] * x[colIdx[k]];
    y[i] = s0 + s1 + (s2 + s3);
    start = end;
  }
}

/**
 * Column scatter, the same product for one sample: acc = b, then acc[row[k]] += values[k] · x[j]
 * for the weights of each column j listed in nonzero[0 .. count) (from `nonzeroIndices`), then
 * y = acc rounded to float32. `acc` (≥ n_out entries) is a Float64Array so that sums stay in
 * doubles: a Float32Array rounds at every add and measured 1.5× slower (each += converts both
 * ways). The adds are independent (distinct rows within a column), so there is no dependency chain
 * to split; unrolled by 16 (then 4, then 1) for the per-iteration checks as in `spmv`: 12% faster
 * than by 8 on columns of ~100 weights, 20% faster than by 4.
 */
export function spmvScatter(
  m: KernelCsc,
  x: Float32Array,
  nonzero: Int32Array,
  count: number,
  y: Float32Array,
  acc: Float64Array,
): void {
  const { colPtr, rowIdx, values, bias, nOut } = m;
  for (let i = 0; i < nOut; i++) acc[i] = bias[i];
  for (let t = 0; t < count; t++) {
    const j = nonzero[t];
    const xj = x[j];
    const end = colPtr[j + 1];
    let k = colPtr[j];
    for (; k + 16 <= end; k += 16) {
      acc[rowIdx[k]] += values[k] * xj;
      acc[rowIdx[k + 1]] += values[k + 1] * xj;
      acc[rowIdx[k + 2]] += values[k + 2] * xj;
      acc[rowIdx[k + 3]] += values[k + 3] * xj;
      acc[rowIdx[k + 4]] += values[k + 4] * xj;
      acc[rowIdx[k + 5]] += values[k + 5] * xj;
      acc[rowIdx[k + 6]] += values[k + 6] * xj;
      acc[rowIdx[k + 7]] += values[k + 7] * xj;
      acc[rowIdx[k + 8]] += values[k + 8] * xj;
      acc[rowIdx[k + 9]] += values[k + 9] * xj;
      acc[rowIdx[k + 10]] += values[k + 10] * xj;
      acc[rowIdx[k + 11]] += values[k + 11] * xj;
      acc[rowIdx[k + 12]] += values[k + 12] * xj;
      acc[rowIdx[k + 13]] += values[k + 13] * xj;
      acc[rowIdx[k + 14]] += values[k + 14] * xj;
      acc[rowIdx[k + 15]] += values[k + 15] * xj;
    }
    for (; k + 4 <= end; k += 4) {
      acc[rowIdx[k]] += values[k] * xj;
      acc[rowIdx[k + 1]] += values[k + 1] * xj;
      acc[rowIdx[k + 2]] += values[k + 2] * xj;
      acc[rowIdx[k + 3]] += values[k + 3] * xj;
    }
    for (; k < end; k++) acc[rowIdx[k]] += values[k] * xj;
  }
  for (let i = 0; i < nOut; i++) y[i] = acc[i];
}

/**
 * The same for a feature-major panel of `width` samples: x[j * width + b] is feature j of sample b,
 * and y likewise (n_out x width). `width` must be a multiple of 4 (the caller pads the panel), so
 * the loop needs no scalar tail: tiles of 8 samples, then at most one tile of 4.
 */
export function spmmPanel(m: KernelCsr, x: Float32Array, y: Float32Array, width: number): void {
  const { rowPtr, colIdx, values, bias, nOut } = m;
  for (let i = 0; i < nOut; i++) {
    const start = rowPtr[i];
    const end = rowPtr[i + 1];
    const bi = bias[i];
    const o = i * width;
    let b = 0;
    for (; b + 8 <= width; b += 8) {
      let s0 = bi;
      let s1 = bi;
      let s2 = bi;
      let s3 = bi;
      let s4 = bi;
      let s5 = bi;
      let s6 = bi;
      let s7 = bi;
      for (let k = start; k < end; k++) {
        const w = values[k];
        const p = colIdx[k] * width + b;
        s0 += w * x[p];
        s1 += w * x[p + 1];
        s2 += w * x[p + 2];
        s3 += w * x[p + 3];
        s4 += w * x[p + 4];
        s5 += w * x[p + 5];
        s6 += w * x[p + 6];
        s7 += w * x[p + 7];
      }
      y[o + b] = s0;
      y[o + b + 1] = s1;
      y[o + b + 2] = s2;
      y[o + b + 3] = s3;
      y[o + b + 4] = s4;
      y[o + b + 5] = s5;
      y[o + b + 6] = s6;
      y[o + b + 7] = s7;
    }
    if (b < width) {
      let s0 = bi;
      let s1 = bi;
      let s2 = bi;
      let s3 = bi;
      for (let k = start; k < end; k++) {
        const w = values[k];
        const p = colIdx[k] * width + b;
        s0 += w * x[p];
        s1 += w * x[p + 1];
        s2 += w * x[p + 2];
        s3 += w * x[p + 3];
      }
      y[o + b] = s0;
      y[o + b + 1] = s1;
      y[o + b + 2] = s2;
      y[o + b + 3] = s3;
    }
  }
}
