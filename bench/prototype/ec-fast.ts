/**
 * PROTOTYPE (not the library): the EC statistics of src/score/statistics.ts (exact 'output'
 * sensitivities, no probes / loss / reference) with switchable optimisations, to measure what each
 * is worth before it is applied to src/. Same maths, same float32/float64 split, same shift.
 *
 * Switches (FastOptions):
 *   reuse    work buffers allocated once per run and reused by every batch (forward z/a/act', the
 *            cotangents, S, the centred matrix, the moment products), and every ORT GEMM writes
 *            into a pre-allocated output (session.run(feeds, { Y: tensor })) instead of a fresh one
 *   onehot   no one-hot cotangent matrix and no first backward GEMM: with one-hot rows,
 *            g_{L-1}[(n,k), :] = act'_L(z)[n,k] · W_L[k, :], and s_L = act'_L²
 *   fused    g .*= act' (repeated over the K rows) and s = Σ_k g² in one pass
 *   chunk    the backward pass in sub-batches of `chunk` samples (cotangent matrix chunk·K × n),
 *            then one statistics GEMM per layer for the whole batch
 *   fast32   the centred [A−c | (A−c)²] built with a float32 copy of c, m0 summed once per column
 */

import * as ort from 'onnxruntime-node';
import type { Dataset } from '../../src/data/dataset.js';
import { activationDerivative, applyActivation } from '../../src/model/activations.js';
import type { Mlp } from '../../src/model/mlp.js';
import type { CalibrationStatistics, LayerStatistics } from '../../src/score/statistics.js';
import type { PhaseTimings } from '../../src/timings.js';
import { gemmModelBytes } from '../../src/gemm/gemm-model.js';


export interface FastOptions {
  reuse?: boolean;
  onehot?: boolean;
  fused?: boolean;
  /** samples per backward sub-batch (0 = the whole batch) */
  chunk?: number;
  fast32?: boolean;
  /** ORT intra-op threads (0 = default) */
  threads?: number;
  /** ORT intra-op spinning (default true, as ORT) */
  spinning?: boolean;
  batchSize?: number;
  timings?: PhaseTimings;
}


/** C (m x n) = op(A) op(B) on onnxruntime, into `out` when given (pre-allocated output). */
export interface IntoGemm {
  mm(
    a: Float32Array,
    aShape: [number, number],
    b: Float32Array,
    bShape: [number, number],
    trans: { transA?: boolean; transB?: boolean },
    out?: Float32Array,
  ): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** milliseconds spent inside ORT GEMM calls, by phase label (set `gemmClock.phase` before calling) */
export const gemmClock: { phase: string; ms: Record<string, number>; flops: Record<string, number> } = {
  phase: 'other',
  ms: {},
  flops: {},
};

export async function createIntoGemm(threads = 0, spinning = true): Promise<IntoGemm> {
  const sessions = new Map<string, ort.InferenceSession>();
  const session = async (transA: boolean, transB: boolean) => {
    const key = `${+transA}${+transB}`;
    let s = sessions.get(key);
    if (!s) {
      s = await ort.InferenceSession.create(gemmModelBytes(transA, transB), {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        ...(spinning ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
      });
      sessions.set(key, s);
    }
    return s;
  };
  return {
    async mm(a, aShape, b, bShape, { transA = false, transB = false }, out) {
      const m = transA ? aShape[1] : aShape[0];
      const n = transB ? bShape[0] : bShape[1];
      const k = transA ? aShape[0] : aShape[1];
      const s = await session(transA, transB);
      const started = performance.now();
      try {
        const feeds = { A: new ort.Tensor('float32', a, aShape), B: new ort.Tensor('float32', b, bShape) };
        if (out) {
          const view = out.length === m * n ? out : out.subarray(0, m * n);
          await s.run(feeds, { Y: new ort.Tensor('float32', view, [m, n]) });
          return view;
        }
        const result = await s.run(feeds);
        return result.Y.data as Float32Array;
      } finally {
        const p = gemmClock.phase;
        gemmClock.ms[p] = (gemmClock.ms[p] ?? 0) + performance.now() - started;
        gemmClock.flops[p] = (gemmClock.flops[p] ?? 0) + 2 * m * n * k;
      }
    },
    async dispose() {
      for (const s of sessions.values()) await s.release();
    },
  };
}

async function timed<T>(
  timings: PhaseTimings | undefined,
  phase: string,
  work: () => Promise<T>,
): Promise<T> {
  const start = performance.now();
  try {
    return await work();
  } finally {
    if (timings) timings[phase] = (timings[phase] ?? 0) + performance.now() - start;
  }
}

/** A Float32Array of at least `size` held in `slot` (reused when `reuse`, else fresh). */
class Pool {
  private readonly buffers = new Map<string, Float32Array>();
  constructor(private readonly reuse: boolean) {}
  get(slot: string, size: number, zero = false): Float32Array {
    if (!this.reuse) return new Float32Array(size);
    let buffer = this.buffers.get(slot);
    if (!buffer || buffer.length < size) {
      buffer = new Float32Array(size);
      this.buffers.set(slot, buffer);
      return buffer;
    }
    const view = buffer.subarray(0, size);
    if (zero) view.fill(0);
    return view;
  }
}

export async function ecStatisticsFast(
  mlp: Mlp,
  data: Dataset,
  options: FastOptions = {},
): Promise<CalibrationStatistics> {
  const gemm = await createIntoGemm(options.threads ?? 0, options.spinning ?? true);
  try {
    return await run(mlp, data, gemm, options);
  } finally {
    await gemm.dispose();
  }
}

async function run(mlp: Mlp, data: Dataset, gemm: IntoGemm, o: FastOptions): Promise<CalibrationStatistics> {
  const pool = new Pool(!!o.reuse);
  const timings = o.timings;
  const L = mlp.layers.length;
  const K = mlp.layers[L - 1].weight.rows;
  const layers: LayerStatistics[] = mlp.layers.map((layer) => ({
    shift: new Float64Array(layer.weight.cols),
    m0: new Float64Array(layer.weight.rows),
    m1: new Float64Array(layer.weight.data.length),
    m2: new Float64Array(layer.weight.data.length),
  }));
  const shift32 = mlp.layers.map((layer) => new Float32Array(layer.weight.cols));
  // Σ_k W_L[k, j]² (one-hot shortcut, identity output)
  let done = 0;
  for await (const batch of data.batches(o.batchSize ?? 1000)) {
    const B = batch.x.rows;
    // ---------------- forward
    const inputs: Float32Array[] = [];
    const derivs: Float32Array[] = [];
    gemmClock.phase = 'forward';
    await timed(timings, 'forward', async () => {
      let a = batch.x.data;
      let nIn = batch.x.cols;
      for (let l = 0; l < L; l++) {
        const { weight, bias, activation } = mlp.layers[l];
        inputs.push(a);
        const nOut = weight.rows;
        const z = await gemm.mm(
          a,
          [B, nIn],
          weight.data,
          [nOut, nIn],
          { transB: true },
          o.reuse ? pool.get(`z${l}`, B * nOut) : undefined,
        );
        for (let r = 0; r < B; r++) {
          const off = r * nOut;
          for (let c = 0; c < nOut; c++) z[off + c] += bias[c];
        }
        derivs.push(activationDerivative(activation, z, pool.get(`d${l}`, B * nOut)));
        a = applyActivation(activation, z);
        nIn = nOut;
      }
    });
    // ---------------- backward: S_l (B x n_l) for every layer
    const S: Float32Array[] = [];
    const statsTime = { ms: 0 };
    gemmClock.phase = 'sensitivity';
    await timed(timings, 'sensitivity', async () => {
      for (let l = 0; l < L; l++) S.push(pool.get(`s${l}`, B * mlp.layers[l].weight.rows, true));
      const chunk = o.chunk && o.chunk < B ? o.chunk : B;
      for (let first = 0; first < B; first += chunk) {
        const C = Math.min(chunk, B - first);
        await backwardChunk(mlp, gemm, pool, o, derivs, S, first, C, K, async (l) => {
          if (chunk === B) {
            gemmClock.phase = 'statistics';
            const t = performance.now();
            await accumulate(
              layers[l],
              shift32[l],
              S[l],
              inputs[l],
              B,
              mlp.layers[l].weight.cols,
              done === 0,
              gemm,
              pool,
              o,
              l,
            );
            statsTime.ms += performance.now() - t;
            gemmClock.phase = 'sensitivity';
          }
        });
      }
      if (chunk < B) {
        gemmClock.phase = 'statistics';
        const t = performance.now();
        for (let l = L - 1; l >= 0; l--) {
          await accumulate(
            layers[l],
            shift32[l],
            S[l],
            inputs[l],
            B,
            mlp.layers[l].weight.cols,
            done === 0,
            gemm,
            pool,
            o,
            l,
          );
        }
        statsTime.ms += performance.now() - t;
      }
    });
    if (timings) {
      timings.sensitivity -= statsTime.ms;
      timings.statistics = (timings.statistics ?? 0) + statsTime.ms;
    }
    done += B;
  }
  return { samples: done, layers };
}

/** Backward pass for samples [first, first + C) of the batch; fills their rows of S. */
async function backwardChunk(
  mlp: Mlp,
  gemm: IntoGemm,
  pool: Pool,
  o: FastOptions,
  derivs: Float32Array[],
  S: Float32Array[],
  first: number,
  C: number,
  K: number,
  visit: (l: number) => Promise<void>,
): Promise<void> {
  const L = mlp.layers.length;
  let g: Float32Array;
  let width: number;
  let start: number; // first layer still to visit
  if (o.onehot) {
    // layer L-1 (the output layer): s = act'_L², g_{L-1} = act'_L[n,k] W_L[k,:] (before act'_{L-1})
    const dL = derivs[L - 1];
    const sL = S[L - 1];
    for (let i = 0; i < C * K; i++) {
      const v = dL[first * K + i];
      sL[first * K + i] = v * v;
    }
    await visit(L - 1);
    if (L === 1) return;
    const W = mlp.layers[L - 1].weight;
    width = W.cols;
    g = pool.get(`g${L - 2}`, C * K * width);
    for (let n = 0; n < C; n++) {
      for (let k = 0; k < K; k++) {
        const scale = dL[(first + n) * K + k];
        const row = (n * K + k) * width;
        const wRow = k * width;
        for (let j = 0; j < width; j++) g[row + j] = scale * W.data[wRow + j];
      }
    }
    start = L - 2;
  } else {
    g = pool.get('onehot', C * K * K, true);
    for (let n = 0; n < C; n++) for (let k = 0; k < K; k++) g[(n * K + k) * K + k] = 1;
    width = K;
    start = L - 1;
  }
  for (let l = start; l >= 0; l--) {
    const d = derivs[l];
    const s = S[l];
    // g .*= act'_l (per sample, over its K rows); s_l = Σ_k g²
    if (o.fused) {
      for (let n = 0; n < C; n++) {
        const dRow = (first + n) * width;
        const sRow = (first + n) * width;
        for (let k = 0; k < K; k++) {
          const gRow = (n * K + k) * width;
          for (let j = 0; j < width; j++) {
            const v = g[gRow + j] * d[dRow + j];
            g[gRow + j] = v;
            s[sRow + j] += v * v;
          }
        }
      }
    } else {
      for (let n = 0; n < C; n++) {
        const dRow = (first + n) * width;
        for (let k = 0; k < K; k++) {
          const gRow = (n * K + k) * width;
          for (let j = 0; j < width; j++) g[gRow + j] *= d[dRow + j];
        }
      }
      for (let n = 0; n < C; n++) {
        const sRow = (first + n) * width;
        for (let k = 0; k < K; k++) {
          const gRow = (n * K + k) * width;
          for (let j = 0; j < width; j++) {
            const v = g[gRow + j];
            s[sRow + j] += v * v;
          }
        }
      }
    }
    await visit(l);
    if (l > 0) {
      const W = mlp.layers[l].weight;
      const out = o.reuse ? pool.get(`g${l - 1}`, C * K * W.cols) : undefined;
      g = await gemm.mm(g, [C * K, width], W.data, [W.rows, W.cols], {}, out);
      width = W.cols;
    }
  }
}

/** Adds Σ s (a−c) and Σ s (a−c)² with one GEMM Sᵀ [A−c | (A−c)²], and m0 = Σ s. */
async function accumulate(
  stats: LayerStatistics,
  shift32: Float32Array,
  s: Float32Array,
  input: Float32Array,
  B: number,
  nIn: number,
  firstBatch: boolean,
  gemm: IntoGemm,
  pool: Pool,
  o: FastOptions,
  l: number,
): Promise<void> {
  const nOut = s.length / B;
  if (firstBatch) {
    for (let n = 0; n < B; n++) for (let j = 0; j < nIn; j++) stats.shift[j] += input[n * nIn + j];
    for (let j = 0; j < nIn; j++) {
      stats.shift[j] /= B;
      shift32[j] = stats.shift[j];
    }
  }
  const centred = pool.get(`c${l}`, B * 2 * nIn);
  if (o.fast32) {
    for (let n = 0; n < B; n++) {
      const inRow = n * nIn;
      const outRow = n * 2 * nIn;
      for (let j = 0; j < nIn; j++) {
        const d = input[inRow + j] - shift32[j];
        centred[outRow + j] = d;
        centred[outRow + nIn + j] = d * d;
      }
    }
  } else {
    for (let n = 0; n < B; n++) {
      for (let j = 0; j < nIn; j++) {
        const d = input[n * nIn + j] - stats.shift[j];
        centred[n * 2 * nIn + j] = d;
        centred[n * 2 * nIn + nIn + j] = d * d;
      }
    }
  }
  const moments = await gemm.mm(
    s.subarray(0, B * nOut),
    [B, nOut],
    centred,
    [B, 2 * nIn],
    { transA: true },
    o.reuse ? pool.get(`m${l}`, nOut * 2 * nIn) : undefined,
  );
  for (let i = 0; i < nOut; i++) {
    const row = i * 2 * nIn;
    const off = i * nIn;
    for (let j = 0; j < nIn; j++) {
      stats.m1[off + j] += moments[row + j];
      stats.m2[off + j] += moments[row + nIn + j];
    }
  }
  if (o.fast32) {
    // column sums in float64, one pass over S
    const m0 = stats.m0;
    for (let n = 0; n < B; n++) {
      const row = n * nOut;
      for (let i = 0; i < nOut; i++) m0[i] += s[row + i];
    }
  } else {
    for (let n = 0; n < B; n++) for (let i = 0; i < nOut; i++) stats.m0[i] += s[n * nOut + i];
  }
}
