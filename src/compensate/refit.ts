import type { Dataset } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import { defaultGemm } from '../gemm/default.js';
import type { Gemm } from '../gemm/gemm.js';
import type { Model } from '../graph/graph.js';
import { backpropagate, forward, forwardTrace, modelShape } from '../graph/run.js';
import type { Matrix } from '../model/matrix.js';
import { DEFAULT_BATCH_SIZE, oneHotCotangents } from '../score/statistics.js';

/**
 * Joint bias refit after the mask is fixed: Gauss–Newton / Levenberg–Marquardt on the biases only,
 * matching the pruned network's outputs to the dense (reference) network's on the calibration set.
 *
 *   E(b) = (1/N) Σ_n ||r_n||²,  r_n = y_pruned(x_n; b) - y_dense(x_n)
 *
 * dy/db_l[i] = dy/dz_l[i] = J_{l,i}: the Jacobian of the outputs with respect to every bias is the
 * backward pass of the sensitivities (K one-hot cotangents per sample), all layers side by side:
 * J_b(x_n) is K x P, P = Σ_l n_l (410 for 784-300-100-10). Each iteration solves
 *
 *   (Σ_n J_bᵀ J_b + λ I) Δb = -Σ_n J_bᵀ r_n,        λ = μ · mean diag(Σ J_bᵀ J_b)
 *
 * by Cholesky in float64 and evaluates E through the real (nonlinear) network; the step is kept
 * only when E falls (then μ /= 10), else μ *= 10 and the step is retried (at most 6 times per
 * iteration). So the refit never increases the calibration output error. Weights are not touched:
 * the mask and every surviving weight stay as they are.
 */
export interface RefitOptions {
  /** Gauss–Newton iterations (each: one Jacobian pass, one or more error passes) */
  readonly iterations: number;
  readonly gemm?: Gemm;
  readonly batchSize?: number;
  /** initial μ of the damping λ = μ · mean diag(JᵀJ); default 1e-4 */
  readonly damping?: number;
}

export interface RefitResult {
  readonly model: Model;
  /** E before and after: mean over samples of Σ_k (y - y_dense)² */
  readonly errorBefore: number;
  readonly errorAfter: number;
  /** steps that were kept */
  readonly acceptedSteps: number;
  /** E after every iteration (the same value again when no step was found) */
  readonly history: number[];
}

const MAX_RETRIES = 6;
/** at most this many float32 entries (64 MB) in one batch's bias Jacobian */
const JACOBIAN_FLOATS = 16 * 1024 * 1024;

export async function refitBiases(
  model: Model,
  reference: Model,
  calibration: Dataset,
  options: RefitOptions,
): Promise<RefitResult> {
  const gemm = options.gemm ?? defaultGemm();
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const [outputs, referenceOutputs] = [
    (await modelShape(model)).outputs,
    (await modelShape(reference)).outputs,
  ];
  if (outputs !== referenceOutputs) {
    throw new EcpruneError('usage', `the model has ${outputs} outputs, the reference ${referenceOutputs}`);
  }
  let current = model;
  let mu = options.damping ?? 1e-4;
  const errorBefore = await outputError(model, reference, calibration, { gemm, batchSize });
  let error = errorBefore;
  const history: number[] = [];
  let acceptedSteps = 0;
  for (let iteration = 0; iteration < options.iterations; iteration++) {
    const { normal, gradient } = await gaussNewtonSystem(current, reference, calibration, gemm, batchSize);
    const size = gradient.length;
    let meanDiagonal = 0;
    for (let p = 0; p < size; p++) meanDiagonal += normal[p * size + p] / size;
    let accepted = false;
    for (let retry = 0; retry < MAX_RETRIES && !accepted; retry++) {
      const lambda = mu * meanDiagonal + Number.MIN_VALUE;
      const damped = normal.slice();
      for (let p = 0; p < size; p++) damped[p * size + p] += lambda;
      const factor = cholesky(damped, size);
      if (factor !== undefined) {
        const step = choleskySolve(
          factor,
          size,
          gradient.map((g) => -g),
        );
        const candidate = withBiasStep(current, step);
        const candidateError = await outputError(candidate, reference, calibration, { gemm, batchSize });
        if (candidateError < error) {
          current = candidate;
          error = candidateError;
          accepted = true;
          acceptedSteps++;
          mu /= 10;
          break;
        }
      }
      mu *= 10;
    }
    history.push(error);
    if (!accepted) break; // no step lowers E even with heavy damping: a (local) minimum
  }
  return { model: current, errorBefore, errorAfter: error, acceptedSteps, history };
}

/** Mean over the calibration samples of ||y_model(x) - y_reference(x)||². */
export async function outputError(
  model: Model,
  reference: Model,
  calibration: Dataset,
  options: { gemm?: Gemm; batchSize?: number } = {},
): Promise<number> {
  const gemm = options.gemm ?? defaultGemm();
  let sum = 0;
  let samples = 0;
  for await (const batch of calibration.batches(options.batchSize ?? DEFAULT_BATCH_SIZE)) {
    const y = await forward(model, batch.x, gemm);
    const yReference = await forward(reference, batch.x, gemm);
    for (let i = 0; i < y.data.length; i++) sum += (y.data[i] - yReference.data[i]) ** 2;
    samples += batch.x.rows;
  }
  return sum / samples;
}

/** Σ_n J_bᵀ J_b (P x P) and Σ_n J_bᵀ r_n (P) over the calibration set, in float64. */
async function gaussNewtonSystem(
  model: Model,
  reference: Model,
  calibration: Dataset,
  gemm: Gemm,
  batchSize: number,
): Promise<{ normal: Float64Array; gradient: Float64Array }> {
  const widths = model.layers.map((layer) => layer.weight.rows);
  const offsets = widths.map((_, l) => widths.slice(0, l).reduce((a, b) => a + b, 0));
  const size = widths.reduce((a, b) => a + b, 0);
  const { outputs } = await modelShape(model);
  const normal = new Float64Array(size * size);
  const gradient = new Float64Array(size);
  // the Jacobian block is (B·K) x P float32: cap B so that it stays within JACOBIAN_FLOATS
  const samplesPerBatch = Math.max(1, Math.min(batchSize, Math.floor(JACOBIAN_FLOATS / (outputs * size))));
  for await (const batch of calibration.batches(samplesPerBatch)) {
    const trace = await forwardTrace(model, batch.x, gemm);
    const yReference = await forward(reference, batch.x, gemm);
    const rows = batch.x.rows * outputs; // one row per (sample, output k)
    // G: row (n, k) holds dy_k/db for every bias, layer blocks side by side (rows x P)
    const jacobian: Matrix = { rows, cols: size, data: new Float32Array(rows * size) };
    await backpropagate(model, trace, oneHotCotangents(batch.x.rows, outputs), gemm, (l, cotangent) => {
      for (let r = 0; r < rows; r++) {
        jacobian.data.set(cotangent.data.subarray(r * widths[l], (r + 1) * widths[l]), r * size + offsets[l]);
      }
    });
    // the residual as one column, row (n, k) = y_k(x_n) - y_dense,k(x_n)
    const residual: Matrix = { rows, cols: 1, data: new Float32Array(rows) };
    for (let r = 0; r < rows; r++) residual.data[r] = trace.output.data[r] - yReference.data[r];
    const gram = await gemm.matmul(jacobian, jacobian, { transA: true });
    const projected = await gemm.matmul(jacobian, residual, { transA: true });
    for (let p = 0; p < normal.length; p++) normal[p] += gram.data[p];
    for (let p = 0; p < size; p++) gradient[p] += projected.data[p];
  }
  return { normal, gradient };
}

/** A copy of `model` with every bias moved by its entry of `step` (layer blocks in order). */
function withBiasStep<M extends Model>(model: M, step: Float64Array): M {
  let offset = 0;
  return {
    ...model,
    layers: model.layers.map((layer) => {
      const bias = layer.bias.map((b, i) => b + step[offset + i]);
      offset += bias.length;
      return { ...layer, bias };
    }),
  };
}

/**
 * Dense Cholesky A = L Lᵀ of a symmetric positive definite n x n matrix (row-major, float64; only
 * the lower triangle is read). Returns L (lower triangle, zeros above), or undefined when A is not
 * numerically positive definite.
 */
export function cholesky(a: Float64Array, n: number): Float64Array | undefined {
  const factor = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let diagonal = a[j * n + j];
    for (let k = 0; k < j; k++) diagonal -= factor[j * n + k] ** 2;
    if (!(diagonal > 0)) return undefined;
    const root = Math.sqrt(diagonal);
    factor[j * n + j] = root;
    for (let i = j + 1; i < n; i++) {
      let sum = a[i * n + j];
      for (let k = 0; k < j; k++) sum -= factor[i * n + k] * factor[j * n + k];
      factor[i * n + j] = sum / root;
    }
  }
  return factor;
}

/** Solves L Lᵀ x = b given the factor L of `cholesky`. */
export function choleskySolve(factor: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  const x = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    // forward: L y = b
    let sum = x[i];
    for (let k = 0; k < i; k++) sum -= factor[i * n + k] * x[k];
    x[i] = sum / factor[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    // backward: Lᵀ x = y
    let sum = x[i];
    for (let k = i + 1; k < n; k++) sum -= factor[k * n + i] * x[k];
    x[i] = sum / factor[i * n + i];
  }
  return x;
}

/**
 * A⁻¹ from the factor L of A = L Lᵀ (n x n, row-major): A⁻¹ = L⁻ᵀ L⁻¹, with L⁻¹ lower triangular
 * computed column by column; both products skip the zero triangles.
 */
export function choleskyInverse(factor: Float64Array, n: number): Float64Array {
  const lowerInverse = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    lowerInverse[c * n + c] = 1 / factor[c * n + c];
    for (let i = c + 1; i < n; i++) {
      let sum = 0;
      for (let k = c; k < i; k++) sum += factor[i * n + k] * lowerInverse[k * n + c];
      lowerInverse[i * n + c] = -sum / factor[i * n + i];
    }
  }
  const inverse = new Float64Array(n * n);
  for (let r = 0; r < n; r++) {
    for (let c = r; c < n; c++) {
      let sum = 0;
      for (let k = c; k < n; k++) sum += lowerInverse[k * n + r] * lowerInverse[k * n + c];
      inverse[r * n + c] = sum;
      inverse[c * n + r] = sum;
    }
  }
  return inverse;
}
