/**
 * Quantisation of a pruned layer's surviving weights (Deep Compression, Han et al. 2016): per-row
 * int8 with a scale, or weight sharing with a k-means codebook of 2^bits entries per layer, whose
 * centroids can be fine-tuned on the training loss. Plain functions on a weight matrix and its
 * keep-mask (1 = kept); the values come out in the mask's row-major order, which is the order in
 * which `.ecsr` stores a layer's weights (src/runtime/format.ts, QuantizedValues).
 */

import type { Dataset } from '../data/dataset.js';
import { createRandom } from '../data/random.js';
import { EcpruneError } from '../errors.js';
import type { Gemm } from '../gemm/gemm.js';
import type { LossKind } from '../graph/loss.js';
import { type FloatArray, type Matrix, matrix } from '../model/matrix.js';
import type { Mlp } from '../model/mlp.js';
import type { QuantizedValues } from '../runtime/index.js';
import { CODEBOOK_BITS } from '../runtime/index.js';
import { lossAndGradients } from '../train/train.js';

export type Int8Values = Extract<QuantizedValues, { kind: 'int8' }>;
export type CodebookValues = Extract<QuantizedValues, { kind: 'codebook' }>;

function checkMask(weight: Matrix<FloatArray>, keepMask: Uint8Array): void {
  if (keepMask.length !== weight.data.length) {
    throw new EcpruneError(
      'usage',
      `a keep-mask of ${keepMask.length} entries for ${weight.rows}x${weight.cols} weights`,
    );
  }
}

/**
 * Per-row symmetric int8: scale_i = max_j |W[i, j]| / 127 over the kept weights of row i, code =
 * round(W / scale) in −127..127 (the largest weight of each row is exact up to float32 rounding).
 */
export function quantizeInt8(weight: Matrix<FloatArray>, keepMask: Uint8Array): Int8Values {
  checkMask(weight, keepMask);
  const { rows, cols, data } = weight;
  const scales = new Float32Array(rows);
  const codes: number[] = [];
  for (let i = 0; i < rows; i++) {
    let largest = 0;
    for (let j = 0; j < cols; j++)
      if (keepMask[i * cols + j]) largest = Math.max(largest, Math.abs(data[i * cols + j]));
    scales[i] = largest / 127;
    for (let j = 0; j < cols; j++) {
      if (keepMask[i * cols + j])
        codes.push(scales[i] === 0 ? 0 : Math.round(data[i * cols + j] / scales[i]));
    }
  }
  return { kind: 'int8', scales, codes: Int8Array.from(codes, (c) => Math.max(-127, Math.min(127, c))) };
}

/** The kept weights of `weight` in row-major order. */
function keptValues(weight: Matrix<FloatArray>, keepMask: Uint8Array): Float64Array {
  const out: number[] = [];
  for (let k = 0; k < keepMask.length; k++) if (keepMask[k]) out.push(weight.data[k]);
  return Float64Array.from(out);
}

export interface CodebookOptions {
  /** 2 to 8: 2^bits centroids. */
  readonly bits: number;
  /** seeds the k-means++ initialisation. Default 0. */
  readonly seed?: number;
  /** Lloyd iterations at most (stops earlier when no weight changes centroid). Default 50. */
  readonly iterations?: number;
}

/**
 * Weight sharing: 1-D k-means over the layer's kept weights, initialised by k-means++ (seeded:
 * the same seed gives the same codebook). Each kept weight is replaced by its nearest centroid.
 * A centroid that loses all its weights stays where it is (it costs nothing in the file but its
 * 4 bytes).
 */
export function quantizeCodebook(
  weight: Matrix<FloatArray>,
  keepMask: Uint8Array,
  options: CodebookOptions,
): CodebookValues {
  checkMask(weight, keepMask);
  const { bits } = options;
  if (!Number.isInteger(bits) || bits < CODEBOOK_BITS.min || bits > CODEBOOK_BITS.max) {
    throw new EcpruneError(
      'usage',
      `codebook bits ${bits}: expected ${CODEBOOK_BITS.min} to ${CODEBOOK_BITS.max}`,
    );
  }
  const values = keptValues(weight, keepMask);
  const size = 2 ** bits;
  const random = createRandom(options.seed ?? 0);
  const centroids = new Float64Array(size);
  if (values.length > 0) {
    // k-means++: each next centroid drawn with probability proportional to the squared distance to the nearest one
    centroids[0] = values[Math.floor(random.next() * values.length)];
    const distance = values.map((v) => (v - centroids[0]) ** 2);
    for (let c = 1; c < size; c++) {
      const total = distance.reduce((a, b) => a + b, 0);
      let pick = values.length - 1;
      if (total > 0) {
        let target = random.next() * total;
        for (let k = 0; k < values.length; k++) {
          target -= distance[k];
          if (target < 0) {
            pick = k;
            break;
          }
        }
      }
      centroids[c] = values[pick];
      for (let k = 0; k < values.length; k++)
        distance[k] = Math.min(distance[k], (values[k] - centroids[c]) ** 2);
    }
  }
  const indices = new Uint8Array(values.length);
  const nearest = () => {
    let changed = 0;
    for (let k = 0; k < values.length; k++) {
      let best = 0;
      for (let c = 1; c < size; c++) {
        if (Math.abs(values[k] - centroids[c]) < Math.abs(values[k] - centroids[best])) best = c;
      }
      if (best !== indices[k]) changed++;
      indices[k] = best;
    }
    return changed;
  };
  nearest();
  for (let iteration = 0; iteration < (options.iterations ?? 50); iteration++) {
    const sums = new Float64Array(size);
    const counts = new Float64Array(size);
    for (let k = 0; k < values.length; k++) {
      sums[indices[k]] += values[k];
      counts[indices[k]]++;
    }
    for (let c = 0; c < size; c++) if (counts[c] > 0) centroids[c] = sums[c] / counts[c];
    if (nearest() === 0) break;
  }
  return { kind: 'codebook', bits, centroids: Float32Array.from(centroids), indices };
}

/** The dense weight matrix the quantised values stand for: zeros where the mask drops a weight. */
export function dequantize(weight: Matrix<FloatArray>, keepMask: Uint8Array, q: QuantizedValues): Matrix {
  checkMask(weight, keepMask);
  const out = matrix(weight.rows, weight.cols);
  let k = 0;
  for (let p = 0; p < keepMask.length; p++) {
    if (!keepMask[p]) continue;
    out.data[p] =
      q.kind === 'int8' ? q.codes[k] * q.scales[Math.floor(p / weight.cols)] : q.centroids[q.indices[k]];
    k++;
  }
  return out;
}

/** `mlp` with every layer's weights replaced by their dequantised values. */
export function dequantizeMlp(
  mlp: Mlp,
  keepMasks: readonly Uint8Array[],
  quantized: readonly QuantizedValues[],
): Mlp {
  return {
    layers: mlp.layers.map((layer, l) => ({
      ...layer,
      weight: dequantize(layer.weight, keepMasks[l], quantized[l]),
    })),
  };
}

export interface CentroidFineTuneOptions {
  readonly epochs: number;
  readonly batchSize?: number;
  /** Step size of plain gradient descent on the centroids. Default 1e-3. */
  readonly learningRate?: number;
  readonly loss: LossKind;
  readonly gemm: Gemm;
  /** Called after each epoch with the mean training loss over its batches. */
  readonly onEpoch?: (epoch: number, meanLoss: number) => void;
}

/**
 * Fine-tunes the codebooks on the training loss (Deep Compression, section 3.2): the weights stay
 * tied to their centroids, and the gradient of a centroid is the sum of the gradients of the
 * weights that share it. Plain gradient descent on the centroids; biases are trained too (their
 * own gradient). Returns the new codebooks (the indices do not change) and biases; `mlp` is not
 * modified.
 */
export async function fineTuneCentroids(
  mlp: Mlp,
  keepMasks: readonly Uint8Array[],
  codebooks: readonly CodebookValues[],
  data: Dataset,
  options: CentroidFineTuneOptions,
): Promise<{ codebooks: CodebookValues[]; mlp: Mlp }> {
  const learningRate = options.learningRate ?? 1e-3;
  const centroids = codebooks.map((q) => Float64Array.from(q.centroids));
  const biases = mlp.layers.map((layer) => layer.bias.slice());
  const current = (): CodebookValues[] =>
    codebooks.map((q, l) => ({ ...q, centroids: Float32Array.from(centroids[l]) }));
  const tied = (): Mlp => {
    const dq = dequantizeMlp(mlp, keepMasks, current());
    return { layers: dq.layers.map((layer, l) => ({ ...layer, bias: biases[l] })) };
  };
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    let lossSum = 0;
    let batches = 0;
    for await (const batch of data.batches(options.batchSize ?? 128)) {
      if (batch.y === undefined)
        throw new EcpruneError('usage', 'centroid fine-tuning needs targets (labels)');
      const gradients = await lossAndGradients(tied(), batch.x, batch.y, options.loss, options.gemm);
      lossSum += gradients.loss;
      batches++;
      codebooks.forEach((q, l) => {
        const grad = new Float64Array(centroids[l].length);
        const weightGrad = gradients.weight[l];
        let k = 0;
        for (let p = 0; p < keepMasks[l].length; p++)
          if (keepMasks[l][p]) grad[q.indices[k++]] += weightGrad[p];
        for (let c = 0; c < grad.length; c++) centroids[l][c] -= learningRate * grad[c];
        const biasGrad = gradients.bias[l];
        for (let i = 0; i < biases[l].length; i++) biases[l][i] -= learningRate * biasGrad[i];
      });
    }
    options.onEpoch?.(epoch, lossSum / Math.max(1, batches));
  }
  return { codebooks: current(), mlp: tied() };
}
