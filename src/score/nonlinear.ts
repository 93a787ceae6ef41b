import { optimalBiasShift } from '../compensate/delta.js';
import { inMemoryDataset } from '../data/dataset.js';
import { EcpruneError, option } from '../errors.js';
import { defaultGemm } from '../gemm/default.js';
import type { Gemm } from '../gemm/gemm.js';
import { denseForward } from '../graph/ops/dense.js';
import { type Activation, activate, activationDerivative, applyActivation } from '../model/activations.js';
import { asFloat32, type Matrix, matrix, rowSlice } from '../model/matrix.js';
import { inputSize, type Mlp, weightCount } from '../model/mlp.js';
import type { LayerScores } from './criterion.js';
import { collectStatistics } from './statistics.js';

export interface NonlinearOptions {
  readonly gemm?: Gemm;
  /** called after every weight (the CLI's progress bar) */
  readonly onProgress?: (weightsDone: number, weightsTotal: number) => void;
  /** use at most this many calibration samples (the first ones); default 512 */
  readonly maxSamples?: number;
}

export interface NonlinearResult {
  /** per layer, n_out x n_in: the smallest mean squared output change reachable by a bias shift */
  readonly importance: LayerScores;
  /** per layer, n_out x n_in: the bias shift δ* that reaches it */
  readonly deltaBias: Float64Array[];
}

export const NONLINEAR_DEFAULT_SAMPLES = 512;
const MAX_ITERATIONS = 50;
const MAX_HALVINGS = 40;
/** Steps below this fraction of the natural scale of δ (|δ| + |w| max|a_j|) end the search. */
const STEP_TOLERANCE = 1e-7;
/**
 * Newton steps that promise to lower F by less than this fraction (F'²/2F'' < tol · F) end the
 * search: F is summed from float32 differences, and its rounding (a few 1e-9 relative) would
 * otherwise make the last steps a coin toss. The score is then within ~1e-8 of the minimum.
 */
const GAIN_TOLERANCE = 1e-8;

/** The unperturbed network on the calibration samples, computed once. */
interface Reference {
  /** a_{l-1}: the input of every layer (N x n_{l-1}) */
  readonly inputs: Matrix[];
  /** z_l (N x n_l) */
  readonly z: Matrix[];
  /** act(z_l) recomputed in float64, so that act(z + Δz) − act(z) has no float32 rounding of act(z) */
  readonly activated: Float64Array[];
}

async function reference(mlp: Mlp, x: Matrix, gemm: Gemm): Promise<Reference> {
  const inputs: Matrix[] = [];
  const z: Matrix[] = [];
  const activated: Float64Array[] = [];
  let a = x;
  for (const layer of mlp.layers) {
    inputs.push(a);
    const zl = await denseForward(layer, a, gemm);
    z.push(zl);
    activated.push(Float64Array.from(zl.data, (v) => activate(layer.activation, v)));
    a = {
      rows: zl.rows,
      cols: zl.cols,
      data: applyActivation(layer.activation, zl.data, new Float32Array(zl.data.length)),
    };
  }
  return { inputs, z, activated };
}

/** F(δ), dF/dδ and the Gauss-Newton d²F/dδ² (2/N Σ ||dΔy/dδ||², exact where y is linear in δ). */
interface Objective {
  readonly value: number;
  readonly slope: number;
  readonly curvature: number;
}

/**
 * Through a layer's activation, in place on d (2·count values): the first half holds Δz and becomes
 * Δa = act(z + Δz) − act(z); the second half holds the tangent dΔz/dδ and becomes dΔa/dδ =
 * act'(z + Δz) · dΔz/dδ (forward-mode differentiation, carried along for the Newton step).
 */
function throughActivation(
  act: Activation,
  z: ArrayLike<number>,
  activated: ArrayLike<number>,
  d: Float32Array | Float64Array,
): void {
  if (act.kind === 'identity') return;
  const count = z.length;
  const moved = new Float32Array(count);
  for (let k = 0; k < count; k++) {
    const zk = z[k] + d[k];
    moved[k] = zk;
    d[k] = activate(act, zk) - activated[k];
  }
  activationDerivative(act, moved);
  for (let k = 0; k < count; k++) d[count + k] *= moved[k];
}

/**
 * The mean squared output change when z_l[:, i] moves by `shift` (one value per sample), with its
 * slope and curvature in δ (d shift / dδ = 1). Works on differences, not on the perturbed outputs,
 * so the float32 products carry errors relative to the change rather than to the activations.
 * Neuron i's own change is exact (float64); layer l+1 receives it as a rank-1 update, column i of
 * W_{l+1} times it; the layers after that need one GEMM each (the bias cancels in differences).
 */
async function outputChange(
  mlp: Mlp,
  ref: Reference,
  l: number,
  i: number,
  shift: Float64Array,
  gemm: Gemm,
): Promise<Objective> {
  const samples = shift.length;
  const last = mlp.layers.length - 1;
  const width = mlp.layers[l].weight.rows;
  const column = new Float64Array(2 * samples); // [Δz_l[:, i] ; dΔz_l[:, i]/dδ = 1]
  const zColumn = new Float64Array(samples);
  const activatedColumn = new Float64Array(samples);
  for (let n = 0; n < samples; n++) {
    column[n] = shift[n];
    column[samples + n] = 1;
    zColumn[n] = ref.z[l].data[n * width + i];
    activatedColumn[n] = ref.activated[l][n * width + i];
  }
  throughActivation(mlp.layers[l].activation, zColumn, activatedColumn, column);
  let d: Float32Array | Float64Array = column;
  let cols = 1;
  for (let k = l + 1; k <= last; k++) {
    const weight = mlp.layers[k].weight;
    if (k === l + 1) {
      const next = matrix(2 * samples, weight.rows);
      for (let row = 0; row < 2 * samples; row++) {
        for (let r = 0; r < weight.rows; r++)
          next.data[row * weight.rows + r] = weight.data[r * weight.cols + i] * column[row];
      }
      d = next.data;
    } else {
      d = (
        await gemm.matmul({ rows: 2 * samples, cols, data: d as Float32Array }, asFloat32(weight), {
          transB: true,
        })
      ).data;
    }
    cols = weight.rows;
    throughActivation(mlp.layers[k].activation, ref.z[k].data, ref.activated[k], d);
  }
  const half = samples * cols; // Δy, then dΔy/dδ
  let value = 0;
  let slope = 0;
  let curvature = 0;
  for (let k = 0; k < half; k++) {
    value += d[k] * d[k];
    slope += 2 * d[k] * d[half + k];
    curvature += 2 * d[half + k] * d[half + k];
  }
  return { value: value / samples, slope: slope / samples, curvature: curvature / samples };
}

/**
 * Minimises F(δ) from `start` (EC's linearised δ) with Gauss-Newton steps δ ← δ − F'/F''_GN,
 * halving a step until it lowers F. The step is exact when the output is linear in δ (identity
 * activations after the neuron, or a ReLU network staying on one linear piece), Gauss-Newton is
 * robust where F'' could be negative, and because only decreases are accepted the result is never
 * worse than EC's δ. It finds the minimum nearest EC's δ; a piecewise-linear network can have
 * others (and a flat region where F' = F'' = 0 stops it), which is why it starts there.
 */
async function minimise(objective: (delta: number) => Promise<Objective>, start: number, scale: number) {
  let delta = start;
  let current = await objective(delta);
  for (let iteration = 0; iteration < MAX_ITERATIONS && current.curvature > 0; iteration++) {
    let step = -current.slope / current.curvature;
    // below this, F's own float32 rounding decides whether a step "helps": stop
    if (-step * current.slope < 2 * GAIN_TOLERANCE * current.value) break;
    let improved = false;
    for (let halving = 0; halving < MAX_HALVINGS; halving++) {
      if (!(Math.abs(step) > STEP_TOLERANCE * (Math.abs(delta) + scale))) break;
      const trial = await objective(delta + step);
      if (trial.value < current.value) {
        delta += step;
        current = trial;
        improved = true;
        break;
      }
      step /= 2;
    }
    if (!improved) break;
  }
  return { delta, value: current.value };
}

/**
 * The paper's non-linear reference criterion, computed through the real network without
 * linearisation: for every weight W_l[i, j], the bias shift δ* of neuron i minimising
 *   F(δ) = (1/N) Σ_n ||y(x_n; W_l[i, j] = 0, b_l[i] + δ) − y(x_n)||²
 * and the score F(δ*). Removing the weight and shifting the bias changes only z_l[i], by
 * δ − w a_j, so only layers l+1..L are re-run. One 1-D search per weight, a few network passes
 * each: meant for small networks and calibration sets (≲ 10k weights × 512 samples).
 * Weights that are already zero score 0 with δ* = 0.
 */
export async function nonlinearScore(
  mlp: Mlp,
  calibration: Matrix,
  options: NonlinearOptions = {},
): Promise<NonlinearResult> {
  const gemm = options.gemm ?? defaultGemm();
  if (calibration.cols !== inputSize(mlp)) {
    throw new EcpruneError(
      'input',
      `the calibration data has ${calibration.cols} features per sample, the model takes ${inputSize(mlp)}`,
    );
  }
  const samples = Math.min(calibration.rows, options.maxSamples ?? NONLINEAR_DEFAULT_SAMPLES);
  if (samples < 1) throw new EcpruneError('input', 'the calibration set is empty');
  const x = rowSlice(calibration, 0, samples);
  const statistics = await collectStatistics(mlp, inMemoryDataset(x), { gemm });
  const start = optimalBiasShift(mlp, statistics);
  const ref = await reference(mlp, x, gemm);
  const total = weightCount(mlp);
  let done = 0;
  const importance: LayerScores = [];
  const deltaBias: Float64Array[] = [];
  for (let l = 0; l < mlp.layers.length; l++) {
    const { rows, cols, data } = mlp.layers[l].weight;
    const input = ref.inputs[l].data;
    importance.push(new Float64Array(rows * cols));
    deltaBias.push(new Float64Array(rows * cols));
    for (let j = 0; j < cols; j++) {
      const aj = Float64Array.from({ length: samples }, (_, n) => input[n * cols + j]);
      const largest = aj.reduce((max, v) => Math.max(max, Math.abs(v)), 0);
      for (let i = 0; i < rows; i++) {
        const flat = i * cols + j;
        const w = data[flat];
        if (w !== 0) {
          const shift = new Float64Array(samples);
          const objective = (delta: number) => {
            for (let n = 0; n < samples; n++) shift[n] = delta - w * aj[n];
            return outputChange(mlp, ref, l, i, shift, gemm);
          };
          const best = await minimise(objective, start[l][flat], Math.abs(w) * largest);
          importance[l][flat] = best.value;
          deltaBias[l][flat] = best.delta;
        }
        options.onProgress?.(++done, total);
      }
    }
  }
  return { importance, deltaBias };
}

/** `nonlinear` re-runs the network once per weight: refused above weights × samples = this. */
export const NONLINEAR_MAX_WORK = 10_000 * NONLINEAR_DEFAULT_SAMPLES;

/**
 * Refuses `nonlinear` where it would take too long: it re-runs the network for every weight on
 * every sample. Exported so that a caller can check before training a network.
 */
export function checkNonlinearSize(
  weights: number,
  calibrationSamples: number,
  nonlinearSamples = NONLINEAR_DEFAULT_SAMPLES,
): void {
  const samples = Math.min(calibrationSamples, nonlinearSamples);
  if (weights * samples > NONLINEAR_MAX_WORK) {
    throw new EcpruneError(
      'limit',
      `method 'nonlinear' re-runs the network for every weight: ${weights.toLocaleString('en')} weights × ${samples} samples ` +
        `is over its limit of ${NONLINEAR_MAX_WORK.toLocaleString('en')} (use a smaller network or fewer ${option('nonlinearSamples')}, or leave nonlinear out)`,
    );
  }
}
