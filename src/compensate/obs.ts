import type { Dataset } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import { defaultGemm } from '../gemm/default.js';
import type { Gemm } from '../gemm/gemm.js';
import { type DenseLayer, denseNodeOf, type Model } from '../graph/graph.js';
import { asGraph } from '../graph/mlp-graph.js';
import { asMatrix, forwardTrace } from '../graph/run.js';
import { type Matrix, zerosLike } from '../model/matrix.js';
import { DEFAULT_BATCH_SIZE } from '../score/statistics.js';
import type { KeepMask } from '../select/select.js';
import { cholesky, choleskyInverse } from './refit.js';

/**
 * Layer-wise optimal brain surgeon (the SparseGPT reconstruction), a REFERENCE method that CHANGES
 * THE SURVIVING WEIGHTS — not a bias-only compensation like EC. It answers: how much better can a
 * layer be reconstructed when every kept weight may move, not just the bias?
 *
 * Per layer l, with the calibration inputs a (taken from the network whose earlier layers are
 * already pruned, as SparseGPT does) augmented by a constant 1 so that the bias is the last column:
 *
 *   minimise over Ŵ with the mask:  Σ_n ||(W - Ŵ) [a_n; 1]||²,   H = Σ_n [a;1][a;1]ᵀ + λ I,
 *   λ = damping · mean diag(Σ [a;1][a;1]ᵀ)  (1 % by default).
 *
 * The rows share H. Columns are processed in order; removing weight w_ij with the OBS update
 * moves the not-yet-processed entries of its row by -(w_ij / U_jj) U[j, j+1:], where U is the upper
 * Cholesky factor of H⁻¹ = Uᵀ U (U_jj² is [H_F⁻¹]_jj of the columns F still free at step j, so each
 * step is the exact OBS step over the remaining columns). The mask is chosen per block of columns,
 * just before the block is processed, by the OBS saliency w² / U_jj² over all rows of the block;
 * each block prunes its proportional share of the layer's count, so the layer's total is exact.
 * The bias column is never pruned and absorbs every update (it plays EC's compensation role, with
 * unweighted samples: the objective has no output sensitivity s). A layer whose bias must stay as
 * it is (`fixedBias`) is solved without the bias column (H is then Σ a aᵀ + λ I).
 *
 * OBS is layer-wise, so it runs on any graph: a layer's inputs a are read from the graph's forward
 * trace (through residuals, normalisations, anything before the layer), whatever follows it.
 */
export interface ObsOptions {
  readonly gemm?: Gemm;
  readonly batchSize?: number;
  /** λ as a fraction of the mean diagonal of H; default 0.01 */
  readonly damping?: number;
  /** columns per mask-selection block; default 32 */
  readonly blockSize?: number;
  /** indices of the layers whose bias must not change (a bias-free layer kept so) */
  readonly fixedBias?: ReadonlySet<number>;
}

export interface ObsResult<M extends Model> {
  /** the model of the kind it was given (a graph keeps its nodes), with the reconstructed layers */
  readonly model: M;
  readonly keepMasks: KeepMask[];
  /** per layer, the OBS saliency w² / [H⁻¹]_jj of every weight before pruning (low = pruned first) */
  readonly saliency: Float64Array[];
}

/** Prunes `pruneCounts[l]` weights of each layer l, in layer order, reconstructing each layer by OBS. */
export async function obsPrune<M extends Model>(
  model: M,
  calibration: Dataset,
  pruneCounts: readonly number[],
  options: ObsOptions = {},
): Promise<ObsResult<M>> {
  const gemm = options.gemm ?? defaultGemm();
  let current = model;
  const keepMasks: KeepMask[] = [];
  const saliency: Float64Array[] = [];
  for (let l = 0; l < model.layers.length; l++) {
    const gram = await augmentedInputGram(
      current,
      l,
      calibration,
      gemm,
      options.batchSize ?? DEFAULT_BATCH_SIZE,
    );
    const layer = current.layers[l];
    const result = obsPruneLayer(
      layer,
      gram,
      pruneCounts[l],
      { ...options, withBias: !options.fixedBias?.has(l) },
      'name' in layer ? `layer '${layer.name}'` : `layer ${l}`,
    );
    const layers = current.layers.map((old, k) => (k === l ? { ...old, ...result.layer } : old));
    current = { ...current, layers } as M;
    keepMasks.push(result.keep);
    saliency.push(result.saliency);
  }
  return { model: current, keepMasks, saliency };
}

/**
 * Σ_n [a;1][a;1]ᵀ ((n_in+1)², float64) of layer l's inputs over the calibration set, a read from
 * the forward trace of the model (any graph) at the input of the layer's Dense node.
 */
export async function augmentedInputGram(
  model: Model,
  l: number,
  calibration: Dataset,
  gemm: Gemm,
  batchSize: number,
): Promise<Float64Array> {
  const graph = asGraph(model);
  const input = denseNodeOf(graph, l).inputs[0];
  const nIn = graph.layers[l].weight.cols;
  const size = nIn + 1;
  const gram = new Float64Array(size * size);
  for await (const batch of calibration.batches(batchSize)) {
    const trace = await forwardTrace(graph, batch.x, gemm);
    const a = asMatrix(trace.values.get(input)!);
    const augmented: Matrix = { rows: a.rows, cols: size, data: new Float32Array(a.rows * size) };
    for (let n = 0; n < a.rows; n++) {
      augmented.data.set(a.data.subarray(n * nIn, (n + 1) * nIn), n * size);
      augmented.data[n * size + nIn] = 1;
    }
    const product = await gemm.matmul(augmented, augmented, { transA: true });
    for (let p = 0; p < gram.length; p++) gram[p] += product.data[p];
  }
  return gram;
}

/**
 * One layer: prunes `count` weights and updates the survivors and the bias (see the top).
 * `gram` = Σ [a;1][a;1]ᵀ of the layer's inputs. Pruned weights are exactly 0 in the result.
 */
export function obsPruneLayer<L extends Pick<DenseLayer, 'weight' | 'bias'>>(
  layer: L,
  gram: Float64Array,
  count: number,
  options: Pick<ObsOptions, 'damping' | 'blockSize'> & { readonly withBias?: boolean } = {},
  where?: string,
): { layer: L; keep: KeepMask; saliency: Float64Array } {
  const { rows, cols } = layer.weight;
  const withBias = options.withBias ?? true;
  const size = withBias ? cols + 1 : cols; // the bias is column `cols`
  const augmentedSize = cols + 1;
  if (!(count >= 0 && count <= rows * cols))
    throw new EcpruneError('usage', `cannot prune ${count} of ${rows * cols} weights`, undefined, where);
  const blockSize = options.blockSize ?? 32;
  // without the bias column, H is the leading cols x cols block of the augmented gram
  const damped = new Float64Array(size * size);
  for (let j = 0; j < size; j++)
    damped.set(gram.subarray(j * augmentedSize, j * augmentedSize + size), j * size);
  let meanDiagonal = 0;
  for (let j = 0; j < size; j++) meanDiagonal += damped[j * size + j] / size;
  for (let j = 0; j < size; j++) damped[j * size + j] += (options.damping ?? 0.01) * meanDiagonal;
  const factor = cholesky(damped, size);
  if (factor === undefined)
    throw new EcpruneError('internal', 'the damped input Hessian is not positive definite', undefined, where);
  const inverse = choleskyInverse(factor, size);
  const inverseFactor = cholesky(inverse, size); // lower L2, H⁻¹ = L2 L2ᵀ, so U = L2ᵀ: U[j, c] = L2[c, j]
  if (inverseFactor === undefined)
    throw new EcpruneError('internal', 'H⁻¹ is not positive definite', undefined, where);
  const upper = new Float64Array(size * size); // U row-major, so that a row of U is contiguous
  for (let j = 0; j < size; j++)
    for (let c = j; c < size; c++) upper[j * size + c] = inverseFactor[c * size + j];
  const u = (j: number, c: number) => upper[j * size + c];

  // W | b in float64, rows x size
  const w = new Float64Array(rows * size);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) w[i * size + j] = layer.weight.data[i * cols + j];
    if (withBias) w[i * size + cols] = layer.bias[i];
  }
  const saliency = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) saliency[i * cols + j] = w[i * size + j] ** 2 / inverse[j * size + j];

  const keep = new Uint8Array(rows * cols).fill(1);
  const candidates: { i: number; j: number; score: number }[] = [];
  for (let start = 0; start < cols; start += blockSize) {
    const end = Math.min(cols, start + blockSize);
    const blockCount = Math.round((count * end) / cols) - Math.round((count * start) / cols);
    candidates.length = 0;
    for (let i = 0; i < rows; i++) {
      for (let j = start; j < end; j++) candidates.push({ i, j, score: w[i * size + j] ** 2 / u(j, j) ** 2 });
    }
    candidates.sort((a, b) => a.score - b.score || a.i - b.i || a.j - b.j);
    for (let p = 0; p < blockCount; p++) keep[candidates[p].i * cols + candidates[p].j] = 0;
    for (let j = start; j < end; j++) {
      const pivot = u(j, j);
      for (let i = 0; i < rows; i++) {
        if (keep[i * cols + j]) continue;
        const error = w[i * size + j] / pivot;
        w[i * size + j] = 0;
        for (let c = j + 1; c < size; c++) w[i * size + c] -= error * upper[j * size + c];
      }
    }
  }
  // in the layer's precision: a float64 layer's bias that OBS leaves alone stays bit for bit
  const weight = zerosLike(layer.weight.data, rows * cols);
  const bias = zerosLike(layer.bias, rows);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) weight[i * cols + j] = keep[i * cols + j] ? w[i * size + j] : 0;
    bias[i] = withBias ? w[i * size + cols] : layer.bias[i];
  }
  return {
    layer: { ...layer, weight: { rows, cols, data: weight }, bias },
    keep,
    saliency,
  };
}
