/**
 * The forward pass on WebAssembly kernels (scripts/build-wasm-kernels.ts generates them; text in
 * wasm-kernels.wat and wasm-batch-kernels.wat).
 *
 * Batches > 1 (`runBatch`): the batch is cut into panels of WASM_PANEL samples, transposed to
 * feature-major in WebAssembly, and each layer runs `panel16`/`panel32`, which holds 16 samples in
 * four f32x4 sums per stored weight. Float32 sums (like onnxruntime's dense GEMM), so the results
 * agree with the JavaScript `spmmPanel` (double sums) to float32 rounding, not bit for bit.
 *
 * Batch 1 (`run`): They compute exactly what `spmv`, `spmvScatter` and `nonzeroIndices`
 * in kernels.ts compute, in the same order (double sums, the same partial sums), so the outputs are
 * bit-identical to the JavaScript path; what changes is the cost per stored weight: no bounds, map
 * or detach checks per access, and SIMD128 where it keeps the order of the sums: the gather keeps
 * its partial sums s0, s1 and s2, s3 in two f64x2 and reads four weights per load; the scatter
 * converts and multiplies its weights two at a time, then adds them to the sums one by one.
 *
 * Measured (bench/sparse-runtime.ts, Node 20, x64, 2-core AMD EPYC shared with other jobs, best of
 * interleaved blocks), batch 1, JavaScript kernels → these: 784-1024-1024-10 at 90%, random pixels
 * 123 → 64 µs, MNIST digits 79 → 51 µs (then 45 µs with the SIMD scatter); 784-300-100-10 at 90%:
 * 26 → 9 µs and 12 → 5 µs. Unlike the JavaScript kernels they do not slow down once the isolate
 * has detached an ArrayBuffer. Variants measured and left out: the scalar gather (1.3× slower
 * gathering), the scalar scatter (~10% slower), the scatter unrolled by 8 rather than 16 (3–4%
 * slower on 784-1024-1024-10; the 32-bit variant, for > 65536 outputs, is unrolled by 8 to keep the
 * module small), the sums at address 0 to save an add per weight (no difference).
 *
 * Each model gets its own fixed-size memory holding a copy of its weights (and the room for the
 * CSC copies, filled on first use: pages never touched cost no physical memory), its scratch
 * vectors and its input. The memory never grows: growing detaches its ArrayBuffer, which would
 * put V8's detach check on every typed-array access in the isolate and slow the JavaScript
 * kernels (the fallback) by ~1.5×. The modules are ~3.6 KB and ~2.3 KB, each under the 4 KB that
 * Chrome allows to compile synchronously on the main thread, so `loadEcsr` stays synchronous.
 * Where WebAssembly is missing or refuses the batch-1 module (e.g. a Content-Security-Policy
 * without 'wasm-unsafe-eval'), `createWasmForward` returns undefined and the model runs the
 * JavaScript kernels; where only the batch module is refused, batches run the JavaScript kernels.
 */
import { activateInPlace, type SparseActivation } from './activations.js';
import { type KernelCsr, toCsc } from './kernels.js';
import { WASM_BATCH_KERNELS_BASE64, WASM_KERNELS_BASE64 } from './wasm-kernels-binary.js';

type Gather = (rp: number, ci: number, va: number, bi: number, x: number, y: number, n: number) => void;
type Scatter = (
  cp: number,
  ri: number,
  va: number,
  bi: number,
  x: number,
  nz: number,
  count: number,
  y: number,
  acc: number,
  n: number,
) => void;

type Panel = (
  rp: number,
  ci: number,
  va: number,
  bi: number,
  x: number,
  y: number,
  n: number,
  width: number,
  shift: number,
  relu: number,
) => void;

interface BatchKernelExports {
  readonly panel16: Panel;
  readonly panel32: Panel;
  readonly transpose: (
    src: number,
    srcStride: number,
    dst: number,
    dstStride: number,
    rows: number,
    cols: number,
  ) => void;
}

interface KernelExports {
  readonly gather16: Gather;
  readonly gather32: Gather;
  readonly scatter16: Scatter;
  readonly scatter32: Scatter;
  readonly nonzero: (x: number, n: number, nz: number) => number;
}

/** A layer as the WebAssembly pass needs it. */
export interface WasmLayerSource {
  readonly csr: KernelCsr;
  readonly activation: SparseActivation;
  /** Scatter when fewer inputs than this are non-zero; by default `wasmScatterThreshold(csr)`. */
  readonly scatterBelow?: number;
}

/**
 * Costs of the WebAssembly kernels in nanoseconds (Node 20, x64, AMD EPYC; least squares over 112
 * timings: 7 layer shapes from 128x784 to 2000x784, 80–99% sparsity, 5–100% of the inputs
 * non-zero, scalar scatter): the gather 0.29 per stored weight; the scatter 0.42 per weight it
 * touches plus 1.8 per non-zero input, after listing the non-zero inputs at ~1.5 per input; both
 * ~1.3 per output. The gather gained more from WebAssembly than the scatter (whose read-modify-write
 * per weight stays scalar), so the scatter pays off only on sparser inputs than in JavaScript (1.4
 * gather weights per scattered weight here, 0.8 there). Refitting with the SIMD scatter on the same
 * busy machine gave unstable constants; scaling the resulting thresholds by 0.6 or 1.6 made the
 * bench's nets (784-300-100-10, 784-1024-1024-10, 90%/95%, random and MNIST inputs) up to 13%
 * slower and never faster, so they stay.
 */
const WASM_GATHER_PER_WEIGHT = 0.29;
const WASM_SCATTER_PER_WEIGHT = 0.42;
const WASM_SCATTER_PER_INPUT = 1.8;
const WASM_LISTING_PER_INPUT = 1.5;

/**
 * The number of non-zero inputs below which the WebAssembly scatter is predicted faster than the
 * WebAssembly gather, or 0 when it never is (then the inputs are not even listed). 1024x784 at 90%:
 * 496, so uniform random pixels gather and MNIST digits (~19% non-zero) scatter; 1024x1024 at 90%:
 * 648, so ReLU activations (~50% non-zero) scatter.
 */
export function wasmScatterThreshold(m: KernelCsr): number {
  const nnz = m.rowPtr[m.nOut];
  const saving = WASM_GATHER_PER_WEIGHT * nnz - WASM_LISTING_PER_INPUT * m.nIn;
  if (saving <= 0) return 0;
  const perInput = (WASM_SCATTER_PER_WEIGHT * nnz) / m.nIn + WASM_SCATTER_PER_INPUT;
  const threshold = saving / perInput;
  // a heuristic: a threshold below a tenth of the inputs is rarely met, and the listing is paid on every call
  return threshold < 0.1 * m.nIn ? 0 : threshold;
}

interface WasmLayer {
  readonly csr: KernelCsr;
  readonly activation: SparseActivation;
  readonly scatterBelow: number;
  readonly gather: Gather;
  readonly scatter: Scatter;
  readonly panel: Panel | undefined;
  /** Byte offsets: CSR row pointers, column indices, values, bias; CSC column pointers, row indices, values. */
  readonly rp: number;
  readonly ci: number;
  readonly va: number;
  readonly bi: number;
  readonly cp: number;
  readonly ri: number;
  readonly cva: number;
  cscReady: boolean;
}

/** The built-in modules once compiled, by their base64 text (null: refused). */
const compiled = new Map<string, WebAssembly.Module | null>();

/**
 * A compiled module, or null where WebAssembly is missing or refuses it: `bytes` when given (tests),
 * else the built-in `base64` module, compiled once. Two modules rather than one so that each stays
 * under the 4 KB that Chrome compiles synchronously on the main thread.
 */
function compileModule(base64: string, bytes?: Uint8Array<ArrayBuffer>): WebAssembly.Module | null {
  if (bytes === undefined && compiled.has(base64)) return compiled.get(base64) ?? null;
  let module: WebAssembly.Module | null = null;
  try {
    module = new WebAssembly.Module(bytes ?? Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
  } catch {
    module = null;
  }
  if (bytes === undefined) compiled.set(base64, module);
  return module;
}

/**
 * Samples per feature-major panel of the batch kernel: two panels of the widest layer stay in L2
 * (1024 units: 512 KiB). 32 measured as fast as 64 at batch 256.
 */
export const WASM_PANEL = 64;
/** log2 of a panel row's bytes: the kernel finds column j's samples at j << PANEL_SHIFT, a shift rather than a multiply. */
const PANEL_SHIFT = Math.log2(4 * WASM_PANEL);

const PAGE = 65536;

/** Bump allocation of byte ranges, 8-byte aligned (the f64 sums need it for speed). */
class Layout {
  size = 0;
  take(bytes: number): number {
    const at = this.size;
    this.size += Math.ceil(bytes / 8) * 8; // not `& ~7`: sizes may pass 2^31 before the check
    return at;
  }
}

/**
 * The batch-1 pass over `layers` on the WebAssembly kernels, or undefined when WebAssembly is
 * unavailable, fails to compile or instantiate (`moduleBytes` replaces the built-in module: tests
 * use it to exercise the fallback), or the model does not fit in a 2 GiB memory.
 */
export function createWasmForward(
  layers: readonly WasmLayerSource[],
  moduleBytes?: Uint8Array<ArrayBuffer>,
  batchModuleBytes?: Uint8Array<ArrayBuffer>,
): WasmForward | undefined {
  if (typeof WebAssembly !== 'object' || WebAssembly === null) return undefined;
  const module = compileModule(WASM_KERNELS_BASE64, moduleBytes);
  if (module === null) return undefined;
  const batchModule = compileModule(WASM_BATCH_KERNELS_BASE64, batchModuleBytes);
  const layout = new Layout();
  const inputSize = layers[0].csr.nIn;
  const outputSize = layers[layers.length - 1].csr.nOut;
  const widest = Math.max(...layers.map((l) => l.csr.nOut));
  const acc = layout.take(8 * widest);
  const xIn = layout.take(4 * inputSize);
  const ping = layout.take(4 * widest);
  const pong = layout.take(4 * widest);
  const nz = layout.take(4 * Math.max(...layers.map((l) => l.csr.nIn)));
  // the batch kernel's two panels (the input's panel is one of them) and the batch rows as given
  const panelFloats = Math.max(widest, inputSize) * WASM_PANEL;
  const panelA = batchModule === null ? 0 : layout.take(4 * panelFloats);
  const panelB = batchModule === null ? 0 : layout.take(4 * panelFloats);
  const rows = batchModule === null ? 0 : layout.take(4 * Math.max(inputSize, outputSize) * WASM_PANEL);
  const thresholds = layers.map((l) => l.scatterBelow ?? wasmScatterThreshold(l.csr));
  const placed = layers.map(({ csr }, l) => {
    const nnz = csr.rowPtr[csr.nOut];
    const rp = layout.take(4 * (csr.nOut + 1));
    const ci = layout.take(csr.colIdx.BYTES_PER_ELEMENT * nnz);
    const va = layout.take(4 * nnz);
    const bi = layout.take(4 * csr.nOut);
    // the CSC's row index width is toCsc's: 16 bits when every row index fits
    const scatters = thresholds[l] > 0;
    const cp = scatters ? layout.take(4 * (csr.nIn + 1)) : 0;
    const ri = scatters ? layout.take((csr.nOut <= 0x10000 ? 2 : 4) * nnz) : 0;
    const cva = scatters ? layout.take(4 * nnz) : 0;
    return { rp, ci, va, bi, cp, ri, cva };
  });
  if (layout.size > 2 ** 31) return undefined;
  let memory: WebAssembly.Memory;
  let exports: KernelExports;
  try {
    const pages = Math.max(1, Math.ceil(layout.size / PAGE));
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    exports = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
  } catch {
    return undefined;
  }
  let batchExports: BatchKernelExports | undefined;
  try {
    if (batchModule !== null) {
      batchExports = new WebAssembly.Instance(batchModule, { env: { memory } })
        .exports as unknown as BatchKernelExports;
    }
  } catch {
    batchExports = undefined;
  }
  const buffer = memory.buffer;
  const wasmLayers = layers.map(({ csr, activation }, l): WasmLayer => {
    const at = placed[l];
    const nnz = csr.rowPtr[csr.nOut];
    new Uint32Array(buffer, at.rp, csr.nOut + 1).set(csr.rowPtr);
    if (csr.colIdx instanceof Uint16Array)
      new Uint16Array(buffer, at.ci, nnz).set(csr.colIdx.subarray(0, nnz));
    else new Uint32Array(buffer, at.ci, nnz).set(csr.colIdx.subarray(0, nnz));
    new Float32Array(buffer, at.va, nnz).set(csr.values.subarray(0, nnz));
    new Float32Array(buffer, at.bi, csr.nOut).set(csr.bias);
    const wide = csr.colIdx instanceof Uint32Array;
    const rowsWide = csr.nOut > 0x10000;
    return {
      csr,
      activation,
      scatterBelow: thresholds[l],
      gather: wide ? exports.gather32 : exports.gather16,
      scatter: rowsWide ? exports.scatter32 : exports.scatter16,
      panel: wide ? batchExports?.panel32 : batchExports?.panel16,
      ...at,
      cscReady: false,
    };
  });
  const batch = batchExports === undefined ? undefined : { exports: batchExports, panelA, panelB, rows };
  return new WasmForward(buffer, exports, wasmLayers, { xIn, ping, pong, nz, acc }, batch);
}

/** The batch kernels and where their panels are. */
interface WasmBatch {
  readonly exports: BatchKernelExports;
  readonly panelA: number;
  readonly panelB: number;
  readonly rows: number;
}

export class WasmForward {
  private readonly f32: Float32Array;
  private readonly pingView: Float32Array;
  private readonly pongView: Float32Array;

  constructor(
    private readonly buffer: ArrayBuffer,
    private readonly exports: KernelExports,
    private readonly layers: readonly WasmLayer[],
    private readonly at: { xIn: number; ping: number; pong: number; nz: number; acc: number },
    private readonly batch: WasmBatch | undefined,
  ) {
    this.f32 = new Float32Array(buffer);
    this.pingView = this.f32.subarray(at.ping >> 2);
    this.pongView = this.f32.subarray(at.pong >> 2);
  }

  /** Whether batches run here (false: the batch module was refused; the caller runs its own kernels). */
  get runsBatches(): boolean {
    return this.batch !== undefined;
  }

  /**
   * `batch` samples, row-major in `input` and `output`, in panels of `WASM_PANEL` samples: each
   * copied in, transposed to feature-major (width padded to a multiple of 4 with zeros), run through
   * every layer and transposed back. Only when `runsBatches`.
   */
  runBatch(input: Float32Array, output: Float32Array, batch: number): void {
    const { layers, f32 } = this;
    const { exports, panelA, panelB, rows } = this.batch as WasmBatch;
    const nIn = layers[0].csr.nIn;
    const nOut = layers[layers.length - 1].csr.nOut;
    for (let b0 = 0; b0 < batch; b0 += WASM_PANEL) {
      const count = Math.min(WASM_PANEL, batch - b0);
      const width = (count + 3) & ~3;

      f32.set(input.subarray(b0 * nIn, (b0 + count) * nIn), rows >> 2);
      exports.transpose(rows, nIn, panelA, WASM_PANEL, count, nIn);
      // padding samples: zeros, so that they never produce subnormals or NaN (they are not read back)
      if (count < width) {
        for (let j = 0; j < nIn; j++)
          f32.fill(0, (panelA >> 2) + j * WASM_PANEL + count, (panelA >> 2) + j * WASM_PANEL + width);
      }
      let x = panelA;
      let y = panelB;
      for (const layer of layers) {
        const relu = layer.activation.kind === 'relu';
        (layer.panel as Panel)(
          layer.rp,
          layer.ci,
          layer.va,
          layer.bi,
          x,
          y,
          layer.csr.nOut,
          width,
          PANEL_SHIFT,
          relu ? 1 : 0,
        );

        if (!relu) activateInPlace(layer.activation, f32.subarray(y >> 2), layer.csr.nOut * WASM_PANEL);
        [x, y] = [y, x];
      }
      exports.transpose(x, WASM_PANEL, rows, nOut, nOut, count);
      output.set(f32.subarray(rows >> 2, (rows >> 2) + count * nOut), b0 * nOut);
    }
  }

  /** Whether layer `l`'s CSC copy has been built (on its first scatter). */
  cscBuilt(l: number): boolean {
    return this.layers[l].cscReady;
  }

  /** Writes the CSC copy of a layer into its reserved room. */
  private buildCsc(layer: WasmLayer): void {
    const csc = toCsc(layer.csr);
    const nnz = csc.values.length;
    new Uint32Array(this.buffer, layer.cp, csc.nIn + 1).set(csc.colPtr);
    if (csc.rowIdx instanceof Uint16Array) new Uint16Array(this.buffer, layer.ri, nnz).set(csc.rowIdx);
    else new Uint32Array(this.buffer, layer.ri, nnz).set(csc.rowIdx);
    new Float32Array(this.buffer, layer.cva, nnz).set(csc.values);
    layer.cscReady = true;
  }

  /** One sample: `input` has the first layer's n_in values, `output` the last layer's n_out. */
  run(input: Float32Array, output: Float32Array): void {
    const { exports, layers, at } = this;
    this.f32.set(input, at.xIn >> 2);
    let x = at.xIn;
    let xView = this.f32;
    for (let l = 0; l < layers.length; l++) {
      const layer = layers[l];
      const { nIn, nOut } = layer.csr;
      const y = x === at.ping ? at.pong : at.ping;
      const yView = x === at.ping ? this.pongView : this.pingView;
      const count = layer.scatterBelow > 0 ? exports.nonzero(x, nIn, at.nz) : nIn;
      if (count < layer.scatterBelow) {
        if (!layer.cscReady) this.buildCsc(layer);
        layer.scatter(layer.cp, layer.ri, layer.cva, layer.bi, x, at.nz, count, y, at.acc, nOut);
      } else {
        layer.gather(layer.rp, layer.ci, layer.va, layer.bi, x, y, nOut);
      }
      activateInPlace(layer.activation, yView, nOut);
      x = y;
      xView = yView;
    }
    output.set(xView.subarray(0, output.length));
  }
}
