import type { Dataset, Targets } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import { defaultGemm } from '../gemm/default.js';
import type { Gemm } from '../gemm/gemm.js';
import { backpropagate, oneHotCotangents, sumSquaresPerSample } from '../model/backward.js';
import { type ForwardTrace, forwardTrace } from '../model/forward.js';
import type { Matrix } from '../model/matrix.js';
import { type Mlp, inputSize, outputSize } from '../model/mlp.js';
import { type LossKind, lossGradient } from '../train/loss.js';

/**
 * Sums over the calibration set that every criterion is computed from, for one layer with
 * inputs a_j (from layer l-1) and neurons i:
 *
 *   m0[i]    = Σ_n s_i(x_n)                       s_i = ||d y / d z_l[i]||² (output sensitivity)
 *   m1[i,j]  = Σ_n s_i(x_n) (a_j(x_n) - c_j)
 *   m2[i,j]  = Σ_n s_i(x_n) (a_j(x_n) - c_j)²
 *
 * c_j (`shift`) is the mean of a_j over the first batch. The s-weighted variance
 * m2/m0 - (m1/m0)² is shift-invariant, and subtracting c first avoids the catastrophic float32
 * cancellation of Σ s a² - (Σ s a)²/Σ s for inputs with a large mean and a small spread — exactly
 * the inputs EC can compensate best.
 */
/**
 * Relative size below which a difference of accumulated moments is rounding noise: float32 GEMM
 * sums over a batch carry a relative error of a few 1e-7 (≈ √B · 2⁻²⁴ for B = 1000).
 */
export const ROUNDING_FLOOR = 1e-5;

export interface LayerStatistics {
  readonly shift: Float64Array; // n_in
  readonly m0: Float64Array; // n_out
  readonly m1: Float64Array; // n_out x n_in, row-major
  readonly m2: Float64Array; // n_out x n_in, row-major
  /** mean dL/dW over the calibration set (n_out x n_in), when a loss gradient was requested */
  readonly lossGradient?: Float64Array;
}

export interface CalibrationStatistics {
  readonly samples: number;
  readonly layers: readonly LayerStatistics[];
}

export interface StatisticsOptions {
  readonly gemm?: Gemm;
  readonly batchSize?: number;
  /** collect m0/m1/m2 (default true) */
  readonly sensitivity?: boolean;
  /** also collect the loss gradient dL/dW (needs targets) */
  readonly lossGradient?: LossKind;
  readonly onProgress?: (samplesDone: number, samplesTotal: number) => void;
}

export const DEFAULT_BATCH_SIZE = 1000;

/** Streams the calibration set once, in batches; memory depends on the batch size, not on N. */
export async function collectStatistics(
  mlp: Mlp,
  calibration: Dataset,
  options: StatisticsOptions = {},
): Promise<CalibrationStatistics> {
  const gemm = options.gemm ?? defaultGemm();
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const wantSensitivity = options.sensitivity ?? true;
  const total = calibration.samples;
  if (total < 1) throw new EcpruneError('input', 'the calibration set is empty', calibration.name);
  if (calibration.features !== inputSize(mlp)) {
    throw new EcpruneError(
      'input',
      `the calibration data has ${calibration.features} features per sample, the model takes ${inputSize(mlp)}`,
      calibration.name,
    );
  }
  const layers = mlp.layers.map((layer) => ({
    shift: new Float64Array(layer.weight.cols),
    m0: new Float64Array(layer.weight.rows),
    m1: new Float64Array(layer.weight.data.length),
    m2: new Float64Array(layer.weight.data.length),
    lossGradient: options.lossGradient ? new Float64Array(layer.weight.data.length) : undefined,
  }));
  const outputs = outputSize(mlp);
  let done = 0;
  for await (const batch of calibration.batches(batchSize)) {
    const trace = await forwardTrace(mlp, batch.x, gemm);
    if (wantSensitivity) {
      await backpropagate(mlp, trace, oneHotCotangents(batch.x.rows, outputs), gemm, async (l, cotangent) => {
        const sensitivity = sumSquaresPerSample(cotangent, outputs);
        await accumulateMoments(layers[l], sensitivity, trace.inputs[l], done === 0, gemm);
      });
    }
    if (options.lossGradient) {
      if (batch.y === undefined) {
        throw new EcpruneError('usage', `${options.lossGradient} loss needs labels for the calibration set`, calibration.name);
      }
      await accumulateLossGradient(mlp, trace, batch.y, options.lossGradient, total, gemm, layers);
    }
    done += batch.x.rows;
    options.onProgress?.(done, total);
  }
  return { samples: done, layers };
}

/**
 * s_i(x_n) = Σ_k (d y_k / d z_l[i])² for every layer (B x n_l): one backward pass with K one-hot
 * cotangents per sample. For inspection and tests; `collectStatistics` reduces them on the fly.
 */
export async function outputSensitivities(mlp: Mlp, x: Matrix, gemm: Gemm = defaultGemm()): Promise<Matrix[]> {
  const trace = await forwardTrace(mlp, x, gemm);
  const outputs = outputSize(mlp);
  const sensitivities: Matrix[] = [];
  await backpropagate(mlp, trace, oneHotCotangents(x.rows, outputs), gemm, (l, cotangent) => {
    sensitivities[l] = sumSquaresPerSample(cotangent, outputs);
  });
  return sensitivities;
}

/** Adds one batch's Σ s (a-c) and Σ s (a-c)² with a single GEMM: Sᵀ [A-c | (A-c)²]. */
async function accumulateMoments(
  stats: LayerStatistics,
  sensitivity: Matrix,
  input: Matrix,
  firstBatch: boolean,
  gemm: Gemm,
): Promise<void> {
  const { rows: batch, cols: nIn } = input;
  const nOut = sensitivity.cols;
  if (firstBatch) {
    for (let n = 0; n < batch; n++) for (let j = 0; j < nIn; j++) stats.shift[j] += input.data[n * nIn + j];
    for (let j = 0; j < nIn; j++) stats.shift[j] /= batch;
  }
  const centred = new Float32Array(batch * 2 * nIn);
  for (let n = 0; n < batch; n++) {
    for (let j = 0; j < nIn; j++) {
      const d = input.data[n * nIn + j] - stats.shift[j];
      centred[n * 2 * nIn + j] = d;
      centred[n * 2 * nIn + nIn + j] = d * d;
    }
  }
  const moments = await gemm.matmul(sensitivity, { rows: batch, cols: 2 * nIn, data: centred }, { transA: true });
  for (let i = 0; i < nOut; i++) {
    for (let j = 0; j < nIn; j++) {
      stats.m1[i * nIn + j] += moments.data[i * 2 * nIn + j];
      stats.m2[i * nIn + j] += moments.data[i * 2 * nIn + nIn + j];
    }
  }
  for (let n = 0; n < batch; n++) for (let i = 0; i < nOut; i++) stats.m0[i] += sensitivity.data[n * nOut + i];
}

/** Adds this batch's share of the mean gradient dL/dW_l = (1/N) Σ_n g_l(x_n) a_{l-1}(x_n)ᵀ. */
async function accumulateLossGradient(
  mlp: Mlp,
  trace: ForwardTrace,
  targets: Targets,
  loss: LossKind,
  total: number,
  gemm: Gemm,
  layers: LayerStatistics[],
): Promise<void> {
  const outputGradient = lossGradient(trace.output, targets, loss);
  for (let i = 0; i < outputGradient.data.length; i++) outputGradient.data[i] /= total;
  await backpropagate(mlp, trace, outputGradient, gemm, async (l, g) => {
    const gradient = await gemm.matmul(g, trace.inputs[l], { transA: true });
    const sum = layers[l].lossGradient!;
    for (let i = 0; i < sum.length; i++) sum[i] += gradient.data[i];
  });
}
